//! The ZooKeeper driver against a minimal fake server on loopback: handshake, pipelined
//! requests answered in order, close. Checks the wire path end to end (codec, xids,
//! FIFO matching, chroot, errors) without Apache ZooKeeper. Bounded by op count.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use bench::config::{ConnectString, Load, RunConfig};
use bench::progress::CollectProgress;
use bench::runner;
use bench::workload::{KeyDist, OpKind, WorkloadKind, WorkloadSpec};
use bench::zk::ZkConnector;
use transport::jute::{
    ConnectResponse, CreateResponse, ErrorCode, FRAME_BYTES_MAX_DEFAULT, FrameBuffer, FrameDecoder,
    GetChildrenResponse, GetDataResponse, ReplyHeader, Request, Response, Stat, StatResponse,
};

fn frame(stream: &mut TcpStream, frames: &mut FrameBuffer) -> Option<Vec<u8>> {
    loop {
        if let Some(b) = frames.next_frame().ok()? {
            return Some(b.to_vec());
        }
        let n = stream.read(frames.spare(4096)).ok()?;
        if n == 0 {
            return None;
        }
        frames.filled(n);
    }
}

/// Serves one session: every path under `/app` exists except `/app/ckbench/k00000007`
/// (NoNode on reads of it, so errors-by-code is exercised).
fn serve(s: TcpStream, session: i64) {
    serve_until(s, session, usize::MAX);
}

/// Like [`serve`], but drops the connection after `requests_max` requests.
fn serve_until(mut s: TcpStream, session: i64, requests_max: usize) {
    let mut frames = FrameBuffer::new(FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT));
    let Some(_hello) = frame(&mut s, &mut frames) else {
        return;
    };
    let mut out = Vec::new();
    ConnectResponse {
        protocol_version: 0,
        time_out: 30_000,
        session_id: session,
        passwd: Some(vec![0; 16]),
        read_only: Some(false),
    }
    .encode_frame(&mut out);
    s.write_all(&out).unwrap();
    let mut zxid = 0;
    while let Some(body) = frame(&mut s, &mut frames) {
        if zxid as usize >= requests_max {
            return; // the connection drops with requests in flight
        }
        let (h, req) = Request::decode_body(&body).expect("a valid request");
        zxid += 1;
        let missing = req.path() == Some("/app/ckbench/k00000007");
        let (err, resp) = match &req {
            _ if missing && !matches!(req, Request::Create(_) | Request::Delete(_)) => {
                (ErrorCode::NoNode, Response::Empty)
            }
            Request::Create(c) => (
                ErrorCode::Ok,
                Response::Create(CreateResponse {
                    path: c.path.clone(),
                }),
            ),
            Request::GetData(_) => (
                ErrorCode::Ok,
                Response::GetData(GetDataResponse {
                    data: Some(b"v".to_vec()),
                    stat: Stat::default(),
                }),
            ),
            Request::SetData(_) | Request::Exists(_) => (
                ErrorCode::Ok,
                Response::Stat(StatResponse {
                    stat: Stat::default(),
                }),
            ),
            Request::GetChildren(_) => (
                ErrorCode::Ok,
                Response::GetChildren(GetChildrenResponse { children: vec![] }),
            ),
            _ => (ErrorCode::Ok, Response::Empty),
        };
        out.clear();
        resp.encode_frame(&ReplyHeader::new(h.xid, zxid, err), &mut out);
        s.write_all(&out).unwrap();
        if matches!(req, Request::CloseSession) {
            return;
        }
    }
}

