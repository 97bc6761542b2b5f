//! The znode tree (ZooKeeper's `DataTree`): nodes by path, their stats, ACLs, kinds and
//! children, the ephemeral/container/TTL indexes, and the watch tables.
//!
//! Contract: the tree is changed only by applying txns (`crate::txn`), whose validity
//! prep has established; the mutators here check only what replaying a txn twice could
//! break (a create of an existing node, a delete of a missing one) and answer an error
//! code instead of changing anything. Every mutation reports the watch events it
//! triggers, in delivery order.
//!
//! Storage is copy-on-write: the path map is a sharded hash map whose shards are
//! `Arc`-shared and whose nodes sit behind `Arc`s of their own (`cowmap`), a node's
//! data is an `Arc<[u8]>` and its children a persistent ordered set (`imbl`) of their
//! paths' `Arc<str>`s (the map keys' own allocations), so [`DataTree::image`] copies
//! shard pointers only (O(shards), ~5600 at a restored 1M nodes). A later mutation
//! copies only what it touches (one shard's slots, the one node, the B-tree path in
//! one children set), never the whole tree or a whole children list: a snapshot's
//! cost on the core that applies writes stays microseconds as the tree grows. A
//! lookup costs a `HashMap` probe and one pointer to the node (measured: the same
//! `get` at 1M nodes; README "Large trees").
//!
//! Invariants (checked by `debug_check` in tests): every node but `/` has its parent in
//! the map and is listed among the parent's children; `stat.num_children` and
//! `stat.data_length` match; an ephemeral is listed under its owner in the ephemeral
//! index and has no children; containers and TTL nodes are in their index and report
//! `ephemeral_owner = 0`.

pub mod acl;
mod cowmap;
pub mod path;
pub mod read;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use cowmap::CowMap;
use imbl::OrdSet;

use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::{Acl, ErrorCode, Stat};

use watch::{WatchEvent, WatchManager};

/// `/zookeeper`, ZooKeeper's reserved subtree.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
/// `/zookeeper/quota`.
pub const QUOTA_PATH: &str = "/zookeeper/quota";
/// `/zookeeper/config` (empty in standalone; Curator reads it on every connect).
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Smallest ACL cache size that triggers a sweep of unused entries.
const ACL_SWEEP_AT_MIN: usize = 1024;

/// Largest TTL a TTL node may have: ZooKeeper's `EphemeralType.TTL.maxValue()`, 40 bits
/// (the ephemeralOwner packs the TTL under 16 reserved bits and an 8-bit type).
pub const TTL_MS_MAX: i64 = 0x00FF_FFFF_FFFF;

/// Paths no client may delete (`DataTree.isSpecialPath`).
pub fn is_special_path(path: &str) -> bool {
    matches!(path, "/" | ZOOKEEPER_PATH | QUOTA_PATH | CONFIG_PATH)
}

/// What kind of znode this is; clients see only `ephemeral_owner` (0 for all but
/// ephemerals), the tree needs the rest to reap containers and expired TTL nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum NodeKind {
    Persistent,
    /// Owned by this session; deleted when it closes or expires.
    Ephemeral(i64),
    /// Deleted by the reaper once it has had children and has none.
    Container,
    /// Deleted by the reaper when childless and unmodified for this many ms.
    Ttl(i64),
}

impl NodeKind {
    /// The `ephemeralOwner` clients see.
    pub fn ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Ephemeral(s) => s,
            _ => 0,
        }
    }
}

/// A node's ACL, shared by every node with an equal one (ZooKeeper's ACL cache: most
/// nodes carry one of a handful of ACLs).
pub type AclList = Arc<[Acl]>;

/// A node's children, sorted (deterministic iteration and digests), each by its full
/// path: the same allocation as the child's key in the path map (no string of its
/// own, 40 bytes a znode less), and as every child shares the parent's prefix, paths
/// sort as names do. [`path::name`] gives a child's name. Persistent: a clone is O(1)
/// and shares structure, so copying a node with a million children (the first change
/// to it after a snapshot) costs O(log n), not O(n).
pub type Children = OrdSet<Arc<str>>;

/// The path map: shared, copy-on-write (see the module docs).
type NodeMap = CowMap<Node>;

