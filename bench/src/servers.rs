//! Starting the systems under test for `ckbench compare --systems ...`: Apache ZooKeeper
//! 3.8 (Debian's `zookeeper` package, run with `java -cp`) and corekeeper (the binary
//! next to `ckbench`, or `--corekeeper-bin`), each standalone on its own loopback
//! address, with its data under one work directory (so both write to the same disk).
//!
//! Contract:
//! - a started server is a [`ServerProcess`]; dropping it kills and reaps the process,
//!   so a failed or interrupted comparison never leaves a server behind;
//! - [`ServerProcess::start`] returns only once the server answers `ruok` with `imok`
//!   and `srvr` with a `Mode:` line, polled every [`READY_POLL_MS`] for at most
//!   [`READY_TIMEOUT_MS_MAX`]; a server that exits first is an error quoting its log;
//! - ZooKeeper's jars are found in `/usr/share/java`; when some are missing and we are
//!   root, `apt-get install -y` installs them, otherwise the error says what to install;
//! - CPU time of a process is read from `/proc/<pid>/stat` (utime + stime), in seconds.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a started server to answer `ruok` (a JVM on a busy 2-core machine
/// takes a few seconds).
pub const READY_TIMEOUT_MS_MAX: u64 = 60_000;
/// Pause between readiness polls.
pub const READY_POLL_MS: u64 = 100;
/// Longest wait for one four-letter-word answer.
pub const FOUR_LETTER_TIMEOUT_MS_MAX: u64 = 1_000;
/// Longest four-letter-word answer read.
pub const FOUR_LETTER_BYTES_MAX: u64 = 64 * 1024;
/// Most bytes of a server log quoted in an error.
pub const LOG_TAIL_BYTES_MAX: usize = 2_000;

/// Where Debian installs ZooKeeper's and its dependencies' jars.
pub const JAVA_DIR: &str = "/usr/share/java";
/// The jars a standalone ZooKeeper needs. Debian's `zookeeper.jar` manifest class path
/// lacks the netty codec/resolver/unix-common jars and a log backend, so they are named
/// here (the list tools/scripts/capture-golden.py uses).
pub const ZK_JARS: &[&str] = &[
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
    "netty-transport.jar",
    "netty-buffer.jar",
    "netty-common.jar",
    "netty-handler.jar",
    "slf4j-api.jar",
    "slf4j-log4j12.jar",
    "log4j-1.2.jar",
    "commons-cli.jar",
];
/// The Debian packages that provide [`ZK_JARS`].
pub const ZK_PACKAGES: &[&str] = &[
    "zookeeper",
    "libnetty-java",
    "libslf4j-java",
    "liblog4j1.2-java",
];

/// Which server program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Zookeeper,
    Corekeeper,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Zookeeper => "zookeeper",
            System::Corekeeper => "corekeeper",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "zookeeper" | "zk" => Ok(System::Zookeeper),
            "corekeeper" | "ck" => Ok(System::Corekeeper),
            _ => Err(format!(
                "unknown system {s:?}: expected zookeeper or corekeeper"
            )),
        }
    }
}

/// How to launch one standalone server.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub system: System,
    /// Loopback address to listen on, e.g. `127.0.0.2`.
    pub host: String,
    /// Its own directory (config, data, log) under the comparison's work directory.
    pub dir: PathBuf,
    /// corekeeper only: the binary, its executor count (0: the server's default) and
    /// extra `key=value` lines for its zoo.cfg.
    pub corekeeper_bin: Option<PathBuf>,
    pub cores: usize,
    pub settings: Vec<String>,
    /// Where its output goes (default: `server.log` in `dir`).
    pub log: Option<PathBuf>,
}

/// A running server; killed and reaped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    pub system: System,
    /// `host:port` of its client port.
    pub addr: String,
    pub log: PathBuf,
    child: Child,
    /// How it was started (program, arguments, environment), to start it again.
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
}

