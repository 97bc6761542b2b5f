//! The session table: replicated sessions (id, negotiated timeout, password) plus the
//! local expiry timers.
//!
//! Sessions enter and leave only by applying `CreateSession` / `CloseSession` txns, so
//! replaying the log recovers them. Timers are not replicated: applying a create starts
//! the session's timer from the txn's time, `touch` (any packet from the client)
//! pushes it back, and after recovery `restart_timers(now)` starts every timer afresh
//! (ZooKeeper does the same). `expired(now)` returns sessions whose timer ran out and
//! marks them closing; the runtime then submits a `CloseSession` for each. A closing
//! session cannot be touched or reconnected and its writes fail with SessionExpired.
//!
//! The replicated part is a persistent map, so [`SessionTable::image`] (what a
//! snapshot holds) is an O(1) copy however many sessions there are.

pub mod expiry;

use std::collections::BTreeSet;

use imbl::OrdMap;

use transport::jute::ErrorCode;

use crate::op::SESSION_PASSWORD_LEN;
use expiry::ExpiryQueue;

/// Default ZooKeeper tickTime (ms).
pub const TICK_MS_DEFAULT: i32 = 2000;

/// Timeout negotiation bounds (`minSessionTimeout`, `maxSessionTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub tick_ms: i32,
    pub timeout_ms_min: i32,
    pub timeout_ms_max: i32,
}

impl SessionConfig {
    /// ZooKeeper's defaults: bounds of 2 and 20 ticks.
    pub fn from_tick(tick_ms: i32) -> Self {
        let tick_ms = tick_ms.max(1);
        SessionConfig {
            tick_ms,
            timeout_ms_min: tick_ms.saturating_mul(2),
            timeout_ms_max: tick_ms.saturating_mul(20),
        }
    }

    /// The timeout a client asking for `requested_ms` gets (clamped into the bounds).
    pub fn negotiate(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(
            self.timeout_ms_min,
            self.timeout_ms_min.max(self.timeout_ms_max),
        )
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig::from_tick(TICK_MS_DEFAULT)
    }
}

/// Hands out session ids the way ZooKeeper does (`SessionTrackerImpl.
/// initializeNextSessionId`): the first is `((start_ms << 24) >>> 8) | server_id << 56`
/// (the server id in the top byte, the low 40 bits of the start time in ms below it,
/// 16 zero bits for a counter), then one more per session. The start time is an input
/// (pure); the runtime passes the wall clock, so a restart starts past the ids of
/// earlier runs unless those handed out more than 65 536 ids per ms they ran.
///
/// Invariants: every id keeps the server id in its top byte (the counter wraps within
/// the low 56 bits rather than carry into it), so two servers' ids never collide; no
/// id is 0 (no session) or `i64::MIN` (ZooKeeper's container-node owner).
/// [`SessionIdGen::resume`] also starts above every session id of this server that
/// recovery brought back.
#[derive(Debug, Clone)]
pub struct SessionIdGen {
    /// `server_id << 56`.
    prefix: i64,
    /// The low 56 bits of the next id.
    counter: u64,
}

/// The bits of a session id below the server id.
const SESSION_COUNTER_MASK: u64 = (1 << 56) - 1;

impl SessionIdGen {
    /// ZooKeeper's first id for `server_id` started at `start_ms`.
    pub fn new(server_id: u8, start_ms: i64) -> Self {
        let base = ((start_ms << 24) as u64) >> 8;
        SessionIdGen {
            prefix: i64::from(server_id) << 56,
            counter: base & SESSION_COUNTER_MASK,
        }
    }

    /// As [`SessionIdGen::new`], but never below an id in `existing` (the sessions
    /// recovered from the snapshot and log) that this server handed out: a clock that
    /// went back across a restart cannot make it reuse a live session's id.
    pub fn resume(server_id: u8, start_ms: i64, existing: impl IntoIterator<Item = i64>) -> Self {
        let mut ids = SessionIdGen::new(server_id, start_ms);
        for id in existing {
            if id & !(SESSION_COUNTER_MASK as i64) == ids.prefix {
                let after = ((id as u64) & SESSION_COUNTER_MASK) + 1;
                ids.counter = ids.counter.max(after & SESSION_COUNTER_MASK);
            }
        }
        ids
    }

    /// The server id these ids carry.
    pub fn server_id(&self) -> u8 {
        (self.prefix >> 56) as u8
    }

    /// A fresh id, never 0 nor `i64::MIN`.
    pub fn next_id(&mut self) -> i64 {
        loop {
            let id = self.prefix | self.counter as i64;
            self.counter = (self.counter + 1) & SESSION_COUNTER_MASK;
            debug_assert_eq!(
                id & !(SESSION_COUNTER_MASK as i64),
                self.prefix,
                "the counter stays below the server id byte, so servers never collide"
            );
            if id != 0 && id != i64::MIN {
                return id;
            }
        }
    }
}

/// One replicated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: [u8; SESSION_PASSWORD_LEN],
}

/// The replicated sessions by id, as a snapshot holds them (an O(1) copy, see the
/// module docs); `Send`.
pub type SessionsImage = OrdMap<i64, Session>;

