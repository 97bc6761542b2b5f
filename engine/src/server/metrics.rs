//! Prometheus text metrics over HTTP on the admin port (`adminPort` / `--admin-port`).
//!
//! A deliberately small HTTP/1.0 responder: `GET /metrics` answers the exposition
//! format, anything else 404; one request per connection. Requests larger than
//! [`ADMIN_REQUEST_BYTES_MAX`] are refused. It runs on core 0 and reads the shared
//! atomic [`Stats`], so scraping costs the shard nothing.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::runtime::stats::{BATCH_TXNS_BUCKETS, CoreStats, FLUSH_US_BUCKETS, Stats};
use std::sync::atomic::AtomicU64;

/// Largest HTTP request head read from a scraper.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 << 10;

/// Picks one counter out of a core's.
type CoreField = fn(&CoreStats) -> &AtomicU64;

/// The exposition text for `stats`.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    let per_core: [(&str, &str, &str, CoreField); 7] = [
        (
            "corekeeper_core_requests_total",
            "counter",
            "Requests answered, by core.",
            |c| &c.requests,
        ),
        (
            "corekeeper_core_packets_received_total",
            "counter",
            "Client frames received, by core.",
            |c| &c.packets_received,
        ),
        (
            "corekeeper_core_packets_sent_total",
            "counter",
            "Client frames sent, by core.",
            |c| &c.packets_sent,
        ),
        (
            "corekeeper_core_bytes_in_total",
            "counter",
            "Client bytes received, by core.",
            |c| &c.bytes_in,
        ),
        (
            "corekeeper_core_bytes_out_total",
            "counter",
            "Client bytes sent, by core.",
            |c| &c.bytes_out,
        ),
        (
            "corekeeper_core_connections",
            "gauge",
            "Open client connections, by core.",
            |c| &c.connections,
        ),
        (
            "corekeeper_core_queue_depth",
            "gauge",
            "Messages waiting for the shard, by core.",
            |c| &c.queue_depth,
        ),
    ];
    for (name, kind, help, f) in per_core {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, c) in stats.cores.iter().enumerate() {
            let _ = writeln!(out, "{name}{{core=\"{i}\"}} {}", f(c).load(Relaxed));
        }
    }
    let name = "corekeeper_core_busy_seconds_total";
    let _ = writeln!(
        out,
        "# HELP {name} Time the core's executor spent running tasks.\n# TYPE {name} counter"
    );
    for (i, c) in stats.cores.iter().enumerate() {
        let _ = writeln!(
            out,
            "{name}{{core=\"{i}\"}} {}",
            c.busy_us.load(Relaxed) as f64 / 1e6
        );
    }
    let sh = &stats.shard;
    let (min, avg, max) = stats.latency_ms();
    let gauges: [(&str, &str, f64); 9] = [
        (
            "corekeeper_last_zxid",
            "Last applied zxid.",
            sh.last_zxid.load(Relaxed) as f64,
        ),
        (
            "corekeeper_znodes",
            "Znodes in the tree.",
            sh.znodes.load(Relaxed) as f64,
        ),
        (
            "corekeeper_sessions",
            "Open sessions.",
            sh.sessions.load(Relaxed) as f64,
        ),
        (
            "corekeeper_inflight_txns",
            "Writes persisted but not yet applied.",
            sh.inflight.load(Relaxed) as f64,
        ),
        (
            "corekeeper_snapshots",
            "Snapshots written since start.",
            sh.snapshots.load(Relaxed) as f64,
        ),
        (
            "corekeeper_request_latency_min_ms",
            "Minimum request latency since reset.",
            min,
        ),
        (
            "corekeeper_request_latency_avg_ms",
            "Mean request latency since reset.",
            avg,
        ),
        (
            "corekeeper_request_latency_max_ms",
            "Maximum request latency since reset.",
            max,
        ),
        (
            "corekeeper_uptime_seconds",
            "Seconds since start.",
            stats.started.elapsed().as_secs_f64(),
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    histogram(
        &mut out,
        "corekeeper_wal_flush_seconds",
        "WAL flush (group commit) latency.",
        &FLUSH_US_BUCKETS,
        &sh.flush_us_hist,
        1e6,
        sh.flush_us_sum.load(Relaxed) as f64 * 1e-6,
    );
    histogram(
        &mut out,
        "corekeeper_wal_batch_txns",
        "Txns made durable per WAL flush.",
        &BATCH_TXNS_BUCKETS,
        &sh.batch_hist,
        1.0,
        sh.flushed_txns.load(Relaxed) as f64,
    );
    links(
        &mut out,
        &sh.links.lock().unwrap_or_else(|e| e.into_inner()),
    );
    out
}

/// Each quorum link: ack latency (a histogram per peer) and bytes each way.
fn links(out: &mut String, links: &[crate::runtime::linkstats::LinkFigures]) {
    use crate::runtime::linkstats::ACK_US_BUCKETS;
    if links.is_empty() {
        return;
    }
    let name = "corekeeper_link_ack_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a proposal's send to a follower's ack covering it, by peer.\n\
         # TYPE {name} histogram"
    );
    for f in links {
        let sum = f.ack_us_sum as f64 / 1e6;
        let label = format!("peer=\"{}\"", f.peer);
        histogram_series(
            out,
            name,
            &label,
            &ACK_US_BUCKETS,
            f.ack_us_hist.iter().copied(),
            1e6,
            sum,
        );
    }
    for (metric, help, pick) in [
        (
            "corekeeper_link_sent_bytes_total",
            "Bytes sent on the quorum link, by peer.",
            (|f| f.bytes_sent) as fn(&crate::runtime::linkstats::LinkFigures) -> u64,
        ),
        (
            "corekeeper_link_received_bytes_total",
            "Bytes received on the quorum link, by peer.",
            |f| f.bytes_received,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for f in links {
            let _ = writeln!(out, "{metric}{{peer=\"{}\"}} {}", f.peer, pick(f));
        }
    }
}

/// A Prometheus histogram from per-bucket counts (bounds are divided by `divisor` to
/// get base units: 1e6 for µs → s, exactly, where multiplying by 1e-6 would print
/// 0.00009999…).
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[u64],
    counts: &[AtomicU64],
    divisor: f64,
    sum: f64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let counts = counts.iter().map(|c| c.load(Relaxed));
    histogram_series(out, name, "", bounds, counts, divisor, sum);
}

