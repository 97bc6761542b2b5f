//! A user-space TCP proxy on every link between ensemble members, so a test can cut,
//! slow down or make lossy the link between two servers while their clients still
//! reach them (this kernel has no `tc netem`; a proxy needs neither root nor packages,
//! and works the same for corekeeper and ZooKeeper).
//!
//! How: member `a`'s zoo.cfg names, for every other member `b`, not `b`'s quorum and
//! election addresses but two listeners of this process ([`Mesh::server_lines`]); a
//! connection accepted there is dialled on to `b`'s real port and its bytes pumped
//! both ways. Both ZooKeeper and corekeeper identify a peer by the id it sends first,
//! not by its address, so nothing else changes.
//!
//! Contract:
//! - Faults are per unordered pair of members ([`LinkFault`]) and apply to every
//!   connection between them, whoever dialled, both directions, from the next chunk on.
//! - `cut`: no byte moves between the two (connections stay open, as TCP's would
//!   through a partition; what was read is held and delivered in order once healed,
//!   up to [`LINK_QUEUE_CHUNKS_MAX`] chunks per direction, then the sender's socket
//!   fills). A connection made while cut is accepted and then hears nothing.
//! - `delay_ms`: each chunk is delivered no earlier than that long after it was read,
//!   in order (a one-way delay, so a round trip costs twice).
//! - `loss_percent`: that share of chunks is held [`LOSS_RETRANSMIT_MS`] longer, and
//!   what follows waits behind it: how a lost segment looks to a TCP application
//!   (Linux's minimum retransmission timeout), never a hole in the stream.
//! - Dropping the mesh stops its listeners and closes every connection it carries.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::ensemble::NodePlan;

/// Bytes read at once from one side of a connection (one chunk).
pub const LINK_CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks held per direction of a connection (cut or delayed) before the proxy stops
/// reading and the sender's socket buffer fills.
pub const LINK_QUEUE_CHUNKS_MAX: usize = 256;
/// How much longer a "lost" chunk is held: Linux's minimum TCP retransmission timeout.
pub const LOSS_RETRANSMIT_MS: u64 = 200;
/// Longest one-way delay a link may be given.
pub const LINK_DELAY_MS_MAX: u64 = 10_000;
/// Longest the proxy waits to reach the real server before closing the accepted side.
pub const PROXY_DIAL_MS_MAX: u64 = 2_000;
/// Members a mesh joins at most (the proxies are `n * (n - 1) * 2` listeners).
pub const MESH_NODES_MAX: usize = 9;

const _: () = assert!(LINK_CHUNK_BYTES_MAX * LINK_QUEUE_CHUNKS_MAX <= 64 << 20);

/// What is wrong with the link between two members (the default: nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFault {
    pub cut: bool,
    pub delay_ms: u64,
    pub loss_percent: u8,
}

impl LinkFault {
    pub fn is_healthy(&self) -> bool {
        *self == LinkFault::default()
    }
}

/// One unordered pair's state, shared by its connections' pumps.
#[derive(Default)]
struct Link {
    fault: Mutex<LinkFault>,
    changed: Condvar,
    /// Chunks read so far (drives which ones are "lost").
    chunks: AtomicU64,
}

impl Link {
    fn get(&self) -> LinkFault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the mesh's threads share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Every open connection (both sockets), to close when the mesh is dropped.
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_conn: AtomicU64,
}

/// Proxies between every ordered pair of members' quorum and election ports.
pub struct Mesh {
    nodes: usize,
    /// Indexed by [`pair_index`].
    links: Vec<Arc<Link>>,
    /// (from id, to id) -> the proxy's (quorum, election) ports on 127.0.0.1.
    ports: HashMap<(u32, u32), (u16, u16)>,
    listeners: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

/// The host every proxy listens on.
pub const PROXY_HOST: &str = "127.0.0.1";

/// Index of the unordered pair {a, b} (1-based ids, a != b) among `n` members.
pub fn pair_index(a: u32, b: u32, n: usize) -> usize {
    debug_assert!(a != b && a >= 1 && b >= 1, "a pair of two members");
    let (lo, hi) = (a.min(b) as usize - 1, a.max(b) as usize - 1);
    debug_assert!(hi < n, "both members are in the mesh");
    lo * n + hi
}

impl Mesh {
    /// Starts the proxies for `plan`'s members (threads of this process).
    pub fn start(plan: &[NodePlan]) -> Result<Mesh, String> {
        let n = plan.len();
        if !(2..=MESH_NODES_MAX).contains(&n) {
            return Err(format!(
                "a mesh joins 2 to {MESH_NODES_MAX} members, not {n}"
            ));
        }
        let shared = Arc::new(Shared::default());
        let links: Vec<Arc<Link>> = (0..n * n).map(|_| Arc::new(Link::default())).collect();
        let mut mesh = Mesh {
            nodes: n,
            links,
            ports: HashMap::new(),
            listeners: Vec::new(),
            shared,
        };
        for from in plan {
            for to in plan.iter().filter(|t| t.id != from.id) {
                let link = mesh.links[pair_index(from.id, to.id, n)].clone();
                let mut ports = [0u16; 2];
                for (slot, port) in [to.quorum_port, to.election_port].into_iter().enumerate() {
                    let target = resolve(&to.host, port)?;
                    let l = TcpListener::bind((PROXY_HOST, 0))
                        .map_err(|e| format!("binding a link proxy on {PROXY_HOST}: {e}"))?;
                    let addr = l.local_addr().map_err(|e| e.to_string())?;
                    ports[slot] = addr.port();
                    mesh.listeners.push(addr);
                    let (link, shared) = (link.clone(), mesh.shared.clone());
                    std::thread::Builder::new()
                        .name(format!("mesh-{}-{}", from.id, to.id))
                        .spawn(move || accept_loop(l, target, link, shared))
                        .map_err(|e| format!("starting a link proxy: {e}"))?;
                }
                mesh.ports.insert((from.id, to.id), (ports[0], ports[1]));
            }
        }
        Ok(mesh)
    }

