//! Authentication failures over TCP, as real clients see them.

mod common;

use std::time::Duration;

use common::{Server, free_addr};
use transport::client::{Client, Incoming};
use transport::jute::records::{
    AddWatchRequest, AuthPacket, CreateRequest, ExistsRequest, GetChildrenRequest, SetAclRequest,
    WatcherEvent,
};
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::{Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, perms, xid};

/// kazoo's `add_auth("unknown-scheme", ...)` must raise AuthFailedError: the server
/// has to send the AUTHFAILED reply (xid -4) before it closes the connection, as
/// ZooKeeper does, not close it with the reply still queued.
#[test]
fn a_failed_auth_is_answered_before_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "2"]);
    for _ in 0..20 {
        let mut c = Client::connect(s.addr, 30_000).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.send(&Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "unknown-scheme".into(),
            auth: Some(b"user:password".to_vec()),
        }))
        .unwrap();
        match c.recv().unwrap() {
            Incoming::Reply { header, .. } => {
                assert_eq!(header.xid, xid::AUTH);
                assert_eq!(
                    ErrorCode::from_code(header.err),
                    Some(ErrorCode::AuthFailed)
                );
            }
            other => panic!("expected the auth reply, got {other:?}"),
        }
        assert!(c.recv().is_err(), "the connection closes after AUTHFAILED");
    }
}

/// zkCli's `whoami` (opcode 107): the connection's authenticated ids, digest users by
/// name, as ZooKeeper reports them.
#[test]
fn whoami_lists_the_connections_digest_users() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "2"]);
    let mut c = Client::connect(s.addr, 30_000).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let users = |c: &mut Client| match c.call_ok(&Request::WhoAmI).unwrap() {
        Response::WhoAmI(w) => w
            .client_info
            .into_iter()
            .map(|i| (i.auth_scheme, i.user))
            .collect::<Vec<_>>(),
        other => panic!("expected a WhoAmI response, got {other:?}"),
    };
    assert!(users(&mut c).iter().all(|(scheme, _)| scheme != "digest"));
    for cred in ["alice:secret", "bob:pw"] {
        let (h, _) = c
            .call(&Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: Some(cred.as_bytes().to_vec()),
            }))
            .unwrap();
        assert_eq!(h.err, 0);
    }
    let digest: Vec<_> = users(&mut c)
        .into_iter()
        .filter(|(scheme, _)| scheme == "digest")
        .map(|(_, user)| user)
        .collect();
    assert_eq!(digest, ["alice", "bob"]);
}

/// The digest of `super:test`, the superuser the next test configures.
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

fn add_auth(c: &mut Client, user_password: &str) {
    let (h, _) = c
        .call(&Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Some(user_password.as_bytes().to_vec()),
        }))
        .unwrap();
    assert_eq!(h.err, 0, "auth {user_password}");
}

fn digest_acl(user_password: &str, perms: i32) -> Acl {
    Acl {
        perms,
        id: Id::new("digest", engine::tree::acl::digest(user_password)),
    }
}

fn call_ok(c: &mut Client, req: Request) {
    let (h, _) = c.call(&req).unwrap();
    assert_eq!(h.err, 0, "{req:?}");
}

fn exists_watch(c: &mut Client, path: &str) {
    let (h, _) = c
        .call(&Request::Exists(ExistsRequest {
            path: path.into(),
            watch: true,
        }))
        .unwrap();
    assert!(
        h.err == 0 || h.err == ErrorCode::NoNode.code(),
        "exists {path}"
    );
}

/// The events that reached `c` for writes already answered: a read's reply follows
/// every event of the txns applied before it (no waiting, no timing).
fn events_so_far(c: &mut Client) -> Vec<(EventType, String)> {
    let mut events: Vec<WatcherEvent> = Vec::new();
    c.send(&Request::Exists(ExistsRequest {
        path: "/".into(),
        watch: false,
    }))
    .unwrap();
    c.recv_reply(&mut events).unwrap();
    events
        .into_iter()
        .map(|e| (e.event_type().unwrap(), e.path))
        .collect()
}

