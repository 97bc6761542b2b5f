//! Per-link replication figures of an ensemble member, for `mntr` and `/metrics`:
//! ack latency (from a proposal's send to a follower's ack covering it) as a
//! histogram, bytes each way and their rate. Pure: the driver feeds it instants and
//! byte totals; nothing here reads a clock.
//!
//! Contract:
//! - [`LinkStats::proposed`] remembers the send instant of at most
//!   [`PROPOSALS_REMEMBERED_MAX`] proposals (the oldest are forgotten); an ack of a
//!   zxid no longer remembered, or no newer than that follower's previous ack, adds no
//!   sample (acks are cumulative, so one ack may cover many proposals: it is one
//!   sample, for the newest);
//! - [`LinkStats::traffic`] takes byte totals that only grow for a link's lifetime; a
//!   rate is the growth over the interval since the previous call, and a total that
//!   went down (a new link) restarts the rate from zero.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::zab::{ServerId, Zxid};

/// Proposals whose send instant is remembered (a follower more than this many
/// proposals behind gives no latency samples until it catches up): as many as may be
/// in flight.
pub const PROPOSALS_REMEMBERED_MAX: usize = crate::zab::PROPOSALS_INFLIGHT_MAX;
/// Upper bounds (µs) of the ack latency histogram's buckets; one more bucket holds
/// the rest.
pub const ACK_US_BUCKETS: [u64; 16] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000,
    100_000, 1_000_000,
];

const _: () = assert!(PROPOSALS_REMEMBERED_MAX > 0 && PROPOSALS_REMEMBERED_MAX <= 1 << 20);

/// What `mntr` shows for one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFigures {
    pub peer: ServerId,
    pub acks: u64,
    pub ack_us_hist: [u64; ACK_US_BUCKETS.len() + 1],
    pub ack_us_max: u64,
    pub ack_us_sum: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub sent_bytes_per_s: u64,
    pub received_bytes_per_s: u64,
}

impl LinkFigures {
    /// The bound of the bucket holding quantile `q` (0..=1) of the ack latencies; the
    /// maximum for the overflow bucket; 0 without samples.
    pub fn ack_us_quantile(&self, q: f64) -> u64 {
        debug_assert!((0.0..=1.0).contains(&q), "a quantile");
        if self.acks == 0 {
            return 0;
        }
        let rank = ((self.acks as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.ack_us_hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ACK_US_BUCKETS
                    .get(i)
                    .copied()
                    .unwrap_or(self.ack_us_max)
                    .min(self.ack_us_max.max(1));
            }
        }
        self.ack_us_max
    }
}

#[derive(Debug, Default)]
pub struct LinkStats {
    sent_at: VecDeque<(Zxid, Instant)>,
    links: BTreeMap<ServerId, LinkFigures>,
    last_acked: BTreeMap<ServerId, Zxid>,
    sampled: Option<Instant>,
}

impl LinkStats {
    /// The leader sent proposal `zxid` (to every follower) at `at`.
    pub fn proposed(&mut self, zxid: Zxid, at: Instant) {
        if self.sent_at.back().is_some_and(|(z, _)| *z >= zxid) {
            return; // a resend (to a learner catching up): the first send counts
        }
        if self.sent_at.len() == PROPOSALS_REMEMBERED_MAX {
            self.sent_at.pop_front();
        }
        self.sent_at.push_back((zxid, at));
    }

    /// `peer` acknowledged every proposal up to `zxid` at `at`.
    pub fn acked(&mut self, peer: ServerId, zxid: Zxid, at: Instant) {
        let last = self.last_acked.entry(peer).or_insert(0);
        if zxid <= *last {
            return;
        }
        *last = zxid;
        let Ok(i) = self.sent_at.binary_search_by_key(&zxid, |(z, _)| *z) else {
            return;
        };
        let us = at.saturating_duration_since(self.sent_at[i].1).as_micros() as u64;
        let f = self.figures(peer);
        f.acks += 1;
        f.ack_us_max = f.ack_us_max.max(us);
        f.ack_us_sum += us;
        f.ack_us_hist[super::stats::bucket(&ACK_US_BUCKETS, us)] += 1;
    }

