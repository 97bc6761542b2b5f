//! The standalone server, end to end over TCP with the real protocol.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, free_addr, start_fails};
use transport::client::{Client, Incoming};
use transport::jute::records::*;
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::{Acl, CreateMode, ErrorCode, EventType};

fn client(s: &Server) -> Client {
    let c = Client::connect(s.addr, 30_000).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

fn err_of(c: &mut Client, req: Request) -> ErrorCode {
    let (h, _) = c.call(&req).unwrap();
    ErrorCode::from_code(h.err).unwrap()
}

#[test]
fn crud_and_pipelined_fifo_replies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "2"]);
    let mut c = client(&s);
    assert_eq!(c.create("/a", b"1", CreateMode::Persistent).unwrap(), "/a");
    assert_eq!(
        c.get_data("/a", false).unwrap().0.as_deref(),
        Some(&b"1"[..])
    );
    let stat = c.set_data("/a", b"2", 0).unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        err_of(
            &mut c,
            Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: None,
                version: 0
            })
        ),
        ErrorCode::BadVersion
    );
    // 500 writes and reads pipelined in one session: replies come back in order and
    // every read sees the session's earlier writes.
    let mut xids = Vec::new();
    for i in 0..250 {
        let path = format!("/a/n{i}");
        let req = CreateRequest {
            path: path.clone(),
            data: Some(vec![i as u8]),
            acl: Acl::open_unsafe(),
            flags: 0,
        };
        xids.push(c.send(&Request::Create(req)).unwrap());
        xids.push(
            c.send(&Request::Exists(ExistsRequest { path, watch: false }))
                .unwrap(),
        );
    }
    for (i, x) in xids.iter().enumerate() {
        let (h, r) = c.recv_reply(&mut Vec::new()).unwrap();
        assert_eq!(h.xid, *x, "reply {i} out of order");
        assert_eq!(h.err, 0, "reply {i}: {r:?}");
    }
    assert_eq!(c.get_children("/a", false).unwrap().len(), 250);
    assert_eq!(
        err_of(
            &mut c,
            Request::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1
            })
        ),
        ErrorCode::NotEmpty
    );
    c.delete("/a/n0", -1).unwrap();
    assert!(c.exists("/a/n0", false).unwrap().is_none());
}

/// Every sync mode answers writes promptly: `always` and `never` flush on the shard's
/// core, and the replies that releases must go out in the same pass (a bug once left
/// them waiting for the next tick).
#[test]
fn every_sync_mode_answers_writes() {
    for mode in ["always", "batch", "never"] {
        let dir = tempfile::tempdir().unwrap();
        // A tick far longer than the test: a reply that waited for one would time out.
        let s = Server::start(
            dir.path(),
            free_addr(),
            &["--cores", "1", "--sync", mode, "--tick-time-ms", "60000"],
        );
        let c = Client::connect(s.addr, 120_000).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = c;
        for i in 0..20 {
            let path = format!("/s{i}");
            assert_eq!(
                c.create(&path, b"v", CreateMode::Persistent).unwrap(),
                path,
                "sync {mode}"
            );
        }
        assert_eq!(c.get_children("/", false).unwrap().len(), 21, "sync {mode}");
    }
}