impl ServerProcess {
    /// Starts the server `spec` describes and waits until it is ready.
    pub fn start(spec: &LaunchSpec) -> Result<Self, String> {
        fs::create_dir_all(spec.dir.join("data"))
            .map_err(|e| format!("creating {}: {e}", spec.dir.display()))?;
        let port = free_port(&spec.host)?;
        let cfg = spec.dir.join("zoo.cfg");
        fs::write(&cfg, zoo_cfg(spec, port))
            .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
        let cmd = match spec.system {
            System::Zookeeper => zookeeper_command(&cfg)?,
            System::Corekeeper => {
                let bin = spec
                    .corekeeper_bin
                    .as_ref()
                    .ok_or("corekeeper: no binary given")?;
                let mut c = Command::new(bin);
                c.arg("--config").arg(&cfg);
                c
            }
        };
        let log = spec
            .log
            .clone()
            .unwrap_or_else(|| spec.dir.join("server.log"));
        let addr = format!("{}:{port}", spec.host);
        let mut server = ServerProcess::spawn(spec.system, addr, cmd, log)?;
        server.wait_ready(Duration::from_millis(READY_TIMEOUT_MS_MAX))?;
        Ok(server)
    }

    /// Starts `cmd` with its output in `log`, killed with ckbench; does not wait for it
    /// to serve (an ensemble member only serves once a quorum is up).
    pub fn spawn(
        system: System,
        addr: String,
        mut cmd: Command,
        log: PathBuf,
    ) -> Result<Self, String> {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let out = fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("log {}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", system.name()))?;
        Ok(ServerProcess {
            system,
            addr,
            log,
            child,
            program: cmd.get_program().to_os_string(),
            args: cmd.get_args().map(|a| a.to_os_string()).collect(),
            envs: cmd
                .get_envs()
                .map(|(k, v)| (k.to_os_string(), v.map(|v| v.to_os_string())))
                .collect(),
        })
    }

    /// SIGKILL (a crash), and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again as it was started (after [`ServerProcess::kill`]); its output
    /// goes on in the same log. Does not wait for it to serve.
    pub fn relaunch(&mut self) -> Result<(), String> {
        self.kill();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        self.child = cmd
            .spawn()
            .map_err(|e| format!("restarting {}: {e}", self.system.name()))?;
        Ok(())
    }

    /// How the process ended, if it has (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last [`LOG_TAIL_BYTES_MAX`] bytes of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `ruok` and `srvr` until both answer, the process exits, or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(format!(
                    "{} exited during start-up ({status}); its log {}:\n{}",
                    self.system.name(),
                    self.log.display(),
                    log_tail(&self.log)
                ));
            }
            let ruok = four_letter(&self.addr, "ruok").is_ok_and(|a| a == "imok");
            if ruok && four_letter(&self.addr, "srvr").is_ok_and(|a| a.contains("Mode:")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} on {} did not answer ruok within {} ms; its log {}:\n{}",
                    self.system.name(),
                    self.addr,
                    timeout.as_millis(),
                    self.log.display(),
                    log_tail(&self.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(READY_POLL_MS));
        }
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_s(&self) -> Result<f64, String> {
        cpu_s(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already gone is fine; either way reap it so no zombie or orphan is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // A member blocked in a stalled fsync cannot die (SIGKILL waits for the
        // fsync's answer): release the disks before the members are killed.
        for disk in &self.disks {
            disk.set(crate::faultfs::DiskFault::Healthy);
        }
    }
}

/// One system under test: a standalone server, or the members of an ensemble.
/// Dropping it stops every process.
#[derive(Debug)]
pub struct Deployment {
    pub system: System,
    /// Its processes; their client addresses, in this order, make the connect string
    /// (node `i` is `node{i+1}`, ZooKeeper's `myid`, in tables).
    pub nodes: Vec<ServerProcess>,
    /// Index into `nodes` of the leader found at start-up (None: standalone).
    pub leader: Option<usize>,
    /// The members' network namespaces, when they run in their own (declared after
    /// `nodes`: dropped after the processes in them are killed).
    pub lab: Option<crate::netns::Lab>,
    /// Each member's data directory as a FUSE pass-through that can stall or fail
    /// fsyncs (index: node), when asked for; unmounted after the members are killed.
    pub disks: Vec<crate::faultfs::FaultFs>,
}

impl Deployment {
    pub fn standalone(server: ServerProcess) -> Self {
        Deployment {
            system: server.system,
            nodes: vec![server],
            leader: None,
            lab: None,
            disks: Vec::new(),
        }
    }

