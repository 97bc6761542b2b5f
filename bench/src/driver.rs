//! The pluggable protocol driver: how the runners talk to a server.
//!
//! A [`Driver`] owns a fixed set of sessions (one worker's share) and is used by exactly
//! one runner thread, as an event loop:
//! - [`Driver::submit`] queues a request on a session and returns without waiting for the
//!   reply (it may block briefly, e.g. on a full socket buffer: the runners measure
//!   latency from the *intended* send time, so such a stall is not omitted);
//! - [`Driver::poll`] waits until at least one completion is ready or the deadline
//!   passes, and appends completions (replies and watch events) in time order;
//! - [`Driver::now`] is the driver's clock in nanoseconds since its epoch. Real drivers
//!   read a monotonic clock shared by all workers; the mock driver runs a virtual clock,
//!   which is what makes the whole pipeline testable without wall time.
//!
//! Invariants every driver keeps: replies of one session arrive in the order their
//! requests were submitted (ZooKeeper's per-session FIFO); every submitted request gets
//! exactly one reply (an error code if the connection fails); completion times of one
//! session never go backwards (across sessions they may, slightly, when reader threads
//! race; the recorder counts a late one in the open interval).
//!
//! A [`Connector`] makes drivers: one per worker thread, each with its share of the
//! sessions, each session bound to a server per the spread policy.

use std::fmt;

use transport::jute::{ErrorCode, EventType};

use crate::workload::Op;

/// Nanoseconds on a driver's clock.
pub type Nanos = u64;

/// Nanoseconds in a second.
pub const NANOS_PER_S: Nanos = 1_000_000_000;

/// A successful reply's payload, as far as the runners need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing the runner looks at (get, set, delete, exists on a present node).
    Done,
    /// The path a create made (sequential nodes get their suffix here).
    Created(String),
    /// A getChildren's child names (not full paths).
    Children(Vec<String>),
}

/// What a completion carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reply to the request submitted with `tag` on `session`.
    Reply {
        session: usize,
        tag: u64,
        result: Result<Reply, ErrorCode>,
    },
    /// A watch fired for `session`.
    Watch {
        session: usize,
        path: String,
        kind: EventType,
    },
}

/// An event and the time the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub at: Nanos,
    pub event: Event,
}

/// Why a driver could not go on (the run stops with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverError(pub String);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DriverError {}

/// One worker's connection to the system under test.
pub trait Driver {
    /// Sessions this driver owns, numbered `0..sessions()`.
    fn sessions(&self) -> usize;
    /// The driver's clock.
    fn now(&self) -> Nanos;
    /// Sends `op` on `session`; its reply comes back from `poll` with the same `tag`.
    fn submit(&mut self, session: usize, tag: u64, op: &Op) -> Result<(), DriverError>;
    /// Waits until a completion is ready or `deadline` has passed; appends what is ready.
    fn poll(&mut self, deadline: Nanos, out: &mut Vec<Completion>) -> Result<(), DriverError>;
    /// Closes every session (ephemerals go with them).
    fn close(&mut self) -> Result<(), DriverError>;
}

/// Where one session connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// Index over all workers' sessions.
    pub global: usize,
    /// `host:port` of the server this session talks to.
    pub server: String,
}

/// Makes one driver per worker.
pub trait Connector: Sync {
    type Driver: Driver;
    /// Connects worker `worker`'s sessions, in order.
    fn connect(&self, worker: usize, sessions: &[SessionPlan])
    -> Result<Self::Driver, DriverError>;
}
