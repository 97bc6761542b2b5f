//! Listening sockets and per-address connection limits.
//!
//! Every core binds the client address with SO_REUSEPORT (glommio's listener always
//! sets it). That option would also let a second server bind the same port silently,
//! so start-up first [`probe_bind`]s the address with an ordinary socket: a port held
//! by anybody (ZooKeeper, another corekeeper) is refused there with a clear message.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Binds `addr` without SO_REUSEPORT and closes it again, to turn "port in use" into a
/// start-up error instead of two servers sharing a port.
pub fn probe_bind(addr: SocketAddr) -> Result<(), String> {
    match std::net::TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "client address {addr} is already in use by another process"
        )),
        Err(e) => Err(format!("cannot listen on client address {addr}: {e}")),
    }
}

/// Counts open connections per client IP across all cores (ZooKeeper's
/// `maxClientCnxns`).
///
/// It is touched once per connect and once per close, never per request, so a
/// mutex-guarded map shared by the cores costs nothing measurable; a message to an
/// owning core would add a cross-core round trip to every accept instead.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    per_ip_max: u32,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Proof that a connection was admitted; releases its slot when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    ip: IpAddr,
    limiter: ConnLimiter,
}

impl ConnLimiter {
    /// `per_ip_max = 0` means unlimited, as in ZooKeeper.
    pub fn new(per_ip_max: u32) -> Self {
        ConnLimiter {
            per_ip_max,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Admits one more connection from `ip`, or says how many it already has.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnSlot, u32> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if self.per_ip_max != 0 && *n >= self.per_ip_max {
            return Err(*n);
        }
        *n += 1;
        Ok(ConnSlot {
            ip,
            limiter: self.clone(),
        })
    }

    /// Open connections from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            debug_assert!(*n > 0, "a slot exists only for a counted connection");
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_refuses_a_port_in_use() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = probe_bind(addr).unwrap_err();
        assert!(err.contains("already in use"), "{err}");
        drop(held);
        probe_bind(addr).unwrap();
    }

    #[test]
    fn limiter_counts_per_ip_and_releases_on_drop() {
        let lim = ConnLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = lim.admit(a).unwrap();
        let _s2 = lim.admit(a).unwrap();
        assert_eq!(lim.admit(a).unwrap_err(), 2);
        let _s3 = lim.admit(b).unwrap();
        drop(s1);
        assert_eq!(lim.open_from(a), 1);
        let _s4 = lim.admit(a).unwrap();
        assert!(ConnLimiter::new(0).admit(a).is_ok());
    }
}
