//! `ConnCore`: the decisions of one client connection, as a pure state machine.
//!
//! The socket tasks in [`super::conn`] do the IO; everything they decide is here, so
//! the seeded simulation (`engine/tests/sim_glue.rs`) drives the same code:
//! - **Credits.** Every request (pings and auth packets included) takes a slot when it
//!   is read; at most [`CONN_PENDING_MAX`] slots are open. With none left the reader
//!   stops reading the socket (TCP pushes back on the client) instead of queueing.
//! - **Reply matching.** A reply fills the oldest unanswered slot *with its xid*, never
//!   a slot by position: a reply that matches no slot is a bug upstream, reported, and
//!   never sent under another request's xid.
//! - **Order.** Answered slots leave from the front only, so replies go out in request
//!   order whatever order they were answered in (a locally refused request never
//!   overtakes a reply the shard still owes). A watch event first sends every answered
//!   slot ahead of it: the shard answered those before the change that fired the event,
//!   and a read that set the watch must reach the client before the event.
//! - **Output limits.** Bytes handed to the connection but not yet accepted by the
//!   socket are counted. Past [`CONN_OUT_BYTES_PAUSE`] the reader stops reading new
//!   requests until the client drains its replies; past [`CONN_OUT_BYTES_MAX`] (only
//!   watch events can get there: replies are bounded by the credits) the connection is
//!   closed, as ZooKeeper closes a client that does not read.

use std::collections::VecDeque;

use transport::jute::ErrorCode;
use transport::jute::header::ReplyHeader;
use transport::jute::records::WatcherEvent;
use transport::jute::response::Response;

use super::convert::Asked;
use crate::tree::watch::WatchEvent;

/// Requests one connection may have outstanding (read, not yet sent back).
pub const CONN_PENDING_MAX: usize = 1000;
/// Unsent output (estimated bytes) above which the connection stops reading requests.
pub const CONN_OUT_BYTES_PAUSE: usize = 4 << 20;
/// Unsent output (estimated bytes) above which the connection is closed: a client
/// that does not read while watch events for it keep coming.
pub const CONN_OUT_BYTES_MAX: usize = 64 << 20;

const _: () = assert!(CONN_OUT_BYTES_PAUSE < CONN_OUT_BYTES_MAX);
const _: () = assert!(CONN_PENDING_MAX > 0);

/// One request awaiting (or holding) its answer.
#[derive(Debug)]
struct Slot {
    xid: i32,
    asked: Asked,
    /// When it was read, in the caller's microseconds (latency statistics).
    started_us: u64,
    /// Whether the shard owes the answer (it holds a unit of the core's budget).
    from_shard: bool,
    ready: Option<(i64, ErrorCode, Response)>,
}

/// A reply that matched no open slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub xid: i32,
}

/// What the output accounting says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Go on.
    Flowing,
    /// Stop reading requests until the writer catches up.
    Paused,
    /// Close: the client does not read and its output passed [`CONN_OUT_BYTES_MAX`].
    Overflow,
}

/// The connection's state.
#[derive(Debug)]
pub struct ConnCore {
    slots: VecDeque<Slot>,
    /// Slots the shard still owes an answer.
    shard_owes: usize,
    /// Estimated bytes handed to the connection and not yet written to the socket.
    out_bytes: usize,
    /// The highest zxid seen in a reply (carried on pongs and local answers).
    last_zxid: i64,
    /// Output limits: pause reading above the first, close above the second.
    out_bytes_pause: usize,
    out_bytes_max: usize,
}

impl Default for ConnCore {
    fn default() -> Self {
        ConnCore::with_limits(CONN_OUT_BYTES_PAUSE, CONN_OUT_BYTES_MAX)
    }
}

impl ConnCore {
    /// A connection with the server's limits.
    pub fn new() -> Self {
        ConnCore::default()
    }

    /// A connection with other output limits (simulations use small ones to reach
    /// them); `pause_bytes < max_bytes`.
    pub fn with_limits(pause_bytes: usize, max_bytes: usize) -> Self {
        debug_assert!(pause_bytes < max_bytes, "pausing comes before closing");
        ConnCore {
            slots: VecDeque::new(),
            shard_owes: 0,
            out_bytes: 0,
            last_zxid: 0,
            out_bytes_pause: pause_bytes,
            out_bytes_max: max_bytes,
        }
    }

