//! Watches: who is told what when a znode changes (ZooKeeper's `WatchManager` pair).
//!
//! Two tables, as in ZooKeeper's `DataTree`: *data* watches (set by `getData`, by
//! `exists` whether or not the node exists, and by `addWatch`) and *child* watches (set
//! by `getChildren` and by a `PERSISTENT` `addWatch`). Each (path, session) pair has one
//! mode: standard (one-shot, removed when it fires), persistent (fires on every change
//! of that path, outlives deletion) or persistent-recursive (data table only; fires for
//! the path and everything below it, never with `NodeChildrenChanged`). A persistent
//! registration is not downgraded by a later standard one.
//!
//! Watches are local to a server (not replicated, not in snapshots) and owned by a
//! session id, which the server uses to route events. Events are produced in the order
//! they must be delivered: per trigger, sessions ascending; triggers in ZooKeeper's
//! order (see `DataTree`). A session may hold at most `watches_per_session_max`
//! registrations (a path in a table counts once); beyond that registering fails with
//! `QuotaExceeded`.
//!
//! Every event carries the ACL a session must be granted READ by to receive it
//! (ZooKeeper's fix of CVE-2024-23944): the changed node's, or for
//! `NodeChildrenChanged` the parent's (the node whose children changed); recursive
//! watchers on ancestors are checked against the changed node's ACL too. The check
//! itself is made where the session's ids are known (`shard::clients`): a one-shot
//! watch that fires is consumed whether or not its event is then delivered, as in
//! ZooKeeper.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use transport::jute::{AddWatchMode, ErrorCode, EventType, WatcherType};

use super::{AclList, path};

/// Default limit of watch registrations per session.
pub const WATCHES_PER_SESSION_MAX_DEFAULT: usize = 100_000;

/// The error a registration beyond `watches_per_session_max` gets.
pub const WATCH_LIMIT_ERROR: ErrorCode = ErrorCode::QuotaExceeded;

/// How a watch fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    Standard,
    Persistent,
    PersistentRecursive,
}

impl WatchMode {
    fn is_persistent(self) -> bool {
        self != WatchMode::Standard
    }
}

/// Which table a watch lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchTable {
    Data,
    Child,
}

/// One event to deliver to `session`'s connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub session: i64,
    pub kind: EventType,
    pub path: String,
    /// Delivered only if this ACL grants the session READ (see the module docs). Empty
    /// for events that need no check (an empty ACL allows everything, as in
    /// ZooKeeper's `checkACL`): those `setWatches` owes, which ZooKeeper sends
    /// unchecked too.
    pub acl: AclList,
}

impl WatchEvent {
    /// An event that any session may receive (no ACL to check).
    pub fn unchecked(session: i64, kind: EventType, path: &str) -> WatchEvent {
        WatchEvent {
            session,
            kind,
            path: path.to_string(),
            acl: AclList::from(Vec::new()),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Table {
    by_path: HashMap<String, BTreeMap<i64, WatchMode>>,
    by_session: HashMap<i64, BTreeSet<String>>,
    recursive: usize,
}

impl Table {
    fn mode(&self, path: &str, session: i64) -> Option<WatchMode> {
        self.by_path.get(path)?.get(&session).copied()
    }

    /// Adds or upgrades; returns whether the pair is new.
    fn add(&mut self, path: &str, session: i64, mode: WatchMode) -> bool {
        let watchers = self.by_path.entry(path.to_string()).or_default();
        let old = watchers.get(&session).copied();
        let new = match old {
            Some(m) if m.is_persistent() && !mode.is_persistent() => m,
            _ => mode,
        };
        watchers.insert(session, new);
        self.recursive += usize::from(new == WatchMode::PersistentRecursive);
        self.recursive -= usize::from(old == Some(WatchMode::PersistentRecursive));
        self.by_session
            .entry(session)
            .or_default()
            .insert(path.to_string());
        old.is_none()
    }

    fn remove(&mut self, path: &str, session: i64) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = watchers.remove(&session) else {
            return false;
        };
        self.recursive -= usize::from(mode == WatchMode::PersistentRecursive);
        if watchers.is_empty() {
            self.by_path.remove(path);
        }
        if let Some(paths) = self.by_session.get_mut(&session) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_session.remove(&session);
            }
        }
        true
    }

    fn count(&self, session: i64) -> usize {
        self.by_session.get(&session).map_or(0, |p| p.len())
    }