#[test]
fn a_watcher_hears_the_event_before_a_reply_showing_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "2"]);
    let (mut a, mut b) = (client(&s), client(&s));
    assert!(a.exists("/w", true).unwrap().is_none());
    b.create("/w", b"x", CreateMode::Persistent).unwrap();
    // a's next reply reflects /w, so the event must already be in front of it.
    a.send(&Request::Exists(ExistsRequest {
        path: "/w".into(),
        watch: false,
    }))
    .unwrap();
    match a.recv().unwrap() {
        Incoming::Event(e) => {
            assert_eq!(e.event_type, EventType::NodeCreated.code());
            assert_eq!(e.path, "/w");
        }
        other => panic!("expected the NodeCreated event first, got {other:?}"),
    }
    let (h, r) = a.recv_reply(&mut Vec::new()).unwrap();
    assert_eq!((h.err, matches!(r, Response::Stat(_))), (0, true));
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=8\njute.maxbuffer=4096\n4lw.commands.whitelist=ruok,srvr\n",
        dir.path().display(),
        addr.port()
    );
    let s = Server::start_with_config(dir.path(), addr, &cfg);
    let mut good = client(&s);
    good.create("/ok", b"", CreateMode::Persistent).unwrap();

    // Invalid paths and wrong versions get ZooKeeper's errors: BADARGUMENTS for a
    // write, NONODE for a read (ZooKeeper validates paths on writes only).
    assert_eq!(
        err_of(
            &mut good,
            Request::Delete(DeleteRequest {
                path: "no-slash".into(),
                version: -1
            })
        ),
        ErrorCode::BadArguments
    );
    assert_eq!(
        err_of(
            &mut good,
            Request::Exists(ExistsRequest {
                path: "no-slash".into(),
                watch: false
            })
        ),
        ErrorCode::NoNode
    );
    assert_eq!(
        err_of(
            &mut good,
            Request::Delete(DeleteRequest {
                path: "/ok".into(),
                version: 5
            })
        ),
        ErrorCode::BadVersion
    );

    // Oversized frame: the connection is closed, the server unharmed.
    let mut big = TcpStream::connect(s.addr).unwrap();
    big.write_all(&(1i32 << 20).to_be_bytes()).unwrap();
    big.write_all(&[0u8; 64]).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        big.read(&mut buf).unwrap_or(0),
        0,
        "oversized frame must close the connection"
    );

    // Malformed handshake: closed.
    let mut junk = TcpStream::connect(s.addr).unwrap();
    junk.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        junk.read(&mut buf).unwrap_or(0),
        0,
        "malformed connect must close the connection"
    );

    // Four-letter words: whitelisted ones answer, others are refused.
    let mut w = TcpStream::connect(s.addr).unwrap();
    w.write_all(b"ruok").unwrap();
    let mut text = String::new();
    w.read_to_string(&mut text).unwrap();
    assert_eq!(text, "imok");
    let mut w = TcpStream::connect(s.addr).unwrap();
    w.write_all(b"envi").unwrap();
    let mut text = String::new();
    w.read_to_string(&mut text).unwrap();
    assert!(text.contains("not in the whitelist"), "{text}");

    // Too many connections from one address: with `good` and seven more open, the
    // ninth is closed at once.
    let mut extra: Vec<Client> = Vec::new();
    while extra.len() + 1 < 8 {
        extra.push(client(&s));
    }
    let mut ninth = TcpStream::connect(s.addr).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        ninth.read(&mut buf).unwrap_or(0),
        0,
        "connection over maxClientCnxns must be closed"
    );

    // The well-behaved session never noticed.
    assert!(good.exists("/ok", false).unwrap().is_some());
}

#[test]
fn connections_over_max_cnxns_are_closed_and_their_slots_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nmaxCnxns=3\n",
        dir.path().display(),
        addr.port()
    );
    let s = Server::start_with_config(dir.path(), addr, &cfg);
    let mut open: Vec<Client> = (0..3).map(|_| client(&s)).collect();
    let mut fourth = TcpStream::connect(s.addr).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        fourth.read(&mut buf).unwrap_or(0),
        0,
        "a connection over maxCnxns must be closed"
    );
    // Closing one session frees its slot: a new client gets in and is served.
    drop(open.pop());
    let mut again = retry_client(&s);
    again.create("/in", b"", CreateMode::Persistent).unwrap();
    assert!(open[0].exists("/in", false).unwrap().is_some());
}

/// Connects, retrying while the server may still count a connection just closed.
fn retry_client(s: &Server) -> Client {
    for _ in 0..3000 {
        match Client::connect(s.addr, 30_000) {
            Ok(c) => return c,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("no slot came back after a session closed");
}

#[test]
fn unknown_opcode_is_answered_in_order_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "1"]);
    let mut c = client(&s);
    let x1 = c
        .send(&Request::Create(CreateRequest {
            path: "/u".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
        }))
        .unwrap();
    c.flush().unwrap();
    // xid 1000 with opcode 999, behind the create.
    let mut frame = Vec::new();
    frame.extend_from_slice(&8i32.to_be_bytes());
    frame.extend_from_slice(&1000i32.to_be_bytes());
    frame.extend_from_slice(&999i32.to_be_bytes());
    c.send_raw(&frame).unwrap();
    let (h, _) = c.recv_reply(&mut Vec::new()).unwrap();
    assert_eq!((h.xid, h.err), (x1, 0));
    // The client did not register xid 1000, so read its reply as raw bytes via a
    // fresh request: the server must have answered 1000 before this one.
    let x2 = c
        .send(&Request::Exists(ExistsRequest {
            path: "/u".into(),
            watch: false,
        }))
        .unwrap();
    let err = c.recv().unwrap_err();
    assert!(
        err.to_string().contains("1000"),
        "the Unimplemented reply to xid 1000 comes first: {err}"
    );
    let _ = x2;
}

