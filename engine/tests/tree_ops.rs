//! End-to-end engine behaviour through the public API: prep → apply → read, the
//! watch events writes trigger, setWatches catch-up, snapshots.

use engine::op::Op;
use engine::prep::{Prep, PrepConfig, RequestCtx};
use engine::session::SessionConfig;
use engine::tree::read::{ReadResult, read};
use engine::tree::watch::WatchEvent;
use engine::txn::{Applied, Db, OpResult, Txn, TxnResult};
use transport::jute::{Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, WatcherType};

const A: i64 = 0xA;
const B: i64 = 0xB;

struct Server {
    db: Db,
    prep: Prep,
    now: i64,
    /// Every applied txn, as the WAL would hold it.
    log: Vec<Txn>,
}

impl Server {
    fn new() -> Self {
        let mut s = Server {
            db: Db::new(SessionConfig::from_tick(100)),
            prep: Prep::new(0, PrepConfig::default()),
            now: 10_000,
            log: Vec::new(),
        };
        for id in [A, B] {
            let op = Op::CreateSession {
                session_id: id,
                timeout_ms: 1000,
                password: [id as u8; 16],
            };
            s.write(id, &op);
        }
        s
    }

    fn write(&mut self, session: i64, op: &Op) -> Applied {
        self.now += 1;
        let req = RequestCtx {
            session,
            cxid: 1,
            auth: &[],
        };
        let t = self.prep.prep(&self.db, &req, op, self.now);
        let t = Txn::from_bytes(&t.to_bytes()).expect("txn round trip");
        let a = self.db.apply(&t);
        self.prep.applied(a.zxid);
        self.log.push(t);
        a
    }

    fn read(&mut self, session: i64, op: &Op) -> Result<ReadResult, ErrorCode> {
        read(&mut self.db.tree, session, &[], op)
    }
}

fn create(path: &str, mode: CreateMode) -> Op {
    Op::Create {
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms: None,
        container: false,
    }
}

fn set(path: &str) -> Op {
    Op::SetData {
        path: path.into(),
        data: Some(b"w".to_vec()),
        version: -1,
    }
}

fn del(path: &str) -> Op {
    Op::Delete {
        path: path.into(),
        version: -1,
    }
}

/// An event about a node with the ACL every node here has (`create`'s, the root's).
fn ev(session: i64, kind: EventType, path: &str) -> WatchEvent {
    WatchEvent {
        session,
        kind,
        path: path.into(),
        acl: Acl::open_unsafe().into(),
    }
}

#[test]
fn config_node_is_empty_and_readable() {
    let mut s = Server::new();
    let r = s.read(
        A,
        &Op::GetData {
            path: "/zookeeper/config".into(),
            watch: true,
        },
    );
    assert!(matches!(r, Ok(ReadResult::GetData { data: Some(d), .. }) if d.is_empty()));
    let r = s.read(
        A,
        &Op::GetChildren {
            path: "/".into(),
            watch: false,
        },
    );
    assert_eq!(
        r,
        Ok(ReadResult::GetChildren {
            children: vec!["zookeeper".into()]
        })
    );
}

#[test]
fn null_and_empty_data_differ() {
    let mut s = Server::new();
    let mut op = create("/n", CreateMode::Persistent);
    if let Op::Create { data, .. } = &mut op {
        *data = None;
    }
    s.write(A, &op);
    let r = s
        .read(
            A,
            &Op::GetData {
                path: "/n".into(),
                watch: false,
            },
        )
        .unwrap();
    assert!(matches!(r, ReadResult::GetData { data: None, stat } if stat.data_length == 0));
}

#[test]
fn one_shot_watches_fire_from_apply() {
    let mut s = Server::new();
    s.write(A, &create("/w", CreateMode::Persistent));
    s.read(
        B,
        &Op::GetData {
            path: "/w".into(),
            watch: true,
        },
    )
    .unwrap();
    s.read(
        B,
        &Op::GetChildren {
            path: "/w".into(),
            watch: true,
        },
    )
    .unwrap();
    assert_eq!(
        s.read(
            B,
            &Op::Exists {
                path: "/later".into(),
                watch: true
            }
        ),
        Err(ErrorCode::NoNode),
        "exists on a missing node still leaves its watch"
    );
    assert_eq!(
        s.write(A, &set("/w")).events,
        vec![ev(B, EventType::NodeDataChanged, "/w")]
    );
    assert!(s.write(A, &set("/w")).events.is_empty(), "one-shot");
    assert_eq!(
        s.write(A, &create("/w/c", CreateMode::Persistent)).events,
        vec![ev(B, EventType::NodeChildrenChanged, "/w")]
    );
    assert_eq!(
        s.write(A, &create("/later", CreateMode::Persistent)).events,
        vec![ev(B, EventType::NodeCreated, "/later")]
    );
    assert_eq!(s.db.tree.watches.count(B), 0);
}

