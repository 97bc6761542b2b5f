//! The watches a session has set, so a reconnect can set them again (`setWatches2`),
//! as ZooKeeper's Java client does.
//!
//! Contract (ZooKeeper's `WatchRegistration` and `ZKWatchManager` rules):
//! - a successful `getData`/`getChildren`(2) with `watch` sets a data/child watch; an
//!   `exists` with `watch` sets a data watch if the node exists, an exist watch if it
//!   answered NoNode; a successful `addWatch` sets a persistent (recursive) watch;
//! - one-shot watches go when an event fires them (created/changed: data and exist;
//!   deleted: data, exist and child; children changed: child); persistent ones stay;
//! - paths are server paths (chroot included), as the server names them in events.
//!
//! Pure: no IO.

use std::collections::BTreeSet;

use transport::jute::records::{SetWatches2, WatcherEvent};
use transport::jute::{AddWatchMode, ErrorCode, EventType, Request};

/// Most watches of each kind remembered; past it a reconnect re-sets only these.
pub const WATCHES_PER_KIND_MAX: usize = 100_000;

/// Watches set by one session, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watches {
    pub data: BTreeSet<String>,
    pub exist: BTreeSet<String>,
    pub child: BTreeSet<String>,
    pub persistent: BTreeSet<String>,
    pub recursive: BTreeSet<String>,
}

fn add(set: &mut BTreeSet<String>, path: &str) {
    if set.len() < WATCHES_PER_KIND_MAX {
        set.insert(path.to_string());
    }
}

impl Watches {
    /// Notes the watch `req` set, given the error code its reply carried.
    pub fn register(&mut self, req: &Request, err: i32) {
        let ok = err == ErrorCode::Ok.code();
        match req {
            Request::GetData(r) if r.watch && ok => add(&mut self.data, &r.path),
            Request::Exists(r) if r.watch && ok => add(&mut self.data, &r.path),
            Request::Exists(r) if r.watch && err == ErrorCode::NoNode.code() => {
                add(&mut self.exist, &r.path)
            }
            Request::GetChildren(r) if r.watch && ok => add(&mut self.child, &r.path),
            Request::GetChildren2(r) if r.watch && ok => add(&mut self.child, &r.path),
            Request::AddWatch(r) if ok => {
                if r.mode == AddWatchMode::PersistentRecursive.code() {
                    add(&mut self.recursive, &r.path)
                } else {
                    add(&mut self.persistent, &r.path)
                }
            }
            _ => {}
        }
    }

    /// Drops the one-shot watches `ev` fired.
    pub fn fired(&mut self, ev: &WatcherEvent) {
        let p = ev.path.as_str();
        match EventType::from_code(ev.event_type) {
            Some(EventType::NodeCreated | EventType::NodeDataChanged) => {
                self.data.remove(p);
                self.exist.remove(p);
            }
            Some(EventType::NodeDeleted) => {
                self.data.remove(p);
                self.exist.remove(p);
                self.child.remove(p);
            }
            Some(EventType::NodeChildrenChanged) => {
                self.child.remove(p);
            }
            _ => {}
        }
    }

    /// The `setWatches2` request that sets every watch again, if there is any.
    pub fn set_watches(&self, relative_zxid: i64) -> Option<Request> {
        let v = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        let all = [
            &self.data,
            &self.exist,
            &self.child,
            &self.persistent,
            &self.recursive,
        ];
        if all.iter().all(|s| s.is_empty()) {
            return None;
        }
        Some(Request::SetWatches2(SetWatches2 {
            relative_zxid,
            data_watches: v(&self.data),
            exist_watches: v(&self.exist),
            child_watches: v(&self.child),
            persistent_watches: v(&self.persistent),
            persistent_recursive_watches: v(&self.recursive),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::records::*;

    fn ev(t: EventType, path: &str) -> WatcherEvent {
        WatcherEvent {
            event_type: t.code(),
            state: 3,
            path: path.into(),
        }
    }

    #[test]
    fn registration_follows_replies() {
        let mut w = Watches::default();
        let get = |watch| {
            Request::GetData(GetDataRequest {
                path: "/d".into(),
                watch,
            })
        };
        let exists = |p: &str| {
            Request::Exists(ExistsRequest {
                path: p.into(),
                watch: true,
            })
        };
        w.register(&get(false), 0);
        w.register(&get(true), ErrorCode::NoNode.code());
        assert_eq!(
            w,
            Watches::default(),
            "no watch without watch=true or on error"
        );
        w.register(&get(true), 0);
        w.register(&exists("/e"), ErrorCode::NoNode.code());
        w.register(&exists("/x"), 0);
        let kids = GetChildrenRequest {
            path: "/c".into(),
            watch: true,
        };
        w.register(&Request::GetChildren(kids), 0);
        for (mode, path) in [
            (AddWatchMode::Persistent, "/p"),
            (AddWatchMode::PersistentRecursive, "/r"),
        ] {
            let req = AddWatchRequest {
                path: path.into(),
                mode: mode.code(),
            };
            w.register(&Request::AddWatch(req), 0);
        }
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(w.data, set(&["/d", "/x"]));
        assert_eq!(w.exist, set(&["/e"]));
        assert_eq!(w.child, set(&["/c"]));
        assert_eq!(w.persistent, set(&["/p"]));
        assert_eq!(w.recursive, set(&["/r"]));
    }

    #[test]
    fn events_clear_one_shot_watches_only() {
        let mut w = Watches::default();
        for p in ["/a", "/b"] {
            w.data.insert(p.into());
            w.child.insert(p.into());
            w.persistent.insert(p.into());
        }
        w.exist.insert("/n".into());
        w.fired(&ev(EventType::NodeDataChanged, "/a"));
        w.fired(&ev(EventType::NodeChildrenChanged, "/b"));
        w.fired(&ev(EventType::NodeCreated, "/n"));
        assert!(!w.data.contains("/a") && w.child.contains("/a"));
        assert!(w.data.contains("/b") && !w.child.contains("/b"));
        assert!(w.exist.is_empty());
        w.fired(&ev(EventType::NodeDeleted, "/b"));
        assert!(w.data.is_empty() && w.child.contains("/a") && w.child.len() == 1);
        assert_eq!(w.persistent.len(), 2, "persistent watches stay");
    }

    #[test]
    fn set_watches_lists_every_kind() {
        assert_eq!(Watches::default().set_watches(5), None);
        let mut w = Watches::default();
        w.recursive.insert("/r".into());
        w.exist.insert("/e".into());
        match w.set_watches(7) {
            Some(Request::SetWatches2(s)) => {
                assert_eq!(s.relative_zxid, 7);
                assert_eq!(s.exist_watches, vec!["/e".to_string()]);
                assert_eq!(s.persistent_recursive_watches, vec!["/r".to_string()]);
                assert!(s.data_watches.is_empty() && s.child_watches.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
