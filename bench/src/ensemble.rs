//! A 3-node Apache ZooKeeper 3.8 ensemble for `ckbench compare --shape 3node`: three
//! JVMs running `QuorumPeerMain`, each with its own directory, `myid` and `zoo.cfg`,
//! on its own loopback address.
//!
//! Contract:
//! - address and port plan ([`plan`]): node `n` (ZooKeeper's `myid`, 1-based) listens on
//!   `127.0.0.{HOST_OCTET_BASE + n}` (127.0.0.21..23: the standalone shape uses .2 and
//!   .3, the engine's tests .1, .2, .5 and .9); its client, quorum and election ports are
//!   [`CLIENT_PORT`], [`QUORUM_PORT`] and [`ELECTION_PORT`] when a bind on that address
//!   shows them free, else free ports picked by the kernel ([`crate::servers::free_port`]);
//! - every node: `forceSync=yes`, `tickTime`/`initLimit`/`syncLimit` of [`TICK_MS`],
//!   [`INIT_LIMIT_TICKS`], [`SYNC_LIMIT_TICKS`], a heap of at most [`JVM_HEAP_MB_MAX`]
//!   (three JVMs share the machine), its INFO log in `log_dir/zookeeper-node<n>.log`
//!   (kept after the comparison: `--out DIR/logs`);
//! - [`start`] returns only once `srvr` of every node shows exactly one `Mode: leader`
//!   and the others `Mode: follower`, and a create and a delete sent through every node
//!   (followers forward writes to the leader) succeeded; all within
//!   [`ENSEMBLE_READY_TIMEOUT_MS_MAX`]. Otherwise, or when a JVM exits first, the error
//!   gives each node's last `srvr` state and the tail of each log;
//! - the processes belong to the returned [`Deployment`] (and, while starting, to a
//!   vector dropped on every error path): dropping it kills and reaps all three, and
//!   `PR_SET_PDEATHSIG` kills them if ckbench itself is killed.
//!
//! The pure parts (plan, config text, `srvr` parsing, leader detection) are unit tested;
//! tests never start a JVM.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use transport::jute::ErrorCode;

use crate::driver::{Connector, Driver, SessionPlan};
use crate::mesh::Mesh;
use crate::runner::run_batch;
use crate::servers::{
    Deployment, READY_POLL_MS, ServerProcess, System, four_letter, free_port, zookeeper_java,
};
use crate::workload::{Op, OpKind};
use crate::zk::ZkConnector;

/// Members of the ensemble.
pub const ENSEMBLE_NODES: usize = 3;
/// Node `n` listens on `127.0.0.{HOST_OCTET_BASE + n}`.
pub const HOST_OCTET_BASE: u8 = 20;
/// Preferred ports on each node's own address (ZooKeeper's conventional ones).
pub const CLIENT_PORT: u16 = 2181;
pub const QUORUM_PORT: u16 = 2888;
pub const ELECTION_PORT: u16 = 3888;
/// ZooKeeper's tick; the limits below are in ticks.
pub const TICK_MS: u32 = 2_000;
/// Ticks a follower may take to connect and sync to the leader (JVMs start slowly on a
/// busy 2-core machine).
pub const INIT_LIMIT_TICKS: u32 = 10;
/// Ticks a follower may lag the leader before it is dropped.
pub const SYNC_LIMIT_TICKS: u32 = 5;
/// corekeeper's members listen on `127.0.0.{CK_HOST_OCTET_BASE + n}` (127.0.0.31..33),
/// so both systems' ensembles run side by side in one comparison.
pub const CK_HOST_OCTET_BASE: u8 = 30;
/// Heap of each JVM, MiB.
pub const JVM_HEAP_MB_MAX: u32 = 512;
/// Longest wait for a leader, followers and a write through every node.
pub const ENSEMBLE_READY_TIMEOUT_MS_MAX: u64 = 120_000;
/// The main class of an ensemble member.
pub const QUORUM_MAIN: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// Where one member listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// ZooKeeper's `myid`, 1-based.
    pub id: u32,
    pub host: String,
    pub client_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
}

impl NodePlan {
    /// `host:port` of its client port.
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    /// The `server.N=host:quorum:election` line every member's config carries.
    pub fn server_line(&self) -> String {
        format!(
            "server.{}={}:{}:{}",
            self.id, self.host, self.quorum_port, self.election_port
        )
    }
}

