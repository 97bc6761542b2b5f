//! Listening sockets and per-address connection limits.
//!
//! Every core binds the client address with SO_REUSEPORT (glommio's listener always
//! sets it). That option would also let a second server bind the same port silently,
//! so start-up first asks [`probe_bind`] whether anybody already listens there.
//!
//! A plain test bind cannot answer that: after a `kill -9`, connections the old
//! listener accepted linger in TIME_WAIT and refuse an ordinary bind for a minute even
//! though nobody listens (they carry SO_REUSEPORT but not SO_REUSEADDR). The kernel's
//! socket table (`/proc/net/tcp`, `/proc/net/tcp6`) says exactly who listens.

use crate::config::CONNECTIONS_MAX;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::{Arc, Mutex};

/// How long start-up waits for listeners that no process owns any more: after a
/// `kill -9`, io_uring tears the dead process' sockets down asynchronously, and they
/// keep listening (and even completing handshakes) for up to about a second.
pub const ORPHAN_LISTENER_WAIT_MS_MAX: u64 = 10_000;

/// Backlog of every listening socket (glommio's own `bind` uses the same).
pub const LISTEN_BACKLOG_MAX: i32 = 1024;

/// A listener on `addr` for this executor, as glommio's `TcpListener::bind` makes one
/// (SO_REUSEPORT, so every core binds the client address) plus SO_REUSEADDR, as
/// ZooKeeper's listeners have: without it, connections another program (a ZooKeeper
/// that ran on the same port, say) left in TIME_WAIT refuse the bind for a minute.
/// Whether somebody else listens there is [`probe_bind`]'s and [`foreign_listeners`]'
/// question.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sk = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&SockAddr::from(addr))?;
    sk.listen(LISTEN_BACKLOG_MAX)?;
    // SAFETY: a bound, listening TCP socket whose only owner was `sk`.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(sk.into_raw_fd()) })
}

/// Refuses `addr` when a process already listens on it (on this address or a
/// wildcard); waits out listeners left by a dead process.
pub fn probe_bind(addr: SocketAddr) -> Result<(), String> {
    probe_bind_as("client address", addr)
}

/// [`probe_bind`] for an address that errors call `what` ("quorum address", ...).
pub fn probe_bind_as(what: &str, addr: SocketAddr) -> Result<(), String> {
    probe(what, addr, true)
}

/// Refuses `addr` when a live process listens on it, but does not wait for a dead
/// one's listeners: start-up asks this first, recovers its state meanwhile (a second
/// at 1M znodes, while a `kill -9`ed predecessor's sockets go away) and calls
/// [`probe_bind`] just before it binds.
pub fn probe_owner(what: &str, addr: SocketAddr) -> Result<(), String> {
    probe(what, addr, false)
}

