//! A single-consumer queue between tasks of one executor, drained in batches.
//!
//! glommio's local channel hands out one item per await; the shard driver wants
//! "wait for the first, then take everything that is already there" so that one group
//! commit and one cross-core message cover a whole batch. All users live on one
//! thread (`Rc`), so a `RefCell` and one stored waker suffice.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// The queue. Capacity is the callers' business: they check [`Mailbox::len`] against
/// their own `*_max` before pushing when they can wait, and push regardless when the
/// item is a reply that must not be lost.
#[derive(Default)]
pub struct Mailbox<T> {
    items: RefCell<VecDeque<T>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl<T> Mailbox<T> {
    pub fn new() -> Self {
        Mailbox {
            items: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
        }
    }

    /// Queues `item` and wakes the consumer.
    pub fn push(&self, item: T) {
        self.items.borrow_mut().push_back(item);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    /// No more items will be consumed; wakes the consumer so it can finish.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Waits until at least one item is queued (or the mailbox is closed), then moves
    /// up to `max` items into `out`. Returns false once closed and empty.
    pub async fn recv_batch(&self, out: &mut Vec<T>, max: usize) -> bool {
        debug_assert!(max > 0, "a batch holds at least one item");
        poll_fn(|cx| {
            let mut items = self.items.borrow_mut();
            if items.is_empty() {
                if self.closed.get() {
                    return Poll::Ready(false);
                }
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = items.len().min(max);
            out.extend(items.drain(..n));
            Poll::Ready(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn batches_what_is_queued_and_wakes_the_consumer() {
        let out = crate::runtime::exec::run_on_cores(1, 0, |_| async {
            let mb = Rc::new(Mailbox::new());
            let producer = {
                let mb = mb.clone();
                glommio::spawn_local(async move {
                    for i in 0..5 {
                        mb.push(i);
                    }
                    glommio::executor().yield_task_queue_now().await;
                    mb.push(5);
                    mb.close();
                })
            };
            let mut got = Vec::new();
            while mb.recv_batch(&mut got, 3).await {}
            producer.await;
            got
        })
        .unwrap();
        assert_eq!(out[0], vec![0, 1, 2, 3, 4, 5]);
    }
}