    /// Whether another request may be read now (a free credit).
    pub fn has_credit(&self) -> bool {
        self.slots.len() < CONN_PENDING_MAX
    }

    /// Requests read and not yet sent back.
    pub fn pending(&self) -> usize {
        self.slots.len()
    }

    /// Answers the shard still owes.
    pub fn shard_owes(&self) -> usize {
        self.shard_owes
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// A request was read. `local`: answered here at once with this error (its slot
    /// still waits for the slots ahead of it); `None`: sent to the shard.
    pub fn admit(&mut self, xid: i32, asked: Asked, started_us: u64, local: Option<ErrorCode>) {
        debug_assert!(self.has_credit(), "the reader takes a credit first");
        let ready = local.map(|e| (self.last_zxid, e, Response::Empty));
        let from_shard = ready.is_none();
        self.shard_owes += usize::from(from_shard);
        self.slots.push_back(Slot {
            xid,
            asked,
            started_us,
            from_shard,
            ready,
        });
    }

    /// The shard's answer to `xid`: fills the oldest unanswered slot with that xid.
    /// `respond` turns the request's shape into the response body.
    pub fn answer(
        &mut self,
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        respond: impl FnOnce(&Asked) -> Response,
    ) -> Result<(), Unmatched> {
        self.last_zxid = self.last_zxid.max(zxid);
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.from_shard && s.ready.is_none() && s.xid == xid)
            .ok_or(Unmatched { xid })?;
        slot.ready = Some((zxid, err, respond(&slot.asked)));
        debug_assert!(self.shard_owes > 0, "an answered slot was owed");
        self.shard_owes -= 1;
        Ok(())
    }

    /// Encodes the answered slots at the front into `wbuf`, in request order; calls
    /// `sent(latency_us)` for each at `now_us`. Returns how many left (credits freed).
    pub fn drain(&mut self, wbuf: &mut Vec<u8>, now_us: u64, mut sent: impl FnMut(u64)) -> usize {
        let mut n = 0;
        while self.slots.front().is_some_and(|s| s.ready.is_some()) {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            let Some((zxid, err, resp)) = slot.ready else {
                break;
            };
            resp.encode_frame(&ReplyHeader::new(slot.xid, zxid, err), wbuf);
            sent(now_us.saturating_sub(slot.started_us));
            n += 1;
        }
        n
    }

    /// A watch event: the answered slots ahead of it go first, then the event.
    /// Returns the credits freed, as [`ConnCore::drain`].
    pub fn event(
        &mut self,
        event: WatchEvent,
        wbuf: &mut Vec<u8>,
        now_us: u64,
        sent: impl FnMut(u64),
    ) -> usize {
        let n = self.drain(wbuf, now_us, sent);
        let ev = Response::Notification(WatcherEvent::node(event.kind, event.path));
        ev.encode_frame(&ReplyHeader::notification(), wbuf);
        n
    }

    /// `bytes` more output was handed to the connection.
    pub fn queued(&mut self, bytes: usize) -> OutState {
        self.out_bytes = self.out_bytes.saturating_add(bytes);
        self.out_state()
    }

    /// `bytes` of output were written to the socket.
    pub fn written(&mut self, bytes: usize) -> OutState {
        debug_assert!(bytes <= self.out_bytes, "only queued bytes are written");
        self.out_bytes = self.out_bytes.saturating_sub(bytes);
        self.out_state()
    }

    /// Output handed over and not yet written (estimated bytes).
    pub fn out_bytes(&self) -> usize {
        self.out_bytes
    }

    pub fn out_state(&self) -> OutState {
        if self.out_bytes > self.out_bytes_max {
            OutState::Overflow
        } else if self.out_bytes > self.out_bytes_pause {
            OutState::Paused
        } else {
            OutState::Flowing
        }
    }

