//! `ckctl cluster`: a local corekeeper ensemble for trying replication, failover,
//! faults and membership changes by hand: `up`, `status`, `kill N`, `restart N`,
//! `pause N`, `resume N`, `add [--observer]`, `remove N`, `down`.
//!
//! Contract:
//! - `up` writes one directory per member under `--dir` (default `ck-cluster`): its
//!   `myid`, `zoo.cfg` and `corekeeper.log`; member `n` listens on
//!   `127.0.0.{CLUSTER_HOST_OCTET_BASE + n}` with ZooKeeper's usual ports (client 2181,
//!   quorum 2888, election 3888), or free ones where those are taken. The members run
//!   detached (their own session), so they outlive `ckctl`; `DIR/cluster.txt` records
//!   each member's address, ports, role and pid for the other verbs.
//! - `up` returns once one member leads and every other serves (bounded by
//!   [`CLUSTER_READY_MS_MAX`]) and prints `status`; so does `restart`.
//! - `status` shows each member's mode and last zxid (from `srvr`) and whether its
//!   process runs, is paused (SIGSTOP) or is gone.
//! - `kill` is SIGKILL (a crash: what is not in the WAL is lost), `pause`/`resume`
//!   are SIGSTOP/SIGCONT (a stand-in for a GC pause or a stalled VM), `down` kills
//!   every member and, with `--purge`, removes the directory.
//! - `add` makes a new member (the next id) a voter, or an observer, by `reconfig`
//!   through a running member, then starts it; `remove N` takes member N out by
//!   `reconfig` and stops it (the leader too: the others elect a new one). Both
//!   return once the cluster serves again. Members run with `reconfigEnabled=true`
//!   and a superuser whose password is [`CLUSTER_SUPER_PASSWORD`] (a local demo on
//!   loopback, not a secret), which these verbs authenticate as.
//!
//! The plan, config text and state file are pure and unit-tested; the verbs are tested
//! against real processes in `tests/cluster.rs`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Member `n` listens on `127.0.0.{CLUSTER_HOST_OCTET_BASE + n}`.
pub const CLUSTER_HOST_OCTET_BASE: u8 = 40;
/// Members a local cluster may have.
pub const CLUSTER_NODES_MAX: usize = 9;
/// Longest wait for a leader and serving followers.
pub const CLUSTER_READY_MS_MAX: u64 = 60_000;
/// Longest wait for a killed member to be gone.
pub const CLUSTER_KILL_WAIT_MS_MAX: u64 = 10_000;
/// The cluster's tick: failover in about `syncLimit` ticks (1 s), not ZooKeeper's
/// default 10 s, for a demo on one machine.
pub const CLUSTER_TICK_MS: u32 = 200;
/// `preAllocSize` (KiB) of a local cluster's members: 8 MiB WAL segments, not 64 MiB,
/// since all of them pre-write segments on one disk.
pub const CLUSTER_PREALLOC_KIB: u64 = 8 << 10;
/// The superuser's password in a local cluster (`add` and `remove` reconfigure as
/// it; `ckctl --auth digest:super:ckctl` does the same by hand).
pub const CLUSTER_SUPER_PASSWORD: &str = "ckctl";
/// Longest wait for a reconfig that the leader refuses while a new member syncs.
pub const CLUSTER_RECONFIG_MS_MAX: u64 = 30_000;
const STATE_FILE: &str = "cluster.txt";
/// `up`'s `--set` lines, for the members `add` writes later.
const SETTINGS_FILE: &str = "settings";
const POLL: Duration = Duration::from_millis(50);

pub const USAGE: &str = "\
usage: ckctl cluster up [--nodes N] [--observers M] [--dir DIR] [--bin PATH [--bin-arg A]...]
                       [--set KEY=VALUE]... [--zookeeper]
       ckctl cluster status|down [--purge] [--dir DIR]
       ckctl cluster kill|restart|pause|resume|remove N [--dir DIR]
       ckctl cluster add [--observer] [--dir DIR]

A local corekeeper ensemble on 127.0.0.41.. (default 3 voters, in ./ck-cluster);
--zookeeper runs Apache ZooKeeper 3.8's QuorumPeerMain instead (Debian's jars), to compare.
The corekeeper binary is --bin, else $CK_BIN, else the one beside ckctl.";

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    pub host: String,
    pub client_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// 0: not started.
    pub pid: u32,
}