/// A node's data: shared, so copying a node (a shard copy after a snapshot) does not
/// copy its bytes.
pub type Data = Arc<[u8]>;

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `None` is null data (reads back with length -1), distinct from empty.
    pub data: Option<Data>,
    pub acl: AclList,
    /// As stored (ZooKeeper's `StatPersisted`): `cversion` counts the creates of
    /// children only, which is what sequential names number; clients see
    /// [`Node::client_stat`]. `ephemeral_owner` is already 0 for containers and TTL
    /// nodes.
    pub stat: Stat,
    pub kind: NodeKind,
    /// The children's paths, sorted ([`Children`]).
    pub children: Children,
}

impl Node {
    pub(crate) fn new(data: Option<Vec<u8>>, acl: AclList, stat: Stat, kind: NodeKind) -> Self {
        let mut n = Node {
            data: data.map(Data::from),
            acl,
            stat,
            kind,
            children: Children::new(),
        };
        n.fix_lengths();
        n
    }

    /// The stat as clients see it (ZooKeeper's `DataNode.copyStat`): `cversion` is the
    /// number of changes to the children, creates and deletes. The stored count of
    /// creates becomes `2 * creates - num_children` (every child gone was deleted
    /// once): create and delete one child and the parent shows cversion 2; `/` on a
    /// fresh tree shows -1 (`/zookeeper` was never created by a txn), as in ZooKeeper.
    pub fn client_stat(&self) -> Stat {
        let mut s = self.stat;
        s.cversion = s.cversion.wrapping_mul(2).wrapping_sub(s.num_children);
        s
    }

    fn fix_lengths(&mut self) {
        self.stat.data_length = self.data.as_ref().map_or(0, |d| d.len() as i32);
        self.stat.num_children = self.children.len() as i32;
    }
}