#[test]
fn acknowledged_writes_survive_kill_9_and_expired_ephemerals_go() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut s = Server::start(dir.path(), addr, &["--cores", "2", "--tick-time-ms", "50"]);
    let mut setup = client(&s);
    setup.create("/load", b"", CreateMode::Persistent).unwrap();
    // An ephemeral in a short session that will not come back.
    let mut eph = Client::connect(addr, 500).unwrap();
    eph.create("/load/eph", b"", CreateMode::Ephemeral).unwrap();
    // Pipeline writes; SIGKILL the server after 300 acknowledgements with more in flight.
    let mut w = client(&s);
    let mut acked = Vec::new();
    let mut sent = 0;
    while acked.len() < 300 {
        while w.outstanding() < 64 {
            let req = CreateRequest {
                path: format!("/load/k{sent:05}"),
                data: Some(sent.to_string().into_bytes()),
                acl: Acl::open_unsafe(),
                flags: 0,
            };
            w.send(&Request::Create(req)).unwrap();
            sent += 1;
        }
        let (h, r) = w.recv_reply(&mut Vec::new()).unwrap();
        assert_eq!(h.err, 0);
        let Response::Create(r) = r else {
            panic!("create reply")
        };
        acked.push(r.path);
    }
    s.kill();
    drop((w, eph, setup));
    let s = Server::start(dir.path(), addr, &["--cores", "2", "--tick-time-ms", "50"]);
    let mut c = client(&s);
    for path in &acked {
        let (data, _) = c
            .get_data(path, false)
            .unwrap_or_else(|e| panic!("acknowledged {path} lost: {e}"));
        let n: usize = path["/load/k".len()..].parse().unwrap();
        assert_eq!(data.unwrap(), n.to_string().into_bytes(), "{path} intact");
    }
    // The ephemeral's session was recovered with the WAL and now expires (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.exists("/load/eph", false).unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "ephemeral of an expired session still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sessions_survive_a_restart_and_can_reattach() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut s = Server::start(dir.path(), addr, &["--cores", "1"]);
    let mut c = client(&s);
    c.create("/e", b"", CreateMode::Ephemeral).unwrap();
    let (id, pw, zxid) = (c.session_id(), c.password(), c.last_zxid());
    s.kill();
    drop(c);
    let s = Server::start(dir.path(), addr, &["--cores", "1"]);
    let mut again = Client::reconnect(s.addr, id, &pw, 10_000, zxid).unwrap();
    assert_eq!(again.session_id(), id);
    assert!(
        again.exists("/e", false).unwrap().is_some(),
        "the session's ephemeral is still there"
    );
    let wrong = Client::reconnect(s.addr, id, &[9; 16], 10_000, zxid);
    assert!(wrong.is_err(), "a wrong password is refused");
    again.close().unwrap();
    let mut other = client(&s);
    assert!(
        other.exists("/e", false).unwrap().is_none(),
        "closing the session removed its ephemeral"
    );
}

/// The answer to a four-letter word.
fn four_letter(addr: std::net::SocketAddr, word: &str) -> String {
    let mut w = TcpStream::connect(addr).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    w.write_all(word.as_bytes()).unwrap();
    let mut text = String::new();
    w.read_to_string(&mut text).unwrap();
    text
}

/// `srvr` (the default whitelist's only word) shows the state the server started
/// with before any request has reached the shard: the counters were published only
/// after the driver's first batch, so a fresh server said `Node count: 0`. corekeeper
/// counts the four system nodes (`/`, `/zookeeper`, its `quota` and `config`);
/// ZooKeeper 3.8 prints 5 there, its root being stored twice (under "" and "/").
#[test]
fn srvr_shows_the_recovered_state_before_the_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut s = Server::start(dir.path(), addr, &["--cores", "1"]);
    let text = four_letter(addr, "srvr");
    assert!(text.contains("Node count: 4\n"), "{text}");
    let mut c = client(&s);
    c.create("/a", b"", CreateMode::Persistent).unwrap();
    let zxid = c.last_zxid();
    s.kill();
    drop(c);
    let _s = Server::start(dir.path(), addr, &["--cores", "1"]);
    let text = four_letter(addr, "srvr");
    assert!(text.contains("Node count: 5\n"), "{text}");
    assert!(text.contains(&format!("Zxid: 0x{zxid:x}\n")), "{text}");
}

