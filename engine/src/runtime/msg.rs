//! Messages between connections (on any core) and the shard driver (on the shard's
//! core). They cross cores in batches (`Vec<_>` per shared-channel message), so one
//! cross-core hop covers everything a loop iteration produced.

use std::net::SocketAddr;

use transport::jute::Id;
use transport::jute::connect::{ConnectRequest, ConnectResponse};

use crate::op::Op;
use crate::shard::{ClientRef, ConnId, Reply};
use crate::tree::watch::WatchEvent;
use crate::zab::election::Decision;
use crate::zab::{Msg, ServerId};

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
    /// The connection authenticated as `ids` (added to its ids, as ZooKeeper does);
    /// answered like a request (xid -4), so it holds a credit until then.
    Auth { client: ClientRef, ids: Vec<Id> },
    /// The socket is gone. The session lives on until it expires or is closed.
    Closed { conn: ConnId },
    /// Internal: the WAL is durable up to a zxid, or a flush failed; with the WAL's
    /// generation the flush ran in (a result of an older one is stale: a truncation
    /// or reset came between).
    Flushed { result: Result<(u64, u64), String> },
    /// Internal: a clock tick (session expiry, container reaping).
    Tick,
    /// Internal: a snapshot at `zxid` is on disk (or failed).
    Snapshotted {
        zxid: i64,
        result: Result<(), String>,
    },
    /// Internal: the leader's snapshot at `zxid` is durable and loaded, off the core
    /// (a SNAP), or why not.
    Installed {
        zxid: i64,
        result: Result<Box<crate::txn::Db>, String>,
    },
    /// Internal: a purge deleted this many snapshots and WAL segments (or failed).
    Purged {
        result: Result<(usize, usize), String>,
    },
    /// Replication: something happened on the quorum link to `from`.
    Peer { from: ServerId, ev: PeerIn },
    /// Replication: the election decided.
    Decided(Decision),
    /// Members (version, text) another server sent through the election
    /// (`Driver::members_arrived`).
    Members { version: i64, text: String },
}

/// What arrived on (or happened to) a quorum link, read out of its frame.
#[derive(Debug)]
pub enum PeerIn {
    Up,
    Down,
    /// For the Zab cores, stamped with the link's epoch.
    Zab(Msg),
    /// A snapshot of the state at `zxid`, `total_bytes` long, follows in chunks.
    Snap {
        zxid: i64,
        total_bytes: u64,
    },
    SnapChunk {
        offset: u64,
        bytes: Vec<u8>,
    },
    /// The leader says this learner is in sync: it may serve clients.
    UpToDate,
    /// Liveness; from a learner, the sessions its clients touched (id, timeout).
    Ping {
        zxid: i64,
        sessions: Vec<(i64, i32)>,
        /// The members' version the sender carried out (`peer::Ping::config`).
        config: i64,
    },
    /// A learner's client write (`peer::forward` body).
    Request {
        session: i64,
        cxid: i32,
        body: Vec<u8>,
    },
    /// A client's `sync`: asked by a learner, answered by the leader with `zxid`.
    Sync {
        session: i64,
        cxid: i32,
        zxid: i64,
    },
    /// CRAQ: a chain message, or the runtime's read-lease exchange; an entry comes
    /// with its frame, which the member forwards down the chain as it arrived.
    Chain(
        crate::craq::wire::ChainIn,
        Option<rkyv::util::AlignedVec<16>>,
    ),
    /// CRAQ: the leader's chain configuration.
    ChainConfig(crate::craq::ChainConfig),
    /// A message the link may not carry: the driver drops the link.
    Bad(String),
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
    /// About how many bytes it takes on the wire (output accounting; an estimate that
    /// grows with the payload, not an exact encoded size).
    pub fn approx_bytes(&self) -> usize {
        const FRAME: usize = 96;
        match self {
            ToConn::Connected { .. } | ToConn::Close { .. } => FRAME,
            ToConn::Event { event, .. } => FRAME + event.path.len(),
            ToConn::Reply { reply, .. } => FRAME + reply_bytes(reply),
        }
    }
}

fn reply_bytes(reply: &Reply) -> usize {
    use crate::tree::read::ReadResult as R;
    use crate::txn::{OpResult, TxnResult};
    fn read(r: &R) -> usize {
        let names = |v: &[String]| v.iter().map(|s| s.len() + 4).sum::<usize>();
        match r {
            R::GetData { data, .. } => data.as_ref().map_or(0, Vec::len),
            R::GetChildren { children } | R::GetChildren2 { children, .. } => names(children),
            R::GetEphemerals { paths } => names(paths),
            R::GetAcl { acl, .. } => acl.len() * 64,
            R::Sync { path } => path.len(),
            R::MultiRead(rs) => rs.iter().map(|r| 16 + r.as_ref().map_or(0, read)).sum(),
            _ => 0,
        }
    }
    match reply {
        Reply::Read(Ok(r)) => read(r),
        Reply::Read(Err(_)) => 0,
        Reply::Write(TxnResult::Multi(rs)) => rs.len() * 96,
        Reply::Write(TxnResult::Op(OpResult::Create { path, .. })) => path.len(),
        Reply::Write(_) => 0,
    }
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