    /// Forgets what was sent in an epoch now over (a new leadership starts clean).
    pub fn reset_proposals(&mut self) {
        self.sent_at.clear();
        self.last_acked.clear();
    }

    /// Byte totals of each link at `at` (`(peer, sent, received)`).
    pub fn traffic(&mut self, at: Instant, totals: &[(ServerId, u64, u64)]) {
        let secs = self
            .sampled
            .map(|t| at.saturating_duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        self.sampled = Some(at);
        for &(peer, sent, received) in totals {
            let f = self.figures(peer);
            let rate = |now: u64, before: u64| match secs {
                Some(s) if now >= before => ((now - before) as f64 / s) as u64,
                _ => 0,
            };
            f.sent_bytes_per_s = rate(sent, f.bytes_sent);
            f.received_bytes_per_s = rate(received, f.bytes_received);
            f.bytes_sent = sent;
            f.bytes_received = received;
        }
    }

    fn figures(&mut self, peer: ServerId) -> &mut LinkFigures {
        self.links.entry(peer).or_insert_with(|| LinkFigures {
            peer,
            ..LinkFigures::default()
        })
    }

    /// Every link's figures, by peer id.
    pub fn figures_all(&self) -> Vec<LinkFigures> {
        self.links.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_ack_samples_the_time_since_its_proposal_was_sent() {
        let t0 = Instant::now();
        let mut s = LinkStats::default();
        s.proposed(1, t0);
        s.proposed(2, t0 + Duration::from_micros(100));
        s.proposed(2, t0 + Duration::from_micros(900)); // a resend: ignored
        s.acked(7, 1, t0 + Duration::from_micros(80));
        s.acked(7, 2, t0 + Duration::from_micros(2_100));
        s.acked(7, 2, t0 + Duration::from_micros(9_000)); // no newer: no sample
        s.acked(8, 2, t0 + Duration::from_micros(400));
        let f = s.figures_all();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].peer, f[0].acks, f[0].ack_us_max), (7, 2, 2_000));
        assert_eq!(f[0].ack_us_quantile(0.5), 100);
        assert_eq!(f[0].ack_us_quantile(0.99), 2_000);
        assert_eq!((f[1].acks, f[1].ack_us_quantile(0.5)), (1, 300));
    }

    #[test]
    fn old_proposals_are_forgotten_and_give_no_sample() {
        let t0 = Instant::now();
        let mut s = LinkStats::default();
        for z in 1..=(PROPOSALS_REMEMBERED_MAX as i64 + 10) {
            s.proposed(z, t0);
        }
        s.acked(2, 5, t0);
        assert!(s.figures_all().is_empty(), "zxid 5 was forgotten");
        s.acked(2, 20, t0);
        assert_eq!(s.figures_all()[0].acks, 1);
    }

    #[test]
    fn rates_are_growth_over_the_interval_and_restart_with_a_new_link() {
        let t0 = Instant::now();
        let mut s = LinkStats::default();
        s.traffic(t0, &[(2, 1_000, 10)]);
        assert_eq!(s.figures_all()[0].sent_bytes_per_s, 0, "no interval yet");
        s.traffic(t0 + Duration::from_secs(2), &[(2, 5_000, 410)]);
        let f = &s.figures_all()[0];
        assert_eq!((f.sent_bytes_per_s, f.received_bytes_per_s), (2_000, 200));
        assert_eq!((f.bytes_sent, f.bytes_received), (5_000, 410));
        s.traffic(t0 + Duration::from_secs(3), &[(2, 100, 0)]);
        assert_eq!(s.figures_all()[0].sent_bytes_per_s, 0);
    }
}
