//! Four-letter words on the client port (`ruok`, `srvr`, `stat`, `mntr`, `conf`,
//! `cons`, `envi`, `wchs`, `isro`, `dirs`, `srst`).
//!
//! ZooKeeper recognises them by the first four bytes of a connection, where a client
//! would send its frame length; no ZooKeeper frame length spells a word (they would be
//! ~1.9 GB), so the two cannot be confused. Words not in `4lw.commands.whitelist` get
//! ZooKeeper's refusal text.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::conn::CoreCtx;
use crate::config::FOUR_LETTER_WORDS_ALL;

/// The version string clients and tools parse (kazoo reads it from `envi`).
pub const VERSION: &str = concat!("3.8.0-corekeeper-", env!("CARGO_PKG_VERSION"));

/// The word spelled by a connection's first four bytes, if any.
pub fn word(first: &[u8]) -> Option<&'static str> {
    FOUR_LETTER_WORDS_ALL
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first)
}

/// The answer to `word`.
pub fn answer(word: &str, ctx: &CoreCtx) -> String {
    if !ctx.cfg.four_letter_word_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => srvr(ctx),
        "stat" => stat(ctx),
        "mntr" => mntr(ctx),
        "conf" => conf(ctx),
        "cons" => cons(ctx),
        "envi" => envi(ctx),
        "wchs" => format!("Total watches:{}\n", ctx.stats.shard.watches.load(Relaxed)),
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_bytes(&ctx.cfg.data_dir),
            dir_bytes(ctx.cfg.wal_dir())
        ),
        "srst" => {
            ctx.stats.reset();
            "Server stats reset.\n".to_string()
        }
        other => format!("{other} is not supported by corekeeper yet.\n"),
    }
}

fn srvr(ctx: &CoreCtx) -> String {
    let s = &ctx.stats;
    let (min, avg, max) = s.latency_ms();
    format!(
        "Zookeeper version: {VERSION}, built for corekeeper\nLatency min/avg/max: {min:.3}/{avg:.4}/{max:.3}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        s.total(|c| &c.packets_received),
        s.total(|c| &c.packets_sent),
        s.total(|c| &c.connections),
        s.shard.inflight.load(Relaxed),
        s.shard.last_zxid.load(Relaxed),
        crate::runtime::stats::mode_name(s.shard.mode.load(Relaxed)),
        s.shard.znodes.load(Relaxed),
    )
}

fn stat(ctx: &CoreCtx) -> String {
    let srvr = srvr(ctx);
    let (head, tail) = srvr.split_once("Latency").unwrap_or((&srvr, ""));
    format!("{head}Clients:\n{}\nLatency{tail}", cons(ctx))
}

fn cons(ctx: &CoreCtx) -> String {
    let reg = ctx.registry.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    for (conn, (peer, session)) in reg.iter() {
        let _ = writeln!(
            out,
            " /{peer}[1](queued=0,core={},sid=0x{session:x})",
            conn.core
        );
    }
    out
}