#[test]
fn persistent_recursive_and_check_remove() {
    let mut s = Server::new();
    // One mode per (path, session), as ZooKeeper's WatcherModeManager: the later wins
    // in the data table; the child table keeps the persistent one.
    s.read(
        B,
        &Op::AddWatch {
            path: "/r".into(),
            mode: AddWatchMode::Persistent,
        },
    )
    .unwrap();
    s.read(
        B,
        &Op::AddWatch {
            path: "/r".into(),
            mode: AddWatchMode::PersistentRecursive,
        },
    )
    .unwrap();
    let a = s.write(A, &create("/r", CreateMode::Persistent));
    assert_eq!(a.events, vec![ev(B, EventType::NodeCreated, "/r")]);
    let a = s.write(A, &create("/r/x", CreateMode::Persistent));
    // Recursive (data table) on /r/x; persistent child watch on /r.
    assert_eq!(
        a.events,
        vec![
            ev(B, EventType::NodeCreated, "/r/x"),
            ev(B, EventType::NodeChildrenChanged, "/r")
        ]
    );
    let check = |kind| Op::CheckWatches {
        path: "/r".into(),
        kind,
    };
    assert!(s.read(B, &check(WatcherType::Children)).is_ok());
    assert_eq!(
        s.read(A, &check(WatcherType::Any)),
        Err(ErrorCode::NoWatcher)
    );
    let remove = Op::RemoveWatches {
        path: "/r".into(),
        kind: WatcherType::Any,
    };
    assert!(s.read(B, &remove).is_ok());
    assert_eq!(s.read(B, &remove), Err(ErrorCode::NoWatcher));
    assert!(s.write(A, &set("/r/x")).events.is_empty());
}

#[test]
fn set_watches_catch_up() {
    let mut s = Server::new();
    for p in ["/d", "/gone", "/c", "/same"] {
        s.write(A, &create(p, CreateMode::Persistent));
    }
    let rel = s.db.last_zxid();
    s.write(A, &set("/d"));
    s.write(A, &del("/gone"));
    s.write(A, &create("/c/k", CreateMode::Persistent));
    s.write(A, &create("/born", CreateMode::Persistent));
    let op = Op::SetWatches {
        relative_zxid: rel,
        data: vec!["/d".into(), "/gone".into(), "/same".into()],
        exist: vec!["/born".into(), "/unborn".into()],
        child: vec!["/c".into(), "/same".into()],
        persistent: vec![],
        persistent_recursive: vec![],
    };
    let Ok(ReadResult::SetWatches { events }) = s.read(B, &op) else {
        panic!()
    };
    assert_eq!(
        events,
        vec![
            WatchEvent::unchecked(B, EventType::NodeDataChanged, "/d"),
            WatchEvent::unchecked(B, EventType::NodeDeleted, "/gone"),
            WatchEvent::unchecked(B, EventType::NodeCreated, "/born"),
            WatchEvent::unchecked(B, EventType::NodeChildrenChanged, "/c"),
        ],
        "what setWatches owes is not ACL-checked (ZooKeeper's DataTree.setWatches)"
    );
    // Watches without news were registered.
    assert_eq!(s.db.tree.watches.count(B), 3);
    assert_eq!(
        s.write(A, &create("/unborn", CreateMode::Persistent))
            .events
            .len(),
        1
    );
}

#[test]
fn close_session_deletes_ephemerals_and_notifies_others() {
    let mut s = Server::new();
    s.write(A, &create("/e", CreateMode::Ephemeral));
    s.read(
        A,
        &Op::GetData {
            path: "/e".into(),
            watch: true,
        },
    )
    .unwrap();
    s.read(
        B,
        &Op::Exists {
            path: "/e".into(),
            watch: true,
        },
    )
    .unwrap();
    let r = s.read(A, &Op::GetEphemerals { prefix: "/".into() });
    assert_eq!(
        r,
        Ok(ReadResult::GetEphemerals {
            paths: vec!["/e".into()]
        })
    );
    let a = s.write(A, &Op::CloseSession);
    assert_eq!(a.result, TxnResult::CloseSession);
    // As in ZooKeeper (found by ckdiff), the closing session's own watches fire for
    // its ephemerals too: its connection hears them before the closeSession reply.
    assert_eq!(
        a.events,
        vec![
            ev(A, EventType::NodeDeleted, "/e"),
            ev(B, EventType::NodeDeleted, "/e")
        ]
    );
    assert!(s.db.tree.get("/e").is_none());
    assert_eq!(s.db.tree.watches.count(A), 0);
}