    /// ZooKeeper's `triggerWatch`: the sessions to notify for `kind` on `changed`.
    fn trigger(&mut self, changed: &str, kind: EventType) -> BTreeSet<i64> {
        let mut hit = BTreeSet::new();
        if self.by_path.is_empty() {
            return hit; // the common case: nobody watches anything
        }
        let mut fired_once = Vec::new();
        let mut at: Option<&str> = Some(changed);
        while let Some(local) = at {
            if let Some(watchers) = self.by_path.get(local) {
                for (&session, &mode) in watchers {
                    if mode == WatchMode::PersistentRecursive {
                        if kind != EventType::NodeChildrenChanged {
                            hit.insert(session);
                        }
                    } else if local == changed {
                        hit.insert(session);
                        if mode == WatchMode::Standard {
                            fired_once.push(session);
                        }
                    }
                }
            }
            // Parents matter only to recursive watches.
            at = if self.recursive > 0 {
                path::parent(local)
            } else {
                None
            };
        }
        for session in fired_once {
            self.remove(changed, session);
        }
        hit
    }
}

/// The watch tables of one tree, with the per-session limit.
#[derive(Debug, Clone)]
pub struct WatchManager {
    data: Table,
    child: Table,
    /// Registrations one session may hold (both tables together).
    pub watches_per_session_max: usize,
}

impl Default for WatchManager {
    fn default() -> Self {
        WatchManager::new(WATCHES_PER_SESSION_MAX_DEFAULT)
    }
}

impl WatchManager {
    pub fn new(watches_per_session_max: usize) -> Self {
        WatchManager {
            data: Table::default(),
            child: Table::default(),
            watches_per_session_max,
        }
    }

    fn table(&mut self, t: WatchTable) -> &mut Table {
        match t {
            WatchTable::Data => &mut self.data,
            WatchTable::Child => &mut self.child,
        }
    }

    /// Registrations held by all sessions: O(sessions), for monitoring (`wchs`,
    /// `zk_watch_count`), not for the request path.
    pub fn total(&self) -> usize {
        [&self.data, &self.child]
            .iter()
            .flat_map(|t| t.by_session.values())
            .map(BTreeSet::len)
            .sum()
    }

    /// Registrations `session` holds.
    pub fn count(&self, session: i64) -> usize {
        self.data.count(session) + self.child.count(session)
    }

    /// Whether `n` more registrations fit `session`'s limit.
    pub fn has_room(&self, session: i64, n: usize) -> bool {
        self.count(session).saturating_add(n) <= self.watches_per_session_max
    }

    /// Registers a watch; `QuotaExceeded` when `session` is at its limit.
    pub fn add(
        &mut self,
        table: WatchTable,
        path: &str,
        session: i64,
        mode: WatchMode,
    ) -> Result<(), ErrorCode> {
        debug_assert!(
            table == WatchTable::Data || mode != WatchMode::PersistentRecursive,
            "recursive watches live in the data table only"
        );
        let exists = self.table(table).mode(path, session).is_some();
        if !exists && !self.has_room(session, 1) {
            return Err(WATCH_LIMIT_ERROR);
        }
        self.table(table).add(path, session, mode);
        Ok(())
    }

    /// `addWatch`: persistent goes in both tables, recursive in the data table only.
    pub fn add_persistent(
        &mut self,
        path: &str,
        session: i64,
        mode: AddWatchMode,
    ) -> Result<(), ErrorCode> {
        match mode {
            AddWatchMode::Persistent => {
                let new = usize::from(self.data.mode(path, session).is_none())
                    + usize::from(self.child.mode(path, session).is_none());
                if !self.has_room(session, new) {
                    return Err(WATCH_LIMIT_ERROR);
                }
                self.data.add(path, session, WatchMode::Persistent);
                self.child.add(path, session, WatchMode::Persistent);
                Ok(())
            }
            AddWatchMode::PersistentRecursive => self.add(
                WatchTable::Data,
                path,
                session,
                WatchMode::PersistentRecursive,
            ),
        }
    }

    /// The mode of `session`'s watch on `path` in `table`, if any.
    pub fn mode(&self, table: WatchTable, path: &str, session: i64) -> Option<WatchMode> {
        match table {
            WatchTable::Data => self.data.mode(path, session),
            WatchTable::Child => self.child.mode(path, session),
        }
    }

    /// `checkWatches`: whether `session` has a watch of `kind` on `path`.
    pub fn contains(&self, path: &str, kind: WatcherType, session: i64) -> bool {
        let data = self.data.mode(path, session).is_some();
        let child = self.child.mode(path, session).is_some();
        match kind {
            WatcherType::Data => data,
            WatcherType::Children => child,
            WatcherType::Any => data || child,
        }
    }

    /// `removeWatches`: removes `session`'s watches of `kind` on `path`; whether any was.
    pub fn remove(&mut self, path: &str, kind: WatcherType, session: i64) -> bool {
        let data =
            matches!(kind, WatcherType::Data | WatcherType::Any) && self.data.remove(path, session);
        let child = matches!(kind, WatcherType::Children | WatcherType::Any)
            && self.child.remove(path, session);
        data || child
    }

