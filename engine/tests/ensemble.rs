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
         initLimit=30\nsyncLimit=10\n{lines}",
        dir.display(),
        client.port()
    )
}

fn start_ensemble(root: &Path, n: u64) -> Vec<Node> {
    let mut lines = String::new();
    for id in 1..=n {
        lines += &format!(
            "server.{id}=127.0.0.1:{}:{}\n",
            free_addr().port(),
            free_addr().port()
        );
    }
    let mut nodes: Vec<Node> = (1..=n)
        .map(|id| {
            let dir = root.join(format!("n{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("myid"), format!("{id}\n")).unwrap();
            let client = free_addr();
            let cfg = ensemble_config(&dir, client, &lines);
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
        if leaders.len() == 1 && modes.iter().all(|(_, m)| m == "leader" || m == "follower") {
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