/// Sessions plus their expiry timers.
#[derive(Debug, Clone)]
pub struct SessionTable {
    sessions: SessionsImage,
    closing: BTreeSet<i64>,
    expiry: ExpiryQueue,
    pub config: SessionConfig,
}

impl Default for SessionTable {
    fn default() -> Self {
        SessionTable::new(SessionConfig::default())
    }
}

impl SessionTable {
    pub fn new(config: SessionConfig) -> Self {
        SessionTable {
            sessions: SessionsImage::new(),
            closing: BTreeSet::new(),
            expiry: ExpiryQueue::new(config.tick_ms as i64),
            config,
        }
    }

    /// Adds a session (applying `CreateSession`) and starts its timer at `now_ms`.
    pub fn add(&mut self, session: Session, now_ms: i64) {
        self.expiry
            .touch(session.id, now_ms, session.timeout_ms as i64);
        self.closing.remove(&session.id);
        self.sessions.insert(session.id, session);
    }

    /// Removes a session (applying `CloseSession`); whether it existed.
    pub fn remove(&mut self, id: i64) -> bool {
        self.expiry.remove(id);
        self.closing.remove(&id);
        self.sessions.remove(&id).is_some()
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Every session, ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// The replicated sessions as they are now, in O(1) (timers and closing marks are
    /// local and left out).
    pub fn image(&self) -> SessionsImage {
        self.sessions.clone()
    }

    /// Whether `id` exists and is not closing (may issue writes).
    pub fn is_active(&self, id: i64) -> bool {
        self.sessions.contains_key(&id) && !self.closing.contains(&id)
    }

    /// Whether `id` timed out and awaits its `CloseSession`.
    pub fn is_closing(&self, id: i64) -> bool {
        self.closing.contains(&id)
    }

    /// The client was heard from at `now_ms`: push its deadline back. False when the
    /// session is unknown or closing (the server should then treat it as expired).
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        match self.sessions.get(&id) {
            Some(s) if !self.closing.contains(&id) => {
                self.expiry.touch(id, now_ms, s.timeout_ms as i64);
                true
            }
            _ => false,
        }
    }

    /// A client reconnects with `id` and `password`: its timeout, or `SessionExpired`
    /// when the session is unknown, closing, or the password is wrong.
    pub fn reconnect(&mut self, id: i64, password: &[u8], now_ms: i64) -> Result<i32, ErrorCode> {
        let s = self.sessions.get(&id).ok_or(ErrorCode::SessionExpired)?;
        if s.password.as_slice() != password || self.closing.contains(&id) {
            return Err(ErrorCode::SessionExpired);
        }
        let timeout = s.timeout_ms;
        self.touch(id, now_ms);
        Ok(timeout)
    }

    /// Sessions whose deadline is `<= now_ms`, ascending; they are marked closing and
    /// will not be reported again.
    pub fn expired(&mut self, now_ms: i64) -> Vec<i64> {
        let ids = self.expiry.expired(now_ms);
        for id in &ids {
            debug_assert!(
                self.sessions.contains_key(id),
                "timers track live sessions only"
            );
            self.closing.insert(*id);
        }
        ids
    }

    /// The earliest deadline, for the runtime's timer.
    pub fn next_deadline(&self) -> Option<i64> {
        self.expiry.next_deadline()
    }

