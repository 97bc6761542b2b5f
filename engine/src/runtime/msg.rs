//! Messages between connections (on any core) and the shard driver (on the shard's
//! core). They cross cores in batches (`Vec<_>` per shared-channel message), so one
//! cross-core hop covers everything a loop iteration produced.

use std::net::SocketAddr;

use transport::jute::Id;
use transport::jute::connect::{ConnectRequest, ConnectResponse};

use crate::op::Op;
use crate::shard::{ClientRef, ConnId, Reply};
use crate::tree::watch::WatchEvent;

/// To the shard driver.
#[derive(Debug)]
pub enum ToShard {
    /// A handshake: a new session (`session_id == 0`) or a reconnect.
    Connect {
        conn: ConnId,
        req: ConnectRequest,
        peer: SocketAddr,
    },
    /// A client request on the connection's session.
    Request { client: ClientRef, op: Op },
    /// The client is alive (a ping): push its session's deadline back.
    Touch { session: i64 },
    /// The connection authenticated as `id` (adds to its ids, as ZooKeeper does).
    Auth { conn: ConnId, id: Id },
    /// The socket is gone. The session lives on until it expires or is closed.
    Closed { conn: ConnId },
    /// Internal: the WAL is durable up to `zxid`, or a flush failed.
    Flushed { result: Result<u64, String> },
    /// Internal: a clock tick (session expiry, container reaping).
    Tick,
    /// Internal: a snapshot at `zxid` is on disk (or failed).
    Snapshotted {
        zxid: i64,
        result: Result<(), String>,
    },
}

/// To a connection.
#[derive(Debug)]
pub enum ToConn {
    /// The handshake's answer. Not `accepted`: the session is expired or the request was
    /// refused; the connection sends `resp` (timeout 0, session 0) and closes.
    Connected {
        conn: ConnId,
        resp: ConnectResponse,
        accepted: bool,
    },
    /// The answer to one request, in the session's request order.
    Reply {
        conn: ConnId,
        xid: i32,
        zxid: i64,
        reply: Reply,
    },
    /// A watch event for the connection's session.
    Event { conn: ConnId, event: WatchEvent },
    /// Close the connection after what is queued (e.g. its session closed or expired).
    Close { conn: ConnId },
}

impl ToConn {
    /// The connection it is for.
    pub fn conn(&self) -> ConnId {
        match self {
            ToConn::Connected { conn, .. }
            | ToConn::Reply { conn, .. }
            | ToConn::Event { conn, .. }
            | ToConn::Close { conn } => *conn,
        }
    }
}