    /// Whether the reader may read more requests: a credit and output flowing.
    pub fn may_read(&self) -> bool {
        self.has_credit() && self.out_state() == OutState::Flowing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::OpCode;
    use transport::jute::header::ReplyHeader;

    fn asked(op: OpCode) -> Asked {
        Asked {
            op,
            steps: Vec::new(),
        }
    }

    /// The (xid, err) of every reply frame in `wbuf`.
    fn frames(wbuf: &[u8]) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        let mut rest = wbuf;
        while rest.len() >= 4 {
            let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let body = &rest[4..4 + len];
            let xid = i32::from_be_bytes(body[..4].try_into().unwrap());
            let err = i32::from_be_bytes(body[12..16].try_into().unwrap());
            out.push((xid, err));
            rest = &rest[4 + len..];
        }
        out
    }

    #[test]
    fn replies_match_by_xid_and_leave_in_request_order() {
        let mut c = ConnCore::new();
        c.admit(1, asked(OpCode::SetData), 0, None);
        c.admit(2, asked(OpCode::SetData), 0, None);
        c.admit(3, asked(OpCode::GetData), 0, Some(ErrorCode::Unimplemented));
        // The shard answers 2 before 1 (e.g. a refusal): 2 must not take 1's slot.
        c.answer(2, 7, ErrorCode::BadVersion, |_| Response::Empty)
            .unwrap();
        let mut wbuf = Vec::new();
        assert_eq!(c.drain(&mut wbuf, 0, |_| {}), 0, "1 is still owed");
        c.answer(1, 6, ErrorCode::Ok, |_| Response::Empty).unwrap();
        assert_eq!(c.drain(&mut wbuf, 0, |_| {}), 3);
        assert_eq!(
            frames(&wbuf),
            vec![
                (1, ErrorCode::Ok as i32),
                (2, ErrorCode::BadVersion as i32),
                (3, ErrorCode::Unimplemented as i32)
            ]
        );
        assert_eq!(c.shard_owes(), 0);
        assert_eq!(c.last_zxid(), 7);
    }

    #[test]
    fn an_unmatched_reply_is_refused_not_misplaced() {
        let mut c = ConnCore::new();
        c.admit(5, asked(OpCode::GetData), 0, None);
        assert_eq!(
            c.answer(4, 1, ErrorCode::Ok, |_| Response::Empty),
            Err(Unmatched { xid: 4 })
        );
        c.admit(6, asked(OpCode::GetData), 0, Some(ErrorCode::Unimplemented));
        assert_eq!(
            c.answer(6, 1, ErrorCode::Ok, |_| Response::Empty),
            Err(Unmatched { xid: 6 }),
            "a locally answered slot takes no shard reply"
        );
    }

    #[test]
    fn repeated_xids_are_answered_oldest_first() {
        let mut c = ConnCore::new();
        c.admit(-2, asked(OpCode::Ping), 0, None);
        c.admit(-2, asked(OpCode::Ping), 0, None);
        c.answer(-2, 1, ErrorCode::Ok, |_| Response::Empty).unwrap();
        let mut wbuf = Vec::new();
        assert_eq!(c.drain(&mut wbuf, 0, |_| {}), 1);
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn events_follow_the_answered_replies_ahead_of_them() {
        let mut c = ConnCore::new();
        c.admit(1, asked(OpCode::Exists), 0, None);
        c.admit(2, asked(OpCode::Delete), 0, None);
        c.answer(1, 1, ErrorCode::Ok, |_| Response::Empty).unwrap();
        let mut wbuf = Vec::new();
        let ev = WatchEvent::unchecked(1, transport::jute::EventType::NodeDeleted, "/a");
        assert_eq!(c.event(ev, &mut wbuf, 0, |_| {}), 1);
        assert_eq!(
            frames(&wbuf),
            vec![(1, 0), (ReplyHeader::notification().xid, 0)]
        );
    }

    #[test]
    fn credits_and_output_limits_decide_reading() {
        let mut c = ConnCore::new();
        for x in 0..CONN_PENDING_MAX as i32 {
            assert!(c.may_read());
            c.admit(x, asked(OpCode::GetData), 0, None);
        }
        assert!(!c.may_read(), "no credit left");
        let mut c = ConnCore::new();
        assert_eq!(c.queued(CONN_OUT_BYTES_PAUSE), OutState::Flowing);
        assert_eq!(c.queued(1), OutState::Paused);
        assert!(!c.may_read());
        assert_eq!(c.queued(CONN_OUT_BYTES_MAX), OutState::Overflow);
        assert_eq!(c.written(CONN_OUT_BYTES_MAX + 1), OutState::Flowing);
    }
}
