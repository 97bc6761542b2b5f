//! `Db`: the replicated state (tree + sessions + last applied zxid) and `apply`.

use transport::jute::{ErrorCode, Stat};

use super::{Txn, TxnBody, TxnOp};
use crate::session::{Session, SessionConfig, SessionTable};
use crate::tree::DataTree;
use crate::tree::watch::WatchEvent;

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `path` is the created node's final name (sequentials get their counter).
    Create {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    /// A setData of `/zookeeper/config` (what a `reconfig` preps): the new config
    /// too, which is what a reconfig is answered with (a getData response).
    Reconfig {
        data: Vec<u8>,
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Check,
    /// In a failed multi, steps before the failing one show `Ok`, steps after it
    /// `RuntimeInconsistency`.
    Error(ErrorCode),
}

/// The outcome of one txn: what the client that sent it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    Op(OpResult),
    /// Per-step results (the reply header's error stays 0 even when the multi failed).
    Multi(Vec<OpResult>),
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession,
}

impl TxnResult {
    /// The error to put in the reply header (`Ok` for every multi).
    pub fn error(&self) -> ErrorCode {
        match self {
            TxnResult::Op(OpResult::Error(e)) => *e,
            _ => ErrorCode::Ok,
        }
    }
}

/// What applying a txn produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub zxid: i64,
    pub result: TxnResult,
    /// Watch events, in delivery order, to send before the reply to the writer.
    pub events: Vec<WatchEvent>,
}

/// The replicated state machine.
#[derive(Debug, Clone, Default)]
pub struct Db {
    pub tree: DataTree,
    pub sessions: SessionTable,
    last_zxid: i64,
}

fn code(c: i32) -> ErrorCode {
    ErrorCode::from_code(c).unwrap_or(ErrorCode::SystemError)
}

impl Db {
    /// A fresh database (system nodes only, no sessions, zxid 0).
    pub fn new(config: SessionConfig) -> Self {
        Db {
            tree: DataTree::new(),
            sessions: SessionTable::new(config),
            last_zxid: 0,
        }
    }

    pub(crate) fn from_parts(tree: DataTree, sessions: SessionTable, last_zxid: i64) -> Self {
        Db {
            tree,
            sessions,
            last_zxid,
        }
    }

    /// The zxid of the last applied txn.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// A deterministic digest of the replicated state (tree, sessions, last zxid).
    pub fn digest(&self) -> u64 {
        state_digest(self.tree.digest(), self.sessions.iter(), self.last_zxid)
    }

    /// Applies `txn` if it is newer than the state (recovery replays a log whose head
    /// a snapshot may already contain); `None` when skipped.
    pub fn apply_if_new(&mut self, txn: &Txn) -> Option<Applied> {
        (txn.header.zxid > self.last_zxid).then(|| self.apply(txn))
    }

    /// Applies `txn` (zxids must increase).
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        debug_assert!(
            txn.header.zxid > self.last_zxid,
            "txns apply in zxid order: {} after {}",
            txn.header.zxid,
            self.last_zxid
        );
        let h = txn.header;
        let mut events = Vec::new();
        let result = match &txn.body {
            TxnBody::Op(op) => TxnResult::Op(self.apply_op(op, h.zxid, h.time_ms, &mut events)),
            TxnBody::Multi(ops) => {
                TxnResult::Multi(self.apply_multi(ops, h.zxid, h.time_ms, &mut events))
            }
            TxnBody::CreateSession {
                timeout_ms,
                password,
            } => {
                let s = Session {
                    id: h.session,
                    timeout_ms: *timeout_ms,
                    password: *password,
                };
                self.sessions.add(s, h.time_ms);
                TxnResult::CreateSession {
                    timeout_ms: *timeout_ms,
                }
            }
            TxnBody::CloseSession => {
                self.close_session(h.session, h.zxid, &mut events);
                TxnResult::CloseSession
            }
        };
        self.last_zxid = h.zxid;
        Applied {
            zxid: h.zxid,
            result,
            events,
        }
    }

    fn close_session(&mut self, session: i64, zxid: i64, events: &mut Vec<WatchEvent>) {
        let paths: Vec<String> = self.tree.ephemerals(session).map(str::to_string).collect();
        for p in paths {
            let r = self.tree.delete(&p, zxid, events);
            debug_assert!(r.is_ok(), "ephemerals have no children: {r:?}");
        }
        // Only now: as in ZooKeeper, whose closeSession deletes the ephemerals while the
        // session's connection still holds its watches, the closing session hears of
        // its own ephemerals' deletion before the closeSession reply.
        self.tree.watches.remove_session(session);
        self.sessions.remove(session);
    }

    fn apply_multi(
        &mut self,
        ops: &[TxnOp],
        zxid: i64,
        time_ms: i64,
        events: &mut Vec<WatchEvent>,
    ) -> Vec<OpResult> {
        if ops.iter().any(|o| matches!(o, TxnOp::Error { .. })) {
            return ops
                .iter()
                .map(|o| match o {
                    TxnOp::Error { code: c } => OpResult::Error(code(*c)),
                    _ => OpResult::Error(ErrorCode::RuntimeInconsistency),
                })
                .collect();
        }
        ops.iter()
            .map(|o| self.apply_op(o, zxid, time_ms, events))
            .collect()
    }

    fn apply_op(
        &mut self,
        op: &TxnOp,
        zxid: i64,
        time_ms: i64,
        events: &mut Vec<WatchEvent>,
    ) -> OpResult {
        let t = &mut self.tree;
        let r = match op {
            TxnOp::Create(c) => t
                .create(
                    &c.path,
                    c.data.clone(),
                    c.acl.clone(),
                    c.kind,
                    c.parent_cversion,
                    zxid,
                    time_ms,
                    events,
                )
                .map(|stat| OpResult::Create {
                    path: c.path.clone(),
                    stat,
                }),
            TxnOp::Delete { path } => t.delete(path, zxid, events).map(|_| OpResult::Delete),
            TxnOp::SetData {
                path,
                data,
                version,
            } => t
                .set_data(path, data.clone(), *version, zxid, time_ms, events)
                .map(|stat| match data {
                    Some(d) if path == crate::tree::CONFIG_PATH => OpResult::Reconfig {
                        data: d.clone(),
                        stat,
                    },
                    _ => OpResult::SetData { stat },
                }),
            TxnOp::SetAcl {
                path,
                acl,
                aversion,
            } => t
                .set_acl(path, acl.clone(), *aversion)
                .map(|stat| OpResult::SetAcl { stat }),
            TxnOp::Check { .. } => Ok(OpResult::Check),
            TxnOp::Error { code: c } => Err(code(*c)),
        };
        r.unwrap_or_else(OpResult::Error)
    }
}

/// [`Db::digest`] from its parts (a snapshot image has the same parts).
pub(crate) fn state_digest<'a>(
    tree: u64,
    sessions: impl Iterator<Item = &'a Session>,
    last_zxid: i64,
) -> u64 {
    let mut h = tree;
    for s in sessions {
        h = mix(h, s.id as u64);
        h = mix(h, s.timeout_ms as u64);
        h = mix(h, u128::from_le_bytes(s.password) as u64);
    }
    mix(h, last_zxid as u64)
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}
