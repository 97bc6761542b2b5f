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

use std::sync::Arc;

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::data::ArchivedAcl;
use transport::jute::{Acl, Stat};

use super::apply::state_digest;
use super::{Db, TXN_ALIGN};
use crate::op::SESSION_PASSWORD_LEN;
use crate::session::{Session, SessionConfig, SessionTable, SessionsImage};
use crate::tree::{AclList, Data, DataTree, Node, NodeKind, TreeImage, path};

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
    /// The archive is validated, then read in place: each node costs the allocations
    /// of its path and data in the tree, not an owned copy decoded first.
    pub fn restore(bytes: &[u8], config: SessionConfig, now_ms: i64) -> Result<Db, SnapshotError> {
        let copy;
        let bytes = if (bytes.as_ptr() as usize).is_multiple_of(TXN_ALIGN) {
            bytes
        } else {
            let mut a = AlignedVec::<TXN_ALIGN>::with_capacity(bytes.len());
            a.extend_from_slice(bytes);
            copy = a;
            &copy[..]
        };
        let snap = rkyv::access::<ArchivedSnapshot, rancor::Error>(bytes)?;
        let version = snap.version.to_native();
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let tree = restore_tree(&snap.nodes)?;
        let mut sessions = SessionTable::new(config);
        for s in snap.sessions.iter() {
            let session = Session {
                id: s.id.to_native(),
                timeout_ms: s.timeout_ms.to_native(),
                password: s.password,
            };
            sessions.add(session, now_ms);
        }
        Ok(Db::from_parts(tree, sessions, snap.last_zxid.to_native()))
    }
}

/// Whether an archived ACL is `acl` (archived fields compared in place).
fn same_acl(archived: &[ArchivedAcl], acl: &[Acl]) -> bool {
    archived.len() == acl.len()
        && archived.iter().zip(acl).all(|(a, b)| {
            a.perms.to_native() == b.perms
                && a.id.scheme.as_str() == b.id.scheme
                && a.id.id.as_str() == b.id.id
        })
}

/// Threads that fill the restored tree's map (`CowMap::from_entries`); fewer where the
/// machine has fewer CPUs.
const RESTORE_THREADS_MAX: usize = 8;
/// Below this many nodes a restore fills its map on one thread.
const RESTORE_PARALLEL_NODES_MIN: usize = 1 << 16;

/// Restored nodes with their paths, in path order.
type Decoded = Vec<(Arc<str>, Arc<Node>)>;

/// Threads a restore runs on for a snapshot of `nodes` nodes.
fn restore_threads(nodes: usize) -> usize {
    if nodes < RESTORE_PARALLEL_NODES_MIN {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(RESTORE_THREADS_MAX))
    }
}

/// Checks and decodes a run of archived nodes; `next` is the node after the run, if
/// any (the order is checked across runs too). Each run of equal ACLs shares one
/// `AclList`, interned by the caller.
fn decode_nodes(
    nodes: &[ArchivedSnapNode],
    next: Option<&ArchivedSnapNode>,
) -> Result<Decoded, SnapshotError> {
    let mut out = Vec::with_capacity(nodes.len());
    let mut last_acl: Option<AclList> = None;
    for (i, n) in nodes.iter().enumerate() {
        let p = n.path.as_str();
        let bad = |why| Err(SnapshotError::BadNode(p.to_string(), why));
        if path::validate(p, false).is_err() {
            return bad("invalid path");
        }
        // Strictly ascending: no duplicates, and every parent comes before its
        // children (a prefix sorts first).
        if nodes
            .get(i + 1)
            .or(next)
            .is_some_and(|after| after.path.as_str() <= p)
        {
            return bad("not sorted, or a duplicate");
        }
        let stat: Stat = rkyv::deserialize::<Stat, rancor::Error>(&n.stat)?;
        let kind: NodeKind = rkyv::deserialize::<NodeKind, rancor::Error>(&n.kind)?;
        if stat.ephemeral_owner != kind.ephemeral_owner() {
            return bad("ephemeral owner does not match kind");
        }
        let acl = match &last_acl {
            Some(a) if same_acl(&n.acl, a) => a.clone(),
            _ => {
                let a: AclList = rkyv::deserialize::<Vec<Acl>, rancor::Error>(&n.acl)?.into();
                last_acl = Some(a.clone());
                a
            }
        };
        let node = Node {
            data: n.data.as_ref().map(|d| Data::from(d.as_slice())),
            acl,
            stat,
            kind,
            children: Default::default(),
        };
        // Allocated here, on the decoding thread: the map moves only pointers.
        out.push((p.into(), Arc::new(node)));
    }
    Ok(out)
}

/// Replaces each decoded node's ACL with the tree's interned list; `last` pairs the
/// previous node's list with its interned one.
fn intern_acls(tree: &mut DataTree, part: &mut Decoded, last: &mut Option<(AclList, AclList)>) {
    for (_, node) in part.iter_mut() {
        let node = crate::tree::unique(node);
        node.acl = match &*last {
            Some((run_list, interned)) if Arc::ptr_eq(run_list, &node.acl) => interned.clone(),
            _ => {
                let interned = tree.intern(node.acl.to_vec());
                *last = Some((node.acl.clone(), interned.clone()));
                interned
            }
        };
    }
}