/// The znode tree plus its (local, unreplicated) watches.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: NodeMap,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Interned ACLs (see [`AclList`]); an entry goes when its last node does.
    acls: HashSet<AclList>,
    /// Cache size at which entries nobody holds any more are swept (others, e.g. prep,
    /// may hold an ACL when its last node goes, so `release` alone can miss some).
    acl_sweep_at: usize,
    /// Watches registered by reads on this server.
    pub watches: WatchManager,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A tree holding what a fresh ZooKeeper has: `/`, `/zookeeper`, `/zookeeper/quota`
    /// and `/zookeeper/config` (empty data, read-only ACL, aversion -1 as ZooKeeper's
    /// `setACL(..., -1)` leaves it).
    pub fn new() -> Self {
        let mut t = DataTree::empty();
        let open = t.intern(Acl::open_unsafe());
        let node = |acl: &AclList| {
            Node::new(
                Some(Vec::new()),
                acl.clone(),
                Stat::default(),
                NodeKind::Persistent,
            )
        };
        t.insert_system("/", node(&open));
        t.insert_system(ZOOKEEPER_PATH, node(&open));
        t.insert_system(QUOTA_PATH, node(&open));
        let mut config = node(&t.intern(Acl::read_unsafe()));
        config.stat.aversion = -1;
        t.insert_system(CONFIG_PATH, config);
        t
    }

    /// A tree without even a root (for restoring snapshots).
    pub(crate) fn empty() -> Self {
        DataTree {
            nodes: NodeMap::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            acls: HashSet::new(),
            acl_sweep_at: ACL_SWEEP_AT_MIN,
            watches: WatchManager::default(),
        }
    }

    /// The shared copy of `acl`.
    pub(crate) fn intern(&mut self, acl: Vec<Acl>) -> AclList {
        if let Some(a) = self.acls.get(acl.as_slice()) {
            return a.clone();
        }
        if self.acls.len() >= self.acl_sweep_at {
            self.acls.retain(|a| Arc::strong_count(a) > 1);
            self.acl_sweep_at = (2 * self.acls.len()).max(ACL_SWEEP_AT_MIN);
        }
        let a: AclList = acl.into();
        self.acls.insert(a.clone());
        a
    }

    /// A node let go of `acl`: forget it when only the cache still holds it.
    fn release(&mut self, acl: AclList) {
        // Held by the cache and by `acl` itself.
        if Arc::strong_count(&acl) <= 2 {
            self.acls.remove(&*acl);
        }
    }

    /// Number of distinct ACLs in use.
    pub fn distinct_acls(&self) -> usize {
        self.acls.len()
    }

    /// Restoring a snapshot: fills this empty tree (its ACLs interned already) with
    /// `nodes`, sorted by path strictly ascending (the caller checked that and each
    /// path), so the root comes first and every parent before its children. Each
    /// node's parent must be here and not ephemeral; a node's children are listed in
    /// it, and its kind indexed. Returns the offending path and why otherwise.
    pub(crate) fn fill_sorted(
        &mut self,
        mut nodes: Vec<(Arc<str>, Arc<Node>)>,
        threads: usize,
    ) -> Result<(), (String, &'static str)> {
        debug_assert!(self.is_empty(), "restoring into an empty tree");
        debug_assert!(
            nodes.windows(2).all(|w| w[0].0 < w[1].0),
            "the caller checked the order"
        );
        let Some(first) = nodes.first() else {
            return Err(("/".into(), "root missing"));
        };
        if &*first.0 != "/" {
            return Err((first.0.to_string(), "root missing"));
        }
        let started = std::time::Instant::now();
        let parents = parents_of_sorted(&nodes)?;
        // Each node is listed under its parent, which comes before it.
        for (i, &p) in parents.iter().enumerate().skip(1) {
            let (before, from_i) = nodes.split_at_mut(i);
            let child = from_i[0].0.clone();
            unique(&mut before[p as usize].1).children.insert(child);
        }
        for (_, n) in nodes.iter_mut().filter(|(_, n)| !n.children.is_empty()) {
            unique(n).fix_lengths();
        }
        let listed = started.elapsed();
        for (p, n) in &nodes {
            self.index(p, n.kind);
        }
        self.nodes = NodeMap::from_entries(nodes, threads);
        tracing::debug!(
            nodes = self.nodes.len(),
            children_ms = listed.as_millis() as u64,
            map_ms = (started.elapsed() - listed).as_millis() as u64,
            "tree rebuilt"
        );
        Ok(())
    }

    /// Adds a node below an existing parent without touching the parent's stat (the
    /// way ZooKeeper builds its system nodes).
    pub(crate) fn insert_system(&mut self, p: &str, node: Node) {
        let key: Arc<str> = p.into();
        if let Some(parent) = path::parent(p) {
            let parent = self.node_mut(parent);
            debug_assert!(parent.is_some(), "parents are inserted first");
            if let Some(parent) = parent {
                parent.children.insert(key.clone());
                parent.fix_lengths();
            }
        }
        self.index(p, node.kind);
        self.nodes.insert(key, node);
    }

    /// The node at `p`, its shard made unique first if a snapshot image shares it.
    fn node_mut(&mut self, p: &str) -> Option<&mut Node> {
        self.nodes.get_mut(p)
    }

    fn index(&mut self, p: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(p.to_string());
            }
            NodeKind::Container => {
                self.containers.insert(p.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(p.to_string());
            }
            NodeKind::Persistent => {}
        }
    }

    fn unindex(&mut self, p: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(p);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(p);
            }
            NodeKind::Persistent => {}
        }
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes, the root and system nodes included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no nodes at all (only a tree being restored).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Paths of the ephemerals `session` owns, sorted.
    pub fn ephemerals(&self, session: i64) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flat_map(|s| s.iter().map(|p| p.as_str()))
    }

    /// Sessions owning at least one ephemeral.
    pub fn ephemeral_owners(&self) -> impl Iterator<Item = i64> + '_ {
        self.ephemerals.keys().copied()
    }

    /// Number of nodes strictly below `path` (`getAllChildrenNumber`).
    pub fn descendants(&self, p: &str) -> usize {
        if p == "/" {
            return self.nodes.len().saturating_sub(1);
        }
        self.nodes
            .keys()
            .filter(|k| k.len() > p.len() && path::is_under(k, p))
            .count()
    }

    /// Containers to delete now (ZooKeeper's `ContainerManager`): they have had
    /// children (cversion > 0) and have none left. Sorted.
    pub fn empty_containers(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|p| {
                self.nodes
                    .get(p.as_str())
                    .is_some_and(|n| n.stat.cversion > 0 && n.children.is_empty())
            })
            .cloned()
            .collect()
    }

    /// TTL nodes to delete at `now_ms`: childless and unmodified for longer than their
    /// TTL. Sorted.
    pub fn expired_ttls(&self, now_ms: i64) -> Vec<String> {
        self.ttls
            .iter()
            .filter(|p| {
                self.nodes.get(p.as_str()).is_some_and(|n| match n.kind {
                    NodeKind::Ttl(ttl) => {
                        n.children.is_empty() && now_ms.saturating_sub(n.stat.mtime) > ttl
                    }
                    _ => false,
                })
            })
            .cloned()
            .collect()
    }

    /// Creates a node (a `CreateTxn`). `parent_cversion` is the parent's cversion after
    /// this create, as prep computed it; like ZooKeeper it only ever moves forward so a
    /// replayed create cannot roll it back.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        kind: NodeKind,
        parent_cversion: i32,
        zxid: i64,
        time_ms: i64,
        events: &mut Vec<WatchEvent>,
    ) -> Result<Stat, ErrorCode> {
        let parent_path = path::parent(p).ok_or(ErrorCode::NodeExists)?;
        let parent = self.node_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        if parent.children.contains(p) {
            return Err(ErrorCode::NodeExists);
        }
        debug_assert!(
            !matches!(parent.kind, NodeKind::Ephemeral(_)),
            "prep refuses children of ephemerals"
        );
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = zxid;
        }
        let key: Arc<str> = p.into();
        parent.children.insert(key.clone());
        parent.fix_lengths();
        let parent_acl = parent.acl.clone();
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            ephemeral_owner: kind.ephemeral_owner(),
            ..Stat::default()
        };
        let acl = self.intern(acl);
        let node = Node::new(data, acl.clone(), stat, kind);
        let stat = node.client_stat();
        self.index(p, kind);
        self.nodes.insert(key, node);
        self.watches.created(p, &acl, &parent_acl, events);
        Ok(stat)
    }

    /// Deletes a childless node (a `DeleteTxn`).
    pub fn delete(
        &mut self,
        p: &str,
        zxid: i64,
        events: &mut Vec<WatchEvent>,
    ) -> Result<(), ErrorCode> {
        let node = self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let parent_path = path::parent(p).ok_or(ErrorCode::BadArguments)?;
        let kind = node.kind;
        let removed = self.nodes.remove(p);
        debug_assert!(removed.is_some(), "the node was just found");
        self.unindex(p, kind);
        let mut parent_acl = None;
        if let Some(parent) = self.node_mut(parent_path) {
            parent.children.remove(p);
            // ZooKeeper moves pzxid forward only (a replayed older delete must not move
            // it back). The stored cversion counts creates, so it stays; clients still
            // see the delete as one more change (`Node::client_stat`).
            parent.stat.pzxid = parent.stat.pzxid.max(zxid);
            parent.fix_lengths();
            parent_acl = Some(parent.acl.clone());
        }
        debug_assert!(parent_acl.is_some(), "a node's parent is in the tree");
        if let Some(node) = removed {
            // The events carry the deleted node's ACL: who may not read the node does
            // not hear of its deletion.
            let parent_acl = parent_acl.unwrap_or_else(|| node.acl.clone());
            self.watches.deleted(p, &node.acl, &parent_acl, events);
            // A snapshot image (or an event) may still hold the ACL: the cache's
            // sweep forgets it once they are gone.
            self.release(node.acl);
        }
        Ok(())
    }

    /// Replaces a node's data (a `SetDataTxn`); `version` is the new data version.
    pub fn set_data(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        version: i32,
        zxid: i64,
        time_ms: i64,
        events: &mut Vec<WatchEvent>,
    ) -> Result<Stat, ErrorCode> {
        let node = self.node_mut(p).ok_or(ErrorCode::NoNode)?;
        node.data = data.map(Data::from);
        node.stat.version = version;
        node.stat.mzxid = zxid;
        node.stat.mtime = time_ms;
        node.fix_lengths();
        let stat = node.client_stat();
        let acl = node.acl.clone();
        self.watches.data_changed(p, &acl, events);
        Ok(stat)
    }

    /// Sets a system node's data outside any txn: every server of an ensemble writes
    /// `/zookeeper/config` alike from zoo.cfg at start-up, before any reconfig. Its
    /// data version reads -1, as ZooKeeper's. No watch fires.
    pub fn set_system_data(&mut self, p: &str, data: Vec<u8>) {
        debug_assert!(is_special_path(p), "only system nodes are set outside txns");
        if let Some(node) = self.node_mut(p) {
            node.data = Some(Data::from(data));
            node.stat.version = -1;
            node.fix_lengths();
        }
    }

    /// Replaces a node's ACL (a `SetACLTxn`); `aversion` is the new ACL version. No
    /// watch fires (as in ZooKeeper).
    pub fn set_acl(&mut self, p: &str, acl: Vec<Acl>, aversion: i32) -> Result<Stat, ErrorCode> {
        if !self.nodes.contains_key(p) {
            return Err(ErrorCode::NoNode);
        }
        let acl = self.intern(acl);
        let node = self.node_mut(p).ok_or(ErrorCode::NoNode)?;
        let old = std::mem::replace(&mut node.acl, acl);
        node.stat.aversion = aversion;
        let stat = node.client_stat();
        self.release(old);
        Ok(stat)
    }

    /// All nodes sorted by path (snapshots, digests).
    pub fn sorted_nodes(&self) -> Vec<(&str, &Node)> {
        sorted(&self.nodes)
    }

    /// A deterministic 64-bit digest of the replicated content (paths, data, ACLs,
    /// stats, kinds); watches are excluded. Equal trees give equal digests.
    pub fn digest(&self) -> u64 {
        digest(self.sorted_nodes())
    }

    /// The replicated content as it is now, in O(shards) (microseconds; see the
    /// module docs): a [`TreeImage`] shares every node with this tree, and later
    /// changes here copy what they touch instead of changing it under the image.
    pub fn image(&self) -> TreeImage {
        TreeImage {
            nodes: self.nodes.clone(),
        }
    }
}