fn probe(what: &str, addr: SocketAddr, wait: bool) -> Result<(), String> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(ORPHAN_LISTENER_WAIT_MS_MAX);
    let mut announced = false;
    loop {
        let inodes = listeners(&proc_tables(), addr);
        if inodes.is_empty() {
            return Ok(());
        }
        if let Some(pid) = inodes.iter().find_map(|i| socket_owner(*i)) {
            return Err(format!(
                "{what} {addr} is already in use by another process (pid {pid})"
            ));
        }
        if !wait {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{what} {addr} is still held by a dead process' sockets"
            ));
        }
        if !announced {
            tracing::info!(%addr, "waiting for a previous instance's sockets to close");
            announced = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Pids other than this process' that listen where `addr` would collide. Run after
/// binding: two servers started at the same moment both pass [`probe_bind`], and
/// SO_REUSEPORT then lets both bind; the later check catches it.
pub fn foreign_listeners(addr: SocketAddr) -> Vec<u32> {
    let me = std::process::id();
    let mut pids: Vec<u32> = listeners(&proc_tables(), addr)
        .into_iter()
        .filter_map(socket_owner)
        .filter(|p| *p != me)
        .collect();
    pids.dedup();
    pids
}

fn proc_tables() -> String {
    let mut tables = String::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        tables.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    tables
}

/// Whether the `/proc/net/tcp`-format `tables` hold a LISTEN socket that `addr` would
/// collide with: same port, and the same IP or a wildcard on either side.
pub fn listening_in(tables: &str, addr: SocketAddr) -> bool {
    !listeners(tables, addr).is_empty()
}

/// Socket inodes of the colliding listeners.
fn listeners(tables: &str, addr: SocketAddr) -> Vec<u64> {
    const LISTEN: &str = "0A";
    tables
        .lines()
        .filter_map(parse_line)
        .filter(|(ip, port, state, _)| {
            *state == LISTEN
                && *port == addr.port()
                && (*ip == addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified())
        })
        .map(|(_, _, _, inode)| inode)
        .collect()
}

/// The pid of a process holding socket `inode`, if any.
fn socket_owner(inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode` →
/// (local ip, local port, state, inode).
fn parse_line(line: &str) -> Option<(IpAddr, u16, &str, u64)> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (local, state) = (cols.get(1)?, *cols.get(3)?);
    let inode = cols.get(9).and_then(|i| i.parse().ok()).unwrap_or(0);
    let (ip_hex, port_hex) = local.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => IpAddr::from(u32::from_str_radix(ip_hex, 16).ok()?.to_le_bytes()),
        32 => {
            // Four little-endian 32-bit words.
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip_hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port, state, inode))
}

/// Counts open connections, in all and per client IP, across all cores (ZooKeeper's
/// `maxCnxns` and `maxClientCnxns`).
///
/// It is touched once per connect and once per close, never per request, so a
/// mutex-guarded map shared by the cores costs nothing measurable; a message to an
/// owning core would add a cross-core round trip to every accept instead.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    per_ip_max: u32,
    total_max: u32,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address already has this many connections (`maxClientCnxns`).
    PerIp(u32),
    /// The server already has this many connections (`maxCnxns`).
    Total(u32),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::PerIp(n) => write!(f, "{n} connections from this address (maxClientCnxns)"),
            Refused::Total(n) => write!(f, "{n} connections open in all (maxCnxns)"),
        }
    }
}

/// Proof that a connection was admitted; releases its slot when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    ip: IpAddr,
    limiter: ConnLimiter,
}

impl ConnLimiter {
    /// `per_ip_max = 0` means unlimited, as in ZooKeeper; `total_max = 0` means
    /// [`CONNECTIONS_MAX`] (never unlimited: it bounds the shard inbox).
    pub fn new(per_ip_max: u32, total_max: u32) -> Self {
        let total_max = match total_max {
            0 => CONNECTIONS_MAX,
            n => n.min(CONNECTIONS_MAX),
        };
        ConnLimiter {
            per_ip_max,
            total_max,
            counts: Arc::new(Mutex::new(Counts::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one more connection from `ip`, or says which limit it hit.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnSlot, Refused> {
        let mut counts = self.lock();
        if counts.total >= self.total_max {
            return Err(Refused::Total(counts.total));
        }
        let n = counts.per_ip.entry(ip).or_insert(0);
        if self.per_ip_max != 0 && *n >= self.per_ip_max {
            return Err(Refused::PerIp(*n));
        }
        *n += 1;
        counts.total += 1;
        Ok(ConnSlot {
            ip,
            limiter: self.clone(),
        })
    }

    /// Open connections from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Open connections in all.
    pub fn open(&self) -> u32 {
        self.lock().total
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut counts = self.limiter.lock();
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            debug_assert!(*n > 0, "a slot exists only for a counted connection");
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
            debug_assert!(counts.total > 0, "the total counts every per-ip slot");
            counts.total -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_tables_are_read_for_listeners_only() {
        let t = "  sl  local_address rem_address   st\n   0: 0100007F:0885 00000000:0000 0A 0\n   1: 0100007F:0886 0100007F:D3A0 06 0\n   2: 00000000000000000000000000000000:0887 00000000000000000000000000000000:0000 0A 0\n";
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(
            listening_in(t, a("127.0.0.1:2181")),
            "listener on 127.0.0.1:2181 (0x0885)"
        );
        assert!(
            listening_in(t, a("0.0.0.0:2181")),
            "wildcard collides with a specific address"
        );
        assert!(
            !listening_in(t, a("127.0.0.2:2181")),
            "another address on the same port is free"
        );
        assert!(
            !listening_in(t, a("127.0.0.1:2182")),
            "TIME_WAIT (06) is not a listener"
        );
        assert!(
            listening_in(t, a("127.0.0.9:2183")),
            "a v6 wildcard listener takes the port on every address"
        );
    }

    #[test]
    fn probe_refuses_a_port_in_use() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = probe_bind(addr).unwrap_err();
        assert!(
            err.contains("already in use") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        probe_bind(addr).unwrap();
    }

    #[test]
    fn limiter_counts_per_ip_and_releases_on_drop() {
        let lim = ConnLimiter::new(2, 0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = lim.admit(a).unwrap();
        let _s2 = lim.admit(a).unwrap();
        assert_eq!(lim.admit(a).unwrap_err(), Refused::PerIp(2));
        let _s3 = lim.admit(b).unwrap();
        drop(s1);
        assert_eq!(lim.open_from(a), 1);
        let _s4 = lim.admit(a).unwrap();
        assert!(ConnLimiter::new(0, 0).admit(a).is_ok());
        assert_eq!(lim.open(), 3);
    }

    #[test]
    fn limiter_caps_the_total_over_every_address() {
        let lim = ConnLimiter::new(0, 2);
        let ip = |i: u8| IpAddr::from([127, 0, 0, i]);
        let s1 = lim.admit(ip(1)).unwrap();
        let _s2 = lim.admit(ip(2)).unwrap();
        assert_eq!(lim.admit(ip(3)).unwrap_err(), Refused::Total(2));
        drop(s1);
        let _s3 = lim.admit(ip(3)).unwrap();
        assert_eq!(lim.open(), 2);
        assert_eq!(ConnLimiter::new(0, 0).total_max, CONNECTIONS_MAX);
        assert_eq!(ConnLimiter::new(0, u32::MAX).total_max, CONNECTIONS_MAX);
    }

    /// A port whose last user left a connection in TIME_WAIT (it closed first, as a
    /// killed server's sockets do) is taken again at once, as ZooKeeper takes it; a
    /// listener without SO_REUSEADDR (glommio's own bind) is refused there.
    #[test]
    fn a_port_with_connections_in_time_wait_is_bound_again() {
        use std::io::Read;
        let old = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = old.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (served, _) = old.accept().unwrap();
        drop(served); // the server side closes first: its end goes to TIME_WAIT
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        drop(client);
        drop(old);
        let (ours, glommios) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::runtime::exec::IO_MEMORY_BYTES_PER_CORE)
            .spawn(move || async move {
                let glommios = glommio::net::TcpListener::bind(addr).map(drop).is_ok();
                let ours = bind_listener(addr).map(drop).map_err(|e| e.to_string());
                (ours, glommios)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(
            !glommios,
            "the set-up left no TIME_WAIT connection on {addr}"
        );
        assert_eq!(ours, Ok(()), "bind_listener on {addr}");
    }
}