fn mntr(ctx: &CoreCtx) -> String {
    let s = &ctx.stats;
    let sh = &s.shard;
    let (min, avg, max) = s.latency_ms();
    let flushes = sh.flushes.load(Relaxed).max(1);
    let mut rows: Vec<(String, String)> = [
        ("zk_version", VERSION.to_string()),
        (
            "zk_server_state",
            crate::runtime::stats::mode_name(sh.mode.load(Relaxed)).into(),
        ),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", format!("{max:.3}")),
        ("zk_min_latency", format!("{min:.3}")),
        (
            "zk_packets_received",
            s.total(|c| &c.packets_received).to_string(),
        ),
        ("zk_packets_sent", s.total(|c| &c.packets_sent).to_string()),
        (
            "zk_num_alive_connections",
            s.total(|c| &c.connections).to_string(),
        ),
        (
            "zk_outstanding_requests",
            sh.inflight.load(Relaxed).to_string(),
        ),
        ("zk_znode_count", sh.znodes.load(Relaxed).to_string()),
        ("zk_watch_count", sh.watches.load(Relaxed).to_string()),
        ("zk_global_sessions", sh.sessions.load(Relaxed).to_string()),
        (
            "zk_last_zxid",
            format!("0x{:x}", sh.last_zxid.load(Relaxed)),
        ),
        ("zk_uptime", s.started.elapsed().as_millis().to_string()),
        ("ck_cores", s.cores.len().to_string()),
        ("ck_wal_flushes", sh.flushes.load(Relaxed).to_string()),
        (
            "ck_wal_txns_per_flush_avg",
            format!(
                "{:.2}",
                sh.flushed_txns.load(Relaxed) as f64 / flushes as f64
            ),
        ),
        (
            "ck_wal_flush_us_avg",
            (sh.flush_us_sum.load(Relaxed) / flushes).to_string(),
        ),
        (
            "ck_wal_flush_us_max",
            sh.flush_us_max.load(Relaxed).to_string(),
        ),
        ("ck_snapshots", sh.snapshots.load(Relaxed).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if sh.mode.load(Relaxed) == crate::runtime::stats::MODE_LEADER {
        let synced = sh.synced_learners.load(Relaxed);
        let observers = sh.synced_observers.load(Relaxed);
        for (k, v) in [
            ("zk_learners", sh.learners.load(Relaxed)),
            ("zk_synced_followers", synced - observers.min(synced)),
            ("zk_synced_non_voting_followers", 0),
            ("zk_synced_observers", observers),
            ("zk_pending_syncs", 0),
            ("ck_proposals_inflight", sh.proposals_inflight.load(Relaxed)),
            ("ck_syncs_diff", sh.syncs_diff.load(Relaxed)),
            ("ck_syncs_trunc", sh.syncs_trunc.load(Relaxed)),
            ("ck_syncs_snap", sh.syncs_snap.load(Relaxed)),
            ("ck_epoch_rollovers", sh.epoch_rollovers.load(Relaxed)),
        ] {
            rows.push((k.to_string(), v.to_string()));
        }
    }
    let chain_members = sh.chain_members.load(Relaxed);
    if chain_members > 0 {
        // CRAQ: where this server sits in its chain (0 = head, members - 1 = tail).
        for (k, v) in [
            ("ck_chain_position", sh.chain_position.load(Relaxed)),
            ("ck_chain_members", chain_members),
            ("ck_chain_uncommitted", sh.chain_uncommitted.load(Relaxed)),
            ("ck_chain_queries", sh.chain_queries.load(Relaxed)),
        ] {
            rows.push((k.to_string(), v.to_string()));
        }
    }
    if sh.mode.load(Relaxed) != crate::runtime::stats::MODE_STANDALONE {
        rows.extend(link_rows(
            &sh.links.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }
    rows.extend(s.profile_rows());
    rows.into_iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect()
}

/// corekeeper's per-link figures: `ck_link_<peer>_...` (ack latency on the leader,
/// traffic everywhere).
fn link_rows(links: &[crate::runtime::linkstats::LinkFigures]) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for f in links {
        let p = f.peer;
        for (k, v) in [
            ("acks", f.acks),
            ("ack_us_p50", f.ack_us_quantile(0.5)),
            ("ack_us_p99", f.ack_us_quantile(0.99)),
            ("ack_us_max", f.ack_us_max),
            ("bytes_sent", f.bytes_sent),
            ("bytes_received", f.bytes_received),
            ("sent_bytes_per_s", f.sent_bytes_per_s),
            ("received_bytes_per_s", f.received_bytes_per_s),
        ] {
            rows.push((format!("ck_link_{p}_{k}"), v.to_string()));
        }
    }
    rows
}

fn conf(ctx: &CoreCtx) -> String {
    let c = &ctx.cfg;
    format!(
        "clientPort={}\nclientPortAddress={}\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns={}\nmaxCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId=0\ncores={}\nsync={:?}\n",
        c.client_addr.port(),
        c.client_addr.ip(),
        c.data_dir.display(),
        c.wal_dir().display(),
        c.tick_time_ms,
        c.max_client_cnxns,
        c.max_cnxns,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        c.cores.map_or("all".to_string(), |n| n.to_string()),
        c.sync,
    )
}

fn envi(ctx: &CoreCtx) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={VERSION}\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={}\ncorekeeper.cores={}\n",
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        ctx.cfg.cores.map_or("all".to_string(), |n| n.to_string()),
    )
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_recognised_by_their_bytes_only() {
        assert_eq!(word(b"ruok"), Some("ruok"));
        assert_eq!(word(b"mntr"), Some("mntr"));
        assert_eq!(word(&[0, 0, 0, 45]), None);
        assert_eq!(word(b"RUOK"), None);
    }
}