/// A frozen copy of a tree's nodes (no watches, no indexes: what a snapshot holds),
/// taken by [`DataTree::image`]. It is `Send`, so it can be serialised on another
/// thread while the tree it came from goes on changing.
#[derive(Debug, Clone)]
pub struct TreeImage {
    nodes: NodeMap,
}

impl TreeImage {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the image has no nodes (never, for an image of a live tree).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All nodes sorted by path: every parent precedes its children.
    pub fn sorted_nodes(&self) -> Vec<(&str, &Node)> {
        sorted(&self.nodes)
    }

    /// The digest the tree had when the image was taken ([`DataTree::digest`]).
    pub fn digest(&self) -> u64 {
        digest(self.sorted_nodes())
    }
}

/// The nodes in path order. A comparison of two paths reads both through their
/// pointers (cache misses at 1M nodes: the sort was half of a snapshot's
/// serialisation), so each entry carries its path's first 16 bytes, which decide most
/// comparisons in place; equal prefixes fall back to the whole paths.
fn sorted(nodes: &NodeMap) -> Vec<(&str, &Node)> {
    let mut v: Vec<(u128, &str, &Node)> = nodes
        .iter()
        .map(|(p, n)| (path_prefix(p), &**p, n))
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    v.into_iter().map(|(_, p, n)| (p, n)).collect()
}

