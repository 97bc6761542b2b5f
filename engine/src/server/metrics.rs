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

use crate::runtime::stats::Stats;

/// Largest HTTP request head read from a scraper.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 << 10;

/// The exposition text for `stats`.
pub fn render(stats: &Stats) -> String {
    let (min, avg, max) = stats.latency_ms();
    let counters: [(&str, &str, u64); 6] = [
        (
            "corekeeper_packets_received_total",
            "Client frames received.",
            stats.packets_received.load(Relaxed),
        ),
        (
            "corekeeper_packets_sent_total",
            "Client frames sent.",
            stats.packets_sent.load(Relaxed),
        ),
        (
            "corekeeper_requests_total",
            "Requests answered.",
            stats.requests.load(Relaxed),
        ),
        (
            "corekeeper_wal_flushes_total",
            "WAL flushes (group commits).",
            stats.flushes.load(Relaxed),
        ),
        (
            "corekeeper_wal_flushed_txns_total",
            "Txns made durable by WAL flushes.",
            stats.flushed_txns.load(Relaxed),
        ),
        (
            "corekeeper_snapshots_total",
            "Snapshots written.",
            stats.snapshots.load(Relaxed),
        ),
    ];
    let gauges: [(&str, &str, f64); 9] = [
        (
            "corekeeper_last_zxid",
            "Last applied zxid.",
            stats.last_zxid.load(Relaxed) as f64,
        ),
        (
            "corekeeper_znodes",
            "Znodes in the tree.",
            stats.znodes.load(Relaxed) as f64,
        ),
        (
            "corekeeper_sessions",
            "Open sessions.",
            stats.sessions.load(Relaxed) as f64,
        ),
        (
            "corekeeper_connections",
            "Open client connections.",
            stats.connections.load(Relaxed) as f64,
        ),
        (
            "corekeeper_outstanding_requests",
            "Writes persisted but not yet applied.",
            stats.outstanding.load(Relaxed) as f64,
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
    let mut out = String::new();
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    out
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
        let stats = Stats::default();
        stats.record_flush(3, 150);
        let text = render(&stats);
        assert!(text.contains(
            "# TYPE corekeeper_wal_flushes_total counter\ncorekeeper_wal_flushes_total 1\n"
        ));
        assert!(text.contains("corekeeper_wal_flushed_txns_total 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split(' ');
            let (name, value) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name.starts_with("corekeeper_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
