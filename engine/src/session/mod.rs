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

/// Hands out session ids the way ZooKeeper does: the server id in the top byte, the
/// start time in the middle, a counter below. The start time is an input (pure).
#[derive(Debug, Clone)]
pub struct SessionIdGen {
    next: i64,
}

impl SessionIdGen {
    pub fn new(server_id: u8, start_ms: i64) -> Self {
        let base = ((start_ms << 24) as u64 >> 8) as i64;
        SessionIdGen {
            next: base | ((server_id as i64) << 56),
        }
    }

    /// A fresh id, never 0.
    pub fn next_id(&mut self) -> i64 {
        if self.next == 0 {
            self.next = 1;
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        id
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
    }
}