/// A path's first 16 bytes, zero-padded, as a number that orders as the bytes do (a
/// shorter path sorts before its extensions, as a string does: no path holds a zero
/// byte).
fn path_prefix(p: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = p.len().min(16);
    b[..n].copy_from_slice(&p.as_bytes()[..n]);
    debug_assert!(!b[..n].contains(&0), "paths hold no zero byte");
    u128::from_be_bytes(b)
}

/// Each node's parent's index (the root's is 0) in `nodes`, sorted by path with the
/// root first: through the previous node when it is the parent or a sibling (most
/// nodes), else by binary search (a step back up the tree). A parent missing or
/// ephemeral is an error naming the node.
/// A node being restored (decoded, or listed under its parent): nothing else holds it
/// yet.
pub(crate) fn unique(node: &mut Arc<Node>) -> &mut Node {
    Arc::get_mut(node).expect("a node being restored is not shared yet")
}

fn parents_of_sorted(nodes: &[(Arc<str>, Arc<Node>)]) -> Result<Vec<u32>, (String, &'static str)> {
    let mut parents = vec![0u32; nodes.len()];
    for i in 1..nodes.len() {
        let p = &*nodes[i].0;
        let parent = path::parent(p).unwrap_or("/");
        let prev = &*nodes[i - 1].0;
        let j = if parent == prev {
            i - 1
        } else if path::parent(prev) == Some(parent) {
            parents[i - 1] as usize
        } else {
            match nodes[..i].binary_search_by(|(k, _)| (**k).cmp(parent)) {
                Ok(j) => j,
                Err(_) => return Err((p.to_string(), "parent missing")),
            }
        };
        if matches!(nodes[j].1.kind, NodeKind::Ephemeral(_)) {
            return Err((p.to_string(), "child of an ephemeral"));
        }
        parents[i] = j as u32;
    }
    Ok(parents)
}