/// The plan of `nodes` members; `port(host, preferred)` says which port to use
/// ([`port_or_free`] in real use).
pub fn plan(
    nodes: usize,
    port: impl FnMut(&str, u16) -> Result<u16, String>,
) -> Result<Vec<NodePlan>, String> {
    plan_at(nodes, HOST_OCTET_BASE, port)
}

/// [`plan`] with node `n` on `127.0.0.{base + n}`.
pub fn plan_at(
    nodes: usize,
    base: u8,
    mut port: impl FnMut(&str, u16) -> Result<u16, String>,
) -> Result<Vec<NodePlan>, String> {
    if nodes == 0 || nodes > usize::from(u8::MAX - base) {
        return Err(format!("an ensemble of {nodes} nodes cannot be planned"));
    }
    (1..=nodes as u32)
        .map(|id| {
            let host = format!("127.0.0.{}", u32::from(base) + id);
            Ok(NodePlan {
                id,
                client_port: port(&host, CLIENT_PORT)?,
                quorum_port: port(&host, QUORUM_PORT)?,
                election_port: port(&host, ELECTION_PORT)?,
                host,
            })
        })
        .collect()
}

/// `preferred` if a listener can bind it on `host` now, else a free port the kernel
/// picks (bound and released; the JVM binds it right after).
pub fn port_or_free(host: &str, preferred: u16) -> Result<u16, String> {
    match TcpListener::bind((host, preferred)) {
        Ok(_) => Ok(preferred),
        Err(_) => free_port(host),
    }
}

/// How an ensemble is laid out: members, tick, and whether its peer links go through
/// a [`Mesh`] of proxies (for link faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub nodes: usize,
    pub tick_ms: u32,
    pub mesh: bool,
    /// corekeeper only: each member's wall clock can be stepped through the file
    /// [`clock_file`] names (the engine's fault hook, [`FAULT_CLOCK_FILE_ENV`]).
    pub clock_files: bool,
    /// corekeeper only: its `replication=` (`zab`, `craq` or `chain`; ZooKeeper has
    /// Zab alone).
    pub replication: &'static str,
    /// corekeeper only: each member's WAL flushes can be stalled through the file
    /// [`fsync_stall_file`] names (the engine's hook, [`FAULT_FSYNC_STALL_FILE_ENV`]).
    pub fsync_stall_files: bool,
    /// Each member in its own network namespace ([`crate::netns`]), so partitions are
    /// nftables drops; excludes `mesh` (whose proxies sit in the caller's namespace).
    pub netns: bool,
    /// Each member's data directory on a FUSE pass-through ([`crate::faultfs`]) whose
    /// fsyncs can be stalled or failed, for both systems.
    pub fault_fs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: ENSEMBLE_NODES,
            tick_ms: TICK_MS,
            mesh: false,
            clock_files: false,
            replication: "zab",
            fsync_stall_files: false,
            netns: false,
            fault_fs: false,
        }
    }
}

/// The engine's wall-clock fault hook (`engine::runtime::clock::FAULT_CLOCK_FILE_ENV`;
/// bench does not link the engine, tools' tests check the two agree).
pub const FAULT_CLOCK_FILE_ENV: &str = "CK_FAULT_CLOCK_FILE";

/// The engine's WAL flush stall hook (`engine::runtime::fault::FAULT_FSYNC_STALL_FILE_ENV`;
/// tools' tests check the two agree).
pub const FAULT_FSYNC_STALL_FILE_ENV: &str = "CK_FAULT_FSYNC_STALL_FILE";

/// The file that stalls member `id`'s WAL flushes (milliseconds, as text) under `dir`.
pub fn fsync_stall_file(dir: &Path, id: u32) -> std::path::PathBuf {
    dir.join(format!("node{id}")).join("fsync-stall-ms")
}

/// The file that steps member `id`'s wall clock (milliseconds, as text) under `dir`.
pub fn clock_file(dir: &Path, id: u32) -> std::path::PathBuf {
    dir.join(format!("node{id}")).join("clock-offset-ms")
}