    /// Drops every watch of `session` (its connection closed or it expired).
    pub fn remove_session(&mut self, session: i64) {
        for t in [WatchTable::Data, WatchTable::Child] {
            let table = self.table(t);
            let paths = table.by_session.get(&session).cloned().unwrap_or_default();
            for p in paths {
                table.remove(&p, session);
            }
        }
    }

    fn emit(
        out: &mut Vec<WatchEvent>,
        sessions: &BTreeSet<i64>,
        skip: &BTreeSet<i64>,
        kind: EventType,
        path: &str,
        acl: &AclList,
    ) {
        for &session in sessions.difference(skip) {
            out.push(WatchEvent {
                session,
                kind,
                path: path.to_string(),
                acl: acl.clone(),
            });
        }
    }

    /// A node with `acl` was created under a parent with `parent_acl`: `NodeCreated`
    /// on it, `NodeChildrenChanged` on its parent.
    pub fn created(
        &mut self,
        path: &str,
        acl: &AclList,
        parent_acl: &AclList,
        out: &mut Vec<WatchEvent>,
    ) {
        let none = BTreeSet::new();
        let hit = self.data.trigger(path, EventType::NodeCreated);
        Self::emit(out, &hit, &none, EventType::NodeCreated, path, acl);
        self.parent_changed(path, parent_acl, out);
    }

    /// A node with `acl` was deleted from a parent with `parent_acl`: `NodeDeleted` to
    /// its data and child watchers (each once), `NodeChildrenChanged` on its parent.
    pub fn deleted(
        &mut self,
        path: &str,
        acl: &AclList,
        parent_acl: &AclList,
        out: &mut Vec<WatchEvent>,
    ) {
        let none = BTreeSet::new();
        let hit = self.data.trigger(path, EventType::NodeDeleted);
        Self::emit(out, &hit, &none, EventType::NodeDeleted, path, acl);
        let child_hit = self.child.trigger(path, EventType::NodeDeleted);
        Self::emit(out, &child_hit, &hit, EventType::NodeDeleted, path, acl);
        self.parent_changed(path, parent_acl, out);
    }

    /// The data of a node with `acl` changed: `NodeDataChanged`.
    pub fn data_changed(&mut self, path: &str, acl: &AclList, out: &mut Vec<WatchEvent>) {
        let hit = self.data.trigger(path, EventType::NodeDataChanged);
        Self::emit(
            out,
            &hit,
            &BTreeSet::new(),
            EventType::NodeDataChanged,
            path,
            acl,
        );
    }

    fn parent_changed(&mut self, path: &str, parent_acl: &AclList, out: &mut Vec<WatchEvent>) {
        if let Some(parent) = path::parent(path) {
            let hit = self.child.trigger(parent, EventType::NodeChildrenChanged);
            Self::emit(
                out,
                &hit,
                &BTreeSet::new(),
                EventType::NodeChildrenChanged,
                parent,
                parent_acl,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;
    use transport::jute::{Acl, Id, perms};

    #[test]
    fn total_counts_every_sessions_registrations() {
        let mut w = WatchManager::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Data, "/b", 2, WatchMode::Standard)
            .unwrap();
        assert_eq!(w.total(), 3);
        w.remove_session(1);
        assert_eq!(w.total(), 1);
    }

    fn ev(session: i64, kind: EventType, path: &str) -> WatchEvent {
        WatchEvent::unchecked(session, kind, path)
    }

    /// The ACL the tests' nodes have: empty, which lets everyone read.
    fn open() -> AclList {
        AclList::from(Vec::new())
    }

    #[test]
    fn standard_watches_fire_once() {
        let mut w = WatchManager::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/", 2, WatchMode::Standard)
            .unwrap();
        let mut out = vec![];
        w.data_changed("/a", &open(), &mut out);
        w.data_changed("/a", &open(), &mut out);
        w.created("/b", &open(), &open(), &mut out);
        w.created("/c", &open(), &open(), &mut out);
        assert_eq!(
            out,
            vec![
                ev(1, NodeDataChanged, "/a"),
                ev(2, NodeChildrenChanged, "/")
            ]
        );
        assert_eq!(w.count(1) + w.count(2), 0);
    }

    #[test]
    fn delete_notifies_each_watcher_once() {
        let mut w = WatchManager::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/a", 2, WatchMode::Standard)
            .unwrap();
        let mut out = vec![];
        w.deleted("/a", &open(), &open(), &mut out);
        assert_eq!(
            out,
            vec![ev(1, NodeDeleted, "/a"), ev(2, NodeDeleted, "/a")]
        );
        assert_eq!(w.count(1), 0, "both one-shot watches are consumed");
    }

    #[test]
    fn persistent_outlives_delete_and_sees_create() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 7, AddWatchMode::Persistent).unwrap();
        let mut out = vec![];
        w.deleted("/a", &open(), &open(), &mut out);
        w.created("/a", &open(), &open(), &mut out);
        w.created("/a/x", &open(), &open(), &mut out);
        w.data_changed("/a", &open(), &mut out);
        w.data_changed("/a/x", &open(), &mut out);
        assert_eq!(
            out,
            vec![
                ev(7, NodeDeleted, "/a"),
                ev(7, NodeCreated, "/a"),
                ev(7, NodeChildrenChanged, "/a"),
                ev(7, NodeDataChanged, "/a"),
            ]
        );
        assert_eq!(w.count(7), 2);
    }

