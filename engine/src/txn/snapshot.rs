//! Snapshots of the replicated state (tree + sessions + last zxid) as one rkyv archive.
//!
//! Taking one is two steps, so the core that applies writes never serialises:
//! 1. [`Db::snapshot_image`], on the shard's core between two applies: a
//!    copy-on-write [`SnapshotImage`] that shares every node (the tree's shard
//!    pointers, about n/256 and at most 2^16 of them, and the session table's
//!    persistent map are cloned: 14 us at 1M znodes). It is exact at `last_zxid`: no
//!    apply runs while it is taken, and applies after it copy what they change
//!    instead of changing it under the image.
//! 2. [`SnapshotImage::to_bytes`], anywhere (the image is `Send`; the driver runs it
//!    on the blocking pool): sorts, encodes, O(tree size).
//!
//! [`Db::snapshot`] does both at once (tests, tools).
//!
//! Recovery restores the newest snapshot and replays the log with
//! `Db::apply_if_new`, which skips txns the snapshot already holds. The image is not
//! fuzzy, and must not become so: apply is not idempotent (a replayed set or delete
//! would bump versions twice), so replay must start exactly after `last_zxid`.
//! Watches are local and not included; session timers restart at restore time.
//!
//! Format: [`SNAPSHOT_VERSION`], then the nodes sorted by path and the sessions.
//! Restoring validates the archive (bytecheck), the version, and the tree's shape,
//! and refuses anything else with a [`SnapshotError`].

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::{Acl, Stat};

use super::apply::state_digest;
use super::{Db, TXN_ALIGN};
use crate::op::SESSION_PASSWORD_LEN;
use crate::session::{Session, SessionConfig, SessionTable, SessionsImage};
use crate::tree::{DataTree, Node, NodeKind, TreeImage, path};

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

/// Bytes of archive per node beyond its path and data (stat, kind, ACL, offsets), to
/// size the output buffer once instead of growing it by copies.
const ARCHIVE_NODE_OVERHEAD_BYTES: usize = 160;

/// The replicated state at exactly [`SnapshotImage::last_zxid`], frozen: taken in
/// microseconds by [`Db::snapshot_image`], serialised later by
/// [`SnapshotImage::to_bytes`] on any thread while the `Db` it came from goes on
/// applying.
#[derive(Debug, Clone)]
pub struct SnapshotImage {
    last_zxid: i64,
    tree: TreeImage,
    sessions: SessionsImage,
}

/// The driver moves images to the blocking pool: they must stay `Send`.
const _: fn() = || {
    fn send<T: Send + 'static>() {}
    send::<SnapshotImage>();
};

impl SnapshotImage {
    /// The zxid of the last txn the image holds: recovery replays the log after it.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Number of znodes.
    pub fn znodes(&self) -> usize {
        self.tree.len()
    }

    /// [`Db::digest`] of the state the image holds.
    pub fn digest(&self) -> u64 {
        state_digest(self.tree.digest(), self.sessions.values(), self.last_zxid)
    }

    /// The archive [`Db::restore`] reads: O(tree size), meant for another thread.
    pub fn to_bytes(&self) -> AlignedVec {
        let sorted = self.tree.sorted_nodes();
        let mut capacity = 0;
        let nodes = sorted
            .into_iter()
            .map(|(p, n)| {
                let data_len = n.data.as_ref().map_or(0, |d| d.len());
                capacity += p.len() + data_len + ARCHIVE_NODE_OVERHEAD_BYTES;
                SnapNode {
                    path: p.to_string(),
                    data: n.data.as_deref().map(<[u8]>::to_vec),
                    acl: n.acl.to_vec(),
                    stat: n.stat,
                    kind: n.kind,
                }
            })
            .collect();
        let sessions: Vec<SnapSession> = self
            .sessions
            .values()
            .map(|s| SnapSession {
                id: s.id,
                timeout_ms: s.timeout_ms,
                password: s.password,
            })
            .collect();
        capacity += sessions.len() * size_of::<ArchivedSnapSession>();
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            last_zxid: self.last_zxid,
            nodes,
            sessions,
        };
        let out = AlignedVec::with_capacity(capacity);
        // Serialising plain owned data into a growable buffer cannot fail.
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&snap, out).unwrap_or_default()
    }
}

impl Db {
    /// The state as it is now, cheaply (shared, not copied), to serialise elsewhere
    /// (see the module docs).
    pub fn snapshot_image(&self) -> SnapshotImage {
        SnapshotImage {
            last_zxid: self.last_zxid(),
            tree: self.tree.image(),
            sessions: self.sessions.image(),
        }
    }

    /// The state as an archive: [`Db::snapshot_image`] then
    /// [`SnapshotImage::to_bytes`], both on this thread.
    pub fn snapshot(&self) -> AlignedVec {
        self.snapshot_image().to_bytes()
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
            data: n.data.map(Into::into),
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
    // Parents first, no duplicates and `insert_system` (which lists each node under its
    // parent and indexes its kind) leave only the counts to check here; the whole set
    // of invariants is checked in debug builds.
    if let Err(why) = tree.check_counts() {
        return Err(SnapshotError::BadNode(why, "inconsistent after restore"));
    }
    debug_assert!(
        tree.check_invariants().is_ok(),
        "a parent-first build keeps every invariant: {:?}",
        tree.check_invariants()
    );
    Ok(tree)
}