/// See [`DataTree::digest`].
fn digest(sorted: Vec<(&str, &Node)>) -> u64 {
    let mut h = Fnv::default();
    for (p, n) in sorted {
        h.str(p);
        match &n.data {
            None => h.i64(-1),
            Some(d) => {
                h.i64(d.len() as i64);
                h.bytes(d);
            }
        }
        for a in n.acl.iter() {
            h.i64(a.perms as i64);
            h.str(&a.id.scheme);
            h.str(&a.id.id);
        }
        let s = &n.stat;
        for v in [
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.ctime,
            s.mtime,
            s.ephemeral_owner,
        ] {
            h.i64(v);
        }
        for v in [
            s.version,
            s.cversion,
            s.aversion,
            s.data_length,
            s.num_children,
        ] {
            h.i64(v as i64);
        }
        let (tag, val) = match n.kind {
            NodeKind::Persistent => (0, 0),
            NodeKind::Ephemeral(s) => (1, s),
            NodeKind::Container => (2, 0),
            NodeKind::Ttl(t) => (3, t),
        };
        h.i64(tag);
        h.i64(val);
    }
    h.0
}

impl DataTree {
    /// The invariants a tree built by [`DataTree::insert_system`] in parent-first order
    /// without duplicates does not already hold by construction: every node's
    /// `numChildren` and `dataLength` agree with its children and data. One pass, no
    /// lookups (a restore of 1M znodes spends seconds on [`DataTree::check_invariants`]'
    /// per-node path lookups, which such a build makes redundant).
    pub fn check_counts(&self) -> Result<(), String> {
        for (p, n) in self.nodes.iter() {
            if n.stat.num_children as usize != n.children.len() {
                return Err(format!("{p}: numChildren"));
            }
            if n.stat.data_length != n.data.as_ref().map_or(0, |d| d.len() as i32) {
                return Err(format!("{p}: dataLength"));
            }
        }
        Ok(())
    }

    /// Checks the invariants listed in the module docs; `Err` names the first broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_counts()?;
        for (p, n) in self.nodes.iter() {
            let p: &str = p;
            if let Some(parent) = path::parent(p) {
                let ok = self
                    .nodes
                    .get(parent)
                    .is_some_and(|pn| pn.children.contains(p));
                if !ok {
                    return Err(format!("{p}: not listed under its parent"));
                }
            }
            for c in &n.children {
                if path::parent(c) != Some(p) || !self.nodes.contains_key(c) {
                    return Err(format!("{p}: child {c} missing"));
                }
            }
            let indexed = match n.kind {
                NodeKind::Ephemeral(s) => {
                    n.children.is_empty() && self.ephemerals.get(&s).is_some_and(|e| e.contains(p))
                }
                NodeKind::Container => self.containers.contains(p),
                NodeKind::Ttl(_) => self.ttls.contains(p),
                NodeKind::Persistent => true,
            };
            if !indexed || n.stat.ephemeral_owner != n.kind.ephemeral_owner() {
                return Err(format!("{p}: kind index"));
            }
        }
        Ok(())
    }
}