    #[test]
    fn recursive_never_sends_children_changed() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 7, AddWatchMode::PersistentRecursive)
            .unwrap();
        let mut out = vec![];
        w.created("/a/b", &open(), &open(), &mut out);
        w.created("/a/b/c", &open(), &open(), &mut out);
        w.data_changed("/a/b/c", &open(), &mut out);
        w.deleted("/a/b/c", &open(), &open(), &mut out);
        w.created("/ab", &open(), &open(), &mut out);
        assert_eq!(
            out,
            vec![
                ev(7, NodeCreated, "/a/b"),
                ev(7, NodeCreated, "/a/b/c"),
                ev(7, NodeDataChanged, "/a/b/c"),
                ev(7, NodeDeleted, "/a/b/c"),
            ]
        );
    }

    #[test]
    fn standard_does_not_downgrade_persistent() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 1, AddWatchMode::Persistent).unwrap();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        let mut out = vec![];
        w.data_changed("/a", &open(), &mut out);
        w.data_changed("/a", &open(), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn check_and_remove() {
        let mut w = WatchManager::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        assert!(w.contains("/a", WatcherType::Data, 1));
        assert!(w.contains("/a", WatcherType::Any, 1));
        assert!(!w.contains("/a", WatcherType::Children, 1));
        assert!(!w.remove("/a", WatcherType::Children, 1));
        assert!(w.remove("/a", WatcherType::Any, 1));
        assert!(!w.contains("/a", WatcherType::Any, 1));
    }

    #[test]
    fn limit_per_session() {
        let mut w = WatchManager::new(2);
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/a", 1, WatchMode::Standard)
            .unwrap();
        assert_eq!(
            w.add(WatchTable::Data, "/b", 1, WatchMode::Standard),
            Err(WATCH_LIMIT_ERROR)
        );
        w.add(WatchTable::Data, "/b", 2, WatchMode::Standard)
            .unwrap();
        w.remove_session(1);
        assert_eq!(w.count(1), 0);
        assert_eq!(w.count(2), 1);
    }

    fn digest_only(user: &str) -> AclList {
        AclList::from(vec![Acl {
            perms: perms::ALL,
            id: Id::new("digest", format!("{user}:hash")),
        }])
    }

    /// CVE-2024-23944: each event names the ACL its receiver must be allowed to read
    /// by: the changed node's, the parent's for NodeChildrenChanged, the changed
    /// node's (not the watched ancestor's) for a recursive watch.
    #[test]
    fn events_carry_the_acl_that_guards_them() {
        let (node, parent, other) = (digest_only("n"), digest_only("p"), digest_only("o"));
        let mut w = WatchManager::default();
        w.add(WatchTable::Data, "/p/x", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/p", 2, WatchMode::Standard)
            .unwrap();
        w.add_persistent("/", 3, AddWatchMode::PersistentRecursive)
            .unwrap();
        let mut out = vec![];
        w.created("/p/x", &node, &parent, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.session, e.kind, e.acl.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, NodeCreated, node.clone()),
                (3, NodeCreated, node.clone()),
                (2, NodeChildrenChanged, parent.clone()),
            ]
        );
        out.clear();
        w.add(WatchTable::Data, "/p/x", 1, WatchMode::Standard)
            .unwrap();
        w.add(WatchTable::Child, "/p/x", 2, WatchMode::Standard)
            .unwrap();
        w.data_changed("/p/x", &other, &mut out);
        w.deleted("/p/x", &node, &parent, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.session, e.kind, e.acl.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, NodeDataChanged, other.clone()),
                (3, NodeDataChanged, other),
                (3, NodeDeleted, node.clone()),
                (2, NodeDeleted, node),
            ]
        );
        // The one-shot watches fired (consumed) whether or not they will be delivered.
        assert_eq!(w.count(1) + w.count(2), 0);
    }
}
