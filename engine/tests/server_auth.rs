//! Authentication failures over TCP, as real clients see them.

mod common;

use std::time::Duration;

use common::{Server, free_addr};
use transport::client::{Client, Incoming};
use transport::jute::records::AuthPacket;
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::{ErrorCode, xid};

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