    /// After recovery (or on becoming the one that expires sessions): every session
    /// gets a full timeout from `now_ms`; closing marks are dropped.
    pub fn restart_timers(&mut self, now_ms: i64) {
        self.closing.clear();
        self.expiry = ExpiryQueue::new(self.config.tick_ms as i64);
        for s in self.sessions.values() {
            self.expiry.touch(s.id, now_ms, s.timeout_ms as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: i64, timeout_ms: i32) -> Session {
        Session {
            id,
            timeout_ms,
            password: [id as u8; SESSION_PASSWORD_LEN],
        }
    }

    #[test]
    fn negotiation_clamps() {
        let c = SessionConfig::from_tick(2000);
        assert_eq!(c.negotiate(1000), 4000);
        assert_eq!(c.negotiate(600_000), 40_000);
        assert_eq!(c.negotiate(10_000), 10_000);
    }

    #[test]
    fn expiry_touch_and_reconnect() {
        let mut t = SessionTable::new(SessionConfig::from_tick(100));
        t.add(session(1, 1000), 0);
        t.add(session(2, 1000), 0);
        assert!(t.touch(2, 600));
        assert!(t.expired(1099).is_empty());
        assert_eq!(t.expired(1100), vec![1]);
        assert!(t.is_closing(1));
        assert!(!t.touch(1, 1100), "closing sessions stay closing");
        assert_eq!(
            t.reconnect(1, &[1; 16], 1100),
            Err(ErrorCode::SessionExpired)
        );
        assert_eq!(
            t.reconnect(2, &[9; 16], 1100),
            Err(ErrorCode::SessionExpired)
        );
        assert_eq!(
            t.reconnect(3, &[3; 16], 1100),
            Err(ErrorCode::SessionExpired)
        );
        assert_eq!(t.reconnect(2, &[2; 16], 1150), Ok(1000));
        assert!(t.expired(2199).is_empty());
        assert_eq!(t.expired(2200), vec![2]);
        assert!(t.remove(1));
        assert!(!t.remove(1));
    }

    #[test]
    fn recovery_restarts_timers() {
        let mut t = SessionTable::new(SessionConfig::from_tick(100));
        t.add(session(1, 1000), 0);
        t.restart_timers(5000);
        assert!(t.expired(5000).is_empty());
        assert_eq!(t.expired(6100), vec![1]);
    }

    #[test]
    fn id_gen_puts_server_in_top_byte() {
        let mut g = SessionIdGen::new(3, 1_700_000_000_000);
        let a = g.next_id();
        assert_eq!(a >> 56, 3);
        assert_eq!(g.next_id(), a + 1);
        assert_eq!(g.server_id(), 3);
    }

    #[test]
    fn id_gen_matches_zookeepers_formula() {
        // Java: ((Time.currentElapsedTime() << 24) >>> 8) | (id << 56)
        for (server, ms) in [(0u8, 0i64), (1, 1_765_000_000_123), (7, i64::MAX), (255, 1)] {
            let java = ((((ms << 24) as u64) >> 8) as i64) | (i64::from(server) << 56);
            let mut g = SessionIdGen::new(server, ms);
            let first = g.next_id();
            if java != 0 && java != i64::MIN {
                assert_eq!(first, java, "server {server} at {ms}");
            }
        }
        // Standalone (server 0) at time 0 would start at 0, which means "no session".
        assert_eq!(SessionIdGen::new(0, 0).next_id(), 1);
        // Server 128 at time 0 would start at ZooKeeper's container owner.
        assert_eq!(SessionIdGen::new(128, 0).next_id(), i64::MIN + 1);
    }

    #[test]
    fn two_servers_ids_never_collide() {
        // Same start time, neighbouring times, and a counter about to wrap: each
        // server's ids keep its own top byte.
        let near_wrap = (SESSION_COUNTER_MASK >> 16) as i64; // the last ms before wrap
        for (t1, t2) in [
            (1_765_000_000_000, 1_765_000_000_000),
            (5, 6),
            (near_wrap, 0),
        ] {
            let mut a = SessionIdGen::new(1, t1);
            let mut b = SessionIdGen::new(2, t2);
            let ids_a: BTreeSet<i64> = (0..70_000).map(|_| a.next_id()).collect();
            let ids_b: BTreeSet<i64> = (0..70_000).map(|_| b.next_id()).collect();
            assert_eq!((ids_a.len(), ids_b.len()), (70_000, 70_000));
            assert!(
                ids_a.is_disjoint(&ids_b),
                "servers 1 and 2 at {t1} and {t2}"
            );
            assert!(ids_a.iter().all(|id| id >> 56 == 1));
            assert!(ids_b.iter().all(|id| id >> 56 == 2));
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any two distinct servers, started at any times (the clock may even
            /// differ wildly between them), hand out disjoint ids.
            #[test]
            fn distinct_servers_never_collide(
                a in any::<u8>(),
                b in any::<u8>(),
                ta in any::<i64>(),
                tb in any::<i64>(),
                n in 1usize..2000,
            ) {
                prop_assume!(a != b);
                let mut ga = SessionIdGen::new(a, ta);
                let mut gb = SessionIdGen::new(b, tb);
                let ids_a: BTreeSet<i64> = (0..n).map(|_| ga.next_id()).collect();
                let ids_b: BTreeSet<i64> = (0..n).map(|_| gb.next_id()).collect();
                prop_assert_eq!(ids_a.len(), n);
                prop_assert!(ids_a.is_disjoint(&ids_b));
                prop_assert!(!ids_a.contains(&0) && !ids_a.contains(&i64::MIN));
            }
        }
    }

    #[test]
    fn a_restart_never_reuses_a_recovered_sessions_id() {
        let t = 1_765_000_000_000;
        let mut before = SessionIdGen::new(2, t);
        let live: Vec<i64> = (0..100_000).map(|_| before.next_id()).collect();
        // The restart comes 1 ms later (100 000 ids span more than 1 ms of base), at
        // the same ms, and after the clock went back an hour.
        for restart_ms in [t + 1, t, t - 3_600_000] {
            // Other servers' sessions (and server 0's) do not move this server's ids.
            let others = [(i64::from(3u8) << 56) | 0xffff_ffff, 5];
            let mut after = SessionIdGen::resume(2, restart_ms, live.iter().copied().chain(others));
            let fresh: BTreeSet<i64> = (0..1000).map(|_| after.next_id()).collect();
            assert!(
                live.iter().all(|id| !fresh.contains(id)),
                "restart at {restart_ms}"
            );
            assert!(fresh.iter().all(|id| id >> 56 == 2));
        }
        // With nothing recovered, resume is new.
        assert_eq!(
            SessionIdGen::resume(2, t, []).next_id(),
            SessionIdGen::new(2, t).next_id()
        );
    }
}
