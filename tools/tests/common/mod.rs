//! One in-process corekeeper per test binary, and helpers to run ckctl commands on it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tools::cmd;
use tools::connect::ConnectString;
use tools::run::Session;

/// How long the server may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on any wait for a watch event in these tests.
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

/// The address of this test binary's server (started on first use, on its own thread;
/// it runs until the test process exits).
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start_with("4lw.commands.whitelist=*\nextendedTypesEnabled=true\n"))
}

/// Starts an in-process server whose zoo.cfg is the basics plus `extra` lines (it runs
/// until the test process exits); its client address.
pub fn start_with(extra: &str) -> SocketAddr {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ckctl-{}-{}",
        std::process::id(),
        addr.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\ncores=1\npreAllocSize=4096\n{extra}",
        dir.display(),
        addr.port()
    );
    let cfg = engine::config::Config::parse_zoo_cfg(&cfg).expect("test zoo.cfg");
    let handle = std::thread::spawn(move || engine::server::run(cfg));
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            !handle.is_finished(),
            "corekeeper stopped during start-up: {:?}",
            handle.join()
        );
        assert!(
            Instant::now() < deadline,
            "corekeeper did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

/// A session on the test server, optionally under `chroot`.
pub fn session(chroot: &str) -> Session {
    let conn = ConnectString::parse(&format!("{}{chroot}", server())).unwrap();
    Session::open(&conn, 30_000, &[]).unwrap()
}

/// Runs one zkCli line; `Ok(output)` or `Err(error message)`.
pub fn ck(s: &mut Session, line: &str) -> Result<String, String> {
    let args = cmd::tokenize(line).map_err(|e| e.to_string())?;
    let c = cmd::parse(&args).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let r = s.execute(&c, &mut out);
    let text = String::from_utf8(out).unwrap();
    r.map(|_| text).map_err(|e| e.to_string())
}

/// `ck` that must succeed.
pub fn ok(s: &mut Session, line: &str) -> String {
    ck(s, line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// `ck` that must fail; returns the message.
pub fn fails(s: &mut Session, line: &str) -> String {
    match ck(s, line) {
        Ok(out) => panic!("{line} succeeded with {out:?}"),
        Err(e) => e,
    }
}

/// The value of a `name = value` stat line in `text`.
pub fn stat_field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(" = "))
        .unwrap_or_else(|| panic!("no {name} in {text:?}"))
}

/// Runs the whole program in-process: `(status, stdout, stderr)`.
pub fn main_with(args: &[&str], stdin: &str) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = tools::run::main(&args, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}