#[test]
fn reads_of_invalid_paths_find_no_node_like_zookeeper() {
    // ZooKeeper validates paths on writes only (found by ckdiff): a read of `/m/`
    // is NONODE, and exists and addWatch register their watch.
    let mut s = Server::new();
    s.write(A, &create("/m", CreateMode::Persistent));
    for path in ["/m/", "no-slash", "/m//x"] {
        let p = || path.to_string();
        for op in [
            Op::GetData {
                path: p(),
                watch: true,
            },
            Op::GetChildren {
                path: p(),
                watch: true,
            },
            Op::GetChildren2 {
                path: p(),
                watch: false,
            },
            Op::GetAcl { path: p() },
            Op::GetAllChildrenNumber { path: p() },
            Op::Exists {
                path: p(),
                watch: true,
            },
        ] {
            assert_eq!(s.read(A, &op), Err(ErrorCode::NoNode), "{op:?}");
        }
        let check = Op::CheckWatches {
            path: p(),
            kind: WatcherType::Data,
        };
        assert!(s.read(A, &check).is_ok(), "exists left its watch on {path}");
        let add = Op::AddWatch {
            path: p(),
            mode: AddWatchMode::PersistentRecursive,
        };
        assert!(s.read(A, &add).is_ok());
    }
    // Writes still refuse them.
    assert_eq!(
        s.write(A, &create("/m/", CreateMode::Persistent))
            .result
            .error(),
        ErrorCode::BadArguments
    );
}

#[test]
fn get_acl_hides_digests_without_admin() {
    let mut s = Server::new();
    let digest = engine::tree::acl::digest("bob:pw");
    let op = Op::Create {
        path: "/s".into(),
        data: None,
        acl: vec![
            Acl {
                perms: 1,
                id: Id::anyone(),
            },
            Acl {
                perms: 31,
                id: Id::new("digest", digest.clone()),
            },
        ],
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    };
    s.write(A, &op);
    let Ok(ReadResult::GetAcl { acl, .. }) = s.read(A, &Op::GetAcl { path: "/s".into() }) else {
        panic!()
    };
    assert_eq!(acl[1].id.id, "bob:x");
    let bob = [Id::new("digest", digest.clone())];
    let Ok(ReadResult::GetAcl { acl, .. }) =
        read(&mut s.db.tree, A, &bob, &Op::GetAcl { path: "/s".into() })
    else {
        panic!()
    };
    assert_eq!(acl[1].id.id, digest);
}

#[test]
fn multi_read_answers_each_op() {
    let mut s = Server::new();
    s.write(A, &create("/m", CreateMode::Persistent));
    let op = Op::MultiRead(vec![
        Op::GetData {
            path: "/m".into(),
            watch: false,
        },
        Op::GetChildren {
            path: "/nope".into(),
            watch: false,
        },
        Op::Sync { path: "/m".into() },
    ]);
    let Ok(ReadResult::MultiRead(rs)) = s.read(A, &op) else {
        panic!()
    };
    assert!(rs[0].is_ok());
    assert_eq!(rs[1], Err(ErrorCode::NoNode));
    assert_eq!(rs[2], Err(ErrorCode::BadArguments));
    assert_eq!(
        s.read(A, &Op::GetAllChildrenNumber { path: "/".into() }),
        Ok(ReadResult::GetAllChildrenNumber { count: 4 })
    );
}