    /// The connect string's servers (`host:port`), one per node.
    pub fn servers(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// CPU seconds each node has used so far (None where `/proc` was unreadable).
    pub fn cpu_s(&self) -> Vec<Option<f64>> {
        self.nodes.iter().map(|n| n.cpu_s().ok()).collect()
    }

    /// `zookeeper on 127.0.0.2:40001`, or one line per ensemble member with its role.
    pub fn describe(&self) -> String {
        if self.leader.is_none() && self.nodes.len() == 1 {
            return format!("{} on {}", self.system.name(), self.nodes[0].addr);
        }
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let role = if self.leader == Some(i) {
                    "leader"
                } else {
                    "follower"
                };
                format!("node{} {} {role}", i + 1, n.addr)
            })
            .collect();
        format!(
            "{} ensemble of {}: {}",
            self.system.name(),
            self.nodes.len(),
            nodes.join(", ")
        )
    }
}

/// Drop covers errors and panics; this covers ckbench being killed (SIGKILL, SIGTERM):
/// the kernel then sends the server SIGKILL, so no server outlives its comparison.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl,
    // which is async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The zoo.cfg [`ServerProcess::start`] writes for `spec` listening on `port`.
pub fn zoo_cfg(spec: &LaunchSpec, port: u16) -> String {
    let data = spec.dir.join("data");
    let mut s = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress={}\n\
         4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
        data.display(),
        spec.host
    );
    match spec.system {
        // forceSync=yes is ZooKeeper's default; said explicitly so nobody wonders.
        System::Zookeeper => s.push_str("admin.enableServer=false\nforceSync=yes\n"),
        System::Corekeeper => {
            if spec.cores > 0 {
                s.push_str(&format!("cores={}\n", spec.cores));
            }
            for kv in &spec.settings {
                s.push_str(kv);
                s.push('\n');
            }
        }
    }
    s
}

/// The command that runs a standalone ZooKeeper on the config file `cfg`.
pub fn zookeeper_command(cfg: &Path) -> Result<Command, String> {
    let mut c = zookeeper_java(&[
        "-Dzookeeper.forceSync=yes",
        "-Dlog4j.configuration=file:/dev/null",
    ])?;
    c.arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(cfg);
    Ok(c)
}

/// `java JVM_ARGS... -cp ZOOKEEPER_CLASSPATH`: the caller adds the main class and its
/// arguments.
pub fn zookeeper_java(jvm_args: &[&str]) -> Result<Command, String> {
    let cp = zookeeper_classpath()?;
    let mut c = Command::new("java");
    c.args(jvm_args).arg("-cp").arg(cp);
    Ok(c)
}

fn missing_jars() -> Vec<PathBuf> {
    ZK_JARS
        .iter()
        .map(|j| Path::new(JAVA_DIR).join(j))
        .filter(|p| !p.exists())
        .collect()
}

/// The class path of a standalone ZooKeeper; installs the Debian packages when they are
/// missing and we are root, otherwise says what to install.
pub fn zookeeper_classpath() -> Result<String, String> {
    let mut missing = missing_jars();
    let java = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !missing.is_empty() || !java {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let install = format!("apt-get install -y {}", ZK_PACKAGES.join(" "));
        if !root {
            return Err(format!(
                "Apache ZooKeeper 3.8 is not installed (missing java or {missing:?}); \
                 install it with `sudo {install}` (Debian/Ubuntu) and retry"
            ));
        }
        eprintln!("ckbench: ZooKeeper not found; running `{install}`");
        let ok = Command::new("apt-get")
            .args(["install", "-y"])
            .args(ZK_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        missing = missing_jars();
        if !ok.success() || !missing.is_empty() {
            return Err(format!(
                "`{install}` failed ({ok}); still missing {missing:?} \
                 (try `apt-get update` first)"
            ));
        }
    }
    let jars: Vec<String> = ZK_JARS.iter().map(|j| format!("{JAVA_DIR}/{j}")).collect();
    Ok(jars.join(":"))
}

/// The corekeeper binary: `explicit` if given, else `corekeeper` next to this program
/// (`cargo build --release -p engine -p bench` puts both in `target/release`).
pub fn find_corekeeper_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--corekeeper-bin {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating ckbench: {e}"))?;
    let dir = exe.parent().ok_or("ckbench has no directory")?;
    // Test binaries live one level down, in target/<profile>/deps.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join("corekeeper");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "no corekeeper binary next to {} : build it with \
         `cargo build --release -p engine -p bench` or pass --corekeeper-bin PATH",
        exe.display()
    ))
}