/// One series of a histogram (`labels`, e.g. `peer="2"`, or none): cumulative
/// buckets, sum and count.
fn histogram_series(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[u64],
    counts: impl ExactSizeIterator<Item = u64>,
    divisor: f64,
    sum: f64,
) {
    debug_assert_eq!(counts.len(), bounds.len() + 1, "one overflow bucket");
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cum = 0;
    for (i, c) in counts.enumerate() {
        cum += c;
        match bounds.get(i) {
            Some(b) => {
                let le = *b as f64 / divisor;
                _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}")
            }
            None => _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}"),
        }
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}\n{name}_count{braces} {cum}");
}

/// Serves scrapes until the listener fails.
pub async fn serve(listener: TcpListener, stats: std::sync::Arc<Stats>) {
    loop {
        match listener.accept().await {
            Ok(stream) => glommio::spawn_local(answer(stream, stats.clone())).detach(),
            Err(e) => return tracing::warn!("admin listener failed: {e}"),
        };
    }
}

async fn answer(mut stream: TcpStream, stats: std::sync::Arc<Stats>) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > ADMIN_REQUEST_BYTES_MAX {
            let _ = stream
                .write_all(b"HTTP/1.0 431 Request Header Fields Too Large\r\n\r\n")
                .await;
            return;
        }
    }
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default())
        .into_owned();
    let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", "/metrics", ..] => {
            let body = render(&stats);
            format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
        _ => "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
    };
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_and_value_for_each_metric() {
        let stats = Stats::new(2);
        stats.shard.record_flush(3, 150);
        let text = render(&stats);
        assert!(text.contains("# TYPE corekeeper_wal_flush_seconds histogram\n"));
        assert!(text.contains(
            "corekeeper_wal_flush_seconds_bucket{le=\"0.0001\"} 0\ncorekeeper_wal_flush_seconds_bucket{le=\"0.0002\"} 1\n"
        ));
        assert!(text.contains("corekeeper_wal_flush_seconds_count 1\n"));
        assert!(text.contains("corekeeper_wal_batch_txns_sum 3\n"));
        assert!(text.contains("corekeeper_core_requests_total{core=\"1\"} 0\n"));
        assert!(!text.contains("corekeeper_link_"), "no links standalone");
        // A quorum link's figures: a labelled histogram series and byte counters.
        let mut f = crate::runtime::linkstats::LinkFigures {
            peer: 2,
            acks: 1,
            ack_us_sum: 150,
            bytes_sent: 4096,
            ..Default::default()
        };
        f.ack_us_hist[2] = 1; // 150 us: the 200 us bucket
        stats.shard.links.lock().unwrap().push(f);
        let text = render(&stats);
        for line in [
            "corekeeper_link_ack_seconds_bucket{peer=\"2\",le=\"0.0001\"} 0\n",
            "corekeeper_link_ack_seconds_bucket{peer=\"2\",le=\"0.0002\"} 1\n",
            "corekeeper_link_ack_seconds_bucket{peer=\"2\",le=\"+Inf\"} 1\n",
            "corekeeper_link_ack_seconds_sum{peer=\"2\"} 0.00015\n",
            "corekeeper_link_ack_seconds_count{peer=\"2\"} 1\n",
            "corekeeper_link_sent_bytes_total{peer=\"2\"} 4096\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("corekeeper_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
