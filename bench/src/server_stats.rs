//! Server-side counters around a run: the `mntr` four-letter word of every server,
//! read before and after, and their differences.
//!
//! Contract: `mntr` answers `key<TAB>value` lines (Apache ZooKeeper and corekeeper
//! alike). Every key whose value parses as a number on both sides gets a delta
//! (`after - before`); for counters (`zk_packets_received`, `ck_wal_flushes`) that is
//! the work done during the run, for gauges the change. Per-core profile: keys named
//! `ck_core_<n>_<metric>` (the convention corekeeper's per-core counters are to use) are
//! grouped into a core × metric table. A server that refuses `mntr` (not in
//! `4lw.commands.whitelist`) only costs a warning.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest `mntr` answer read.
pub const MNTR_BYTES_MAX: usize = 1 << 20;
/// Longest wait for a connect or the answer.
pub const MNTR_TIMEOUT_MS_MAX: u64 = 2_000;

/// One server's `mntr` before and after a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    pub server: String,
    pub before: BTreeMap<String, String>,
    pub after: BTreeMap<String, String>,
}

impl ServerStats {
    /// `after - before` of every key numeric on both sides.
    pub fn deltas(&self) -> BTreeMap<String, f64> {
        self.after
            .iter()
            .filter_map(|(k, a)| {
                let b = self.before.get(k)?.parse::<f64>().ok()?;
                Some((k.clone(), a.parse::<f64>().ok()? - b))
            })
            .collect()
    }

    /// The per-core deltas: core number → metric → delta, from `ck_core_<n>_<metric>`.
    pub fn per_core(&self) -> BTreeMap<u32, BTreeMap<String, f64>> {
        let mut out: BTreeMap<u32, BTreeMap<String, f64>> = BTreeMap::new();
        for (k, v) in self.deltas() {
            let Some(rest) = k.strip_prefix("ck_core_") else {
                continue;
            };
            let Some((core, metric)) = rest.split_once('_') else {
                continue;
            };
            let Ok(core) = core.parse::<u32>() else {
                continue;
            };
            out.entry(core).or_default().insert(metric.to_string(), v);
        }
        out
    }
}

/// Parses `key<TAB>value` lines (other lines are ignored).
pub fn parse_mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Sends `mntr` to `server` (`host:port`) and parses the answer.
pub fn mntr(server: &str) -> Result<BTreeMap<String, String>, String> {
    let timeout = Duration::from_millis(MNTR_TIMEOUT_MS_MAX);
    let e = |what: &str| {
        let what = format!("mntr {server}: {what}");
        move |err: std::io::Error| format!("{what}: {err}")
    };
    let addr = server
        .to_socket_addrs()
        .map_err(e("resolving"))?
        .next()
        .ok_or_else(|| format!("mntr {server}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(e("connecting"))?;
    s.set_read_timeout(Some(timeout)).map_err(e("timeout"))?;
    s.write_all(b"mntr").map_err(e("sending"))?;
    let mut buf = Vec::new();
    s.take(MNTR_BYTES_MAX as u64)
        .read_to_end(&mut buf)
        .map_err(e("reading"))?;
    let text = String::from_utf8_lossy(&buf);
    let map = parse_mntr(&text);
    if map.is_empty() {
        let first = text.lines().next().unwrap_or("no answer");
        return Err(format!(
            "mntr {server}: {first} (is mntr in 4lw.commands.whitelist?)"
        ));
    }
    Ok(map)
}

/// `mntr` of each server; failures become warnings and `None`.
pub fn snapshot(
    servers: &[String],
    warnings: &mut Vec<String>,
) -> Vec<Option<BTreeMap<String, String>>> {
    servers
        .iter()
        .map(|s| mntr(s).map_err(|e| warnings.push(e)).ok())
        .collect()
}

/// Pairs the snapshots taken before and after into [`ServerStats`].
pub fn pair(
    servers: &[String],
    before: Vec<Option<BTreeMap<String, String>>>,
    after: Vec<Option<BTreeMap<String, String>>>,
) -> Vec<ServerStats> {
    servers
        .iter()
        .zip(before.into_iter().zip(after))
        .filter_map(|(server, (b, a))| {
            Some(ServerStats {
                server: server.clone(),
                before: b?,
                after: a?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const BEFORE: &str = "zk_version\t3.8.0\nzk_packets_received\t100\nck_core_0_requests\t10\nck_core_1_requests\t20\nck_core_1_busy_us\t5\n";
    const AFTER: &str = "zk_version\t3.8.0\nzk_packets_received\t1100\nck_core_0_requests\t510\nck_core_1_requests\t620\nck_core_1_busy_us\t905\nzk_new_key\t1\n";

    fn stats() -> ServerStats {
        ServerStats {
            server: "a:1".into(),
            before: parse_mntr(BEFORE),
            after: parse_mntr(AFTER),
        }
    }

    #[test]
    fn deltas_of_numeric_keys() {
        let d = stats().deltas();
        assert_eq!(d["zk_packets_received"], 1000.0);
        assert!(!d.contains_key("zk_version"), "not numeric");
        assert!(!d.contains_key("zk_new_key"), "no before value");
    }

    #[test]
    fn per_core_table() {
        let p = stats().per_core();
        assert_eq!(p.len(), 2);
        assert_eq!(p[&0]["requests"], 500.0);
        assert_eq!(p[&1]["requests"], 600.0);
        assert_eq!(p[&1]["busy_us"], 900.0);
    }

    #[test]
    fn mntr_over_tcp_and_refusal() {
        for (answer, ok) in [
            (BEFORE, true),
            (
                "mntr is not executed because it is not in the whitelist.\n",
                false,
            ),
        ] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut word = [0u8; 4];
                s.read_exact(&mut word).unwrap();
                assert_eq!(&word, b"mntr");
                s.write_all(answer.as_bytes()).unwrap();
            });
            let r = mntr(&addr);
            t.join().unwrap();
            match ok {
                true => assert_eq!(r.unwrap()["zk_packets_received"], "100"),
                false => assert!(r.unwrap_err().contains("whitelist")),
            }
        }
    }
}