/// A free TCP port on `host` (bound and released; the server binds it right after).
pub fn free_port(host: &str) -> Result<u16, String> {
    let l = TcpListener::bind((host, 0)).map_err(|e| format!("binding {host}:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local address: {e}"))
}

/// Sends a four-letter word to `addr` and returns the answer.
pub fn four_letter(addr: &str, word: &str) -> Result<String, String> {
    let timeout = Duration::from_millis(FOUR_LETTER_TIMEOUT_MS_MAX);
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| format!("{addr}: not an ip:port ({e})"))?;
    let e = |what: &'static str| move |err: std::io::Error| format!("{word} {addr}: {what}: {err}");
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(e("connecting"))?;
    s.set_read_timeout(Some(timeout)).map_err(e("timeout"))?;
    s.write_all(word.as_bytes()).map_err(e("sending"))?;
    let mut buf = Vec::new();
    s.take(FOUR_LETTER_BYTES_MAX)
        .read_to_end(&mut buf)
        .map_err(e("reading"))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn log_tail(path: &Path) -> String {
    let text = fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL_BYTES_MAX);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a `/proc/<pid>/stat` line, in ticks.
pub fn parse_stat_ticks(stat: &str) -> Result<u64, String> {
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("no ')' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let get = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("stat field {} missing or not a number", i + 3))
    };
    Ok(get(11)? + get(12)?)
}

/// CPU seconds (user + system) of the process whose stat file is `path`
/// (`/proc/self/stat` for ckbench itself).
pub fn cpu_s(path: &str) -> Result<f64, String> {
    let s = fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(parse_stat_ticks(&s).map_err(|e| format!("{path}: {e}"))? as f64 / ticks_per_s())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces() {
        let line = "1234 (java (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 30 0 1 2 3";
        assert_eq!(parse_stat_ticks(line).unwrap(), 300);
        assert!(parse_stat_ticks("garbage").is_err());
        assert!(parse_stat_ticks("1 (x) S 1 2").is_err());
        assert!(cpu_s("/proc/self/stat").unwrap() >= 0.0);
    }

    #[test]
    fn systems_parse_and_configs_say_what_they_must() {
        assert_eq!(System::parse("zk").unwrap(), System::Zookeeper);
        assert!(System::parse("etcd").unwrap_err().contains("etcd"));
        let spec = LaunchSpec {
            system: System::Zookeeper,
            host: "127.0.0.2".into(),
            dir: "/w/zk".into(),
            corekeeper_bin: None,
            cores: 1,
            settings: vec!["flushesInflightMax=3".into()],
            log: None,
        };
        let zk = zoo_cfg(&spec, 5000);
        assert!(zk.contains("forceSync=yes") && zk.contains("clientPortAddress=127.0.0.2"));
        assert!(zk.contains("4lw.commands.whitelist=*") && zk.contains("dataDir=/w/zk/data"));
        let ck = zoo_cfg(
            &LaunchSpec {
                system: System::Corekeeper,
                cores: 2,
                ..spec.clone()
            },
            5001,
        );
        assert!(
            ck.contains("cores=2") && ck.contains("clientPort=5001"),
            "{ck}"
        );
        assert!(ck.contains("\nflushesInflightMax=3\n"), "{ck}");
        assert!(!zk.contains("flushesInflightMax"), "{zk}");
        let default = zoo_cfg(
            &LaunchSpec {
                system: System::Corekeeper,
                cores: 0,
                ..spec
            },
            5001,
        );
        assert!(
            !default.contains("cores="),
            "the server's default: {default}"
        );
    }

    #[test]
    fn a_server_that_exits_at_start_up_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("ckbench-servers-test-{}", std::process::id()));
        let spec = LaunchSpec {
            system: System::Corekeeper,
            host: "127.0.0.1".into(),
            dir: dir.clone(),
            // Exits at once with status 1 whatever its arguments.
            corekeeper_bin: Some("/bin/false".into()),
            cores: 1,
            settings: Vec::new(),
            log: None,
        };
        let e = ServerProcess::start(&spec).unwrap_err();
        let _ = fs::remove_dir_all(&dir);
        assert!(e.contains("exited during start-up"), "{e}");
        assert!(e.contains("server.log"), "{e}");
    }

    #[test]
    fn a_missing_binary_is_named() {
        let e = find_corekeeper_bin(Some(Path::new("/nonexistent/ck"))).unwrap_err();
        assert!(e.contains("/nonexistent/ck"), "{e}");
    }
}