    /// The `server.N=` lines of member `me`'s zoo.cfg: its own real addresses, every
    /// other member's through its proxy from `me`.
    pub fn server_lines(&self, plan: &[NodePlan], me: usize) -> Vec<String> {
        let my_id = plan[me].id;
        plan.iter()
            .map(|n| match self.ports.get(&(my_id, n.id)) {
                Some((q, e)) if n.id != my_id => format!("server.{}={PROXY_HOST}:{q}:{e}", n.id),
                _ => n.server_line(),
            })
            .collect()
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Sets the fault of the link between members `a` and `b` (1-based ids).
    pub fn set(&self, a: u32, b: u32, fault: LinkFault) {
        debug_assert!(fault.delay_ms <= LINK_DELAY_MS_MAX, "delays are bounded");
        debug_assert!(fault.loss_percent <= 100, "a share");
        let link = &self.links[pair_index(a, b, self.nodes)];
        *link.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        link.changed.notify_all();
    }

    pub fn fault(&self, a: u32, b: u32) -> LinkFault {
        self.links[pair_index(a, b, self.nodes)].get()
    }

    /// Cuts every link between members on different sides; links inside a side are
    /// left as they are. A member on no side keeps all its links (a bridge).
    pub fn partition(&self, sides: &[Vec<u32>]) {
        for (i, x) in sides.iter().enumerate() {
            for y in &sides[i + 1..] {
                for &a in x {
                    for &b in y {
                        let f = LinkFault {
                            cut: true,
                            ..self.fault(a, b)
                        };
                        self.set(a, b, f);
                    }
                }
            }
        }
    }

    /// Every link healthy again.
    pub fn heal(&self) {
        for a in 1..=self.nodes as u32 {
            for b in a + 1..=self.nodes as u32 {
                self.set(a, b, LinkFault::default());
            }
        }
    }

    /// Connections open through the mesh now.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Pumps waiting on a cut link must see the stop.
        for l in &self.links {
            let _g = l.fault.lock();
            l.changed.notify_all();
        }
        // Wake each accept loop so it sees the stop.
        for a in &self.listeners {
            let _ = TcpStream::connect_timeout(a, Duration::from_millis(100));
        }
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (a, b) in conns.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to nothing"))
}

fn accept_loop(l: TcpListener, target: SocketAddr, link: Arc<Link>, shared: Arc<Shared>) {
    for conn in l.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let (link, shared) = (link.clone(), shared.clone());
        let _ = std::thread::Builder::new()
            .name("mesh-conn".into())
            .spawn(move || connect(client, target, link, shared));
    }
}

/// Dials the real server for an accepted connection and pumps both ways.
fn connect(client: TcpStream, target: SocketAddr, link: Arc<Link>, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_millis(PROXY_DIAL_MS_MAX))
    else {
        // The server is down: the dialler sees its connection closed, as a refused
        // dial would look once the proxy's accept is taken into account.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let clones = (|| Some((client.try_clone().ok()?, server.try_clone().ok()?)))();
    let Some(clones) = clones else { return };
    shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, clones);
    let pumps = [(&client, &server), (&server, &client)].map(|(from, to)| {
        let (from, to) = (from.try_clone().ok(), to.try_clone().ok());
        let (link, shared) = (link.clone(), shared.clone());
        std::thread::Builder::new()
            .name("mesh-pump".into())
            .spawn(move || {
                if let (Some(from), Some(to)) = (from, to) {
                    pump(from, to, &link, &shared);
                }
            })
            .ok()
    });
    for p in pumps.into_iter().flatten() {
        let _ = p.join();
    }
    shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

/// Moves bytes `from` -> `to` under the link's fault until either side ends.
fn pump(mut from: TcpStream, to: TcpStream, link: &Arc<Link>, shared: &Arc<Shared>) {
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(LINK_QUEUE_CHUNKS_MAX);
    let writer = {
        let (link, shared) = (link.clone(), shared.clone());
        let to = to.try_clone();
        std::thread::Builder::new()
            .name("mesh-write".into())
            .spawn(move || {
                if let Ok(to) = to {
                    deliver(rx, to, &link, &shared)
                }
            })
    };
    read_chunks(&mut from, &tx, link);
    drop(tx);
    if let Ok(w) = writer {
        let _ = w.join();
    }
    // The read side ended (or the write side failed): pass the end on.
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn read_chunks(from: &mut TcpStream, tx: &SyncSender<(Instant, Vec<u8>)>, link: &Link) {
    let mut buf = vec![0u8; LINK_CHUNK_BYTES_MAX];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let f = link.get();
        let k = link.chunks.fetch_add(1, Ordering::Relaxed);
        let lost = f.loss_percent > 0 && lost_chunk(k) < u64::from(f.loss_percent);
        let hold = f.delay_ms + if lost { LOSS_RETRANSMIT_MS } else { 0 };
        let due = Instant::now() + Duration::from_millis(hold);
        if tx.send((due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// A well-mixed 0..100 for chunk `k` (splitmix64), so loss is spread evenly.
fn lost_chunk(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 100
}

fn deliver(rx: Receiver<(Instant, Vec<u8>)>, mut to: TcpStream, link: &Link, shared: &Shared) {
    for (due, bytes) in rx {
        {
            let g = link.fault.lock().unwrap_or_else(|e| e.into_inner());
            let _g = link
                .changed
                .wait_while(g, |f| f.cut && !shared.stop.load(Ordering::SeqCst))
                .unwrap_or_else(|e| e.into_inner());
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if to.write_all(&bytes).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, h)
    }

    fn plan_on(a: SocketAddr, b: SocketAddr) -> Vec<NodePlan> {
        [a, b]
            .iter()
            .enumerate()
            .map(|(i, s)| NodePlan {
                id: i as u32 + 1,
                host: s.ip().to_string(),
                client_port: 1,
                quorum_port: s.port(),
                election_port: s.port(),
            })
            .collect()
    }

    fn port_in(line: &str) -> u16 {
        line.rsplit(':').nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn pairs_are_unordered_and_distinct() {
        let n = 5;
        let mut seen = std::collections::HashSet::new();
        for a in 1..=n as u32 {
            for b in a + 1..=n as u32 {
                assert_eq!(pair_index(a, b, n), pair_index(b, a, n));
                assert!(seen.insert(pair_index(a, b, n)));
            }
        }
    }

    #[test]
    fn lines_point_at_proxies_except_ones_own() {
        let (a, _) = echo_server();
        let (b, _) = echo_server();
        let plan = plan_on(a, b);
        let mesh = Mesh::start(&plan).unwrap();
        let lines = mesh.server_lines(&plan, 0);
        assert_eq!(lines[0], plan[0].server_line());
        assert!(lines[1].starts_with("server.2=127.0.0.1:"), "{lines:?}");
        assert_ne!(port_in(&lines[1]), b.port());
    }

    #[test]
    fn a_cut_link_holds_bytes_until_healed_and_keeps_their_order() {
        let (a, _) = echo_server();
        let (b, _) = echo_server();
        let plan = plan_on(a, b);
        let mesh = Mesh::start(&plan).unwrap();
        let q = port_in(&mesh.server_lines(&plan, 0)[1]);
        let mut c = TcpStream::connect((PROXY_HOST, q)).unwrap();
        c.write_all(b"one").unwrap();
        let mut got = [0u8; 3];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one");

        mesh.partition(&[vec![1], vec![2]]);
        assert!(mesh.fault(2, 1).cut);
        c.write_all(b"two").unwrap();
        c.write_all(b"six").unwrap();
        // Nothing comes back while cut (a short wait can only pass, never fail, if
        // the proxy were wrong it would show as the assertion below).
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut one = [0u8; 1];
        assert!(c.read(&mut one).is_err(), "bytes crossed a cut link");
        mesh.heal();
        c.set_read_timeout(None).unwrap();
        let mut got = [0u8; 6];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"twosix");
        drop(mesh);
        // The mesh closed the connection.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    }

    #[test]
    fn a_delayed_link_delivers_no_sooner_than_its_delay() {
        let (a, _) = echo_server();
        let (b, _) = echo_server();
        let plan = plan_on(a, b);
        let mesh = Mesh::start(&plan).unwrap();
        mesh.set(
            1,
            2,
            LinkFault {
                delay_ms: 50,
                ..LinkFault::default()
            },
        );
        let q = port_in(&mesh.server_lines(&plan, 0)[1]);
        let mut c = TcpStream::connect((PROXY_HOST, q)).unwrap();
        let t = Instant::now();
        c.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        c.read_exact(&mut got).unwrap();
        // Out and back through the proxy: two one-way delays at least.
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn loss_holds_about_its_share_of_chunks() {
        let lost = (0..10_000).filter(|&k| lost_chunk(k) < 10).count();
        assert!((800..1200).contains(&lost), "{lost}");
    }
}