#[test]
fn closed_loop_over_real_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    const SESSIONS: usize = 3;
    let server = thread::spawn(move || {
        let conns: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let (s, _) = listener.accept().unwrap();
                thread::spawn(move || serve(s, 100 + i as i64))
            })
            .collect();
        conns.into_iter().for_each(|c| c.join().unwrap());
    });
    let mut cfg = RunConfig::defaults(5);
    cfg.connect = ConnectString {
        servers: vec![addr],
        chroot: Some("/app".into()),
    };
    cfg.workload = WorkloadSpec {
        kind: WorkloadKind::Mix { read: 1, write: 1 },
        key_count: 10,
        dist: KeyDist::Uniform,
        value_bytes: 10,
    };
    cfg.sessions = SESSIONS;
    cfg.load = Load::Closed { inflight: 4 };
    cfg.threads = 2;
    cfg.warmup_s = 0;
    cfg.max_ops = Some(2_000);
    let zk = ZkConnector::new(cfg.connect.chroot.clone());
    let mut progress = CollectProgress::default();
    let out = runner::run(&cfg, &zk, &mut progress).expect("run against the fake server");
    server.join().unwrap();
    let s = &out.stats;
    let gets = s.kinds[&OpKind::Get].hist.len() + s.kinds[&OpKind::Get].error_count();
    let sets = s.kinds[&OpKind::Set].hist.len() + s.kinds[&OpKind::Set].error_count();
    assert_eq!(gets + sets, 2_000, "every admitted op answered");
    assert_eq!(gets, sets, "mix 1/1 is exact");
    let errors = s.errors();
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        [ErrorCode::NoNode.code()],
        "{errors:?}"
    );
    assert!(errors[&ErrorCode::NoNode.code()] > 0);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn a_dropped_connection_fails_the_run_instead_of_hanging() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        // One session; it dies after setup and a few hundred requests.
        let (s, _) = listener.accept().unwrap();
        serve_until(s, 7, 300);
    });
    let cfg = one_session_of_gets(vec![addr.clone()], 1_000_000);
    let zk = ZkConnector::new(None);
    let err =
        runner::run(&cfg, &zk, &mut CollectProgress::default()).expect_err("the server went away");
    let msg = err.to_string();
    eprintln!("run error: {msg}");
    assert!(
        msg.contains(&addr) || msg.contains("gone"),
        "names the server or the loss: {msg}"
    );
    server.join().unwrap();
}

#[test]
fn sessions_spread_round_robin_over_the_connect_string() {
    const PER_SERVER: usize = 2;
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(listener.local_addr().unwrap().to_string());
        servers.push(thread::spawn(move || {
            let conns: Vec<_> = (0..PER_SERVER)
                .map(|i| {
                    let (s, _) = listener.accept().unwrap();
                    thread::spawn(move || serve(s, 200 + i as i64))
                })
                .collect();
            conns.into_iter().for_each(|c| c.join().unwrap());
        }));
    }
    let mut cfg = RunConfig::defaults(9);
    cfg.connect = ConnectString {
        servers: addrs,
        chroot: None,
    };
    cfg.workload = WorkloadSpec {
        kind: WorkloadKind::Exists,
        key_count: 5,
        dist: KeyDist::Uniform,
        value_bytes: 1,
    };
    cfg.sessions = 2 * PER_SERVER;
    cfg.load = Load::Closed { inflight: 1 };
    cfg.warmup_s = 0;
    cfg.max_ops = Some(100);
    let out = runner::run(
        &cfg,
        &ZkConnector::new(None),
        &mut CollectProgress::default(),
    )
    .expect("run");
    // Each server served exactly its share: a session sent to the wrong one would sit
    // unanswered in its backlog and fail the handshake (10 s timeout), failing `run`.
    servers.into_iter().for_each(|s| s.join().unwrap());
    assert_eq!(out.stats.ops(), 100);
}

#[test]
fn a_lost_session_fails_over_to_the_next_server() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let addrs = vec![
        a.local_addr().unwrap().to_string(),
        b.local_addr().unwrap().to_string(),
    ];
    let server_a = thread::spawn(move || {
        let (s, _) = a.accept().unwrap();
        serve_until(s, 1, 300); // dies mid-run with requests in flight
    });
    let server_b = thread::spawn(move || {
        let (s, _) = b.accept().unwrap();
        serve(s, 2);
    });
    let cfg = one_session_of_gets(addrs.clone(), 1_000);
    let zk = ZkConnector::new(None).with_failover(addrs);
    let out =
        runner::run(&cfg, &zk, &mut CollectProgress::default()).expect("the run survives the loss");
    server_a.join().unwrap();
    server_b.join().unwrap();
    let lost = out
        .stats
        .errors()
        .get(&ErrorCode::ConnectionLoss.code())
        .copied()
        .unwrap_or(0);
    assert!(
        (1..=8).contains(&lost),
        "the requests in flight at the loss, got {lost}"
    );
    assert_eq!(out.stats.ops() + lost, 1_000, "every op answered once");
    assert!(
        out.warnings.is_empty(),
        "cleanup ran on the new server: {:?}",
        out.warnings
    );
}

/// One session, 8 gets in flight over 10 keys, no warm-up, at most `max_ops`.
fn one_session_of_gets(servers: Vec<String>, max_ops: u64) -> RunConfig {
    let mut cfg = RunConfig::defaults(5);
    cfg.connect = ConnectString {
        servers,
        chroot: None,
    };
    cfg.workload = WorkloadSpec {
        kind: WorkloadKind::Get,
        key_count: 10,
        dist: KeyDist::Uniform,
        value_bytes: 1,
    };
    cfg.sessions = 1;
    cfg.threads = 1;
    cfg.load = Load::Closed { inflight: 8 };
    cfg.warmup_s = 0;
    cfg.max_ops = Some(max_ops);
    cfg
}