#[test]
fn snapshot_restore_then_replay_matches() {
    let mut s = Server::new();
    s.write(A, &create("/a", CreateMode::Persistent));
    s.write(A, &create("/a/e", CreateMode::Ephemeral));
    s.write(B, &create("/c", CreateMode::Container));
    let snap = s.db.snapshot();
    let mut restored = Db::restore(&snap, SessionConfig::from_tick(100), 0).unwrap();
    assert_eq!(restored.digest(), s.db.digest());
    restored.tree.check_invariants().unwrap();
    // The same txns keep them equal.
    let mut txns = Vec::new();
    for op in [
        create("/c/x", CreateMode::Persistent),
        set("/a"),
        Op::CloseSession,
    ] {
        s.now += 1;
        let req = RequestCtx {
            session: A,
            cxid: 0,
            auth: &[],
        };
        let t = s.prep.prep(&s.db, &req, &op, s.now);
        s.db.apply(&t);
        s.prep.applied(t.zxid());
        txns.push(t);
    }
    for t in &txns {
        restored.apply_if_new(t);
    }
    assert!(
        restored.apply_if_new(&txns[0]).is_none(),
        "old txns are skipped"
    );
    assert_eq!(restored.digest(), s.db.digest());
    assert!(restored.sessions.get(A).is_none());
    assert!(Db::restore(&snap[..snap.len() / 2], SessionConfig::default(), 0).is_err());
    match s
        .write(
            B,
            &Op::Check {
                path: "/a".into(),
                version: 1,
            },
        )
        .result
    {
        TxnResult::Op(OpResult::Check) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn watch_limit_refuses_reads_that_would_exceed_it() {
    let mut s = Server::new();
    s.db.tree.watches.watches_per_session_max = 2;
    for p in ["/x", "/y", "/z"] {
        s.write(A, &create(p, CreateMode::Persistent));
    }
    let get = |p: &str| Op::GetData {
        path: p.into(),
        watch: true,
    };
    assert!(s.read(B, &get("/x")).is_ok());
    assert!(
        s.read(B, &get("/x")).is_ok(),
        "re-registering costs nothing"
    );
    assert!(s.read(B, &get("/y")).is_ok());
    assert_eq!(s.read(B, &get("/z")), Err(ErrorCode::QuotaExceeded));
    let unwatched = Op::GetData {
        path: "/z".into(),
        watch: false,
    };
    assert!(s.read(B, &unwatched).is_ok());
}

/// Corrupt txn and snapshot bytes are refused with an error, never a panic.
#[test]
fn corrupt_bytes_are_refused_not_panicked_on() {
    let mut s = Server::new();
    s.write(A, &create("/c", CreateMode::Ephemeral));
    let snap = s.db.snapshot().to_vec();
    let req = RequestCtx {
        session: A,
        cxid: 1,
        auth: &[],
    };
    let txn = s
        .prep
        .prep(&s.db, &req, &create("/d", CreateMode::Persistent), 1)
        .to_bytes()
        .to_vec();
    let mut x: u64 = 0x1234_5678;
    for round in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = if round % 2 == 0 { &txn } else { &snap };
        let mut b = base.clone();
        let i = (x as usize) % b.len();
        b[i] ^= (x >> 32) as u8 | 1;
        if round % 7 == 0 {
            b.truncate(i);
        }
        if round % 2 == 0 {
            let _ = Txn::from_bytes(&b);
        } else if let Ok(db) = Db::restore(&b, SessionConfig::default(), 0) {
            db.tree.check_invariants().unwrap();
        }
    }
}

/// A snapshot image taken between two applies holds exactly the state at its zxid,
/// however the tree changes before it is serialised (as the driver does it: image on
/// the shard core, bytes on another thread), and recovery from it plus the log after
/// it reaches the live state.
#[test]
fn snapshot_image_is_exact_while_writes_continue() {
    let mut s = Server::new();
    s.write(A, &create("/big", CreateMode::Persistent));
    for i in 0..300 {
        s.write(A, &create(&format!("/big/n{i}"), CreateMode::Persistent));
    }
    s.write(B, &create("/e", CreateMode::Ephemeral));
    s.write(A, &create("/acl", CreateMode::Persistent));

    let image = s.db.snapshot_image();
    let (at_digest, at_zxid, at_len) = (s.db.digest(), s.db.last_zxid(), s.log.len());
    assert_eq!(image.last_zxid(), at_zxid);
    assert_eq!(image.digest(), at_digest);

    // Every kind of change, to nodes the image shares: data, children of a shared
    // parent (added and removed), ACL, sessions and their ephemerals.
    s.write(A, &set("/big/n1"));
    s.write(A, &create("/big/new", CreateMode::Persistent));
    s.write(A, &del("/big/n2"));
    let acl = Op::SetAcl {
        path: "/acl".into(),
        acl: Acl::read_unsafe(),
        version: -1,
    };
    s.write(A, &acl);
    s.write(B, &Op::CloseSession);
    let c = Op::CreateSession {
        session_id: 0xC,
        timeout_ms: 1000,
        password: [0xC; 16],
    };
    s.write(0xC, &c);
    assert_ne!(
        s.db.digest(),
        at_digest,
        "the writes changed the live state"
    );
    s.db.tree.check_invariants().unwrap();

    let bytes = std::thread::spawn(move || image.to_bytes())
        .join()
        .expect("serialising on another thread");
    let mut r = Db::restore(&bytes, SessionConfig::from_tick(100), s.now).unwrap();
    assert_eq!(r.digest(), at_digest, "the image is the state at its zxid");
    assert_eq!(r.last_zxid(), at_zxid);
    assert!(r.tree.get("/big/new").is_none() && r.tree.get("/big/n2").is_some());
    assert!(r.tree.get("/e").is_some() && r.sessions.get(B).is_some());
    assert_eq!(r.tree.get("/big").unwrap().children.len(), 300);
    for t in &s.log[at_len..] {
        assert!(
            r.apply_if_new(t).is_some(),
            "txn {} is after the image",
            t.zxid()
        );
    }
    assert_eq!(
        r.digest(),
        s.db.digest(),
        "snapshot + log suffix = live state"
    );
}

/// The tree's path map doubles its shards as it grows; an image taken before such a
/// split keeps the state it was taken at.
#[test]
fn snapshot_image_survives_the_tree_growing() {
    let mut s = Server::new();
    s.write(A, &create("/g", CreateMode::Persistent));
    for i in 0..5000 {
        s.write(A, &create(&format!("/g/n{i}"), CreateMode::Persistent));
    }
    let image = s.db.snapshot_image();
    let at = s.db.digest();
    // Past 8192 nodes (32 shards of 256) the map splits while the image is alive.
    for i in 5000..9000 {
        s.write(A, &create(&format!("/g/n{i}"), CreateMode::Persistent));
    }
    s.write(A, &set("/g/n1"));
    s.write(A, &del("/g/n2"));
    assert_eq!(image.znodes() + 3999, s.db.tree.len());
    let bytes = std::thread::spawn(move || image.to_bytes()).join().unwrap();
    let r = Db::restore(&bytes, SessionConfig::from_tick(100), s.now).unwrap();
    assert_eq!(r.digest(), at);
    s.db.tree.check_invariants().unwrap();
    assert_eq!(s.db.tree.get("/g").unwrap().children.len(), 8999);
}

/// CVE-2024-23944: every triggered event names the ACL to check before it is sent: the
/// changed node's for its own events, the parent's for NodeChildrenChanged.
#[test]
fn events_name_the_acl_that_guards_them() {
    let mut s = Server::new();
    use transport::jute::perms;
    // Only u1 may read /p; anyone may create and delete its children.
    let secret = vec![
        Acl {
            perms: perms::ALL,
            id: Id::new("digest", engine::tree::acl::digest("u1:p1")),
        },
        Acl {
            perms: perms::CREATE | perms::DELETE,
            id: Id::anyone(),
        },
    ];
    let mut op = create("/p", CreateMode::Persistent);
    if let Op::Create { acl, .. } = &mut op {
        acl.clone_from(&secret);
    }
    s.write(A, &op);
    // B sets its watches as u1 (who may read /p); the tree does not check events.
    let u1 = [Id::new("digest", engine::tree::acl::digest("u1:p1"))];
    for (p, watch_children) in [("/p", true), ("/p/x", false)] {
        let op = if watch_children {
            Op::GetChildren {
                path: p.into(),
                watch: true,
            }
        } else {
            Op::Exists {
                path: p.into(),
                watch: true,
            }
        };
        // An exists of a missing node answers NoNode and still leaves its watch.
        let r = read(&mut s.db.tree, B, &u1, &op);
        assert!(matches!(r, Ok(_) | Err(ErrorCode::NoNode)), "{r:?}");
    }
    let a = s.write(A, &create("/p/x", CreateMode::Persistent));
    let got: Vec<_> = a
        .events
        .iter()
        .map(|e| (e.kind, e.path.as_str(), e.acl.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, "/p/x", Acl::open_unsafe()),
            (EventType::NodeChildrenChanged, "/p", secret.clone()),
        ]
    );
    s.read(
        B,
        &Op::Exists {
            path: "/p".into(),
            watch: true,
        },
    )
    .unwrap();
    s.write(A, &del("/p/x"));
    let a = s.write(A, &del("/p"));
    assert_eq!(a.events.len(), 1);
    assert_eq!(
        a.events[0].acl.to_vec(),
        secret,
        "a deleted node's own ACL guards its NodeDeleted"
    );
}