/// The `server.N` lines of member `me`: every member's own, or through `mesh`.
pub fn server_lines(plan: &[NodePlan], me: usize, mesh: Option<&Mesh>) -> Vec<String> {
    match mesh {
        Some(m) => m.server_lines(plan, me),
        None => plan.iter().map(NodePlan::server_line).collect(),
    }
}

/// The settings both systems' members share: tick and limits, data, client address.
fn common_cfg(plan: &[NodePlan], me: usize, data_dir: &Path, tick_ms: u32) -> String {
    debug_assert!(me < plan.len(), "the member is one of the plan's");
    let node = &plan[me];
    format!(
        "tickTime={tick_ms}\ninitLimit={INIT_LIMIT_TICKS}\nsyncLimit={SYNC_LIMIT_TICKS}\n\
         dataDir={}\nclientPort={}\nclientPortAddress={}\n\
         4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
        data_dir.display(),
        node.client_port,
        node.host,
    )
}

/// `zoo.cfg` of member `me` (an index into `plan`), data in `data_dir`; `lines` are
/// its `server.N` lines ([`server_lines`]).
pub fn zoo_cfg(
    plan: &[NodePlan],
    me: usize,
    data_dir: &Path,
    tick_ms: u32,
    lines: &[String],
) -> String {
    let mut s = common_cfg(plan, me, data_dir, tick_ms);
    s.push_str("admin.enableServer=false\nforceSync=yes\n");
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// log4j 1.2 configuration: INFO to stdout (the node's log file); no location fields
/// (`%C`, `%L` walk the stack on every line).
pub const LOG4J_PROPERTIES: &str = "\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n
";

/// A member's role as `srvr` reports it (`Mode: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
    ReadOnly,
    Other(String),
}

impl Mode {
    pub fn name(&self) -> &str {
        match self {
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::Standalone => "standalone",
            Mode::ReadOnly => "read-only",
            Mode::Other(s) => s,
        }
    }
}

/// The `Mode:` line of a `srvr` (or `stat`) answer; None when the server is not serving
/// ("This ZooKeeper instance is not currently serving requests") or said nothing.
pub fn parse_mode(srvr: &str) -> Option<Mode> {
    let value = srvr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Mode:"))?
        .trim();
    Some(match value {
        "leader" => Mode::Leader,
        "follower" => Mode::Follower,
        "observer" => Mode::Observer,
        "standalone" => Mode::Standalone,
        "read-only" => Mode::ReadOnly,
        "" => return None,
        other => Mode::Other(other.to_string()),
    })
}

/// The leader's index when exactly one member leads and all others follow.
pub fn leader_of(modes: &[Option<Mode>]) -> Option<usize> {
    let leaders: Vec<usize> = (0..modes.len())
        .filter(|&i| modes[i] == Some(Mode::Leader))
        .collect();
    let followers = modes.iter().filter(|m| **m == Some(Mode::Follower)).count();
    match leaders[..] {
        [l] if followers + 1 == modes.len() => Some(l),
        // One server alone (a single `server.N` line) is standalone.
        [] if modes == [Some(Mode::Standalone)] => Some(0),
        _ => None,
    }
}

/// `node1 follower, node2 not serving, node3 leader`.
pub fn describe_modes(modes: &[Option<Mode>]) -> String {
    modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.as_ref().map_or("not serving", Mode::name);
            format!("node{} {role}", i + 1)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls `srvr` on every address every `poll` until one leads and the rest follow (its
/// index), `alive` fails (that error), or `deadline` passes (an error with the last
/// states).
pub fn wait_for_leader(
    addrs: &[String],
    deadline: Instant,
    poll: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<usize, String> {
    loop {
        alive()?;
        let modes: Vec<Option<Mode>> = addrs
            .iter()
            .map(|a| four_letter(a, "srvr").ok().and_then(|t| parse_mode(&t)))
            .collect();
        if let Some(leader) = leader_of(&modes) {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no leader with {} followers in time; last srvr: {}",
                addrs.len().saturating_sub(1),
                describe_modes(&modes)
            ));
        }
        std::thread::sleep(poll);
    }
}

/// Creates and deletes one znode through each address (one session per node), retried
/// every `poll` until it succeeds or `deadline` passes.
pub fn wait_for_writes(addrs: &[String], deadline: Instant, poll: Duration) -> Result<(), String> {
    loop {
        let err = match write_through_each(addrs) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("a write through every node failed: {err}"));
        }
        std::thread::sleep(poll);
    }
}