#[test]
fn metrics_are_served_on_the_admin_port() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_addr();
    let s = Server::start(
        dir.path(),
        free_addr(),
        &["--cores", "1", "--admin-port", &admin.port().to_string()],
    );
    let mut c = client(&s);
    c.create("/m", b"", CreateMode::Persistent).unwrap();
    let mut http = TcpStream::connect(admin).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(
        text.contains("corekeeper_znodes 5\n"),
        "4 system nodes plus /m: {text}"
    );
    assert!(
        text.contains("# TYPE corekeeper_wal_flush_seconds histogram"),
        "{text}"
    );
    let mut http = TcpStream::connect(admin).unwrap();
    http.write_all(b"GET /nope HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 404"), "{text}");
}

/// Snapshots every `snapCount` writes; purging only with `autopurge.purgeInterval` > 0
/// (ZooKeeper's rule: 0 disables it), once at start and then every interval.
#[test]
fn snapshots_are_taken_retained_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let cfg = |interval: u32| {
        format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nsnapCount=50\nautopurge.snapRetainCount=3\nautopurge.purgeInterval={interval}\ncores=1\n",
            dir.path().display(),
            addr.port()
        )
    };
    let mut s = Server::start_with_config(dir.path(), addr, &cfg(0));
    let mut c = client(&s);
    let snaps = dir.path().join("snapshots");
    let count = || {
        std::fs::read_dir(&snaps).map_or(0, |d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
    };
    // Write until five snapshots are on disk (each is written on the blocking pool
    // while writes go on, so how many writes that takes is not fixed): with
    // purgeInterval=0 none is ever deleted.
    let mut n = 0;
    while count() < 5 {
        assert!(n < 20_000, "five snapshots within 20000 writes");
        c.create(&format!("/n{n:05}"), &[n as u8], CreateMode::Persistent)
            .unwrap();
        n += 1;
    }
    s.kill();
    drop(c);
    assert!(count() >= 5, "purgeInterval=0 keeps every snapshot");
    // With an interval the purge runs at start: three snapshots stay.
    let s = Server::start_with_config(dir.path(), addr, &cfg(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while count() != 3 {
        assert!(Instant::now() < deadline, "the purge at start keeps three");
        std::thread::sleep(Duration::from_millis(20)); // poll only; bounded above
    }
    let mut c = client(&s);
    assert_eq!(c.get_children("/", false).unwrap().len(), n + 1);
    for i in [0, n / 2, n - 1] {
        assert_eq!(
            c.get_data(&format!("/n{i:05}"), false).unwrap().0,
            Some(vec![i as u8])
        );
    }
}

/// Two servers started at the same instant on one port: SO_REUSEPORT would let both
/// bind, so each checks after binding and at most one keeps serving.
#[test]
fn two_servers_started_together_never_share_a_port() {
    let addr = free_addr().to_string();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut children: Vec<std::process::Child> = dirs
        .iter()
        .map(|d| {
            std::process::Command::new(env!("CARGO_BIN_EXE_corekeeper"))
                .args([
                    "--data-dir",
                    &d.path().display().to_string(),
                    "--client-addr",
                    &addr,
                    "--cores",
                    "2",
                ])
                .env("RUST_LOG", "error")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Bounded: at least one must give up with the port named.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let exited: Vec<usize> = (0..2)
            .filter(|i| children[*i].try_wait().unwrap().is_some())
            .collect();
        if !exited.is_empty() {
            break exited;
        }
        assert!(
            Instant::now() < deadline,
            "both servers kept running on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for (i, child) in children.iter_mut().enumerate() {
        if failed.contains(&i) {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(err.contains("already in use"), "{err}");
        } else {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Logs written to a pipe (or a file) carry no ANSI colour codes: colour is for
/// terminals only.
#[test]
fn logs_to_a_pipe_are_not_coloured() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corekeeper"))
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--client-addr", &addr.to_string(), "--cores", "1"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "corekeeper exited");
        assert!(Instant::now() < deadline, "corekeeper did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let logs = [out.stdout, out.stderr].concat();
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("INFO"), "no log lines to check: {text}");
    assert!(
        !logs.contains(&0x1b),
        "ANSI escapes in piped logs: {text:?}"
    );
}

#[test]
fn start_up_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _s = Server::start(dir.path(), addr, &["--cores", "1"]);
    let other = tempfile::tempdir().unwrap();
    let err = start_fails(&[
        "--data-dir",
        &other.path().display().to_string(),
        "--client-addr",
        &addr.to_string(),
    ]);
    assert!(err.contains("already in use"), "{err}");
    let err = start_fails(&[
        "--data-dir",
        "/proc/corekeeper",
        "--client-addr",
        &free_addr().to_string(),
    ]);
    assert!(err.contains("/proc/corekeeper"), "{err}");
    let err = start_fails(&["--data-dir", "d", "--client-addr", "nonsense"]);
    assert!(err.contains("--client-addr"), "{err}");
    let err = start_fails(&[
        "--data-dir",
        &dir.path().display().to_string(),
        "--client-addr",
        &free_addr().to_string(),
    ]);
    assert!(
        err.to_lowercase().contains("lock") || err.contains("in use"),
        "a second server on the same data dir: {err}"
    );
}

/// A ZooKeeper ensemble's zoo.cfg is checked as ZooKeeper would (myid, the peer ports,
/// the epoch files), then refused, not run as a lone standalone member.
#[test]
fn an_ensemble_config_is_checked_before_it_starts() {
    let ens = tempfile::tempdir().unwrap();
    let cfg = ens.path().join("zoo.cfg");
    let port = || free_addr().port();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let write = |quorum_port: u16| {
        let text = format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\ninitLimit=10\n\
             syncLimit=5\nserver.1=127.0.0.1:{quorum_port}:{}\nserver.2=127.0.0.1:{}:{}\n\
             server.3=127.0.0.1:{}:{}\n",
            ens.path().display(),
            port(),
            port(),
            port(),
            port(),
            port(),
            port(),
        );
        std::fs::write(&cfg, text).unwrap();
    };
    let start = || start_fails(&["--config", &cfg.display().to_string()]);
    write(port());
    let err = start();
    assert!(err.contains("myid") && err.contains("missing"), "{err}");
    std::fs::write(ens.path().join("myid"), "4\n").unwrap();
    let err = start();
    assert!(err.contains("id 4 is not among"), "{err}");
    std::fs::write(ens.path().join("myid"), "1\n").unwrap();
    write(busy_port);
    let err = start();
    assert!(
        err.contains(&format!(
            "quorum address 127.0.0.1:{busy_port} is already in use"
        )),
        "{err}"
    );
    drop(busy);
    write(port());
    std::fs::write(ens.path().join("acceptedEpoch"), "garbage").unwrap();
    let err = start();
    assert!(
        err.contains("acceptedEpoch") && err.contains("corrupt"),
        "{err}"
    );
}

/// A watch set by a read and fired by a later write: the client must see the read's
/// reply, then the event, then the write's reply. Kazoo registers a watcher only when
/// the read's reply arrives, so an event sent ahead of that reply is lost and the
/// client waits forever (the Barrier recipe hung this way). The pair is pipelined in
/// one write so reply and event reach the connection's writer together, the case that
/// once encoded the event ahead of the reply it had queued.
#[test]
fn a_read_reply_goes_out_before_the_event_on_the_watch_it_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        free_addr(),
        &["--cores", "2", "--sync", "never"],
    );
    let mut c = client(&s);
    for round in 0..200 {
        c.create("/r", b"x", CreateMode::Persistent).unwrap();
        let exists = c
            .send(&Request::Exists(ExistsRequest {
                path: "/r".into(),
                watch: true,
            }))
            .unwrap();
        let delete = c
            .send(&Request::Delete(DeleteRequest {
                path: "/r".into(),
                version: -1,
            }))
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(match c.recv().unwrap() {
                Incoming::Reply { header, .. } => {
                    assert_eq!(header.err, 0, "round {round}");
                    format!("reply {}", header.xid)
                }
                Incoming::Event(e) => {
                    assert_eq!(e.event_type, EventType::NodeDeleted.code());
                    "event".to_string()
                }
            });
        }
        let want = [
            format!("reply {exists}"),
            "event".into(),
            format!("reply {delete}"),
        ];
        assert_eq!(seen, want, "round {round}");
    }
}
