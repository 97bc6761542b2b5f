//! Txns: the deterministic, replicated form of a write, and applying them.
//!
//! Prep turns a client write into exactly one [`Txn`] (failed writes included: they
//! become error txns and, as in ZooKeeper, still consume a zxid). The txn's rkyv
//! archive ([`Txn::to_bytes`]) is what the WAL stores and peers ship. [`Db::apply`]
//! applies txns in zxid order; it validates nothing a client sent (prep did), so
//! replicas applying the same txns from the same state reach the same state
//! ([`Db::digest`]). Applying also yields the txn's result (the client's reply) and
//! the watch events it triggers, to deliver before that reply.
//!
//! # Driving the core (what the runtime does)
//!
//! - **Start**: `Db::new(SessionConfig)` or `Db::restore(snapshot, config, now)` then
//!   `db.apply_if_new(txn)` for every logged txn; `db.sessions.restart_timers(now)`;
//!   `Prep::new(db.last_zxid(), PrepConfig)` (a new Zab epoch passes its base zxid).
//! - **Write**: `prep.prep(&db, &RequestCtx { session, cxid, auth }, &op, now)` gives
//!   the next `Txn`; persist/replicate `txn.to_bytes()`; once committed,
//!   `let a = db.apply(&txn); prep.applied(a.zxid);` then send `a.events` (each to
//!   its session's connection) and then the reply built from `a.result` to the writer.
//!   On a crash or leader change, drop the prep and build a new one (it starts empty).
//! - **Read**: `tree::read::read(&mut db.tree, session, auth, &op)`; for `SetWatches`
//!   send the returned events before the reply.
//! - **Sessions**: new connection: `SessionIdGen::next_id` + a random password →
//!   `Op::CreateSession`; reconnect: `db.sessions.reconnect(id, password, now)`;
//!   every packet: `db.sessions.touch(id, now)`; timer (`next_deadline`): for each id
//!   in `db.sessions.expired(now)` prep `Op::CloseSession` as that session; on a
//!   connection drop: `db.tree.watches.remove_session(id)`.
//! - **Reaper**: periodically prep `Op::DeleteContainer` (session 0) for
//!   `db.tree.empty_containers()` and `db.tree.expired_ttls(now)`.
//! - **Snapshot**: `db.snapshot_image()` between two applies (microseconds, exact at
//!   `db.last_zxid()`), then `image.to_bytes()` on another thread (see `snapshot`).

pub mod apply;
pub mod snapshot;

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::{Acl, ErrorCode, OpCode};

use crate::op::SESSION_PASSWORD_LEN;
use crate::tree::NodeKind;

pub use apply::{Applied, Db, OpResult, TxnResult};
pub use snapshot::SnapshotImage;

/// Who asked, and when and where in the order it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct TxnHeader {
    /// The requesting session (for CreateSession: the new session; 0: the server).
    pub session: i64,
    /// The client's request id (xid).
    pub cxid: i32,
    pub zxid: i64,
    /// The leader's clock at prep, ms since the epoch (becomes ctime/mtime).
    pub time_ms: i64,
}

/// Creating one node, with everything prep decided (final path for sequentials, the
/// fixed-up ACL, the kind, the parent's cversion after the create).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct CreateTxn {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub kind: NodeKind,
    pub parent_cversion: i32,
}

/// One change to the tree (a whole txn, or one step of a multi).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum TxnOp {
    Create(CreateTxn),
    Delete {
        path: String,
    },
    /// `version` is the data version after the change.
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    /// `aversion` is the ACL version after the change.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        aversion: i32,
    },
    /// A version check that passed at prep (changes nothing).
    Check {
        path: String,
        version: i32,
    },
    /// A refused write (an `ErrorCode` value); changes nothing.
    Error {
        code: i32,
    },
}

/// What a txn does.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum TxnBody {
    Op(TxnOp),
    /// All the steps or, when one is an `Error`, none (the results then say which).
    Multi(Vec<TxnOp>),
    /// Opens `header.session` with a negotiated timeout.
    CreateSession {
        timeout_ms: i32,
        password: [u8; SESSION_PASSWORD_LEN],
    },
    /// Closes `header.session`, deleting its ephemerals.
    CloseSession,
}

/// A txn: header and body.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Txn {
    pub header: TxnHeader,
    pub body: TxnBody,
}

/// Alignment the archived bytes must have to be read in place.
pub const TXN_ALIGN: usize = 16;

impl TxnOp {
    /// An error step for `code`.
    pub fn error(code: ErrorCode) -> Self {
        TxnOp::Error { code: code.code() }
    }

    /// ZooKeeper's txn type for this step.
    pub fn op_code(&self) -> OpCode {
        match self {
            TxnOp::Create(c) => match c.kind {
                NodeKind::Container => OpCode::CreateContainer,
                NodeKind::Ttl(_) => OpCode::CreateTtl,
                _ => OpCode::Create,
            },
            TxnOp::Delete { .. } => OpCode::Delete,
            TxnOp::SetData { .. } => OpCode::SetData,
            TxnOp::SetAcl { .. } => OpCode::SetAcl,
            TxnOp::Check { .. } => OpCode::Check,
            TxnOp::Error { .. } => OpCode::Error,
        }
    }
}

impl Txn {
    /// ZooKeeper's txn type (`TxnHeader.type`).
    pub fn op_code(&self) -> OpCode {
        match &self.body {
            TxnBody::Op(op) => op.op_code(),
            TxnBody::Multi(_) => OpCode::Multi,
            TxnBody::CreateSession { .. } => OpCode::CreateSession,
            TxnBody::CloseSession => OpCode::CloseSession,
        }
    }

    pub fn zxid(&self) -> i64 {
        self.header.zxid
    }

    /// The rkyv archive of this txn (the WAL record payload).
    pub fn to_bytes(&self) -> AlignedVec {
        // Serializing plain owned data into a growable buffer cannot fail.
        rkyv::to_bytes::<rancor::Error>(self).unwrap_or_default()
    }

    /// Reads an archive made by [`Txn::to_bytes`], validating it; unaligned input is
    /// copied first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Txn, rancor::Error> {
        if (bytes.as_ptr() as usize).is_multiple_of(TXN_ALIGN) {
            return rkyv::from_bytes::<Txn, rancor::Error>(bytes);
        }
        let mut aligned = AlignedVec::<TXN_ALIGN>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<Txn, rancor::Error>(&aligned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let t = Txn {
            header: TxnHeader {
                session: 7,
                cxid: 3,
                zxid: 42,
                time_ms: 1000,
            },
            body: TxnBody::Multi(vec![
                TxnOp::Create(CreateTxn {
                    path: "/a".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    kind: NodeKind::Ttl(5),
                    parent_cversion: 1,
                }),
                TxnOp::error(ErrorCode::NoNode),
            ]),
        };
        let b = t.to_bytes();
        assert_eq!(Txn::from_bytes(&b).unwrap(), t);
        // Unaligned copies still decode.
        let mut shifted = vec![0u8; b.len() + 1];
        shifted[1..].copy_from_slice(&b);
        assert_eq!(Txn::from_bytes(&shifted[1..]).unwrap(), t);
        assert!(Txn::from_bytes(&b[..b.len() / 2]).is_err());
        assert_eq!(t.op_code(), OpCode::Multi);
    }
}