/// CVE-2024-23944 (ZooKeeper 3.8.4, 3.9.2, Debian 3.8.0-11+deb12u2): a watch event is
/// sent only to sessions that may read the node it is about (for NodeChildrenChanged:
/// the parent), persistent and recursive watches included; the superuser and READ
/// granted by an added digest pass; a one-shot watch whose event was withheld is
/// still used up. Before the fix every watcher heard of every change.
#[test]
fn watch_events_reach_only_sessions_that_may_read_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nsuperDigest={SUPER_DIGEST}\ncores=2\n",
        dir.path().display(),
        addr.port()
    );
    let s = Server::start_with_config(dir.path(), addr, &cfg);
    let connect = || {
        let c = Client::connect(s.addr, 30_000).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    };
    let create = |c: &mut Client, path: &str, acl: Vec<Acl>| {
        call_ok(
            c,
            Request::Create(CreateRequest {
                path: path.into(),
                data: Some(b"v".to_vec()),
                acl,
                flags: CreateMode::Persistent.code(),
            }),
        )
    };
    let set = |c: &mut Client, path: &str| {
        c.set_data(path, b"w", -1).unwrap();
    };
    let mut owner = connect();
    add_auth(&mut owner, "u1:p1");
    let u1_only = vec![digest_acl("u1:p1", perms::ALL)];
    create(&mut owner, "/secret", u1_only.clone());
    create(&mut owner, "/open", Acl::open_unsafe());
    create(&mut owner, "/pub", Acl::open_unsafe());

    // Each watcher: a one-shot watch on /secret (exists needs no permission), a
    // recursive watch on / and a child watch on /pub (world-readable for now).
    let watchers: [(&str, Option<&str>); 4] = [
        ("nobody", None),
        ("u2", Some("u2:p2")),
        ("u1", Some("u1:p1")),
        ("super", Some("super:test")),
    ];
    let mut clients: Vec<Client> = Vec::new();
    for (_, cred) in watchers {
        let mut c = connect();
        if let Some(cred) = cred {
            add_auth(&mut c, cred);
        }
        exists_watch(&mut c, "/secret");
        call_ok(
            &mut c,
            Request::AddWatch(AddWatchRequest {
                path: "/".into(),
                mode: AddWatchMode::PersistentRecursive.code(),
            }),
        );
        call_ok(
            &mut c,
            Request::GetChildren(GetChildrenRequest {
                path: "/pub".into(),
                watch: true,
            }),
        );
        clients.push(c);
    }
    let set_acl = |c: &mut Client, path: &str, acl: Vec<Acl>| {
        call_ok(
            c,
            Request::SetAcl(SetAclRequest {
                path: path.into(),
                acl,
                version: -1,
            }),
        )
    };
    set(&mut owner, "/secret");
    create(&mut owner, "/secret/c", u1_only.clone());
    // /pub becomes readable by u1 only; its new child is world-readable.
    let mut pub_acl = u1_only.clone();
    pub_acl.push(Acl {
        perms: perms::CREATE,
        id: Id::anyone(),
    });
    set_acl(&mut owner, "/pub", pub_acl);
    create(&mut owner, "/pub/k", Acl::open_unsafe());
    set(&mut owner, "/open");

    let everything = vec![
        (EventType::NodeDataChanged, "/secret".to_string()),
        (EventType::NodeCreated, "/secret/c".into()),
        (EventType::NodeCreated, "/pub/k".into()),
        (EventType::NodeChildrenChanged, "/pub".into()),
        (EventType::NodeDataChanged, "/open".into()),
    ];
    let readable_by_all = vec![
        (EventType::NodeCreated, "/pub/k".to_string()),
        (EventType::NodeDataChanged, "/open".into()),
    ];
    for ((who, _), c) in watchers.iter().zip(clients.iter_mut()) {
        let want = if matches!(*who, "u1" | "super") {
            &everything
        } else {
            &readable_by_all
        };
        assert_eq!(&events_so_far(c), want, "events of {who}");
    }

    // The withheld one-shot watch on /secret was used up: once /secret is readable
    // to all, a change reaches the nobody session through its recursive watch only
    // (one event), and a session with only that one-shot watch hears nothing.
    let mut one_shot = connect();
    exists_watch(&mut one_shot, "/secret");
    set(&mut owner, "/secret");
    let mut world_read = u1_only.clone();
    world_read.push(Acl {
        perms: perms::READ,
        id: Id::anyone(),
    });
    set_acl(&mut owner, "/secret", world_read);
    set(&mut owner, "/secret");
    assert_eq!(events_so_far(&mut one_shot), vec![]);
    assert_eq!(
        events_so_far(&mut clients[0]),
        vec![(EventType::NodeDataChanged, "/secret".to_string())]
    );
}
