//! Prep unit tests: ZooKeeper's validation order, pipelining, sequentials, multi.

use super::*;
use crate::session::SessionConfig;
use crate::txn::{Applied, OpResult, TxnResult};
use transport::jute::CreateMode;

struct H {
    db: Db,
    prep: Prep,
    now: i64,
    cxid: i32,
}

const S1: i64 = 0x11;
const S2: i64 = 0x22;

fn create(path: &str, mode: CreateMode) -> Op {
    Op::Create {
        path: path.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms: None,
        container: false,
    }
}

fn persistent(path: &str) -> Op {
    create(path, CreateMode::Persistent)
}

impl H {
    fn new(config: PrepConfig) -> Self {
        let mut h = H {
            db: Db::new(SessionConfig::from_tick(100)),
            prep: Prep::new(0, config),
            now: 1000,
            cxid: 0,
        };
        for s in [S1, S2] {
            let op = Op::CreateSession {
                session_id: s,
                timeout_ms: 1000,
                password: [1; 16],
            };
            h.run(0, &[], &op);
        }
        h
    }

    fn prep_as(&mut self, session: i64, auth: &[Id], op: &Op) -> Txn {
        self.cxid += 1;
        self.now += 1;
        let req = RequestCtx {
            session,
            cxid: self.cxid,
            auth,
        };
        self.prep.prep(&self.db, &req, op, self.now)
    }

    fn apply(&mut self, t: &Txn) -> Applied {
        let a = self.db.apply(t);
        self.prep.applied(a.zxid);
        a
    }

    fn run(&mut self, session: i64, auth: &[Id], op: &Op) -> Applied {
        let t = self.prep_as(session, auth, op);
        self.apply(&t)
    }

    fn ok(&mut self, op: &Op) -> OpResult {
        match self.run(S1, &[], op).result {
            TxnResult::Op(r) => r,
            other => panic!("not a single op: {other:?}"),
        }
    }

    fn err(&mut self, session: i64, auth: &[Id], op: &Op) -> ErrorCode {
        self.run(session, auth, op).result.error()
    }
}

#[test]
fn pipelined_writes_see_each_other() {
    let mut h = H::new(PrepConfig::default());
    let t1 = h.prep_as(S1, &[], &persistent("/a"));
    let t2 = h.prep_as(S1, &[], &persistent("/a/b"));
    let t3 = h.prep_as(S2, &[], &persistent("/a"));
    let t4 = h.prep_as(
        S2,
        &[],
        &Op::Delete {
            path: "/a".into(),
            version: -1,
        },
    );
    assert_eq!(
        (t1.zxid() + 1, t2.zxid() + 1, t3.zxid() + 1),
        (t2.zxid(), t3.zxid(), t4.zxid())
    );
    assert!(matches!(t2.body, TxnBody::Op(TxnOp::Create(_))));
    assert_eq!(t3.body, TxnBody::Op(TxnOp::error(ErrorCode::NodeExists)));
    assert_eq!(t4.body, TxnBody::Op(TxnOp::error(ErrorCode::NotEmpty)));
    assert!(h.prep.outstanding() > 0);
    for t in [&t1, &t2, &t3, &t4] {
        h.apply(t);
    }
    assert_eq!(h.prep.outstanding(), 0, "applied changes are dropped");
    assert_eq!(h.db.tree.get("/a").unwrap().stat.num_children, 1);
}

#[test]
fn failed_writes_consume_a_zxid() {
    let mut h = H::new(PrepConfig::default());
    let before = h.db.last_zxid();
    assert_eq!(h.err(S1, &[], &persistent("/x/y")), ErrorCode::NoNode);
    assert_eq!(h.db.last_zxid(), before + 1);
}

