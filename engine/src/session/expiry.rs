//! Session expiry by tick, in buckets (ZooKeeper's `ExpiryQueue`).
//!
//! A touched session's deadline is rounded up to the next multiple of the interval
//! (the tick), so all sessions due in one tick share a bucket and expire together;
//! `expired(now)` pops every bucket whose time has come. Pure: `now` is an input.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Buckets of session ids by expiry time (ms).
#[derive(Debug, Clone)]
pub struct ExpiryQueue {
    interval_ms: i64,
    deadline: HashMap<i64, i64>,
    buckets: BTreeMap<i64, BTreeSet<i64>>,
}

impl ExpiryQueue {
    /// `interval_ms` is clamped to at least 1.
    pub fn new(interval_ms: i64) -> Self {
        ExpiryQueue {
            interval_ms: interval_ms.max(1),
            deadline: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    fn round_up(&self, t: i64) -> i64 {
        (t / self.interval_ms + 1).saturating_mul(self.interval_ms)
    }

    /// (Re)schedules `id` to expire `timeout_ms` after `now_ms`, rounded up to a tick.
    pub fn touch(&mut self, id: i64, now_ms: i64, timeout_ms: i64) {
        let at = self.round_up(now_ms.saturating_add(timeout_ms));
        if let Some(old) = self.deadline.insert(id, at) {
            if old == at {
                return;
            }
            self.unbucket(id, old);
        }
        self.buckets.entry(at).or_default().insert(id);
    }

    fn unbucket(&mut self, id: i64, at: i64) {
        if let Some(b) = self.buckets.get_mut(&at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&at);
            }
        }
    }

    /// Stops tracking `id`.
    pub fn remove(&mut self, id: i64) {
        if let Some(at) = self.deadline.remove(&id) {
            self.unbucket(id, at);
        }
    }

    /// The deadline of `id`, if tracked.
    pub fn deadline(&self, id: i64) -> Option<i64> {
        self.deadline.get(&id).copied()
    }

    /// Removes and returns (ascending) every id whose deadline is `<= now_ms`.
    pub fn expired(&mut self, now_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.buckets.first_key_value() {
            if at > now_ms {
                break;
            }
            if let Some(ids) = self.buckets.remove(&at) {
                for id in ids {
                    self.deadline.remove(&id);
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The earliest deadline, for the runtime's timer.
    pub fn next_deadline(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_up_to_the_tick() {
        let mut q = ExpiryQueue::new(100);
        q.touch(1, 1000, 250); // 1250 -> 1300
        q.touch(2, 1010, 250); // 1260 -> 1300
        q.touch(3, 1000, 300); // 1300 -> 1400
        assert_eq!(q.deadline(1), Some(1300));
        assert_eq!(q.next_deadline(), Some(1300));
        assert!(q.expired(1299).is_empty());
        assert_eq!(q.expired(1300), vec![1, 2]);
        q.touch(3, 1200, 300); // moved to 1600
        assert!(q.expired(1500).is_empty());
        assert_eq!(q.expired(10_000), vec![3]);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn absurd_times_do_not_overflow() {
        let mut q = ExpiryQueue::new(100);
        q.touch(1, i64::MAX - 5, i64::MAX);
        q.touch(2, i64::MIN, 10);
        assert_eq!(q.expired(i64::MIN + 1000), vec![2]);
        assert!(q.expired(i64::MAX - 1000).is_empty());
    }
}
