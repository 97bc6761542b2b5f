//! The differential engine (`ckdiff`) against two in-process corekeepers: identical
//! servers must compare equal on every seed, and a difference planted into one side's
//! replies or events must be reported with its seed, op and replay command. This tests
//! the comparison itself without ZooKeeper (the acceptance script runs it against
//! ZooKeeper 3.8).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tools::diff::{Connector, Known, Link, Options, Runner, Summary, TcpConnector};
use transport::client::Incoming;
use transport::jute::{EventType, Request, Response};

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn start(name: &str) -> SocketAddr {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ckdiff-{name}-{}-{}",
        std::process::id(),
        addr.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\ncores=1\n\
         extendedTypesEnabled=true\npreAllocSize=4096\n",
        dir.display(),
        addr.port()
    );
    let cfg = engine::config::Config::parse_zoo_cfg(&cfg).expect("test zoo.cfg");
    let handle = std::thread::spawn(move || engine::server::run(cfg));
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            !handle.is_finished(),
            "corekeeper {name} stopped: {:?}",
            handle.join()
        );
        assert!(
            Instant::now() < deadline,
            "corekeeper {name} did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

/// Two servers, started once per test binary, and a guard that runs the tests one at a
/// time: each seed has its own root, but another test's writes would move the zxids a
/// seed's reads report (ckdiff reruns such a seed, and fails when it keeps happening).
fn servers() -> (MutexGuard<'static, ()>, SocketAddr, SocketAddr) {
    static S: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = *S.get_or_init(|| (start("a"), start("b")));
    (guard, a, b)
}

fn tcp(addr: SocketAddr) -> TcpConnector {
    TcpConnector {
        addr: addr.to_string(),
        reply_timeout: Duration::from_secs(10),
    }
}

/// A connector whose links rewrite (or drop, on `None`) what the server sent.
struct Tamper {
    inner: TcpConnector,
    edit: fn(Incoming) -> Option<Incoming>,
}

struct TamperLink {
    inner: Box<dyn Link>,
    edit: fn(Incoming) -> Option<Incoming>,
}

impl Link for TamperLink {
    fn send(&mut self, req: &Request) -> io::Result<()> {
        self.inner.send(req)
    }
    fn recv(&mut self) -> io::Result<Incoming> {
        loop {
            if let Some(x) = (self.edit)(self.inner.recv()?) {
                return Ok(x);
            }
        }
    }
    fn session_id(&self) -> i64 {
        self.inner.session_id()
    }
    fn handshake(&self) -> (i32, usize) {
        self.inner.handshake()
    }
}

impl Connector for Tamper {
    fn connect(&self) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(TamperLink {
            inner: self.inner.connect()?,
            edit: self.edit,
        }))
    }
    fn name(&self) -> String {
        format!("tampered-{}", self.inner.name())
    }
}

fn run(a: &dyn Connector, b: &dyn Connector, opts: Options) -> (Summary, String) {
    let mut out = Vec::new();
    let sum = Runner { a, b, opts }.run(&mut out);
    (sum, String::from_utf8(out).unwrap())
}

fn opts(first_seed: u64, seeds: u64, ops: usize) -> Options {
    Options {
        first_seed,
        seeds,
        ops,
        ..Options::default()
    }
}

#[test]
fn two_corekeepers_compare_equal() {
    let (_one, a, b) = servers();
    let (sum, out) = run(&tcp(a), &tcp(b), opts(1, 20, 200));
    assert_eq!((sum.passed, sum.failed), (20, 0), "{out}");
    assert!(
        out.ends_with("differential: 20 passed, 0 failed\n"),
        "{out}"
    );
}

/// Bumps the cversion in every getData / exists / setData reply.
fn bump_cversion(x: Incoming) -> Option<Incoming> {
    Some(match x {
        Incoming::Reply {
            header,
            response: Response::Stat(mut s),
        } => {
            s.stat.cversion += 1;
            Incoming::Reply {
                header,
                response: Response::Stat(s),
            }
        }
        Incoming::Reply {
            header,
            response: Response::GetData(mut d),
        } => {
            d.stat.cversion += 1;
            Incoming::Reply {
                header,
                response: Response::GetData(d),
            }
        }
        other => other,
    })
}

#[test]
fn a_planted_cversion_difference_is_reported_with_its_replay() {
    let (_one, a, b) = servers();
    let tampered = Tamper {
        inner: tcp(b),
        edit: bump_cversion,
    };
    let (sum, out) = run(&tcp(a), &tampered, opts(101, 1, 50));
    assert_eq!((sum.passed, sum.failed), (0, 1), "{out}");
    assert!(out.contains("divergence: seed 101 op "), "{out}");
    assert!(out.contains("stat.cversion: a="), "{out}");
    assert!(
        out.contains(&format!(
            "replay: ckdiff --a {a} --b tampered-{b} --seed 101 --ops 50"
        )),
        "{out}"
    );
    assert!(out.ends_with("differential: 0 passed, 1 failed\n"), "{out}");

    // Masked as the known cversion difference, the same seed passes and says so.
    let mut o = opts(101, 1, 50);
    o.known = Known {
        cversion_on_delete: true,
    };
    let (sum, out) = run(&tcp(a), &tampered, o);
    assert_eq!((sum.passed, sum.failed, sum.known_seen), (1, 0, 1), "{out}");
}

/// Drops every NodeDeleted event.
fn drop_deletions(x: Incoming) -> Option<Incoming> {
    match &x {
        Incoming::Event(e) if e.event_type() == Some(EventType::NodeDeleted) => None,
        _ => Some(x),
    }
}

#[test]
fn a_missing_watch_event_is_reported() {
    let (_one, a, b) = servers();
    let tampered = Tamper {
        inner: tcp(b),
        edit: drop_deletions,
    };
    let (sum, out) = run(&tcp(a), &tampered, opts(201, 2, 200));
    assert_eq!(sum.failed, 2, "{out}");
    assert!(out.contains("type=NodeDeleted"), "{out}");
}
