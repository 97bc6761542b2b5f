//! Real `corekeeper` processes as a 3-node Zab ensemble on loopback: writes through
//! any server reach every server, reads see a session's own writes, the ensemble
//! survives `kill -9` of its leader and a restart of every node, and a restarted
//! server catches up. After each step every acknowledged write is checked on every
//! server. Waits are bounded (reaching a bound is a bug, not a slow machine).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, free_addr};
use transport::client::Client;
use transport::jute::CreateMode;

/// A bound for "this happens": elections take ~0.2-1 s here.
const WAIT_MAX: Duration = Duration::from_secs(60);
const SESSION_MS: i32 = 10_000;

struct Node {
    id: u64,
    dir: PathBuf,
    client: SocketAddr,
    cfg: String,
    server: Option<Server>,
}

fn ensemble_config(dir: &Path, client: SocketAddr, lines: &str) -> String {
    format!(
        "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\ntickTime=100\n\
         initLimit=30\nsyncLimit=10\n4lw.commands.whitelist=*\npreAllocSize=4096\n{lines}",
        dir.display(),
        client.port()
    )
}

fn start_ensemble(root: &Path, n: u64) -> Vec<Node> {
    start_ensemble_with(root, n, 0, "")
}

/// `voters` participants and then `observers` observers, with `extra` zoo.cfg lines.
fn start_ensemble_with(root: &Path, voters: u64, observers: u64, extra: &str) -> Vec<Node> {
    let mut lines = extra.to_string();
    for id in 1..=voters + observers {
        let role = if id > voters { ":observer" } else { "" };
        lines += &format!(
            "server.{id}=127.0.0.1:{}:{}{role}\n",
            free_addr().port(),
            free_addr().port()
        );
    }
    let mut nodes: Vec<Node> = (1..=voters + observers)
        .map(|id| {
            let dir = root.join(format!("n{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("myid"), format!("{id}\n")).unwrap();
            let client = free_addr();
            let mut cfg = ensemble_config(&dir, client, &lines);
            if id > voters {
                cfg += "peerType=observer\n";
            }
            Node {
                id,
                dir,
                client,
                cfg,
                server: None,
            }
        })
        .collect();
    for node in &mut nodes {
        start(node);
    }
    nodes
}

fn start(node: &mut Node) {
    node.server = Some(Server::start_with_config(&node.dir, node.client, &node.cfg));
}

fn four_letter(addr: SocketAddr, word: &str) -> String {
    let Ok(mut w) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = w.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = w.write_all(word.as_bytes());
    let mut text = String::new();
    let _ = w.read_to_string(&mut text);
    text
}

fn mode(node: &Node) -> String {
    four_letter(node.client, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
        .unwrap_or_default()
}

/// Waits until the running nodes have one leader and every other is a follower;
/// returns the leader's index.
fn settled(nodes: &[Node]) -> usize {
    let start = Instant::now();
    loop {
        let modes: Vec<(usize, String)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.server.is_some())
            .map(|(i, n)| (i, mode(n)))
            .collect();
        let leaders: Vec<usize> = modes
            .iter()
            .filter(|(_, m)| m == "leader")
            .map(|(i, _)| *i)
            .collect();
        let in_broadcast = |m: &String| m == "leader" || m == "follower" || m == "observer";
        if leaders.len() == 1 && modes.iter().all(|(_, m)| in_broadcast(m)) {
            return leaders[0];
        }
        assert!(
            start.elapsed() < WAIT_MAX,
            "no settled ensemble within {WAIT_MAX:?}: {modes:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A session on `node`, retrying while it is not serving yet.
fn client(node: &Node) -> Client {
    let start = Instant::now();
    loop {
        if let Ok(c) = Client::connect(node.client, SESSION_MS) {
            return c;
        }
        assert!(
            start.elapsed() < WAIT_MAX,
            "server {} does not take clients",
            node.id
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every acknowledged `(path, data)` reads back on every running node (after a
/// `sync`, so a follower that is still catching up is waited for, not excused).
fn check_everywhere(nodes: &[Node], acked: &[(String, Vec<u8>)]) {
    for node in nodes.iter().filter(|n| n.server.is_some()) {
        let start = Instant::now();
        loop {
            let mut c = client(node);
            let missing: Vec<&String> = acked
                .iter()
                .filter(|(p, d)| !matches!(c.get_data(p, false), Ok((Some(got), _)) if &got == d))
                .map(|(p, _)| p)
                .collect();
            if missing.is_empty() {
                // Closed, not left to expire: an expiry is a txn of its own, and
                // the DIFF/SNAP test counts txns.
                let _ = c.close();
                break;
            }
            assert!(
                start.elapsed() < WAIT_MAX,
                "server {} lacks acknowledged writes {missing:?}",
                node.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write_some(c: &mut Client, prefix: &str, n: usize, acked: &mut Vec<(String, Vec<u8>)>) {
    for i in 0..n {
        let path = format!("/{prefix}-{i}");
        let data = format!("{prefix}:{i}").into_bytes();
        c.create(&path, &data, CreateMode::Persistent)
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
        acked.push((path, data));
    }
}

#[test]
fn three_nodes_replicate_fail_over_and_recover() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble(root.path(), 3);
    let leader = settled(&nodes);
    let follower = (leader + 1) % 3;
    let mut acked = Vec::new();

    // Writes through a follower (forwarded) and through the leader; a session reads
    // its own writes at once, wherever it is connected.
    let mut cf = client(&nodes[follower]);
    write_some(&mut cf, "via-follower", 20, &mut acked);
    let (data, _) = cf.get_data("/via-follower-19", false).unwrap();
    assert_eq!(data.as_deref(), Some(&b"via-follower:19"[..]));
    let mut cl = client(&nodes[leader]);
    write_some(&mut cl, "via-leader", 20, &mut acked);
    drop((cf, cl));
    check_everywhere(&nodes, &acked);

    // The leader's mntr shows each follower's link: acks with their latency, bytes
    // both ways (published on the replication tick).
    let id = follower + 1;
    let acks = format!("ck_link_{id}_acks");
    let start_wait = Instant::now();
    while mntr(&nodes[leader], &acks).unwrap_or(0) == 0 {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "no {acks}: {}",
            four_letter(nodes[leader].client, "mntr")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for k in ["ack_us_p50", "ack_us_p99", "bytes_sent", "bytes_received"] {
        let v = mntr(&nodes[leader], &format!("ck_link_{id}_{k}"));
        assert!(v.is_some_and(|v| v > 0), "ck_link_{id}_{k} = {v:?}");
    }

    // kill -9 the leader: the other two elect a new one and take writes again.
    nodes[leader].server.as_mut().unwrap().kill();
    nodes[leader].server = None;
    let second = settled(&nodes);
    assert_ne!(second, leader, "a dead server cannot lead");
    let other = (0..3).find(|&i| i != leader && i != second).unwrap();
    let mut c = client(&nodes[other]);
    write_some(&mut c, "after-failover", 20, &mut acked);
    drop(c);
    check_everywhere(&nodes, &acked);

    // The old leader comes back as a follower and catches up.
    start(&mut nodes[leader]);
    settled(&nodes);
    check_everywhere(&nodes, &acked);

    // Every node restarts: the state comes back from the WAL and epoch files.
    for node in &mut nodes {
        node.server.as_mut().unwrap().kill();
        node.server = None;
    }
    for node in &mut nodes {
        start(node);
    }
    let leader = settled(&nodes);
    check_everywhere(&nodes, &acked);
    let mut c = client(&nodes[(leader + 2) % 3]);
    write_some(&mut c, "after-restart", 10, &mut acked);
    drop(c);
    check_everywhere(&nodes, &acked);
}

fn mntr(node: &Node, key: &str) -> Option<u64> {
    four_letter(node.client, "mntr")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t')?.parse().ok())
}

/// Waits until the leader's `mntr` counter `key` exceeds `base` (the returning
/// follower `f` was synchronised that way); the failure shows both servers' view.
fn wait_counter_above(nodes: &[Node], leader: usize, f: usize, key: &str, base: u64) {
    let start_wait = Instant::now();
    while mntr(&nodes[leader], key).unwrap() <= base {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "{key} did not grow for the returning follower: {}\n{}",
            four_letter(nodes[leader].client, "mntr"),
            four_letter(nodes[f].client, "srvr")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(node: &Node, sig: &str) {
    let pid = node.server.as_ref().unwrap().pid().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// A follower paused (SIGSTOP, a GC-pause stand-in) while the other two take writes
/// catches up once resumed; a follower that was down while more than
/// `commitLogCount` txns committed comes back by SNAP (the leader's image), one
/// that missed fewer by DIFF; the TRUNC path is the restart of the whole ensemble
/// in the test above when a leader dies with txns only it logged.
#[test]
fn paused_and_lagging_followers_catch_up_by_diff_and_snap() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, "commitLogCount=20\n");
    let leader = settled(&nodes);
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut acked = Vec::new();
    let mut c = client(&nodes[leader]);

    signal(&nodes[f1], "-STOP");
    write_some(&mut c, "while-paused", 30, &mut acked);
    signal(&nodes[f1], "-CONT");
    check_everywhere(&nodes, &acked);

    nodes[f2].server.as_mut().unwrap().kill();
    nodes[f2].server = None;
    write_some(&mut c, "while-down", 60, &mut acked);
    // Big znodes make the snapshot several times the leader's per-link snapshot
    // window (8 MiB), so it goes out paced, chunk by chunk, with the writes that
    // follow it held behind.
    for i in 0..24 {
        let path = format!("/big-{i}");
        let data = vec![b'a' + (i % 26) as u8; 900 << 10];
        c.create(&path, &data, CreateMode::Persistent)
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
        acked.push((path, data));
    }
    let snaps = mntr(&nodes[leader], "ck_syncs_snap").unwrap();
    start(&mut nodes[f2]);
    wait_counter_above(&nodes, leader, f2, "ck_syncs_snap", snaps);
    assert_eq!(
        settled(&nodes),
        leader,
        "a returning follower does not move the leader"
    );
    check_everywhere(&nodes, &acked);
    // It restarts from the snapshot it received and its log after it. (A new session:
    // the first one sat idle through the SNAP longer than tickTime=100 lets a session
    // live, 2 s.)
    nodes[f2].server.as_mut().unwrap().kill();
    nodes[f2].server = None;
    let mut c = client(&nodes[leader]);
    write_some(&mut c, "short-absence", 2, &mut acked);
    let diffs = mntr(&nodes[leader], "ck_syncs_diff").unwrap();
    start(&mut nodes[f2]);
    wait_counter_above(&nodes, leader, f2, "ck_syncs_diff", diffs);
    check_everywhere(&nodes, &acked);
}

/// Followers snapshot what they apply every `snapCount` txns, as the leader does
/// (they used to count only their own clients' writes, so a follower never took
/// one and a restart replayed its whole log), and restart from their snapshot.
#[test]
fn followers_take_snapshots_of_what_they_apply() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, "snapCount=20\n");
    let leader = settled(&nodes);
    let mut acked = Vec::new();
    let mut c = client(&nodes[leader]);
    write_some(&mut c, "counted", 60, &mut acked);
    check_everywhere(&nodes, &acked);
    for node in nodes.iter() {
        let start_wait = Instant::now();
        while mntr(node, "ck_snapshots").unwrap() == 0 {
            assert!(
                start_wait.elapsed() < WAIT_MAX,
                "server {} took no snapshot: {}",
                node.id,
                four_letter(node.client, "mntr")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let f = (leader + 1) % 3;
    let snaps = std::fs::read_dir(nodes[f].dir.join("snapshots"))
        .unwrap()
        .count();
    assert!(snaps >= 1, "follower {} has no snapshot file", nodes[f].id);
    nodes[f].server.as_mut().unwrap().kill();
    nodes[f].server = None;
    write_some(&mut c, "while-down", 5, &mut acked);
    start(&mut nodes[f]);
    check_everywhere(&nodes, &acked);
}

/// An observer learns every write, serves reads and forwards writes, and is counted
/// as an observer (not a voter) by the leader.
#[test]
fn an_observer_serves_reads_and_forwards_writes() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_ensemble_with(root.path(), 3, 1, "");
    let leader = settled(&nodes);
    assert_eq!(mode(&nodes[3]), "observer");
    let mut acked = Vec::new();
    let mut c = client(&nodes[3]);
    write_some(&mut c, "via-observer", 10, &mut acked);
    check_everywhere(&nodes, &acked);
    let start_wait = Instant::now();
    while mntr(&nodes[leader], "zk_synced_observers") != Some(1)
        || mntr(&nodes[leader], "zk_synced_followers") != Some(2)
    {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "the leader does not count its learners"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sessions are global: a client pinging a follower keeps its session (and its
/// ephemeral) alive at the leader, which expires sessions; once the client goes
/// silent the leader expires it and the ephemeral disappears everywhere. Another
/// server takes the session over when the client reconnects there.
#[test]
fn sessions_live_by_pings_at_any_server_and_expire_at_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_ensemble(root.path(), 3);
    let leader = settled(&nodes);
    let f = (leader + 1) % 3;
    let timeout_ms = 1_000;
    let mut c = Client::connect(nodes[f].client, timeout_ms).unwrap();
    c.create("/eph", b"x", CreateMode::Ephemeral).unwrap();
    // Three timeouts of pings at the follower only: the leader must not expire it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3 * timeout_ms as u64) {
        c.exists("/", false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut at_leader = client(&nodes[leader]);
    assert!(
        at_leader.exists("/eph", false).unwrap().is_some(),
        "expired despite pings"
    );
    // The session moves to the third server and keeps its ephemeral.
    let other = (leader + 2) % 3;
    let (sid, pw, zxid) = (c.session_id(), c.password(), c.last_zxid());
    let mut moved = Client::reconnect(nodes[other].client, sid, &pw, timeout_ms, zxid).unwrap();
    assert!(moved.exists("/eph", false).unwrap().is_some());
    // Silence: both connections stay open but nothing is sent; the leader expires it.
    let start_wait = Instant::now();
    while at_leader.exists("/eph", false).unwrap().is_some() {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "a silent session never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for node in &nodes {
        let start_wait = Instant::now();
        let mut c = client(node);
        while c.exists("/eph", false).unwrap().is_some() {
            assert!(
                start_wait.elapsed() < WAIT_MAX,
                "server {} keeps the ephemeral",
                node.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The follower the session moved to closes its connection once the leader's
    // expiry applies there (as the server a client is connected to does in ZooKeeper).
    let start_wait = Instant::now();
    loop {
        match moved.exists("/", false) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.to_string().contains("closed") => break,
            other => assert!(
                start_wait.elapsed() < WAIT_MAX,
                "the expired session's connection stays open: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
}

/// Writes pipelined through a follower (16 in flight) while the leader is killed:
/// every write the client saw acknowledged is on every server once a new leader
/// took over, and the ensemble takes writes again.
#[test]
fn pipelined_acknowledged_writes_survive_kill_9_of_the_leader() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use transport::client::Incoming;
    use transport::jute::{Acl, CreateRequest, Request};

    const INFLIGHT: usize = 16;
    const WRITES_MAX: usize = 200_000;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble(root.path(), 3);
    let leader = settled(&nodes);
    let f = (leader + 1) % 3;
    let mut c = client(&nodes[f]);
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut inflight = std::collections::VecDeque::new();
        let mut next = 0usize;
        loop {
            while inflight.len() < INFLIGHT && next < WRITES_MAX {
                let req = Request::Create(CreateRequest {
                    path: format!("/p-{next}"),
                    data: Some(format!("p:{next}").into_bytes()),
                    acl: Acl::open_unsafe(),
                    flags: CreateMode::Persistent.code(),
                });
                if c.send(&req).is_err() {
                    return acked;
                }
                inflight.push_back(next);
                next += 1;
            }
            match c.recv() {
                Ok(Incoming::Reply { header, .. }) => {
                    let i = inflight.pop_front().expect("a reply answers a request");
                    if header.err == 0 {
                        acked.push(i);
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Incoming::Event(_)) => {}
                Err(_) => return acked, // the follower lost its leader: outcome unknown
            }
            if inflight.is_empty() {
                return acked;
            }
        }
    });
    let start_wait = Instant::now();
    while count.load(Ordering::Relaxed) < 500 {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "pipelined writes do not flow"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes[leader].server.as_mut().unwrap().kill();
    nodes[leader].server = None;
    let acked: Vec<(String, Vec<u8>)> = writer
        .join()
        .unwrap()
        .into_iter()
        .map(|i| (format!("/p-{i}"), format!("p:{i}").into_bytes()))
        .collect();
    assert!(acked.len() >= 500);
    settled(&nodes);
    check_everywhere(&nodes, &acked);
    let mut more = acked;
    let mut c = client(&nodes[f]);
    write_some(&mut c, "after", 5, &mut more);
    check_everywhere(&nodes, &more[more.len() - 5..]);
}

/// Five voters survive the loss of any two (a minority), the leader among them: the
/// other three elect a leader and take writes; both come back and catch up.
#[test]
fn five_nodes_survive_the_loss_of_two_including_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble(root.path(), 5);
    let leader = settled(&nodes);
    let mut acked = Vec::new();
    let mut c = client(&nodes[(leader + 1) % 5]);
    write_some(&mut c, "five", 10, &mut acked);
    drop(c);
    let second = (leader + 2) % 5;
    for i in [leader, second] {
        nodes[i].server.as_mut().unwrap().kill();
        nodes[i].server = None;
    }
    let new_leader = settled(&nodes);
    assert!(new_leader != leader && new_leader != second);
    let mut c = client(&nodes[(leader + 3) % 5]);
    write_some(&mut c, "three-left", 10, &mut acked);
    drop(c);
    check_everywhere(&nodes, &acked);
    for i in [leader, second] {
        start(&mut nodes[i]);
    }
    settled(&nodes);
    check_everywhere(&nodes, &acked);
}

/// Reads `path` at `nodes[i]` through `c`, again on a fresh session while the
/// server refuses (a CRAQ member without a read lease answers `ConnectionLoss` or
/// closes the connection: retryable, never stale).
fn read_retrying(nodes: &[Node], i: usize, c: &mut Client, path: &str) -> Option<Vec<u8>> {
    let start = Instant::now();
    loop {
        match c.get_data(path, false) {
            Ok((d, _)) => return d,
            Err(e) => {
                assert!(start.elapsed() < WAIT_MAX, "server {}: {e}", nodes[i].id);
                std::thread::sleep(Duration::from_millis(20));
                *c = client(&nodes[i]);
            }
        }
    }
}

/// Runs `write` through `c` at `nodes[i]` until it is acknowledged; an outcome lost
/// with a connection is retried on a fresh session (`done` says whether an error
/// means it had taken effect).
fn write_retrying(
    nodes: &[Node],
    i: usize,
    c: &mut Client,
    mut write: impl FnMut(&mut Client) -> std::io::Result<()>,
    done: impl Fn(&std::io::Error) -> bool,
) {
    let start = Instant::now();
    loop {
        match write(c) {
            Ok(()) => return,
            Err(e) if done(&e) => return,
            Err(e) => {
                assert!(start.elapsed() < WAIT_MAX, "server {}: {e}", nodes[i].id);
                std::thread::sleep(Duration::from_millis(20));
                *c = client(&nodes[i]);
            }
        }
    }
}

/// Creates and updates `n` nodes through the running servers in turn; after each
/// acknowledgement every running server must read the new value at once.
fn craq_round(nodes: &[Node], prefix: &str, n: usize, acked: &mut Vec<(String, Vec<u8>)>) {
    let up: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].server.is_some())
        .collect();
    let mut clients: Vec<Client> = up.iter().map(|&i| client(&nodes[i])).collect();
    for i in 0..n {
        let path = format!("/{prefix}-{i}");
        for (step, value) in ["v1", "v2"].iter().enumerate() {
            let w = (i + step) % up.len();
            let data = format!("{prefix}:{i}:{value}").into_bytes();
            let (p, d) = (path.clone(), data.clone());
            if step == 0 {
                write_retrying(
                    nodes,
                    up[w],
                    &mut clients[w],
                    |c| c.create(&p, &d, CreateMode::Persistent).map(drop),
                    |e| e.to_string().contains("NodeExists"),
                );
            } else {
                write_retrying(
                    nodes,
                    up[w],
                    &mut clients[w],
                    |c| c.set_data(&p, &d, -1).map(drop),
                    |_| false,
                );
            }
            for (r, c) in clients.iter_mut().enumerate() {
                let got = read_retrying(nodes, up[r], c, &path);
                assert_eq!(
                    got.as_deref(),
                    Some(&data[..]),
                    "server {} read a stale {path} right after a write acknowledged \
                     at server {}",
                    nodes[up[r]].id,
                    nodes[up[w]].id
                );
            }
        }
        acked.push((path, format!("{prefix}:{i}:v2").into_bytes()));
    }
}

/// The running members in chain order (head first), from `mntr`.
fn chain_order(nodes: &[Node]) -> Vec<usize> {
    let mut at: Vec<(u64, usize)> = (0..nodes.len())
        .filter(|&i| nodes[i].server.is_some())
        .filter_map(|i| Some((mntr(&nodes[i], "ck_chain_position")?, i)))
        .collect();
    at.sort_unstable();
    at.into_iter().map(|(_, i)| i).collect()
}

/// Waits until every running member is in a chain of `n` members (positions
/// 0..n-1, each once).
fn wait_chain_members(nodes: &[Node], n: u64) {
    let start = Instant::now();
    loop {
        let up: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].server.is_some())
            .collect();
        let members: Vec<Option<u64>> = up
            .iter()
            .map(|&i| mntr(&nodes[i], "ck_chain_members"))
            .collect();
        let mut positions: Vec<Option<u64>> = up
            .iter()
            .map(|&i| mntr(&nodes[i], "ck_chain_position"))
            .collect();
        positions.sort_unstable();
        let want: Vec<Option<u64>> = (0..n).map(Some).collect();
        if members.iter().all(|m| *m == Some(n)) && positions == want {
            return;
        }
        assert!(
            start.elapsed() < WAIT_MAX,
            "no chain of {n} within {WAIT_MAX:?}: members {members:?}, positions {positions:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `replication=craq`: a write acknowledged anywhere is seen by a read at every
/// server right away, with no `sync` (Zab's follower reads may lag); the chain
/// re-forms around a killed member and takes it back, and a restart of every node
/// loses nothing.
#[test]
fn craq_reads_at_every_server_see_every_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, "replication=craq\n");
    settled(&nodes);
    let mut acked = Vec::new();
    craq_round(&nodes, "craq", 30, &mut acked);
    check_everywhere(&nodes, &acked);

    // kill -9 each member that is not the leader in turn (the middle, then the
    // tail): the leader removes it from the chain without an election, once its
    // lease has run out; it comes back through Zab's synchronisation, joins at the
    // tail and serves linearizable reads again.
    let leader = settled(&nodes);
    for step in 0..2 {
        let order = chain_order(&nodes);
        let gone = order[1 + step]; // the middle, then the tail
        nodes[gone].server.as_mut().unwrap().kill();
        nodes[gone].server = None;
        wait_chain_members(&nodes, 2);
        assert_eq!(settled(&nodes), leader, "a lost learner needs no election");
        craq_round(&nodes, &format!("craq-two-{step}"), 10, &mut acked);
        start(&mut nodes[gone]);
        wait_chain_members(&nodes, 3);
        assert_eq!(settled(&nodes), leader);
        check_everywhere(&nodes, &acked);
        craq_round(&nodes, &format!("craq-back-{step}"), 10, &mut acked);
    }

    // kill -9 the leader, the chain's head: an election, a new chain.
    nodes[leader].server.as_mut().unwrap().kill();
    nodes[leader].server = None;
    let second = settled(&nodes);
    assert_ne!(second, leader);
    wait_chain_members(&nodes, 2);
    craq_round(&nodes, "craq-new-head", 10, &mut acked);
    start(&mut nodes[leader]);
    wait_chain_members(&nodes, 3);
    check_everywhere(&nodes, &acked);

    // Every node restarts: nothing acknowledged is lost.
    restart_all(&mut nodes);
    check_everywhere(&nodes, &acked);
    craq_round(&nodes, "craq-restart", 10, &mut acked);
}

/// kill -9 of every node, then every node started again, until they settle.
fn restart_all(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        node.server.as_mut().unwrap().kill();
        node.server = None;
    }
    for node in nodes.iter_mut() {
        start(node);
    }
    settled(nodes);
}

/// `replication=chain` (plain chain replication, the CRAQ paper's baseline): every
/// server takes clients, but the tail orders every read: a member that is not the
/// tail asks the tail's commit point for each read (`ck_chain_queries`), so a write
/// acknowledged anywhere is read everywhere right after. A killed tail's predecessor
/// becomes tail without an election and holds every acknowledged write; the member
/// back from the kill joins at the tail; a restart of every node loses nothing.
#[test]
fn plain_chain_replication_orders_every_read_at_the_tail() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, "replication=chain\n");
    let leader = settled(&nodes);
    wait_chain_members(&nodes, 3);
    let order = chain_order(&nodes);
    assert_eq!(order[0], leader, "the head is the leader");
    let mut acked = Vec::new();
    let n = 10;
    craq_round(&nodes, "chain", n, &mut acked);
    // craq_round reads each path twice at every server, one read at a time.
    for (k, &i) in order.iter().enumerate() {
        let queries = mntr(&nodes[i], "ck_chain_queries").unwrap();
        if k + 1 == order.len() {
            assert_eq!(queries, 0, "the tail answers its reads itself");
        } else {
            assert!(
                queries >= 2 * n as u64,
                "server {} (chain position {k}) asked the tail {queries} times for {} reads",
                nodes[i].id,
                2 * n
            );
        }
    }

    let tail = order[2];
    nodes[tail].server.as_mut().unwrap().kill();
    nodes[tail].server = None;
    wait_chain_members(&nodes, 2);
    assert_eq!(settled(&nodes), leader, "a lost tail needs no election");
    check_everywhere(&nodes, &acked);
    craq_round(&nodes, "chain-two", n, &mut acked);

    start(&mut nodes[tail]);
    wait_chain_members(&nodes, 3);
    assert_eq!(
        chain_order(&nodes)[2],
        tail,
        "a returning member joins at the tail"
    );
    check_everywhere(&nodes, &acked);

    restart_all(&mut nodes);
    wait_chain_members(&nodes, 3);
    check_everywhere(&nodes, &acked);
    craq_round(&nodes, "chain-restart", n, &mut acked);
}

/// The last zxid a server reports (`srvr`'s `Zxid: 0x...`).
fn srvr_zxid(node: &Node) -> i64 {
    four_letter(node.client, "srvr")
        .lines()
        .find_map(|l| i64::from_str_radix(l.strip_prefix("Zxid: 0x")?, 16).ok())
        .unwrap_or(-1)
}

/// Counter rollover (`zab::leader`, "Counter rollover"): with epochs of 16 txns, 120
/// writes through a follower and the leader cross several epochs while the same
/// sessions stay connected (an election would close them) and the same server
/// leads; an observer follows. Every server then holds every write and has made the
/// last epoch current; a failover and a restart of every node start later epochs.
#[test]
fn the_zxid_counter_rolls_over_without_an_election() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_ensemble_with(root.path(), 3, 1, "zxidCounterMax=16\n");
    let leader = settled(&nodes);
    let first_epoch = srvr_zxid(&nodes[leader]) >> 32;
    let follower = (leader + 1) % 3;
    let mut cf = client(&nodes[follower]);
    let mut cl = client(&nodes[leader]);
    let mut acked = Vec::new();
    for round in 0..6 {
        write_some(&mut cf, &format!("f{round}"), 10, &mut acked);
        write_some(&mut cl, &format!("l{round}"), 10, &mut acked);
    }
    let (data, stat) = cf.get_data("/l5-9", false).unwrap();
    assert_eq!(data.as_deref(), Some(&b"l5:9"[..]));
    let last_epoch = stat.mzxid >> 32;
    assert!(
        last_epoch >= first_epoch + 6,
        "120 txns of 16 per epoch cross epochs: {first_epoch} -> {last_epoch}"
    );
    assert_eq!(settled(&nodes), leader, "the same server leads");
    // Published on the replication tick.
    let start_wait = Instant::now();
    while mntr(&nodes[leader], "ck_epoch_rollovers").unwrap_or(0) < 6 {
        assert!(
            start_wait.elapsed() < WAIT_MAX,
            "{}",
            four_letter(nodes[leader].client, "mntr")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((cf, cl));
    check_everywhere(&nodes, &acked);
    for node in &nodes[..3] {
        let current = std::fs::read_to_string(node.dir.join("currentEpoch")).unwrap();
        let current: i64 = current.trim().parse().unwrap();
        assert!(
            current >= last_epoch,
            "server {}: currentEpoch {current}",
            node.id
        );
    }

    // A new leader's epoch is above every rolled-over one (a majority promised it).
    nodes[leader].server.as_mut().unwrap().kill();
    nodes[leader].server = None;
    let second = settled(&nodes);
    let mut c = client(&nodes[second]);
    write_some(&mut c, "after-failover", 20, &mut acked);
    let (_, stat) = c.get_data("/after-failover-0", false).unwrap();
    assert!(stat.mzxid >> 32 > last_epoch, "{:#x}", stat.mzxid);
    drop(c);
    start(&mut nodes[leader]);
    restart_all(&mut nodes);
    check_everywhere(&nodes, &acked);
}

/// In CRAQ mode the end of an epoch's zxid counter is an election, as in ZooKeeper
/// (chain members persist from the chain, not through Zab's follower core, so they
/// would not promise the next epoch first): writes retried through it are all kept,
/// and reads at every server still see each acknowledged write at once.
#[test]
fn craq_moves_past_an_exhausted_zxid_counter_by_election() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_ensemble_with(root.path(), 3, 0, "replication=craq\nzxidCounterMax=16\n");
    let leader = settled(&nodes);
    let first_epoch = srvr_zxid(&nodes[leader]) >> 32;
    let mut acked = Vec::new();
    craq_round(&nodes, "roll", 20, &mut acked);
    check_everywhere(&nodes, &acked);
    let mut c = client(&nodes[settled(&nodes)]);
    let mzxid = mzxid_retrying(&nodes, &mut c, "/roll-19");
    assert!(
        mzxid >> 32 >= first_epoch + 2,
        "40 writes of 16 per epoch: epoch {first_epoch} -> {mzxid:#x}"
    );
}

/// The mzxid of `path`, retrying on a fresh session at the leader while the
/// ensemble re-elects.
fn mzxid_retrying(nodes: &[Node], c: &mut Client, path: &str) -> i64 {
    let start = Instant::now();
    loop {
        match c.get_data(path, false) {
            Ok((_, stat)) => return stat.mzxid,
            Err(e) => {
                assert!(start.elapsed() < WAIT_MAX, "{path}: {e}");
                std::thread::sleep(Duration::from_millis(20));
                *c = client(&nodes[settled(nodes)]);
            }
        }
    }
}

/// The digest of `super:test`.
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

type ReconfigAnswer = Result<(String, transport::jute::Stat), i32>;

/// zoo.cfg lines that let the superuser (`SUPER_DIGEST`) reconfigure.
fn reconfig_extra() -> String {
    format!("reconfigEnabled=true\nsuperDigest={SUPER_DIGEST}\n")
}

/// The `server.{id}=` line of the ensemble's zoo.cfg.
fn server_line(nodes: &[Node], id: u64) -> String {
    let key = format!("server.{id}=");
    let line = nodes[0].cfg.lines().find(|l| l.starts_with(&key));
    line.unwrap_or_else(|| panic!("no {key} line")).to_string()
}

/// Server 4, not started: zoo.cfg with the ensemble's `server.N` lines, then `lines`
/// (its own `server.4` line among them), data under `root/n4`.
fn joining_node(root: &Path, nodes: &[Node], client: SocketAddr, lines: &str) -> Node {
    let dir = root.join("n4");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("myid"), "4\n").unwrap();
    let servers: String = nodes[0]
        .cfg
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = ensemble_config(&dir, client, &format!("{servers}{lines}"));
    Node {
        id: 4,
        dir,
        client,
        cfg,
        server: None,
    }
}

/// Sends `reconfig`; the new config's text and its stat, or the error code.
fn reconfig(
    c: &mut Client,
    joining: Option<&str>,
    leaving: Option<&str>,
    from_config: i64,
) -> ReconfigAnswer {
    try_reconfig(c, joining, leaving, from_config).unwrap()
}

/// [`reconfig`], or the connection's error.
fn try_reconfig(
    c: &mut Client,
    joining: Option<&str>,
    leaving: Option<&str>,
    from_config: i64,
) -> std::io::Result<ReconfigAnswer> {
    use transport::jute::{ReconfigRequest, Request, Response};
    let (h, r) = c.call(&Request::Reconfig(ReconfigRequest {
        joining_servers: joining.map(str::to_string),
        leaving_servers: leaving.map(str::to_string),
        new_members: None,
        cur_config_id: from_config,
    }))?;
    Ok(match r {
        Response::GetData(d) if h.err == 0 => Ok((
            String::from_utf8(d.data.unwrap_or_default()).unwrap(),
            d.stat,
        )),
        _ => Err(h.err),
    })
}

fn config_text(c: &mut Client) -> String {
    let (data, _) = c.get_data("/zookeeper/config", false).unwrap();
    String::from_utf8(data.unwrap_or_default()).unwrap()
}

/// Dynamic reconfiguration (ZooKeeper 3.5+'s `reconfig`): `/zookeeper/config` holds
/// the members as ZooKeeper writes them; only the superuser may change them, and
/// ZooKeeper's errors come back for bad requests; an observer added by reconfig
/// starts, synchronises and serves reads; removed again, it stops; two voters in
/// one reconfig are refused; the config survives a restart of every node.
#[test]
fn reconfig_adds_and_removes_an_observer() {
    let root = tempfile::tempdir().unwrap();
    let extra = reconfig_extra();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, &extra);
    let leader = settled(&nodes);
    let follower = (leader + 1) % 3;
    let mut c = client(&nodes[follower]);
    let text = config_text(&mut c);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("server.1=127.0.0.1:") && lines[0].ends_with(":participant"));
    assert_eq!(lines[3], "version=0");

    // Errors as ZooKeeper 3.8 gives them: the form is checked first, then the ACL.
    let (q, e, cl) = (free_addr(), free_addr(), free_addr());
    let joining = format!(
        "server.4=127.0.0.1:{}:{}:observer;127.0.0.1:{}",
        q.port(),
        e.port(),
        cl.port()
    );
    const BAD_ARGUMENTS: i32 = -8;
    const NO_AUTH: i32 = -102;
    const BAD_VERSION: i32 = -103;
    const UNIMPLEMENTED: i32 = -6;
    assert_eq!(
        reconfig(&mut c, Some("some thing"), None, -1).err(),
        Some(BAD_ARGUMENTS)
    );
    assert_eq!(
        reconfig(&mut c, Some(&joining), None, -1).err(),
        Some(NO_AUTH)
    );
    auth_super(&mut c);
    assert_eq!(
        reconfig(&mut c, Some(&joining), None, 12345).err(),
        Some(BAD_VERSION)
    );

    // The observer joins the config; then its process starts and catches up. A
    // follower may report "follower" before the leader counts it in sync (ZooKeeper
    // has the same window): until then the leader answers NewConfigNoQuorum.
    const NEW_CONFIG_NO_QUORUM: i32 = -13;
    let start_wait = Instant::now();
    let (text, stat) = loop {
        match reconfig(&mut c, Some(&joining), None, 0) {
            Err(NEW_CONFIG_NO_QUORUM) => {
                assert!(start_wait.elapsed() < WAIT_MAX, "no synced quorum");
                std::thread::sleep(Duration::from_millis(50));
            }
            r => break r.unwrap(),
        }
    };
    assert!(text.contains(&format!("{joining}\n")), "{text}");
    assert!(
        text.ends_with(&format!("version={:x}", stat.mzxid)),
        "{text}"
    );
    assert_eq!(stat.version, -1);
    let mut acked = Vec::new();
    write_some(&mut c, "before-observer", 10, &mut acked);
    let q_e = format!("server.4=127.0.0.1:{}:{}:observer\n", q.port(), e.port());
    let mut observer = joining_node(
        root.path(),
        &nodes,
        cl,
        &format!("{extra}{q_e}peerType=observer\n"),
    );
    start(&mut observer);
    let start_wait = Instant::now();
    while mode(&observer) != "observer" {
        assert!(start_wait.elapsed() < WAIT_MAX, "server 4 never observes");
        std::thread::sleep(Duration::from_millis(50));
    }
    write_some(&mut c, "with-observer", 10, &mut acked);
    check_everywhere(std::slice::from_ref(&observer), &acked);
    assert_eq!(
        config_text(&mut client(&observer)),
        text,
        "the observer holds the config"
    );

    // Two voters in one reconfig are refused; removing the observer stops it.
    let voters = "server.5=127.0.0.1:1:2:participant;127.0.0.1:3,\
                  server.6=127.0.0.1:4:5:participant;127.0.0.1:6";
    assert_eq!(
        reconfig(&mut c, Some(voters), None, -1).err(),
        Some(UNIMPLEMENTED)
    );
    let (text, _) = reconfig(&mut c, None, Some("4"), -1).unwrap();
    assert!(!text.contains("server.4="), "{text}");
    let start_wait = Instant::now();
    while mode(&observer) == "observer" {
        assert!(start_wait.elapsed() < WAIT_MAX, "server 4 still observes");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
    drop(observer);

    // The config is replicated state: it survives a restart of every node.
    restart_all(&mut nodes);
    check_everywhere(&nodes, &acked);
    for node in &nodes {
        assert_eq!(config_text(&mut client(node)), text, "server {}", node.id);
    }
}

/// Authenticates `c` as the superuser (`SUPER_DIGEST`), who may reconfig.
fn auth_super(c: &mut Client) {
    let (h, _) = c
        .call(&transport::jute::Request::Auth(
            transport::jute::AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: Some(b"super:test".to_vec()),
            },
        ))
        .unwrap();
    assert_eq!(h.err, 0);
}

/// A client authenticated as the superuser.
fn super_client(node: &Node) -> Client {
    let mut c = client(node);
    auth_super(&mut c);
    c
}

/// Sends `reconfig` until it is answered: a lost connection or NEWCONFIGNOQUORUM (a
/// learner not counted in sync yet) is retried on a fresh session at `nodes[i]`.
fn reconfig_retrying(
    nodes: &[Node],
    i: usize,
    joining: Option<&str>,
    leaving: Option<&str>,
) -> String {
    const NEW_CONFIG_NO_QUORUM: i32 = -13;
    let start = Instant::now();
    loop {
        let mut c = super_client(&nodes[i]);
        match try_reconfig(&mut c, joining, leaving, -1) {
            Ok(Ok((text, _))) => return text,
            Ok(Err(NEW_CONFIG_NO_QUORUM)) | Err(_) => {}
            Ok(Err(e)) => panic!("reconfig {joining:?} {leaving:?}: error {e}"),
        }
        // A retry after a lost answer may find the change made already.
        let text = config_text(&mut super_client(&nodes[i]));
        let done = joining.is_some_and(|j| text.contains(j))
            || leaving.is_some_and(|l| !text.contains(&format!("server.{l}=")));
        if done {
            return text;
        }
        assert!(start.elapsed() < WAIT_MAX, "reconfig never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_mode(node: &Node, pred: impl Fn(&str) -> bool, what: &str) {
    let start = Instant::now();
    while !pred(&mode(node)) {
        assert!(
            start.elapsed() < WAIT_MAX,
            "server {}: never {what} ({})",
            node.id,
            mode(node)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Voters change by `reconfig`, one per request, under writes: a new voter joins
/// (started first, then added: a majority of the new voters is in sync without it) and
/// counts toward quorums at once: with an old follower down, only it makes the
/// majority. Then a follower leaves, then the leader itself: it steps down and the
/// two voters left elect a leader among themselves. No acknowledged write is lost
/// and the members survive a restart of every node.
#[test]
fn reconfig_changes_the_voters_one_at_a_time() {
    let root = tempfile::tempdir().unwrap();
    let extra = reconfig_extra();
    let mut nodes = start_ensemble_with(root.path(), 3, 0, &extra);
    let leader = settled(&nodes);
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut acked = Vec::new();
    write_some(&mut client(&nodes[f2]), "three-voters", 10, &mut acked);

    // Server 4 starts (its zoo.cfg lists the members and itself), then joins as a
    // voter: ZooKeeper's documented order. Until the reconfig commits no leader
    // takes it.
    let (q, e, cl) = (free_addr(), free_addr(), free_addr());
    let spec = format!("127.0.0.1:{}:{}:participant", q.port(), e.port());
    let joining = format!("server.4={spec};127.0.0.1:{}", cl.port());
    let mut four = joining_node(
        root.path(),
        &nodes,
        cl,
        &format!("{extra}server.4={spec}\n"),
    );
    start(&mut four);
    nodes.push(four);
    let text = reconfig_retrying(&nodes, f2, Some(&joining), None);
    assert!(text.contains(&format!("{joining}\n")), "{text}");
    wait_mode(&nodes[3], |m| m == "follower", "a follower");
    write_some(&mut client(&nodes[f2]), "four-voters", 10, &mut acked);

    // With f1 down, {leader, f2, 4} is the only majority of the four voters.
    nodes[f1].server.as_mut().unwrap().kill();
    nodes[f1].server = None;
    write_some(&mut client(&nodes[f2]), "needs-four", 10, &mut acked);
    check_everywhere(&nodes, &acked);
    start(&mut nodes[f1]);
    settled(&nodes);

    // f1 leaves: it stops following; three voters remain.
    let f1_id = nodes[f1].id.to_string();
    let text = reconfig_retrying(&nodes, f2, None, Some(&f1_id));
    assert!(!text.contains(&format!("server.{f1_id}=")), "{text}");
    wait_mode(&nodes[f1], |m| m != "follower", "out of the ensemble");
    // Added back while it runs: it learns so in its election and follows again;
    // then it leaves for good.
    let line = server_line(&nodes, nodes[f1].id);
    let back = format!("{line}:participant;127.0.0.1:{}", nodes[f1].client.port());
    reconfig_retrying(&nodes, f2, Some(&back), None);
    wait_mode(&nodes[f1], |m| m == "follower", "back in the ensemble");
    reconfig_retrying(&nodes, f2, None, Some(&f1_id));
    wait_mode(&nodes[f1], |m| m != "follower", "out of the ensemble");
    nodes[f1].server.as_mut().unwrap().kill();
    nodes[f1].server = None;
    write_some(&mut client(&nodes[f2]), "after-leave", 10, &mut acked);

    // The leader leaves: it steps down; f2 and 4 elect a leader of their own.
    let leader_id = nodes[leader].id.to_string();
    let text = reconfig_retrying(&nodes, f2, None, Some(&leader_id));
    assert!(!text.contains(&format!("server.{leader_id}=")), "{text}");
    wait_mode(&nodes[leader], |m| m != "leader", "stepped down");
    nodes[leader].server.as_mut().unwrap().kill();
    nodes[leader].server = None;
    let second = settled(&nodes);
    assert!(second == f2 || second == 3, "{second}");
    let mut c = client(&nodes[f2]);
    write_retrying(
        &nodes,
        f2,
        &mut c,
        |c| {
            c.create("/two-voters", b"2", CreateMode::Persistent)
                .map(drop)
        },
        |e| e.to_string().contains("NodeExists"),
    );
    acked.push(("/two-voters".to_string(), b"2".to_vec()));
    check_everywhere(&nodes, &acked);

    // Both restart: the members come from the replicated config, not zoo.cfg.
    let text = config_text(&mut client(&nodes[f2]));
    let mut left: Vec<Node> = nodes.into_iter().filter(|n| n.server.is_some()).collect();
    restart_all(&mut left);
    check_everywhere(&left, &acked);
    for node in &left {
        assert_eq!(config_text(&mut client(node)), text, "server {}", node.id);
    }
    write_some(&mut client(&left[0]), "after-restart", 5, &mut acked);
    check_everywhere(&left, &acked);
}

/// A server that missed the reconfig making it a voter (it was down) learns it
/// through the election when it starts: here the voters left without it have no
/// majority, so without it the ensemble would stay down.
#[test]
fn a_voter_that_missed_its_promotion_learns_it_in_the_election() {
    let root = tempfile::tempdir().unwrap();
    let extra = reconfig_extra();
    let mut nodes = start_ensemble_with(root.path(), 3, 1, &extra);
    let leader = settled(&nodes);
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut acked = Vec::new();
    write_some(&mut client(&nodes[leader]), "before", 5, &mut acked);

    // Observer 4 goes down; it is made a voter meanwhile, and f1 leaves.
    nodes[3].server.as_mut().unwrap().kill();
    nodes[3].server = None;
    let line = server_line(&nodes, 4);
    let spec = line.trim_end_matches(":observer");
    let joining = format!("{spec}:participant;127.0.0.1:{}", nodes[3].client.port());
    reconfig_retrying(&nodes, leader, Some(&joining), None);
    let f1_id = nodes[f1].id.to_string();
    reconfig_retrying(&nodes, leader, None, Some(&f1_id));
    write_some(&mut client(&nodes[leader]), "promoted", 5, &mut acked);
    for i in [f1, f2] {
        nodes[i].server.as_mut().unwrap().kill();
        nodes[i].server = None;
    }

    // Voters {leader, f2, 4} with f2 down: only 4 can make the majority, and its
    // own members (zoo.cfg's) still say it observes.
    start(&mut nodes[3]);
    let second = settled(&nodes);
    assert_eq!(second, leader, "the one with every txn leads");
    wait_mode(&nodes[3], |m| m == "follower", "a voter");
    write_some(&mut client(&nodes[3]), "after", 5, &mut acked);
    check_everywhere(&nodes, &acked);
}
