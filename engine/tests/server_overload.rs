//! Overload, end to end: clients that pipeline past every limit get backpressure (an
//! unread socket), never errors; clients that never read cannot grow the server;
//! other sessions go on. Every wait is bounded by socket timeouts.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{Server, free_addr};
use transport::client::{Client, Incoming};
use transport::jute::multi::{MultiOp, MultiRequest};
use transport::jute::records::*;
use transport::jute::request::Request;
use transport::jute::{AddWatchMode, CreateMode};

fn client(s: &Server) -> Client {
    let c = Client::connect(s.addr, 30_000).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c
}

/// Anonymous resident memory of `pid`, bytes (the WAL's mapped file pages left out:
/// they are the page cache, not the server's heap).
fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

fn set(path: &str, data: Vec<u8>) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data),
        version: -1,
    })
}

/// Issue 11: 24 sessions x 1000 pipelined setData got 5-10% ThrottledOp (and replies
/// under the wrong xid) once the shard's in-flight limit was reached. ZooKeeper answers
/// every one: so must corekeeper, in order.
#[test]
fn pipelined_writes_past_every_limit_are_all_answered_in_order() {
    const SESSIONS: usize = 24;
    const PIPELINE: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_addr(), &["--cores", "2"]);
    let mut c = client(&s);
    c.create("/hot", b"", CreateMode::Persistent).unwrap();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, 30_000).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let path = if i % 2 == 0 { "/hot" } else { "/" };
                let xids: Vec<i32> = (0..PIPELINE)
                    .map(|k| c.send(&set(path, vec![k as u8; 100])).unwrap())
                    .collect();
                c.flush().unwrap();
                for want in xids {
                    match c.recv().unwrap() {
                        Incoming::Reply { header, .. } => {
                            assert_eq!(header.xid, want, "session {i}: replies in order");
                            assert_eq!(header.err, 0, "session {i}: xid {want} refused");
                        }
                        Incoming::Event(e) => panic!("no watches were set: {e:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (_, stat) = c.get_data("/hot", false).unwrap();
    assert_eq!(stat.version as usize, SESSIONS / 2 * PIPELINE);
}

/// A client that sends without reading: the server stops reading it once its replies
/// back up, its memory stays bounded, and another session is served meanwhile.
#[test]
fn a_client_that_never_reads_cannot_grow_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        free_addr(),
        &["--cores", "2", "--sync", "never"],
    );
    let mut c = client(&s);
    // A long name makes each request ~4 KiB, so socket buffers fill after thousands.
    let big = format!("/{}", "b".repeat(4000));
    c.create(&big, &vec![7u8; 64 << 10], CreateMode::Persistent)
        .unwrap();
    let before = rss_bytes(s.pid());
    let mut flood = Client::connect(s.addr, 30_000).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let get = Request::GetData(GetDataRequest {
        path: big.clone(),
        watch: false,
    });
    // 64 KiB answers to 4 KiB questions: the server must stop reading long before
    // 80 MB of requests (far more than any socket buffers hold). A write that blocks
    // for 2 s means it did.
    let mut sent = 0;
    let blocked = loop {
        assert!(
            sent < 60_000,
            "the server kept reading a client that never reads"
        );
        for _ in 0..100 {
            flood.send(&get).unwrap();
        }
        sent += 100;
        // The other session stays alive however long this takes on a busy machine
        // (this client sends no pings of its own).
        c.exists("/", false).unwrap();
        match flood.flush() {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true;
            }
            Err(e) => panic!("flood write failed: {e}"),
        }
    };
    assert!(blocked);
    // Meanwhile another session is served, reads and writes.
    c.create("/other", b"", CreateMode::Persistent).unwrap();
    for i in 0..200 {
        c.set_data("/other", &[i as u8], -1).unwrap();
        assert_eq!(c.get_data("/other", false).unwrap().0, Some(vec![i as u8]));
    }
    let grown = rss_bytes(s.pid()).saturating_sub(before);
    assert!(
        grown < engine::server::conn::CONN_OUT_BYTES_MAX + (64 << 20),
        "server grew {grown} bytes for one client that never reads"
    );
}

/// A client that never reads while watch events for it keep coming is closed once
/// its unsent output passes `CONN_OUT_BYTES_MAX`; the server and others go on.
#[test]
fn a_watcher_that_never_reads_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        free_addr(),
        &["--cores", "2", "--sync", "never"],
    );
    let mut w = client(&s);
    // Long paths make big events: ~4 KiB each.
    let path = format!("/{}", "p".repeat(4000));
    w.create(&path, b"", CreateMode::Persistent).unwrap();
    let mut flood = client(&s);
    flood
        .call_ok(&Request::AddWatch(AddWatchRequest {
            path: "/".into(),
            mode: AddWatchMode::PersistentRecursive.code(),
        }))
        .unwrap();
    let before = rss_bytes(s.pid());
    // Enough events to pass the limit and any socket buffers: 100 per multi.
    let events_bytes = engine::server::conn::CONN_OUT_BYTES_MAX + (32 << 20);
    let multis = events_bytes / (100 * 4096) + 1;
    for _ in 0..multis {
        let ops = (0..100)
            .map(|_| {
                MultiOp::SetData(SetDataRequest {
                    path: path.clone(),
                    data: Some(b"x".to_vec()),
                    version: -1,
                })
            })
            .collect();
        let (h, _) = w.call(&Request::Multi(MultiRequest { ops })).unwrap();
        assert_eq!(h.err, 0);
    }
    let grown = rss_bytes(s.pid()).saturating_sub(before);
    assert!(
        grown < engine::server::conn::CONN_OUT_BYTES_MAX + (64 << 20),
        "server grew {grown} bytes for a watcher that never reads"
    );
    // The flooder now reads: what was sent, then the close (not a hang).
    let closed = loop {
        match flood.recv() {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        !matches!(closed.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "the server closed the connection: {closed}"
    );
    assert_eq!(w.get_data(&path, false).unwrap().0, Some(b"x".to_vec()));
}