impl Member {
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    fn server_line(&self) -> String {
        let role = if self.observer { ":observer" } else { "" };
        format!(
            "server.{}={}:{}:{}{role}",
            self.id, self.host, self.quorum_port, self.election_port
        )
    }
}

/// The members' `zoo.cfg` for member `me` with data in `data`.
pub fn zoo_cfg(members: &[Member], me: usize, data: &Path, settings: &[String]) -> String {
    let m = &members[me];
    let mut s = format!(
        "tickTime={CLUSTER_TICK_MS}\ninitLimit=25\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
         clientPortAddress={}\n4lw.commands.whitelist=*\npreAllocSize={CLUSTER_PREALLOC_KIB}\n",
        data.display(),
        m.client_port,
        m.host
    );
    if m.observer {
        s.push_str("peerType=observer\n");
    }
    for kv in settings {
        let _ = writeln!(s, "{kv}");
    }
    for n in members {
        let _ = writeln!(s, "{}", n.server_line());
    }
    s
}

/// The state file's text: one member per line.
pub fn state_text(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {} {} {} {}\n",
                m.id,
                m.host,
                m.client_port,
                m.quorum_port,
                m.election_port,
                if m.observer {
                    "observer"
                } else {
                    "participant"
                },
                m.pid
            )
        })
        .collect()
}

/// Parses [`state_text`].
pub fn parse_state(text: &str) -> Result<Vec<Member>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let bad = || format!("bad line in {STATE_FILE}: {l:?}");
            if f.len() != 7 {
                return Err(bad());
            }
            Ok(Member {
                id: f[0].parse().map_err(|_| bad())?,
                host: f[1].to_string(),
                client_port: f[2].parse().map_err(|_| bad())?,
                quorum_port: f[3].parse().map_err(|_| bad())?,
                election_port: f[4].parse().map_err(|_| bad())?,
                observer: match f[5] {
                    "observer" => true,
                    "participant" => false,
                    _ => return Err(bad()),
                },
                pid: f[6].parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// What a member's process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Paused,
    Gone,
}

/// Threads of `pid` still listed (0 once it is gone).
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn proc_state(pid: u32) -> ProcState {
    if pid == 0 {
        return ProcState::Gone;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised name.
        Ok(s) => match s
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
        {
            Some("T") | Some("t") => ProcState::Paused,
            // A zombie leader whose other threads still exit (a big heap takes a
            // while to unmap) keeps the process's files open, the WAL's lock
            // included: a restart then found "wal directory is in use".
            Some("Z") | Some("X") if threads(pid) > 1 => ProcState::Running,
            Some("Z") | Some("X") | None => ProcState::Gone,
            Some(_) => ProcState::Running,
        },
        Err(_) => ProcState::Gone,
    }
}

struct Opts {
    dir: PathBuf,
    nodes: usize,
    observers: usize,
    bin: Option<PathBuf>,
    /// Words before `--config` (e.g. `serve` for `ckjepsen serve`, which runs
    /// corekeeper in its own process: what the tests use).
    bin_args: Vec<String>,
    settings: Vec<String>,
    purge: bool,
    target: Option<u32>,
    /// Apache ZooKeeper 3.8's `QuorumPeerMain` instead of corekeeper (for comparisons).
    zookeeper: bool,
    /// `add`: the new member observes.
    observer: bool,
}

fn parse(verb: &str, args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        dir: PathBuf::from("ck-cluster"),
        nodes: 3,
        observers: 0,
        bin: None,
        bin_args: Vec::new(),
        settings: Vec::new(),
        purge: false,
        target: None,
        zookeeper: false,
        observer: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--dir" => o.dir = PathBuf::from(val("--dir")?),
            "--nodes" => o.nodes = num(&val("--nodes")?, "--nodes")?,
            "--observers" => o.observers = num(&val("--observers")?, "--observers")?,
            "--bin" => o.bin = Some(PathBuf::from(val("--bin")?)),
            "--bin-arg" => o.bin_args.push(val("--bin-arg")?),
            "--set" => o.settings.push(val("--set")?),
            "--purge" => o.purge = true,
            "--zookeeper" => o.zookeeper = true,
            "--observer" => o.observer = true,
            n if o.target.is_none() && n.parse::<u32>().is_ok() => o.target = n.parse().ok(),
            other => return Err(format!("cluster {verb}: unexpected {other:?}")),
        }
    }
    if o.nodes == 0 || o.nodes + o.observers > CLUSTER_NODES_MAX {
        return Err(format!(
            "--nodes {} --observers {}: 1 to {CLUSTER_NODES_MAX} members",
            o.nodes, o.observers
        ));
    }
    let needs_target = matches!(verb, "kill" | "restart" | "pause" | "resume" | "remove");
    if needs_target != o.target.is_some() {
        return Err(format!(
            "cluster {verb}: {}",
            if needs_target {
                "which member? (a number)"
            } else {
                "takes no member number"
            }
        ));
    }
    Ok(o)
}

