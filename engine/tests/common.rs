//! Starting and stopping real `corekeeper` processes for integration tests.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to start listening before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1, never the same twice in this process.
///
/// The OS picks a free port, but once our probe socket closes it may hand the same port
/// to a test running in parallel; two servers on one port would then share (and kill)
/// each other's connections (SO_REUSEPORT lets the second bind). Remembering every port
/// handed out rules that out.
pub fn free_addr() -> SocketAddr {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// A running server; killed (SIGKILL) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `corekeeper` with the quick form plus `extra` flags.
    pub fn start(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Server {
        let mut args = vec![
            "--data-dir".to_string(),
            dir.display().to_string(),
            "--client-addr".into(),
            addr.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn(dir, addr, &args)
    }

    /// Starts `corekeeper --config <file>` with `cfg` written to the file.
    pub fn start_with_config(dir: &Path, addr: SocketAddr, cfg: &str) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("zoo.cfg");
        std::fs::write(&file, cfg).unwrap();
        Server::spawn(
            dir,
            addr,
            &["--config".to_string(), file.display().to_string()],
        )
    }

    fn spawn(dir: &Path, addr: SocketAddr, args: &[String]) -> Server {
        // CK_TEST_LOGS=info (any level) shows the servers' logs, for debugging.
        let logs = std::env::var("CK_TEST_LOGS").ok();
        let child = Command::new(env!("CARGO_BIN_EXE_corekeeper"))
            .args(args)
            .env("RUST_LOG", logs.as_deref().unwrap_or("warn"))
            .stdout(if logs.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn corekeeper");
        let mut s = Server {
            addr,
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("corekeeper exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "corekeeper did not listen on {} within {START_TIMEOUT:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would. Returns once the dead server's listening sockets
    /// (which io_uring tears down asynchronously) are gone, so the next client cannot
    /// reach them.
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let deadline = Instant::now() + START_TIMEOUT;
            while engine::server::listen::listening_in(&proc_tables(), self.addr) {
                assert!(
                    Instant::now() < deadline,
                    "sockets of the killed server linger on {}",
                    self.addr
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn proc_tables() -> String {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

/// Runs `corekeeper` with `args` expecting it to fail at start-up; returns stderr.
pub fn start_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_corekeeper"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "expected start-up to fail for {args:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits on the current glommio executor until `cond` holds; `bound` passing first
/// means a bug, not a slow machine (it is generous).
pub async fn wait_for(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "waited {bound:?} for {what}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// The `port` (election or quorum) of server `me` in an ensemble numbered 1..=n whose
/// servers listen on `addrs[id - 1]`: its own address and every other member's.
pub fn port_spec(me: u64, port: u8, addrs: &[SocketAddr]) -> engine::peer::net::PortSpec {
    engine::peer::net::PortSpec {
        me,
        port,
        listen: addrs[me as usize - 1],
        peers: (1..=addrs.len() as u64)
            .filter(|&id| id != me)
            .map(|id| (id, addrs[id as usize - 1]))
            .collect(),
        queue_bytes_max: engine::peer::links::LINK_QUEUE_BYTES_MAX,
    }
}