fn restore_tree(nodes: &[ArchivedSnapNode]) -> Result<DataTree, SnapshotError> {
    let started = std::time::Instant::now();
    let threads = restore_threads(nodes.len());
    let run = nodes.len().div_ceil(threads).max(1);
    // Decoded in `threads` contiguous runs at once; the results stay in order.
    let parts: Vec<Result<Decoded, SnapshotError>> = if threads == 1 {
        vec![decode_nodes(nodes, None)]
    } else {
        std::thread::scope(|scope| {
            let jobs: Vec<_> = nodes
                .chunks(run)
                .enumerate()
                .map(|(k, c)| {
                    let next = nodes.get((k + 1) * run);
                    // A run the system refuses a thread for is decoded here.
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || decode_nodes(c, next))
                        .map_err(|_| decode_nodes(c, next))
                })
                .collect();
            jobs.into_iter()
                .map(|j| match j {
                    Ok(j) => j.join().expect("decoding nodes does not panic"),
                    Err(decoded) => decoded,
                })
                .collect()
        })
    };
    let decoded = started.elapsed();
    let mut tree = DataTree::empty();
    // The first run grows into the whole: a large `Vec` is its own mapping, which
    // `realloc` moves with `mremap` instead of copying (concatenating the runs into a
    // new `Vec` cost 0.11 s of a 1M-znode restore).
    let mut parts = parts.into_iter();
    let mut built: Decoded = parts.next().unwrap_or(Ok(Vec::new()))?;
    built.reserve_exact(nodes.len() - built.len());
    // The runs' ACL lists, interned: most nodes share one, so a pointer comparison
    // with the previous node's list mostly decides.
    let mut last: Option<(AclList, AclList)> = None;
    intern_acls(&mut tree, &mut built, &mut last);
    for part in parts {
        let mut part = part?;
        intern_acls(&mut tree, &mut part, &mut last);
        built.append(&mut part);
    }
    if let Err((p, why)) = tree.fill_sorted(built, threads) {
        return Err(SnapshotError::BadNode(p, why));
    }
    // Parents first, no duplicates and `fill_sorted` (which lists each node under its
    // parent and indexes its kind) leave only the counts to check here; the whole set
    // of invariants is checked in debug builds.
    if let Err(why) = tree.check_counts() {
        return Err(SnapshotError::BadNode(why, "inconsistent after restore"));
    }
    tracing::info!(
        znodes = nodes.len(),
        threads,
        decode_ms = decoded.as_millis() as u64,
        build_ms = (started.elapsed() - decoded).as_millis() as u64,
        "snapshot restored"
    );
    debug_assert!(
        tree.check_invariants().is_ok(),
        "a parent-first build keeps every invariant: {:?}",
        tree.check_invariants()
    );
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, owner: i64) -> SnapNode {
        SnapNode {
            path: path.into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            stat: Stat {
                ephemeral_owner: owner,
                data_length: 1,
                ..Stat::default()
            },
            kind: if owner == 0 {
                NodeKind::Persistent
            } else {
                NodeKind::Ephemeral(owner)
            },
        }
    }

    fn restore(paths: &[(&str, i64)]) -> Result<Db, SnapshotError> {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            last_zxid: 7,
            nodes: paths.iter().map(|(p, o)| node(p, *o)).collect(),
            sessions: Vec::new(),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&snap).unwrap();
        Db::restore(&bytes, SessionConfig::default(), 0)
    }

    #[test]
    fn a_snapshot_of_the_wrong_shape_is_refused_naming_the_node() {
        let ok = restore(&[("/", 0), ("/a", 0), ("/a-b", 0), ("/a/b", 0), ("/e", 5)]).unwrap();
        assert_eq!(ok.tree.get("/a").unwrap().stat.num_children, 1);
        assert_eq!(ok.tree.ephemerals(5).collect::<Vec<_>>(), ["/e"]);
        type Case<'a> = (&'a [(&'a str, i64)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[], "/", "root missing"),
            (&[("/a", 0)], "/a", "root missing"),
            (&[("/", 0), ("/a/b", 0)], "/a/b", "parent missing"),
            (
                &[("/", 0), ("/a", 0), ("/a", 0)],
                "/a",
                "not sorted, or a duplicate",
            ),
            (
                &[("/", 0), ("/b", 0), ("/a", 0)],
                "/b",
                "not sorted, or a duplicate",
            ),
            (
                &[("/", 0), ("/e", 5), ("/e/c", 0)],
                "/e/c",
                "child of an ephemeral",
            ),
            (&[("/", 0), ("/a/", 0)], "/a/", "invalid path"),
            (&[("/", 0), ("//", 0)], "//", "invalid path"),
        ];
        for (paths, at, why) in cases {
            match restore(paths) {
                Err(SnapshotError::BadNode(p, w)) => {
                    assert_eq!((p.as_str(), w), (*at, *why), "{paths:?}")
                }
                other => panic!("{paths:?}: {other:?}"),
            }
        }
    }
}