fn num(v: &str, flag: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("{flag} {v:?}: not a number"))
}

/// `ckctl cluster ...`; returns the exit status.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(verb) = args.first() else {
        let _ = writeln!(err, "{USAGE}");
        return 2;
    };
    let o = match parse(verb, &args[1..]) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "{e}\n{USAGE}");
            return 2;
        }
    };
    let r = match verb.as_str() {
        "up" => up(&o, out),
        "status" => status(&o.dir, out),
        "down" => down(&o),
        "kill" | "restart" | "pause" | "resume" => {
            member_verb(verb, &o, o.target.unwrap_or(0), out)
        }
        "add" => add(&o, out),
        "remove" => remove(&o, o.target.unwrap_or(0), out),
        "help" | "--help" => writeln!(out, "{USAGE}").map_err(|e| e.to_string()),
        other => Err(format!("cluster: unknown verb {other:?}\n{USAGE}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "ckctl cluster {verb}: {e}");
            1
        }
    }
}

fn corekeeper_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CK_BIN") {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("corekeeper")))
        .filter(|p| p.is_file());
    beside.ok_or_else(|| {
        "no corekeeper binary: build it (cargo build --release -p engine), or give --bin \
         PATH or CK_BIN"
            .to_string()
    })
}

fn load(dir: &Path) -> Result<Vec<Member>, String> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no cluster in {} ({e}); start one with `ckctl cluster up`",
            dir.display()
        )
    })?;
    parse_state(&text)
}

fn save(dir: &Path, members: &[Member]) -> Result<(), String> {
    let path = dir.join(STATE_FILE);
    std::fs::write(&path, state_text(members))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn up(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    if let Ok(members) = load(&o.dir)
        && members.iter().any(|m| proc_state(m.pid) != ProcState::Gone)
    {
        return Err(format!(
            "a cluster already runs in {} (`ckctl cluster down` first)",
            o.dir.display()
        ));
    }
    let n = o.nodes + o.observers;
    let plan = bench::ensemble::plan_at(n, CLUSTER_HOST_OCTET_BASE, bench::ensemble::port_or_free)?;
    let mut members: Vec<Member> = plan
        .iter()
        .map(|p| Member {
            id: p.id,
            host: p.host.clone(),
            client_port: p.client_port,
            quorum_port: p.quorum_port,
            election_port: p.election_port,
            observer: p.id as usize > o.nodes,
            pid: 0,
        })
        .collect();
    for i in 0..members.len() {
        let node = o.dir.join(format!("node{}", members[i].id));
        let data = node.join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        std::fs::write(data.join("myid"), format!("{}\n", members[i].id))
            .map_err(|e| format!("writing myid: {e}"))?;
        let data = std::fs::canonicalize(&data).map_err(|e| e.to_string())?;
        let mut settings = settings_of(o);
        if o.zookeeper {
            // ZooKeeper's own keys for what corekeeper does by default.
            settings.extend(["admin.enableServer=false".into(), "forceSync=yes".into()]);
        }
        std::fs::write(node.join("zoo.cfg"), zoo_cfg(&members, i, &data, &settings))
            .map_err(|e| format!("writing zoo.cfg: {e}"))?;
    }
    let launch = if o.zookeeper {
        zookeeper_launch()?
    } else {
        let bin = corekeeper_bin(o.bin.as_deref())?;
        let mut launch = vec![bin.display().to_string()];
        launch.extend(o.bin_args.iter().cloned());
        launch
    };
    std::fs::write(o.dir.join("launch"), launch.join("\n")).map_err(|e| e.to_string())?;
    std::fs::write(o.dir.join(SETTINGS_FILE), settings_of(o).join("\n"))
        .map_err(|e| e.to_string())?;
    for m in &mut members {
        m.pid = spawn(&o.dir, m.id, &launch)?;
    }
    save(&o.dir, &members)?;
    wait_ready(&members)?;
    status(&o.dir, out)
}

/// `sh -c 'exec java ... QuorumPeerMain "$1"' --config CFG`: spawn appends
/// `--config CFG`, which QuorumPeerMain does not take, so a shell drops the flag.
fn zookeeper_launch() -> Result<Vec<String>, String> {
    let digest = format!(
        "-Dzookeeper.DigestAuthenticationProvider.superDigest={}",
        super_digest()
    );
    let java = bench::servers::zookeeper_java(&["-Xmx512m", "-Dzookeeper.forceSync=yes", &digest])?;
    let mut cmd: Vec<String> = vec![java.get_program().to_string_lossy().into_owned()];
    cmd.extend(java.get_args().map(|a| a.to_string_lossy().into_owned()));
    cmd.push(bench::ensemble::QUORUM_MAIN.to_string());
    let quoted: Vec<String> = cmd.iter().map(|w| format!("'{w}'")).collect();
    Ok(vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("exec {} \"$1\"", quoted.join(" ")),
    ])
}