#[test]
fn sequential_names_follow_parent_cversion() {
    let mut h = H::new(PrepConfig::default());
    h.ok(&persistent("/q"));
    let name = |r: OpResult| match r {
        OpResult::Create { path, .. } => path,
        other => panic!("{other:?}"),
    };
    let a = name(h.ok(&create("/q/n-", CreateMode::PersistentSequential)));
    let b = name(h.ok(&create("/q/n-", CreateMode::EphemeralSequential)));
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("/q/n-0000000000", "/q/n-0000000001")
    );
    h.ok(&Op::Delete {
        path: b,
        version: -1,
    });
    h.ok(&persistent("/q/plain"));
    // Names number the creates only: the stored cversion (ZooKeeper's StatPersisted)
    // ignores deletes, although clients see them in the cversion they read.
    let c = name(h.ok(&create("/q/", CreateMode::PersistentSequential)));
    assert_eq!(c, "/q/0000000003");
    // Pipelined sequentials get distinct names before either applies.
    let t1 = h.prep_as(S1, &[], &create("/q/p-", CreateMode::PersistentSequential));
    let t2 = h.prep_as(S1, &[], &create("/q/p-", CreateMode::PersistentSequential));
    let path_of = |t: &Txn| match &t.body {
        TxnBody::Op(TxnOp::Create(c)) => c.path.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(path_of(&t1), "/q/p-0000000004");
    assert_eq!(path_of(&t2), "/q/p-0000000005");
}

#[test]
fn validation_errors() {
    let cfg = PrepConfig::default();
    let mut h = H::new(cfg);
    assert_eq!(h.err(S1, &[], &persistent("/")), ErrorCode::NodeExists);
    assert_eq!(h.err(S1, &[], &persistent("a")), ErrorCode::BadArguments);
    // As in ZooKeeper the parent is looked up before the full path is validated.
    assert_eq!(h.err(S1, &[], &persistent("/a/")), ErrorCode::NoNode);
    assert_eq!(
        h.err(S1, &[], &persistent("/zookeeper/")),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.err(S1, &[], &persistent("/zookeeper/.")),
        ErrorCode::BadArguments
    );
    for p in ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"] {
        let op = Op::Delete {
            path: p.into(),
            version: -1,
        };
        assert_eq!(h.err(S1, &[], &op), ErrorCode::BadArguments, "{p}");
    }
    assert_eq!(
        h.err(
            S1,
            &[],
            &Op::Delete {
                path: "/nope".into(),
                version: -1
            }
        ),
        ErrorCode::NoNode
    );
    h.ok(&create("/e", CreateMode::Ephemeral));
    assert_eq!(
        h.err(S1, &[], &persistent("/e/c")),
        ErrorCode::NoChildrenForEphemerals
    );
    h.ok(&persistent("/v"));
    let bad = Op::SetData {
        path: "/v".into(),
        data: None,
        version: 5,
    };
    assert_eq!(h.err(S1, &[], &bad), ErrorCode::BadVersion);
    let bad = Op::Delete {
        path: "/v".into(),
        version: 3,
    };
    assert_eq!(h.err(S1, &[], &bad), ErrorCode::BadVersion);
    let op = Op::Create {
        path: "/c".into(),
        data: None,
        acl: acl::creator_all(),
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    };
    assert_eq!(h.err(S1, &[], &op), ErrorCode::InvalidAcl);
    let ttl = Op::Create {
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        mode: CreateMode::PersistentWithTtl,
        ttl_ms: Some(100),
        container: false,
    };
    assert_eq!(h.err(S1, &[], &ttl), ErrorCode::Unimplemented);
    assert_eq!(
        h.err(0x99, &[], &persistent("/z")),
        ErrorCode::SessionExpired
    );
}