fn write_through_each(addrs: &[String]) -> Result<(), String> {
    let plans: Vec<SessionPlan> = addrs
        .iter()
        .enumerate()
        .map(|(global, server)| SessionPlan {
            global,
            server: server.clone(),
        })
        .collect();
    let zk = ZkConnector::new(None).with_failover(addrs.to_vec());
    let mut d = zk.connect(0, &plans).map_err(|e| e.to_string())?;
    // run_batch deals op `k` to session `k % n`: path k goes through node k.
    let path = |i: usize| format!("/ckbench-ensemble-ready-{}", i + 1);
    let creates = (0..addrs.len()).map(|i| Op::new(OpKind::Create, path(i)));
    let deletes = (0..addrs.len()).map(|i| Op::new(OpKind::Delete, path(i)));
    let r = run_batch(&mut d, creates, addrs.len(), ErrorCode::NodeExists)
        .and_then(|()| run_batch(&mut d, deletes, addrs.len(), ErrorCode::NoNode));
    let _ = d.close();
    r.map_err(|e| e.to_string())
}

/// Starts the ensemble: member directories under `dir`, logs under `log_dir`.
pub fn start(dir: &Path, log_dir: &Path) -> Result<Deployment, String> {
    start_with(dir, log_dir, Options::default()).map(|(d, _)| d)
}

/// [`start`] laid out as `o` says; the mesh (when asked for) must live as long as the
/// ensemble: its members reach each other through it.
pub fn start_with(
    dir: &Path,
    log_dir: &Path,
    o: Options,
) -> Result<(Deployment, Option<Mesh>), String> {
    let (plan, lab) = layout(&o, || plan(o.nodes, port_or_free))?;
    let mesh = o.mesh.then(|| Mesh::start(&plan)).transpose()?;
    let disks = member_disks(dir, &plan, &o)?;
    let mut nodes = Vec::with_capacity(plan.len());
    for me in 0..plan.len() {
        let lines = server_lines(&plan, me, mesh.as_ref());
        let (node_dir, cfg) = prepare_member(dir, &plan[me], |data| {
            zoo_cfg(&plan, me, data, o.tick_ms, &lines)
        })?;
        // On error the members started so far are dropped, which stops them (before
        // the lab they run in: declared later, dropped first).
        nodes.push(start_member(
            &plan[me],
            &node_dir,
            &cfg,
            log_dir,
            lab.as_ref(),
        )?);
    }
    let d = ready(Deployment {
        system: System::Zookeeper,
        nodes,
        leader: None,
        lab,
        disks,
    })?;
    Ok((d, mesh))
}

/// How corekeeper's members run: the binary, executors per member (0: its default)
/// and extra zoo.cfg lines.
#[derive(Debug, Clone)]
pub struct CkSpec {
    pub bin: std::path::PathBuf,
    /// Words before `--config` (`serve` when `bin` is ckjepsen).
    pub args: Vec<String>,
    pub cores: usize,
    pub settings: Vec<String>,
}