fn spawn(dir: &Path, id: u32, launch: &[String]) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let node = dir.join(format!("node{id}"));
    let log_path = node.join("corekeeper.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let (bin, args) = launch.split_first().ok_or("no launch command")?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--config")
        .arg(node.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // Its own session: the member outlives this ckctl and its terminal.
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("starting {bin}: {e}"))?;
    Ok(child.id())
}

/// `srvr`'s mode and zxid of a member, if it answers.
fn srvr(m: &Member) -> Option<(String, String)> {
    let text = bench::servers::four_letter(&m.client_addr(), "srvr").ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    Some((field("Mode:")?, field("Zxid:").unwrap_or_default()))
}

fn wait_ready(members: &[Member]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(CLUSTER_READY_MS_MAX);
    loop {
        let modes: Vec<Option<String>> = members
            .iter()
            .filter(|m| proc_state(m.pid) == ProcState::Running)
            .map(|m| srvr(m).map(|s| s.0))
            .collect();
        let leaders = modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count();
        let serving = modes
            .iter()
            .all(|m| matches!(m.as_deref(), Some("leader" | "follower" | "observer")));
        if leaders == 1 && serving {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no leader with serving followers within {CLUSTER_READY_MS_MAX} ms: modes {modes:?} \
                 (see each member's corekeeper.log)"
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn status(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let members = load(dir)?;
    let mut s = format!(
        "{:<5} {:<22} {:<10} {:<14} {:<8} {}\n",
        "node", "address", "mode", "zxid", "pid", "process"
    );
    for m in &members {
        let ps = proc_state(m.pid);
        let (mode, zxid) = match ps {
            ProcState::Running => srvr(m).unwrap_or(("not serving".into(), "-".into())),
            ProcState::Paused => ("paused".into(), "-".into()),
            ProcState::Gone => ("down".into(), "-".into()),
        };
        let process = match ps {
            ProcState::Running => "running",
            ProcState::Paused => "stopped (SIGSTOP)",
            ProcState::Gone => "gone",
        };
        let role = if m.observer { " (observer)" } else { "" };
        let _ = writeln!(
            s,
            "{:<5} {:<22} {:<10} {:<14} {:<8} {process}{role}",
            m.id,
            m.client_addr(),
            mode,
            zxid,
            m.pid
        );
    }
    let connect: Vec<String> = members.iter().map(Member::client_addr).collect();
    let _ = writeln!(s, "connect string: {}", connect.join(","));
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

fn signal(pid: u32, sig: i32) -> Result<(), String> {
    // SAFETY: kill(2) with a pid this cluster started; no memory is involved.
    let r = unsafe { libc::kill(pid as i32, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("kill {pid}: {}", std::io::Error::last_os_error()))
    }
}

fn kill_and_wait(pid: u32) -> Result<(), String> {
    if proc_state(pid) == ProcState::Gone {
        return Ok(());
    }
    signal(pid, libc::SIGKILL)?;
    let deadline = Instant::now() + Duration::from_millis(CLUSTER_KILL_WAIT_MS_MAX);
    while proc_state(pid) != ProcState::Gone {
        if Instant::now() > deadline {
            return Err(format!("process {pid} is still there after SIGKILL"));
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Signals are delivered asynchronously: wait until the process shows `want`.
fn wait_state(pid: u32, want: ProcState) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(CLUSTER_KILL_WAIT_MS_MAX);
    while proc_state(pid) != want {
        if Instant::now() > deadline {
            return Err(format!("process {pid} is not {want:?} after the signal"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn member_verb(verb: &str, o: &Opts, id: u32, out: &mut dyn Write) -> Result<(), String> {
    let mut members = load(&o.dir)?;
    let i = members
        .iter()
        .position(|m| m.id == id)
        .ok_or_else(|| format!("no member {id}"))?;
    let pid = members[i].pid;
    match verb {
        "kill" => kill_and_wait(pid)?,
        "pause" => {
            signal(pid, libc::SIGSTOP)?;
            wait_state(pid, ProcState::Paused)?;
        }
        "resume" => {
            signal(pid, libc::SIGCONT)?;
            wait_state(pid, ProcState::Running)?;
        }
        _ => {
            kill_and_wait(pid)?;
            let launch = launch_of(&o.dir)?;
            members[i].pid = spawn(&o.dir, id, &launch)?;
            save(&o.dir, &members)?;
            wait_ready(&members)?;
        }
    }
    status(&o.dir, out)
}

/// The command `up` started the members with (`DIR/launch`).
fn launch_of(dir: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(dir.join("launch")).map_err(|e| e.to_string())?;
    Ok(text.lines().map(str::to_string).collect())
}

/// `superDigest` for [`CLUSTER_SUPER_PASSWORD`].
fn super_digest() -> String {
    engine::tree::acl::digest(&format!("super:{CLUSTER_SUPER_PASSWORD}"))
}

/// The members' settings: `--set`'s, after reconfig enabled for `add` and `remove`
/// (with corekeeper's `superDigest`; ZooKeeper takes it as a JVM property).
fn settings_of(o: &Opts) -> Vec<String> {
    let mut s = vec!["reconfigEnabled=true".to_string()];
    if !o.zookeeper {
        s.push(format!("superDigest={}", super_digest()));
    }
    s.extend(o.settings.iter().cloned());
    s
}

/// Sends `reconfig` (as the superuser) through the first running member that takes
/// it; waits out NEWCONFIGNOQUORUM (a member still synchronising).
fn reconfigure(
    members: &[Member],
    joining: Option<&str>,
    leaving: Option<&str>,
) -> Result<String, String> {
    use transport::client::Client;
    use transport::jute::{AuthPacket, ErrorCode, ReconfigRequest, Request, Response};
    let deadline = Instant::now() + Duration::from_millis(CLUSTER_RECONFIG_MS_MAX);
    let mut last = "no running member takes clients".to_string();
    loop {
        for m in members
            .iter()
            .filter(|m| proc_state(m.pid) == ProcState::Running)
        {
            let Ok(mut c) = Client::connect(m.client_addr(), 10_000) else {
                continue;
            };
            let auth = Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: Some(format!("super:{CLUSTER_SUPER_PASSWORD}").into_bytes()),
            });
            if c.call(&auth).map(|(h, _)| h.err).unwrap_or(-1) != 0 {
                continue;
            }
            let req = Request::Reconfig(ReconfigRequest {
                joining_servers: joining.map(str::to_string),
                leaving_servers: leaving.map(str::to_string),
                new_members: None,
                cur_config_id: -1,
            });
            match c.call(&req) {
                Ok((h, Response::GetData(d))) if h.err == 0 => {
                    let _ = c.close();
                    return Ok(String::from_utf8_lossy(&d.data.unwrap_or_default()).into_owned());
                }
                Ok((h, _)) if h.err == ErrorCode::NewConfigNoQuorum as i32 => {
                    last = crate::format::keeper_error(h.err, "");
                }
                Ok((h, _)) => {
                    return Err(format!(
                        "reconfig refused by member {}: {}",
                        m.id,
                        crate::format::keeper_error(h.err, "")
                    ));
                }
                Err(e) => last = format!("member {}: {e}", m.id),
            }
        }
        if Instant::now() > deadline {
            return Err(format!("reconfig not taken: {last}"));
        }
        std::thread::sleep(POLL);
    }
}

fn add(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let mut members = load(&o.dir)?;
    let id = members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
    if id as usize > CLUSTER_NODES_MAX {
        return Err(format!(
            "a local cluster has at most {CLUSTER_NODES_MAX} members"
        ));
    }
    let plan = bench::ensemble::plan_at(
        id as usize,
        CLUSTER_HOST_OCTET_BASE,
        bench::ensemble::port_or_free,
    )?;
    let p = plan.last().ok_or("no address for the new member")?;
    let new = Member {
        id,
        host: p.host.clone(),
        client_port: p.client_port,
        quorum_port: p.quorum_port,
        election_port: p.election_port,
        observer: o.observer,
        pid: 0,
    };
    let role = if o.observer {
        "observer"
    } else {
        "participant"
    };
    let joining = format!(
        "server.{id}={}:{}:{}:{role};{}",
        new.host,
        new.quorum_port,
        new.election_port,
        new.client_addr()
    );
    reconfigure(&members, Some(&joining), None)?;
    members.push(new);
    let settings: Vec<String> = std::fs::read_to_string(o.dir.join(SETTINGS_FILE))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let node = o.dir.join(format!("node{id}"));
    let data = node.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    std::fs::write(data.join("myid"), format!("{id}\n")).map_err(|e| e.to_string())?;
    let data = std::fs::canonicalize(&data).map_err(|e| e.to_string())?;
    let me = members.len() - 1;
    std::fs::write(
        node.join("zoo.cfg"),
        zoo_cfg(&members, me, &data, &settings),
    )
    .map_err(|e| format!("writing zoo.cfg: {e}"))?;
    let launch = launch_of(&o.dir)?;
    members[me].pid = spawn(&o.dir, id, &launch)?;
    save(&o.dir, &members)?;
    wait_ready(&members)?;
    status(&o.dir, out)
}

fn remove(o: &Opts, id: u32, out: &mut dyn Write) -> Result<(), String> {
    let mut members = load(&o.dir)?;
    let i = members
        .iter()
        .position(|m| m.id == id)
        .ok_or_else(|| format!("no member {id}"))?;
    reconfigure(&members, None, Some(&id.to_string()))?;
    let gone = members.remove(i);
    if proc_state(gone.pid) == ProcState::Paused {
        let _ = signal(gone.pid, libc::SIGCONT);
    }
    kill_and_wait(gone.pid)?;
    save(&o.dir, &members)?;
    wait_ready(&members)?;
    status(&o.dir, out)
}

fn down(o: &Opts) -> Result<(), String> {
    let members = load(&o.dir)?;
    for m in &members {
        if proc_state(m.pid) == ProcState::Paused {
            let _ = signal(m.pid, libc::SIGCONT);
        }
        kill_and_wait(m.pid)?;
    }
    if o.purge {
        std::fs::remove_dir_all(&o.dir)
            .map_err(|e| format!("removing {}: {e}", o.dir.display()))?;
    } else {
        let none: Vec<Member> = members
            .into_iter()
            .map(|m| Member { pid: 0, ..m })
            .collect();
        save(&o.dir, &none)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<Member> {
        (1..=3)
            .map(|id| Member {
                id,
                host: format!("127.0.0.{}", 40 + id),
                client_port: 2181,
                quorum_port: 2888,
                election_port: 3888,
                observer: id == 3,
                pid: 100 + id,
            })
            .collect()
    }

    #[test]
    fn state_round_trips_and_bad_lines_are_named() {
        let m = members();
        assert_eq!(parse_state(&state_text(&m)).unwrap(), m);
        let e = parse_state("1 127.0.0.41 2181 x 3888 participant 5\n").unwrap_err();
        assert!(e.contains("bad line"), "{e}");
    }

    #[test]
    fn configs_list_every_member_and_mark_observers() {
        let m = members();
        let cfg = zoo_cfg(&m, 2, Path::new("/d"), &["sync=never".into()]);
        assert!(cfg.contains("server.1=127.0.0.41:2888:3888\n"));
        assert!(cfg.contains("server.3=127.0.0.43:2888:3888:observer\n"));
        assert!(cfg.contains("peerType=observer\n") && cfg.contains("sync=never\n"));
        assert!(cfg.contains("clientPortAddress=127.0.0.43\n"));
        assert!(!zoo_cfg(&m, 0, Path::new("/d"), &[]).contains("peerType"));
    }

    #[test]
    fn verbs_check_their_arguments() {
        assert!(parse("kill", &[]).is_err());
        assert!(parse("status", &["2".into()]).is_err());
        assert_eq!(parse("pause", &["2".into()]).unwrap().target, Some(2));
        assert!(parse("up", &["--nodes".into(), "20".into()]).is_err());
        assert_eq!(proc_state(0), ProcState::Gone);
        assert_eq!(proc_state(std::process::id()), ProcState::Running);
    }
}