/// FNV-1a, 64 bit: tiny, deterministic across runs and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.i64(s.len() as i64);
        self.bytes(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(t: &mut DataTree, p: &str, kind: NodeKind, zxid: i64) -> Stat {
        let parent = path::parent(p).unwrap();
        let cv = t.get(parent).unwrap().stat.cversion + 1;
        let mut ev = vec![];
        t.create(
            p,
            Some(b"x".to_vec()),
            Acl::open_unsafe(),
            kind,
            cv,
            zxid,
            zxid * 10,
            &mut ev,
        )
        .unwrap()
    }

    /// The prefix-keyed sort orders paths as strings do: across the 16-byte edge,
    /// for a path and its extensions, for names with bytes below '/' (`a-c` sorts
    /// before `a/b`) and for paths equal in their first 16 bytes.
    #[test]
    fn sorted_nodes_are_in_string_order() {
        let mut t = DataTree::new();
        let paths = [
            "/a",
            "/a-c",
            "/a/b",
            "/a/b/c",
            "/a.b",
            "/abcdefghijklmno",
            "/abcdefghijklmnop",
            "/abcdefghijklmno-",
            "/abcdefghijklmnop/x",
            "/abcdefghijklmnop/w",
            "/abcdefghijklmnopq",
            "/\u{e9}",
        ];
        for (i, p) in paths.iter().enumerate() {
            create(&mut t, p, NodeKind::Persistent, i as i64 + 1);
        }
        let got: Vec<&str> = t.sorted_nodes().into_iter().map(|(p, _)| p).collect();
        let mut want: Vec<&str> = t.nodes.keys().map(|k| &**k).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn fresh_tree_has_system_nodes() {
        let t = DataTree::new();
        assert_eq!(t.len(), 4);
        let root = t.get("/").unwrap();
        assert_eq!(root.stat.num_children, 1);
        assert_eq!(root.stat.cversion, 0);
        assert_eq!(t.get(CONFIG_PATH).unwrap().data.as_deref(), Some(&[][..]));
        assert_eq!(t.get(ZOOKEEPER_PATH).unwrap().stat.num_children, 2);
        t.check_invariants().unwrap();
    }

    #[test]
    fn stats_after_create_set_delete() {
        let mut t = DataTree::new();
        let s = create(&mut t, "/a", NodeKind::Persistent, 5);
        assert_eq!(
            (s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime),
            (5, 5, 5, 50, 50)
        );
        assert_eq!(
            (
                s.version,
                s.cversion,
                s.aversion,
                s.data_length,
                s.num_children
            ),
            (0, 0, 0, 1, 0)
        );
        let root = t.get("/").unwrap().stat;
        assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 5, 2));

        let mut ev = vec![];
        let s = t.set_data("/a", None, 1, 6, 60, &mut ev).unwrap();
        assert_eq!(
            (s.version, s.mzxid, s.mtime, s.data_length, s.czxid),
            (1, 6, 60, 0, 5)
        );
        assert_eq!(t.get("/a").unwrap().data, None);

        let s = t.set_acl("/a", Acl::read_unsafe(), 1).unwrap();
        assert_eq!((s.aversion, s.mzxid), (1, 6));

        create(&mut t, "/a/b", NodeKind::Persistent, 7);
        let a = t.get("/a").unwrap().stat;
        assert_eq!((a.cversion, a.pzxid, a.num_children), (1, 7, 1));
        assert_eq!(t.delete("/a", 8, &mut ev), Err(ErrorCode::NotEmpty));
        t.delete("/a/b", 8, &mut ev).unwrap();
        let a = t.get("/a").unwrap().stat;
        assert_eq!(
            (a.cversion, a.pzxid, a.num_children),
            (1, 8, 0),
            "the stored cversion counts creates; the delete moves pzxid"
        );
        assert_eq!(t.get("/a").unwrap().client_stat().cversion, 2);
        t.check_invariants().unwrap();
    }

    fn read_stat(t: &mut DataTree, p: &str) -> Stat {
        let op = crate::op::Op::Exists {
            path: p.into(),
            watch: false,
        };
        match read::read(t, 1, &[], &op) {
            Ok(read::ReadResult::Exists { stat }) => stat,
            other => panic!("{other:?}"),
        }
    }

    /// ZooKeeper 3.8 (checked with kazoo): create then delete a child and the parent
    /// reads back cversion 2 and numChildren 0; a delete is a change to the children.
    #[test]
    fn clients_see_deletes_in_cversion() {
        let mut t = DataTree::new();
        create(&mut t, "/a", NodeKind::Persistent, 2);
        create(&mut t, "/a/b", NodeKind::Persistent, 3);
        let s = read_stat(&mut t, "/a");
        assert_eq!((s.cversion, s.pzxid, s.num_children), (1, 3, 1));
        let mut ev = vec![];
        t.delete("/a/b", 4, &mut ev).unwrap();
        let s = read_stat(&mut t, "/a");
        assert_eq!((s.cversion, s.pzxid, s.num_children), (2, 4, 0));
        create(&mut t, "/a/c", NodeKind::Ephemeral(7), 5);
        create(&mut t, "/a/d", NodeKind::Persistent, 6);
        t.delete("/a/c", 7, &mut ev).unwrap();
        // Three creates and two deletes.
        let s = read_stat(&mut t, "/a");
        assert_eq!((s.cversion, s.pzxid, s.num_children), (5, 7, 1));
        // The system nodes were never created by a txn: ZooKeeper shows -1 and -2.
        assert_eq!(read_stat(&mut t, ZOOKEEPER_PATH).cversion, -2);
        // `/`: one create (/a), two children (/zookeeper, /a).
        assert_eq!(read_stat(&mut t, "/").cversion, 0);
        assert_eq!(read_stat(&mut DataTree::new(), "/").cversion, -1);
    }

    #[test]
    fn replayed_ops_are_refused_without_change() {
        let mut t = DataTree::new();
        create(&mut t, "/a", NodeKind::Persistent, 2);
        let d = t.digest();
        let mut ev = vec![];
        assert_eq!(
            t.create("/a", None, vec![], NodeKind::Persistent, 1, 3, 0, &mut ev),
            Err(ErrorCode::NodeExists)
        );
        assert_eq!(t.delete("/b", 3, &mut ev), Err(ErrorCode::NoNode));
        assert_eq!(t.digest(), d);
    }

    #[test]
    fn kinds_are_indexed() {
        let mut t = DataTree::new();
        let s = create(&mut t, "/e", NodeKind::Ephemeral(42), 2);
        assert_eq!(s.ephemeral_owner, 42);
        let s = create(&mut t, "/c", NodeKind::Container, 3);
        assert_eq!(s.ephemeral_owner, 0);
        let s = create(&mut t, "/t", NodeKind::Ttl(100), 4);
        assert_eq!(s.ephemeral_owner, 0);
        assert_eq!(t.ephemerals(42).collect::<Vec<_>>(), vec!["/e"]);
        assert!(t.empty_containers().is_empty(), "never had children");
        create(&mut t, "/c/x", NodeKind::Persistent, 5);
        assert!(t.empty_containers().is_empty());
        let mut ev = vec![];
        t.delete("/c/x", 6, &mut ev).unwrap();
        assert_eq!(t.empty_containers(), vec!["/c".to_string()]);
        // TTL: mtime 40, ttl 100: expired strictly after 140.
        assert!(t.expired_ttls(140).is_empty());
        assert_eq!(t.expired_ttls(141), vec!["/t".to_string()]);
        t.delete("/e", 7, &mut ev).unwrap();
        assert_eq!(t.ephemerals(42).count(), 0);
        // Every node so far has the open ACL or /zookeeper/config's read-only one.
        assert_eq!(t.distinct_acls(), 2);
        t.set_acl("/t", Acl::read_unsafe(), 1).unwrap();
        assert_eq!(t.distinct_acls(), 2);
        t.set_acl("/t", vec![], 2).unwrap();
        assert_eq!(t.distinct_acls(), 3);
        t.delete("/t", 8, &mut ev).unwrap();
        assert_eq!(t.distinct_acls(), 2, "the last holder is gone");
        t.check_invariants().unwrap();
        assert_eq!(t.descendants("/"), t.len() - 1);
        assert_eq!(t.descendants("/zookeeper"), 2);
    }
}