/// `zoo.cfg` of corekeeper member `me`: the same ensemble settings as ZooKeeper's
/// (tick, limits, its `server.N` lines), forceSync being corekeeper's default.
pub fn ck_zoo_cfg(
    plan: &[NodePlan],
    me: usize,
    data_dir: &Path,
    ck: &CkSpec,
    tick_ms: u32,
    lines: &[String],
) -> String {
    let mut s = common_cfg(plan, me, data_dir, tick_ms);
    if ck.cores > 0 {
        let _ = writeln!(s, "cores={}", ck.cores);
    }
    for kv in &ck.settings {
        let _ = writeln!(s, "{kv}");
    }
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// Starts a corekeeper ensemble of [`ENSEMBLE_NODES`] on 127.0.0.31.., as [`start`]
/// does ZooKeeper's (same readiness checks and errors).
pub fn start_corekeeper(dir: &Path, log_dir: &Path, ck: &CkSpec) -> Result<Deployment, String> {
    start_corekeeper_with(dir, log_dir, ck, Options::default()).map(|(d, _)| d)
}

/// [`start_corekeeper`] laid out as `o` says (see [`start_with`]).
pub fn start_corekeeper_with(
    dir: &Path,
    log_dir: &Path,
    ck: &CkSpec,
    o: Options,
) -> Result<(Deployment, Option<Mesh>), String> {
    let (plan, lab) = layout(&o, || plan_at(o.nodes, CK_HOST_OCTET_BASE, port_or_free))?;
    let mesh = o.mesh.then(|| Mesh::start(&plan)).transpose()?;
    let mut ck = ck.clone();
    if o.replication != "zab" {
        ck.settings.push(format!("replication={}", o.replication));
    }
    let ck = &ck;
    let disks = member_disks(dir, &plan, &o)?;
    let mut nodes = Vec::with_capacity(plan.len());
    for (me, node) in plan.iter().enumerate() {
        let lines = server_lines(&plan, me, mesh.as_ref());
        let (_, cfg) = prepare_member(dir, node, |data| {
            ck_zoo_cfg(&plan, me, data, ck, o.tick_ms, &lines)
        })?;
        let mut cmd = std::process::Command::new(&ck.bin);
        cmd.args(&ck.args).arg("--config").arg(&cfg);
        if o.clock_files {
            cmd.env(FAULT_CLOCK_FILE_ENV, clock_file(dir, node.id));
        }
        if o.fsync_stall_files {
            cmd.env(FAULT_FSYNC_STALL_FILE_ENV, fsync_stall_file(dir, node.id));
        }
        if let Some(lab) = &lab {
            cmd = lab.wrap(node.id, &cmd);
        }
        let log = log_dir.join(format!("corekeeper-node{}.log", node.id));
        nodes.push(ServerProcess::spawn(
            System::Corekeeper,
            node.client_addr(),
            cmd,
            log,
        )?);
    }
    let d = ready(Deployment {
        system: System::Corekeeper,
        nodes,
        leader: None,
        lab,
        disks,
    })?;
    Ok((d, mesh))
}

/// The members' plan and, with `o.netns`, the lab they run in (its own addresses and
/// ports; `loopback` plans them otherwise, probing ports, so only then is it called).
fn layout(
    o: &Options,
    loopback: impl FnOnce() -> Result<Vec<NodePlan>, String>,
) -> Result<(Vec<NodePlan>, Option<crate::netns::Lab>), String> {
    if !o.netns {
        return Ok((loopback()?, None));
    }
    if o.mesh {
        return Err("a mesh of proxies and network namespaces do not mix".into());
    }
    let lab = crate::netns::Lab::create(o.nodes)?;
    Ok((lab.plan(), Some(lab)))
}

/// With `o.fault_fs`, each member's data directory (`nodeN/data`) mounted as a FUSE
/// pass-through of `nodeN/data.disk`, before anything is written there.
fn member_disks(
    dir: &Path,
    plan: &[NodePlan],
    o: &Options,
) -> Result<Vec<crate::faultfs::FaultFs>, String> {
    if !o.fault_fs {
        return Ok(Vec::new());
    }
    plan.iter()
        .map(|node| {
            let node_dir = dir.join(format!("node{}", node.id));
            crate::faultfs::FaultFs::mount(&node_dir.join("data.disk"), &node_dir.join("data"))
        })
        .collect()
}

/// Waits for one leader and a write through every member.
fn ready(mut d: Deployment) -> Result<Deployment, String> {
    let addrs = d.servers();
    let deadline = Instant::now() + Duration::from_millis(ENSEMBLE_READY_TIMEOUT_MS_MAX);
    let poll = Duration::from_millis(READY_POLL_MS);
    let nodes = &mut d.nodes;
    let leader = wait_for_leader(&addrs, deadline, poll, || exited(nodes));
    let ready = leader.and_then(|l| wait_for_writes(&addrs, deadline, poll).map(|()| l));
    match ready {
        Ok(l) => {
            d.leader = Some(l);
            Ok(d)
        }
        Err(e) => Err(with_logs(&d, &e)),
    }
}

/// Member `node`'s directory under `dir`, as both systems lay it out: `nodeN/data`
/// with its `myid`, and `nodeN/zoo.cfg` written from `cfg(data dir)`. Returns the
/// member's directory and its zoo.cfg.
fn prepare_member(
    dir: &Path,
    node: &NodePlan,
    cfg: impl FnOnce(&Path) -> String,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let node_dir = dir.join(format!("node{}", node.id));
    let data = node_dir.join("data");
    fs::create_dir_all(&data).map_err(io_err(&data))?;
    let myid = data.join("myid");
    fs::write(&myid, format!("{}\n", node.id)).map_err(io_err(&myid))?;
    let cfg_path = node_dir.join("zoo.cfg");
    fs::write(&cfg_path, cfg(&data)).map_err(io_err(&cfg_path))?;
    Ok((node_dir, cfg_path))
}

fn io_err(what: &Path) -> impl FnOnce(std::io::Error) -> String {
    let what = what.display().to_string();
    move |e| format!("writing {what}: {e}")
}

/// Starts ZooKeeper member `node` from its prepared directory and zoo.cfg.
fn start_member(
    node: &NodePlan,
    node_dir: &Path,
    cfg: &Path,
    log_dir: &Path,
    lab: Option<&crate::netns::Lab>,
) -> Result<ServerProcess, String> {
    let log4j = node_dir.join("log4j.properties");
    fs::write(&log4j, LOG4J_PROPERTIES).map_err(io_err(&log4j))?;
    let heap = format!("-Xmx{JVM_HEAP_MB_MAX}m");
    let log4j_arg = format!("-Dlog4j.configuration=file:{}", log4j.display());
    let mut cmd = zookeeper_java(&[&heap, "-Dzookeeper.forceSync=yes", &log4j_arg])?;
    cmd.arg(QUORUM_MAIN).arg(cfg);
    if let Some(lab) = lab {
        cmd = lab.wrap(node.id, &cmd);
    }
    let log = log_dir.join(format!("zookeeper-node{}.log", node.id));
    ServerProcess::spawn(System::Zookeeper, node.client_addr(), cmd, log)
}

/// An error naming the first member that exited.
fn exited(nodes: &mut [ServerProcess]) -> Result<(), String> {
    for (i, n) in nodes.iter_mut().enumerate() {
        if let Some(status) = n.exit_status() {
            return Err(format!("node{} ({}) exited ({status})", i + 1, n.addr));
        }
    }
    Ok(())
}

fn with_logs(d: &Deployment, err: &str) -> String {
    let mut s = format!("{} ensemble did not start: {err}", d.system.name());
    for (i, n) in d.nodes.iter().enumerate() {
        let _ = write!(
            s,
            "\n--- node{} {} log {} (tail) ---\n{}",
            i + 1,
            n.addr,
            n.log.display(),
            n.log_tail()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn fixed(_host: &str, preferred: u16) -> Result<u16, String> {
        Ok(preferred)
    }

    #[test]
    fn plan_puts_each_node_on_its_own_address() {
        let p = plan(3, fixed).unwrap();
        let hosts: Vec<&str> = p.iter().map(|n| n.host.as_str()).collect();
        assert_eq!(hosts, ["127.0.0.21", "127.0.0.22", "127.0.0.23"]);
        assert_eq!(p[2].id, 3);
        assert_eq!(p[0].client_addr(), "127.0.0.21:2181");
        assert_eq!(p[1].server_line(), "server.2=127.0.0.22:2888:3888");
        // A busy preferred port is replaced by whatever the picker gives.
        let mut n = 40_000;
        let p = plan(3, |_, preferred| {
            n += 1;
            Ok(if preferred == QUORUM_PORT {
                n
            } else {
                preferred
            })
        })
        .unwrap();
        assert_eq!(p[0].server_line(), "server.1=127.0.0.21:40002:3888");
        assert!(
            plan(3, |h, _| Err(format!("{h} is full")))
                .unwrap_err()
                .contains("127.0.0.21 is full")
        );
        assert!(plan(0, fixed).is_err());
    }

    #[test]
    fn config_names_every_member_and_forces_sync() {
        let p = plan(3, fixed).unwrap();
        let lines = server_lines(&p, 1, None);
        let cfg = zoo_cfg(&p, 1, Path::new("/w/node2/data"), TICK_MS, &lines);
        for line in [
            "dataDir=/w/node2/data",
            "clientPort=2181",
            "clientPortAddress=127.0.0.22",
            "forceSync=yes",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "tickTime=2000",
            "initLimit=10",
            "syncLimit=5",
            "server.1=127.0.0.21:2888:3888",
            "server.2=127.0.0.22:2888:3888",
            "server.3=127.0.0.23:2888:3888",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line:?} in\n{cfg}");
        }
    }

    const SRVR_LEADER: &str = "Zookeeper version: 3.8.0-debian, built on 2022-05-15\n\
        Latency min/avg/max: 0/0.0/0\nReceived: 3\nSent: 2\nConnections: 1\n\
        Outstanding: 0\nZxid: 0x100000000\nMode: leader\nNode count: 5\n\
        Proposal sizes last/min/max: -1/-1/-1\n";

    #[test]
    fn modes_parse_from_srvr() {
        assert_eq!(parse_mode(SRVR_LEADER), Some(Mode::Leader));
        assert_eq!(parse_mode("Mode: follower\n"), Some(Mode::Follower));
        assert_eq!(parse_mode("Mode: standalone"), Some(Mode::Standalone));
        assert_eq!(parse_mode("Mode: read-only\n"), Some(Mode::ReadOnly));
        assert_eq!(
            parse_mode("Mode: weird\n"),
            Some(Mode::Other("weird".into()))
        );
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
        assert_eq!(parse_mode(""), None);
        assert_eq!(parse_mode("Mode:\n"), None);
    }

    #[test]
    fn leader_needs_one_leader_and_only_followers() {
        let (l, f) = (Some(Mode::Leader), Some(Mode::Follower));
        assert_eq!(leader_of(&[f.clone(), f.clone(), l.clone()]), Some(2));
        assert_eq!(leader_of(&[l.clone(), f.clone(), None]), None);
        assert_eq!(leader_of(&[l.clone(), l.clone(), f.clone()]), None);
        assert_eq!(leader_of(&[f.clone(), f.clone(), f.clone()]), None);
        assert_eq!(
            leader_of(&[l.clone(), f.clone(), Some(Mode::Observer)]),
            None
        );
        assert_eq!(
            describe_modes(&[f, None, l]),
            "node1 follower, node2 not serving, node3 leader"
        );
    }

    /// A fake member on 127.0.0.1: answers `srvr` with `answers[k]` on connection k
    /// (the last one from then on), for `connections` connections.
    fn fake(
        answers: Vec<&'static str>,
        connections: usize,
    ) -> (String, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            for k in 0..connections {
                let (mut s, _) = l.accept().unwrap();
                let mut word = [0u8; 4];
                s.read_exact(&mut word).unwrap();
                assert_eq!(&word, b"srvr");
                let a = answers[k.min(answers.len() - 1)];
                s.write_all(a.as_bytes()).unwrap();
            }
        });
        (addr, t)
    }

    #[test]
    fn waiting_ends_when_one_leads_and_the_others_follow() {
        let not_serving = "This ZooKeeper instance is not currently serving requests\n";
        // Node 2 serves from the third poll on; the others from the first.
        let (a, ta) = fake(vec!["Mode: follower\n"], 3);
        let (b, tb) = fake(vec![not_serving, not_serving, SRVR_LEADER], 3);
        let (c, tc) = fake(vec!["Mode: follower\n"], 3);
        let addrs = [a, b, c];
        let far = Instant::now() + Duration::from_secs(600);
        let mut polls = 0;
        let leader = wait_for_leader(&addrs, far, Duration::ZERO, || {
            polls += 1;
            Ok(())
        });
        assert_eq!(leader, Ok(1));
        assert_eq!(polls, 3);
        for t in [ta, tb, tc] {
            t.join().unwrap();
        }
    }

    #[test]
    fn waiting_reports_a_dead_member_and_the_last_states() {
        let (a, ta) = fake(vec!["Mode: follower\n"], 1);
        let past = Instant::now();
        let e = wait_for_leader(std::slice::from_ref(&a), past, Duration::ZERO, || Ok(()));
        assert!(e.unwrap_err().contains("node1 follower"));
        ta.join().unwrap();
        let e = wait_for_leader(&[a], past, Duration::ZERO, || Err("node1 exited".into()));
        assert_eq!(e, Err("node1 exited".into()));
    }
}
