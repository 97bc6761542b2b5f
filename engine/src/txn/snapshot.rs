//! Snapshots of the replicated state (tree + sessions + last zxid) as one rkyv archive.
//!
//! What it requires: `Db::snapshot` reads the state between two applies, so the image
//! is exact at `last_zxid` (the shard's single thread owns the `Db`; there is no
//! concurrent apply to be fuzzy about). Recovery restores the newest snapshot and
//! replays the log with `Db::apply_if_new`, which skips txns the snapshot already
//! holds. Should the runtime ever serialise the tree incrementally while applying (a
//! truly fuzzy snapshot), replay must start at the zxid the snapshot *started* at and
//! the tree's replay tolerance applies: a create of an existing node or a delete of a
//! missing one changes nothing, and parent cversion/pzxid only move forward.
//! Watches are local and not included; session timers restart at restore time.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::{Acl, Stat};

use super::{Db, TXN_ALIGN};
use crate::op::SESSION_PASSWORD_LEN;
use crate::session::{Session, SessionConfig, SessionTable};
use crate::tree::{DataTree, Node, NodeKind, path};

/// Format version written into every snapshot.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Archive, Serialize, Deserialize)]
struct SnapNode {
    path: String,
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    stat: Stat,
    kind: NodeKind,
}

#[derive(Debug, Archive, Serialize, Deserialize)]
struct SnapSession {
    id: i64,
    timeout_ms: i32,
    password: [u8; SESSION_PASSWORD_LEN],
}

#[derive(Debug, Archive, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    last_zxid: i64,
    /// Sorted by path, so every parent precedes its children.
    nodes: Vec<SnapNode>,
    sessions: Vec<SnapSession>,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot archive is malformed: {0}")]
    Malformed(#[from] rancor::Error),
    #[error("snapshot format version {0} is not supported (expected {SNAPSHOT_VERSION})")]
    Version(u32),
    #[error("snapshot node {0:?} is invalid: {1}")]
    BadNode(String, &'static str),
}

impl Db {
    /// The state as an archive (see the module docs for what this requires).
    pub fn snapshot(&self) -> AlignedVec {
        let nodes = self
            .tree
            .sorted_nodes()
            .into_iter()
            .map(|(p, n)| SnapNode {
                path: p.clone(),
                data: n.data.clone(),
                acl: n.acl.to_vec(),
                stat: n.stat,
                kind: n.kind,
            })
            .collect();
        let sessions = self
            .sessions
            .iter()
            .map(|s| SnapSession {
                id: s.id,
                timeout_ms: s.timeout_ms,
                password: s.password,
            })
            .collect();
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            last_zxid: self.last_zxid(),
            nodes,
            sessions,
        };
        rkyv::to_bytes::<rancor::Error>(&snap).unwrap_or_default()
    }

    /// Rebuilds a `Db` from [`Db::snapshot`] bytes; session timers start at `now_ms`.
    pub fn restore(bytes: &[u8], config: SessionConfig, now_ms: i64) -> Result<Db, SnapshotError> {
        let snap = if (bytes.as_ptr() as usize).is_multiple_of(TXN_ALIGN) {
            rkyv::from_bytes::<Snapshot, rancor::Error>(bytes)?
        } else {
            let mut a = AlignedVec::<TXN_ALIGN>::with_capacity(bytes.len());
            a.extend_from_slice(bytes);
            rkyv::from_bytes::<Snapshot, rancor::Error>(&a)?
        };
        if snap.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(snap.version));
        }
        let tree = restore_tree(snap.nodes)?;
        let mut sessions = SessionTable::new(config);
        for s in snap.sessions {
            let session = Session {
                id: s.id,
                timeout_ms: s.timeout_ms,
                password: s.password,
            };
            sessions.add(session, now_ms);
        }
        Ok(Db::from_parts(tree, sessions, snap.last_zxid))
    }
}

fn restore_tree(nodes: Vec<SnapNode>) -> Result<DataTree, SnapshotError> {
    let mut tree = DataTree::empty();
    for n in nodes {
        let bad = |why| Err(SnapshotError::BadNode(n.path.clone(), why));
        if path::validate(&n.path, false).is_err() {
            return bad("invalid path");
        }
        match path::parent(&n.path) {
            None if !tree.is_empty() => return bad("root not first"),
            Some(_) if tree.is_empty() => return bad("root missing"),
            Some(parent) => match tree.get(parent) {
                None => return bad("parent missing"),
                Some(p) if matches!(p.kind, NodeKind::Ephemeral(_)) => {
                    return bad("child of an ephemeral");
                }
                Some(_) => {}
            },
            None => {}
        }
        if tree.get(&n.path).is_some() {
            return bad("duplicate");
        }
        if n.stat.ephemeral_owner != n.kind.ephemeral_owner() {
            return bad("ephemeral owner does not match kind");
        }
        let node = Node {
            data: n.data,
            acl: tree.intern(n.acl),
            stat: n.stat,
            kind: n.kind,
            children: Default::default(),
        };
        tree.insert_system(&n.path, node);
    }
    if tree.is_empty() {
        return Err(SnapshotError::BadNode("/".into(), "root missing"));
    }
    if let Err(why) = tree.check_invariants() {
        return Err(SnapshotError::BadNode(why, "inconsistent after restore"));
    }
    Ok(tree)
}