#[test]
fn permissions_before_versions() {
    let mut h = H::new(PrepConfig::default());
    let bob = [Id::new("digest", acl::digest("bob:pw"))];
    let op = Op::Create {
        path: "/p".into(),
        data: Some(vec![]),
        acl: acl::creator_all(),
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    };
    assert_eq!(h.err(S1, &bob, &op), ErrorCode::Ok);
    let stale = Op::SetData {
        path: "/p".into(),
        data: None,
        version: 9,
    };
    assert_eq!(h.err(S2, &[], &stale), ErrorCode::NoAuth);
    assert_eq!(h.err(S2, &bob, &stale), ErrorCode::BadVersion);
    let acl_op = Op::SetAcl {
        path: "/p".into(),
        acl: Acl::open_unsafe(),
        version: 9,
    };
    assert_eq!(h.err(S2, &[], &acl_op), ErrorCode::NoAuth);
    assert_eq!(h.err(S2, &bob, &acl_op), ErrorCode::BadVersion);
    assert_eq!(h.err(S2, &[], &persistent("/p/c")), ErrorCode::NoAuth);
    let su = [Id::new(acl::SUPER_SCHEME, "")];
    assert_eq!(h.err(S2, &su, &persistent("/p/c")), ErrorCode::Ok);
    let acl_op = Op::SetAcl {
        path: "/p".into(),
        acl: Acl::read_unsafe(),
        version: 0,
    };
    match h.run(S2, &bob, &acl_op).result {
        TxnResult::Op(OpResult::SetAcl { stat }) => assert_eq!(stat.aversion, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn multi_all_or_nothing() {
    let mut h = H::new(PrepConfig::default());
    let ok = Op::Multi(vec![
        persistent("/m"),
        persistent("/m/a"),
        Op::Check {
            path: "/m".into(),
            version: 0,
        },
        Op::SetData {
            path: "/m/a".into(),
            data: None,
            version: 0,
        },
    ]);
    let a = h.run(S1, &[], &ok);
    let TxnResult::Multi(rs) = a.result else {
        panic!()
    };
    assert!(matches!(rs[0], OpResult::Create { .. }));
    assert_eq!(rs[2], OpResult::Check);
    assert!(
        matches!(rs[3], OpResult::SetData { stat } if stat.version == 1 && stat.czxid == a.zxid)
    );

    let digest = h.db.digest();
    let bad = Op::Multi(vec![
        persistent("/n"),
        Op::Delete {
            path: "/m/a".into(),
            version: 0,
        },
        persistent("/n/b"),
    ]);
    let a = h.run(S1, &[], &bad);
    assert_eq!(
        a.result.error(),
        ErrorCode::Ok,
        "multi header error stays 0"
    );
    assert_eq!(
        a.result,
        TxnResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::BadVersion),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(h.db.tree.get("/n").is_none());
    assert_ne!(h.db.digest(), digest, "only the zxid moved");
    // The failed multi left nothing outstanding: /n is still free.
    let t = h.prep_as(S1, &[], &Op::Multi(vec![persistent("/n")]));
    let t2 = h.prep_as(S1, &[], &persistent("/n"));
    assert!(matches!(&t.body, TxnBody::Multi(v) if matches!(v[0], TxnOp::Create(_))));
    assert_eq!(t2.body, TxnBody::Op(TxnOp::error(ErrorCode::NodeExists)));
    let nested = Op::Multi(vec![Op::CloseSession]);
    let a = {
        h.apply(&t);
        h.apply(&t2);
        h.run(S1, &[], &nested)
    };
    assert_eq!(
        a.result,
        TxnResult::Multi(vec![OpResult::Error(ErrorCode::BadArguments)])
    );
}

#[test]
fn close_session_deletes_ephemerals_including_pipelined_ones() {
    let mut h = H::new(PrepConfig::default());
    h.ok(&persistent("/d"));
    h.ok(&create("/d/e1", CreateMode::Ephemeral));
    let t1 = h.prep_as(S1, &[], &create("/d/e2", CreateMode::Ephemeral));
    let t2 = h.prep_as(S1, &[], &Op::CloseSession);
    let t3 = h.prep_as(S1, &[], &persistent("/d/late"));
    let t4 = h.prep_as(
        S2,
        &[],
        &Op::Delete {
            path: "/d".into(),
            version: -1,
        },
    );
    assert_eq!(
        t3.body,
        TxnBody::Op(TxnOp::error(ErrorCode::SessionExpired))
    );
    assert!(
        matches!(t4.body, TxnBody::Op(TxnOp::Delete { .. })),
        "{:?}",
        t4.body
    );
    h.apply(&t1);
    let a = h.apply(&t2);
    assert_eq!(a.result, TxnResult::CloseSession);
    assert!(h.db.sessions.get(S1).is_none());
    assert_eq!(h.db.tree.get("/d").unwrap().stat.num_children, 0);
    h.apply(&t3);
    h.apply(&t4);
    assert!(h.db.tree.get("/d").is_none());
    h.db.tree.check_invariants().unwrap();
}

#[test]
fn containers_and_ttls_reaped_by_delete_container() {
    let cfg = PrepConfig {
        ttl_enabled: true,
        ..PrepConfig::default()
    };
    let mut h = H::new(cfg);
    h.ok(&create("/c", CreateMode::Container));
    h.ok(&persistent("/c/x"));
    h.ok(&Op::Delete {
        path: "/c/x".into(),
        version: -1,
    });
    assert_eq!(h.db.tree.empty_containers(), vec!["/c".to_string()]);
    let ttl = Op::Create {
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        mode: CreateMode::PersistentWithTtl,
        ttl_ms: Some(50),
        container: false,
    };
    let r = h.ok(&ttl);
    assert!(matches!(r, OpResult::Create { stat, .. } if stat.ephemeral_owner == 0));
    h.ok(&persistent("/p"));
    let now = h.now + 100;
    assert_eq!(h.db.tree.expired_ttls(now), vec!["/t".to_string()]);
    for p in ["/c", "/t"] {
        assert_eq!(
            h.err(0, &[], &Op::DeleteContainer { path: p.into() }),
            ErrorCode::Ok
        );
    }
    assert_eq!(
        h.err(0, &[], &Op::DeleteContainer { path: "/p".into() }),
        ErrorCode::BadVersion
    );
    let bad_ttl = Op::Create {
        path: "/t2".into(),
        data: None,
        acl: Acl::open_unsafe(),
        mode: CreateMode::PersistentWithTtl,
        ttl_ms: Some(0),
        container: false,
    };
    assert_eq!(h.err(S1, &[], &bad_ttl), ErrorCode::BadArguments);
}

#[test]
fn ttl_bounds_are_zookeepers() {
    // ckdiff found corekeeper accepting a TTL of 2^40 ms, which ZooKeeper 3.8 refuses.
    let mut h = H::new(PrepConfig {
        ttl_enabled: true,
        ..PrepConfig::default()
    });
    let ttl = |path: &str, ttl: i64| Op::Create {
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        mode: CreateMode::PersistentWithTtl,
        ttl_ms: Some(ttl),
        container: false,
    };
    h.ok(&ttl("/max", (1 << 40) - 1));
    for bad in [1 << 40, i64::MAX, 0, -1] {
        assert_eq!(h.err(S1, &[], &ttl("/t", bad)), ErrorCode::BadArguments);
    }
    // Without a TTL (a create2 asking for a TTL mode), or with one for another mode.
    let mut no_ttl = ttl("/t", 0);
    if let Op::Create { ttl_ms, .. } = &mut no_ttl {
        *ttl_ms = None;
    }
    assert_eq!(h.err(S1, &[], &no_ttl), ErrorCode::BadArguments);
    let mut persistent_with_ttl = ttl("/t", 100);
    if let Op::Create { mode, .. } = &mut persistent_with_ttl {
        *mode = CreateMode::Persistent;
    }
    assert_eq!(
        h.err(S1, &[], &persistent_with_ttl),
        ErrorCode::BadArguments
    );
}

#[test]
fn delete_checks_the_parents_acl_before_the_node_exists() {
    // ZooKeeper's order (found by ckdiff): parent, parent's DELETE permission, node.
    let mut h = H::new(PrepConfig::default());
    let read_only = Op::Create {
        path: "/r".into(),
        data: None,
        acl: Acl::read_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    };
    h.ok(&read_only);
    let delete = |p: &str| Op::Delete {
        path: p.into(),
        version: -1,
    };
    assert_eq!(h.err(S1, &[], &delete("/r/missing")), ErrorCode::NoAuth);
    assert_eq!(h.err(S1, &[], &delete("/none/missing")), ErrorCode::NoNode);
    assert_eq!(h.err(S1, &[], &delete("/missing")), ErrorCode::NoNode);
}

#[test]
fn create_session_clamps_timeout_and_prep_rebuilds() {
    let mut h = H::new(PrepConfig::default());
    let op = Op::CreateSession {
        session_id: 0x33,
        timeout_ms: 1,
        password: [3; 16],
    };
    let t = h.prep_as(0, &[], &op);
    // Writes of the new session are accepted before its create applies.
    let t2 = h.prep_as(0x33, &[], &persistent("/s"));
    assert!(matches!(t2.body, TxnBody::Op(TxnOp::Create(_))));
    // A crash loses the outstanding records: a rebuilt prep over the applied db
    // validates against the tree only.
    h.prep = Prep::new(h.db.last_zxid(), PrepConfig::default());
    let t3 = h.prep_as(0x33, &[], &persistent("/s"));
    assert_eq!(
        t3.body,
        TxnBody::Op(TxnOp::error(ErrorCode::SessionExpired))
    );
    let a = h.apply(&t);
    assert_eq!(a.result, TxnResult::CreateSession { timeout_ms: 200 });
}

#[test]
fn data_shards_may_skip_the_session_check() {
    let mut h = H::new(PrepConfig::default());
    h.prep.set_check_sessions(false);
    assert_eq!(
        h.err(0x99, &[], &create("/e", CreateMode::Ephemeral)),
        ErrorCode::Ok
    );
    // The shard's CloseSession (after shard 0 expired the session) removes it.
    h.run(0x99, &[], &Op::CloseSession);
    assert!(h.db.tree.get("/e").is_none());
}

/// Requests no client sends, answered as ZooKeeper 3.8 answers them (checked with
/// ckdiff's malformed creates): unknown create flags fail in prep, taking a zxid;
/// createContainer with sequential flags makes a sequential container.
#[test]
fn malformed_creates_are_refused_in_prep_like_zookeeper() {
    let mut h = H::new(PrepConfig::default());
    let bad = |path: &str, whole_multi| Op::Malformed {
        path: path.into(),
        error: if whole_multi {
            ErrorCode::MarshallingError
        } else {
            ErrorCode::BadArguments
        },
        whole_multi,
    };
    let before = h.db.last_zxid();
    assert_eq!(h.err(S1, &[], &bad("/x", false)), ErrorCode::BadArguments);
    assert_eq!(h.db.last_zxid(), before + 1, "the refusal takes a zxid");

    h.ok(&persistent("/q"));
    let mut seq = create("/q/c-", CreateMode::PersistentSequential);
    if let Op::Create { container, .. } = &mut seq {
        *container = true;
    }
    let OpResult::Create { path, .. } = h.ok(&seq) else {
        panic!("a create")
    };
    assert_eq!(path, "/q/c-0000000000");
    assert_eq!(h.db.tree.get(&path).unwrap().kind, NodeKind::Container);

    // In a multi, an unknown flag fails its step; a TTL-flagged create that is not a
    // createTTL record fails the whole multi once reached (MARSHALLINGERROR in the
    // header, with a zxid, nothing of the steps before it kept), but not when a step
    // before it failed already.
    let a = h.run(
        S1,
        &[],
        &Op::Multi(vec![persistent("/m1"), bad("/m2", false)]),
    );
    assert_eq!(
        a.result,
        TxnResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::BadArguments),
        ])
    );
    let before = h.db.last_zxid();
    let a = h.run(
        S1,
        &[],
        &Op::Multi(vec![persistent("/m1"), bad("/m2", true)]),
    );
    assert_eq!(a.result.error(), ErrorCode::MarshallingError);
    assert_eq!(a.zxid, before + 1);
    assert!(h.db.tree.get("/m1").is_none());
    let t = h.prep_as(S1, &[], &persistent("/m1"));
    assert!(
        matches!(t.body, TxnBody::Op(TxnOp::Create(_))),
        "nothing of the aborted multi stays outstanding"
    );
    h.apply(&t);
    let a = h.run(
        S1,
        &[],
        &Op::Multi(vec![persistent("/m1"), bad("/m2", true)]),
    );
    assert_eq!(
        a.result,
        TxnResult::Multi(vec![
            OpResult::Error(ErrorCode::NodeExists),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
}

fn reconfig_op(joining: Option<&str>, leaving: Option<&str>, from_config: i64) -> Op {
    Op::Reconfig {
        joining: joining.map(str::to_string),
        leaving: leaving.map(str::to_string),
        new_members: None,
        from_config,
    }
}

/// A 3-voter ensemble's config in the tree, as the runtime writes it at start-up.
fn reconfig_harness(enabled: bool) -> H {
    let mut h = H::new(PrepConfig {
        reconfig_enabled: enabled,
        ..PrepConfig::default()
    });
    let text = "server.1=127.0.0.1:2001:3001:participant\nserver.2=127.0.0.1:2002:3002:participant\nserver.3=127.0.0.1:2003:3003:participant\nversion=0";
    h.db.tree
        .set_system_data(crate::tree::CONFIG_PATH, text.as_bytes().to_vec());
    // Every voter carried out these members (version 0).
    h.prep
        .set_carried_out([(1, 0), (2, 0), (3, 0)].into_iter().collect());
    h
}

const OBSERVER: &str = "server.4=127.0.0.1:2004:3004:observer;127.0.0.1:4004";

#[test]
fn reconfig_checks_in_zookeepers_order_and_writes_the_config() {
    let su = [Id::new(acl::SUPER_SCHEME, "")];
    let mut h = reconfig_harness(false);
    assert_eq!(
        h.err(S1, &su, &reconfig_op(Some(OBSERVER), None, -1)),
        ErrorCode::ReconfigDisabled
    );
    let mut h = reconfig_harness(true);
    h.prep.set_synced_voters([1, 2].into_iter().collect());
    // Form, then version, then ACL.
    assert_eq!(
        h.err(S1, &[], &reconfig_op(Some("x"), None, -1)),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.err(S1, &[], &reconfig_op(Some(OBSERVER), None, 7)),
        ErrorCode::BadVersion
    );
    assert_eq!(
        h.err(S1, &[], &reconfig_op(Some(OBSERVER), None, -1)),
        ErrorCode::NoAuth
    );
    // One voter changes per reconfig; two are refused.
    let voter = "server.5=127.0.0.1:2005:3005:participant;127.0.0.1:4005";
    let two = format!("{voter},server.6=127.0.0.1:2006:3006:participant;127.0.0.1:4006");
    assert_eq!(
        h.err(S1, &su, &reconfig_op(Some(&two), None, -1)),
        ErrorCode::Unimplemented
    );
    assert_eq!(
        h.err(S1, &su, &reconfig_op(Some(voter), Some("3"), -1)),
        ErrorCode::Unimplemented,
        "one joins and one leaves: two changes"
    );
    let demoted = "server.3=127.0.0.1:2003:3003:observer;127.0.0.1:4003";
    let moved = "server.3=127.0.0.1:2033:3033:participant;127.0.0.1:4003";
    for (joining, leaving) in [
        (Some(voter), None),
        (None, Some("3")),
        (Some(demoted), None),
        (Some(moved), None),
    ] {
        let mut h = reconfig_harness(true);
        h.prep.set_synced_voters([1, 2, 3].into_iter().collect());
        let t = h.prep_as(S1, &su, &reconfig_op(joining, leaving, -1));
        assert!(
            matches!(t.body, TxnBody::Op(TxnOp::SetData { .. })),
            "{joining:?} {leaving:?}: {t:?}"
        );
    }
    let mut chain = H::new(PrepConfig {
        reconfig_enabled: true,
        voter_reconfig: false,
        ..PrepConfig::default()
    });
    chain.db.tree.set_system_data(
        crate::tree::CONFIG_PATH,
        h.db.tree
            .get(crate::tree::CONFIG_PATH)
            .unwrap()
            .data
            .as_deref()
            .unwrap()
            .to_vec(),
    );
    chain
        .prep
        .set_synced_voters([1, 2, 3].into_iter().collect());
    assert_eq!(
        chain.err(S1, &su, &reconfig_op(Some(voter), None, -1)),
        ErrorCode::Unimplemented,
        "the chain modes keep their voters"
    );
    // Accepted: a setData of the config, answered with the new text.
    let t = h.prep_as(S1, &su, &reconfig_op(Some(OBSERVER), None, 0));
    let zxid = t.zxid();
    // A second one while the first is in flight.
    let t2 = h.prep_as(S1, &su, &reconfig_op(None, Some("4"), -1));
    assert_eq!(
        t2.body,
        TxnBody::Op(TxnOp::error(ErrorCode::ReconfigInProgress))
    );
    let applied = h.apply(&t);
    h.apply(&t2);
    match applied.result {
        TxnResult::Op(OpResult::Reconfig { data, stat }) => {
            let text = String::from_utf8(data).unwrap();
            assert!(text.contains(&format!("{OBSERVER}\n")), "{text}");
            assert!(text.ends_with(&format!("version={zxid:x}")), "{text}");
            assert_eq!((stat.version, stat.mzxid), (-1, zxid));
        }
        other => panic!("{other:?}"),
    }
    // A change of the voters waits until a majority of the voters carried this
    // one out (an observer's does not).
    let next = reconfig_op(None, Some("3"), -1);
    h.prep
        .set_carried_out([(1, zxid), (2, 0), (3, 0)].into_iter().collect());
    assert_eq!(h.err(S1, &su, &next), ErrorCode::NewConfigNoQuorum);
    h.prep
        .set_carried_out([(1, zxid), (2, zxid), (3, 0)].into_iter().collect());
    // Without a synchronised majority of the new voters, refused.
    h.prep.set_synced_voters([1].into_iter().collect());
    assert_eq!(h.err(S1, &su, &next), ErrorCode::NewConfigNoQuorum);
    h.prep.set_synced_voters([1, 2].into_iter().collect());
    let t = h.prep_as(S1, &su, &next);
    assert!(
        matches!(t.body, TxnBody::Op(TxnOp::SetData { .. })),
        "{t:?}"
    );
}

#[test]
fn standalone_reconfig_is_unimplemented_once_enabled() {
    // As ZooKeeper 3.8's standalone server answers (zkCli side by side): disabled
    // first, then UNIMPLEMENTED (no members to change).
    let su = [Id::new(acl::SUPER_SCHEME, "")];
    for (enabled, code) in [
        (false, ErrorCode::ReconfigDisabled),
        (true, ErrorCode::Unimplemented),
    ] {
        let mut h = H::new(PrepConfig {
            reconfig_enabled: enabled,
            ..PrepConfig::default()
        });
        assert_eq!(
            h.err(S1, &su, &reconfig_op(None, Some("5"), -1)),
            code,
            "enabled: {enabled}"
        );
    }
}
