//! Workloads: what operations a run issues, on which znodes, with what data.
//!
//! Contract:
//! - Everything here is pure and seeded: the same [`WorkloadSpec`], seed and worker index
//!   give the same operation sequence on every machine (rand's `SmallRng` at the version
//!   pinned by Cargo.lock). The seed is printed in every report so a run can be replayed.
//! - The key space is `key_count` znodes `/ckbench/k<index>`, created by the setup phase
//!   ([`setup_ops`]) and removed by the cleanup phase ([`cleanup_ops`]).
//! - Key choice is uniform or Zipf (rank 1 = key 0 is the hottest); see [`Zipf`].
//! - A `mix:R/W` workload issues exactly `R` gets and `W` sets in every block of `R + W`
//!   operations (shuffled within the block), so proportions are exact, not just expected.
//! - `create` makes fresh nodes `/ckbench/c/w<worker>-<n>` (removed by cleanup); `delete`
//!   removes the worker's share of the pre-created keys, one each, and then runs dry
//!   ([`OpGen::next_op`] returns `None`).
//! - The recipes (`watch-fanout`, `lock`) are driven by their own state machines in
//!   `runner`; here they only name their znodes.

use std::fmt;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use transport::jute::CreateMode;

/// Most keys a run may use (setup creates them all; ZooKeeper keeps its tree in memory).
pub const KEYS_MAX: u64 = 10_000_000;
/// Largest value: ZooKeeper's default `jute.maxbuffer` is 1 MiB for the whole packet.
pub const VALUE_BYTES_MAX: usize = 1_000_000;
/// Largest weight of either side of `mix:R/W` (the block of R+W ops is kept in memory).
pub const MIX_WEIGHT_MAX: u32 = 10_000;
/// Largest Zipf exponent accepted (beyond this nearly every op hits key 0 anyway).
pub const ZIPF_EXPONENT_MAX: f64 = 10.0;

/// Root of everything ckbench creates (below the connect string's chroot, if any).
pub const ROOT: &str = "/ckbench";
/// Parent of the nodes the `create` workload makes.
pub const CREATE_PARENT: &str = "/ckbench/c";
/// Parent of the lock recipe's sequential-ephemeral contenders.
pub const LOCK_PARENT: &str = "/ckbench/lock";
/// The node the watch fan-out writer sets and every watcher watches.
pub const WATCH_NODE: &str = "/ckbench/watch";

/// The operations ckbench measures; also the key of per-kind statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    Get,
    Set,
    Create,
    Delete,
    Exists,
    Children,
    /// Watch fan-out: from the writer's setData being sent to one watcher's event arriving.
    WatchEvent,
    /// Lock recipe: from a contender's create being sent to it holding the lock.
    LockAcquire,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: &'static [OpKind] = &[
        OpKind::Get,
        OpKind::Set,
        OpKind::Create,
        OpKind::Delete,
        OpKind::Exists,
        OpKind::Children,
        OpKind::WatchEvent,
        OpKind::LockAcquire,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Exists => "exists",
            OpKind::Children => "children",
            OpKind::WatchEvent => "watch-event",
            OpKind::LockAcquire => "lock-acquire",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Get,
    Set,
    Create,
    Delete,
    Exists,
    Children,
    /// `read` gets and `write` sets in every block of `read + write` ops.
    Mix {
        read: u32,
        write: u32,
    },
    /// N watchers on one node, one writer: event delivery latency.
    WatchFanout,
    /// N clients competing for a sequential-ephemeral lock.
    Lock,
}

impl WorkloadKind {
    /// Parses `get|set|create|delete|exists|children|mix:R/W|watch-fanout|lock`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "get" => WorkloadKind::Get,
            "set" => WorkloadKind::Set,
            "create" => WorkloadKind::Create,
            "delete" => WorkloadKind::Delete,
            "exists" => WorkloadKind::Exists,
            "children" => WorkloadKind::Children,
            "watch-fanout" => WorkloadKind::WatchFanout,
            "lock" => WorkloadKind::Lock,
            _ => match s.strip_prefix("mix:") {
                Some(ratio) => parse_mix(ratio)?,
                None => {
                    return Err(format!(
                        "unknown workload {s:?}: expected get, set, create, delete, exists, \
                         children, mix:R/W, watch-fanout or lock"
                    ));
                }
            },
        })
    }

    /// True for the recipes, which have their own runners.
    pub fn is_recipe(self) -> bool {
        matches!(self, WorkloadKind::WatchFanout | WorkloadKind::Lock)
    }

    /// True when the key space must exist before the run.
    pub fn needs_keys(self) -> bool {
        !matches!(
            self,
            WorkloadKind::Create | WorkloadKind::WatchFanout | WorkloadKind::Lock
        )
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadKind::Get => f.write_str("get"),
            WorkloadKind::Set => f.write_str("set"),
            WorkloadKind::Create => f.write_str("create"),
            WorkloadKind::Delete => f.write_str("delete"),
            WorkloadKind::Exists => f.write_str("exists"),
            WorkloadKind::Children => f.write_str("children"),
            WorkloadKind::Mix { read, write } => write!(f, "mix:{read}/{write}"),
            WorkloadKind::WatchFanout => f.write_str("watch-fanout"),
            WorkloadKind::Lock => f.write_str("lock"),
        }
    }
}

fn parse_mix(ratio: &str) -> Result<WorkloadKind, String> {
    let bad = || format!("bad mix {ratio:?}: expected R/W, e.g. mix:90/10");
    let (r, w) = ratio.split_once('/').ok_or_else(bad)?;
    let read: u32 = r.trim().parse().map_err(|_| bad())?;
    let write: u32 = w.trim().parse().map_err(|_| bad())?;
    if read + write == 0 {
        return Err(format!("bad mix {ratio:?}: R + W must be > 0"));
    }
    if read > MIX_WEIGHT_MAX || write > MIX_WEIGHT_MAX {
        return Err(format!(
            "bad mix {ratio:?}: each weight must be <= {MIX_WEIGHT_MAX}"
        ));
    }
    Ok(WorkloadKind::Mix { read, write })
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDist {
    Uniform,
    /// Zipf with this exponent (> 0); key 0 is the most popular.
    Zipf(f64),
}

impl KeyDist {
    /// Parses `uniform` or `zipf:S` (S > 0, e.g. 0.99).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "uniform" {
            return Ok(KeyDist::Uniform);
        }
        let Some(exp) = s.strip_prefix("zipf:") else {
            return Err(format!(
                "unknown distribution {s:?}: expected uniform or zipf:S"
            ));
        };
        let exp: f64 = exp
            .parse()
            .map_err(|_| format!("bad zipf exponent {exp:?}: expected a number like 0.99"))?;
        if !(exp > 0.0 && exp <= ZIPF_EXPONENT_MAX) {
            return Err(format!(
                "bad zipf exponent {exp}: must be in (0, {ZIPF_EXPONENT_MAX}]"
            ));
        }
        Ok(KeyDist::Zipf(exp))
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => f.write_str("uniform"),
            KeyDist::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// The workload half of a run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub key_count: u64,
    pub dist: KeyDist,
    pub value_bytes: usize,
}

/// One request of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    pub path: String,
    /// Data for create and set (shared: every op of a worker carries the same value).
    pub data: Option<Arc<[u8]>>,
    /// Leave a watch (exists/getData/getChildren).
    pub watch: bool,
    /// Node kind for creates.
    pub mode: CreateMode,
}

impl Op {
    /// A plain (no watch, persistent) op.
    pub fn new(kind: OpKind, path: impl Into<String>) -> Self {
        Op {
            kind,
            path: path.into(),
            data: None,
            watch: false,
            mode: CreateMode::Persistent,
        }
    }

    /// The same op carrying data.
    pub fn with_data(mut self, data: Arc<[u8]>) -> Self {
        self.data = Some(data);
        self
    }
}

/// The path of key `index`.
pub fn key_path(index: u64) -> String {
    format!("{ROOT}/k{index:08}")
}

/// A value of `len` printable bytes, drawn from `rng` (printable so zkCli shows it).
pub fn make_value(len: usize, rng: &mut SmallRng) -> Arc<[u8]> {
    debug_assert!(len <= VALUE_BYTES_MAX, "value size is checked by config");
    (0..len)
        .map(|_| rng.random_range(b'a'..=b'z'))
        .collect::<Vec<u8>>()
        .into()
}

/// Zipf sampler over ranks `1..=n` with exponent `s > 0`: P(k) ∝ k^-s.
///
/// Rejection-inversion (Hörmann & Derflinger 1996, as in Apache Commons RNG): O(1)
/// memory and expected O(1) time for any n, so `--keys 10M --dist zipf:0.99` needs no
/// 80 MB CDF table. Written here (≈40 lines) rather than pulling `rand_distr` for one
/// function; its shape is checked against the exact pmf in the tests.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// A sampler over `1..=n`. `n >= 1`, `exponent > 0` (checked by config).
    pub fn new(n: u64, exponent: f64) -> Self {
        debug_assert!(
            n >= 1 && exponent > 0.0,
            "config checks key count and exponent"
        );
        let mut z = Zipf {
            n: n as f64,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut SmallRng) -> u64 {
        loop {
            let u: f64 = rng.random();
            let u = self.h_integral_n + u * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// h(x) = x^-s: the (unnormalised) density the integral bounds.
    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    /// H(x) = ∫ h, written to stay accurate near s = 1.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// ln(1+x)/x, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x - 1)/x, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

/// Picks key indices in `0..key_count`.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform(u64),
    Zipf(Zipf),
}

impl KeyChooser {
    pub fn new(key_count: u64, dist: KeyDist) -> Self {
        debug_assert!(key_count >= 1, "config checks key count");
        match dist {
            KeyDist::Uniform => KeyChooser::Uniform(key_count),
            KeyDist::Zipf(s) => KeyChooser::Zipf(Zipf::new(key_count, s)),
        }
    }

    /// A key index.
    pub fn choose(&self, rng: &mut SmallRng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.random_range(0..*n),
            KeyChooser::Zipf(z) => z.sample(rng) - 1,
        }
    }
}

/// A shuffled block with exactly `read` gets and `write` sets, dealt one at a time.
#[derive(Debug, Clone)]
struct MixDeck {
    deck: Vec<OpKind>,
    next: usize,
}

impl MixDeck {
    fn new(read: u32, write: u32) -> Self {
        let g = gcd(read, write).max(1);
        let mut deck = vec![OpKind::Get; (read / g) as usize];
        deck.extend(std::iter::repeat_n(OpKind::Set, (write / g) as usize));
        debug_assert!(!deck.is_empty(), "mix parsing rejects 0/0");
        let next = deck.len(); // shuffle before the first deal
        MixDeck { deck, next }
    }

    fn deal(&mut self, rng: &mut SmallRng) -> OpKind {
        if self.next == self.deck.len() {
            self.deck.shuffle(rng);
            self.next = 0;
        }
        self.next += 1;
        self.deck[self.next - 1]
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The seed of worker `worker` derived from the run's seed (distinct streams per worker).
pub fn worker_seed(seed: u64, worker: usize) -> u64 {
    // splitmix64 of (seed, worker): nearby seeds give unrelated streams.
    let mut z = seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates one worker's operations for the basic (non-recipe) workloads.
#[derive(Debug, Clone)]
pub struct OpGen {
    kind: WorkloadKind,
    keys: KeyChooser,
    rng: SmallRng,
    mix: Option<MixDeck>,
    value: Arc<[u8]>,
    worker: usize,
    workers: usize,
    key_count: u64,
    /// Creates issued so far (names the next created node).
    created: u64,
    /// Next key this worker deletes (its share is `worker, worker + workers, ...`).
    next_delete: u64,
}

impl OpGen {
    /// The generator of worker `worker` of `workers`, seeded from the run's `seed`.
    pub fn new(spec: &WorkloadSpec, seed: u64, worker: usize, workers: usize) -> Self {
        debug_assert!(worker < workers, "worker index in range");
        let mut rng = SmallRng::seed_from_u64(worker_seed(seed, worker));
        let value = make_value(spec.value_bytes, &mut rng);
        let mix = match spec.kind {
            WorkloadKind::Mix { read, write } => Some(MixDeck::new(read, write)),
            _ => None,
        };
        OpGen {
            kind: spec.kind,
            keys: KeyChooser::new(spec.key_count.max(1), spec.dist),
            rng,
            mix,
            value,
            worker,
            workers,
            key_count: spec.key_count,
            created: 0,
            next_delete: worker as u64,
        }
    }

    /// The value this worker writes.
    pub fn value(&self) -> Arc<[u8]> {
        self.value.clone()
    }

    /// Nodes created so far by this generator (cleanup removes them).
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The next op, or `None` when the workload has run dry (`delete` out of keys; the
    /// recipes, which this generator does not drive).
    pub fn next_op(&mut self) -> Option<Op> {
        let kind = match self.kind {
            WorkloadKind::Get => OpKind::Get,
            WorkloadKind::Set => OpKind::Set,
            WorkloadKind::Create => OpKind::Create,
            WorkloadKind::Delete => OpKind::Delete,
            WorkloadKind::Exists => OpKind::Exists,
            WorkloadKind::Children => OpKind::Children,
            WorkloadKind::Mix { .. } => self.mix.as_mut()?.deal(&mut self.rng),
            WorkloadKind::WatchFanout | WorkloadKind::Lock => return None,
        };
        Some(match kind {
            OpKind::Create => {
                let path = created_path(self.worker, self.created);
                self.created += 1;
                Op::new(kind, path).with_data(self.value.clone())
            }
            OpKind::Delete => {
                if self.next_delete >= self.key_count {
                    return None;
                }
                let path = key_path(self.next_delete);
                self.next_delete += self.workers as u64;
                Op::new(kind, path)
            }
            OpKind::Set => {
                Op::new(kind, key_path(self.keys.choose(&mut self.rng))).with_data(self.value())
            }
            _ => Op::new(kind, key_path(self.keys.choose(&mut self.rng))),
        })
    }
}

/// The path of the `n`th node created by worker `worker`.
pub fn created_path(worker: usize, n: u64) -> String {
    format!("{CREATE_PARENT}/w{worker}-{n}")
}

/// The parents every run makes first (one worker, in this order).
pub fn parent_paths() -> [&'static str; 4] {
    [ROOT, CREATE_PARENT, LOCK_PARENT, WATCH_NODE]
}

/// Creates of worker `worker`'s share of the key space (setup; ignore `NodeExists`).
pub fn setup_ops(
    spec: &WorkloadSpec,
    value: Arc<[u8]>,
    worker: usize,
    workers: usize,
) -> impl Iterator<Item = Op> + use<> {
    let count = if spec.kind.needs_keys() {
        spec.key_count
    } else {
        0
    };
    (worker as u64..count)
        .step_by(workers)
        .map(move |i| Op::new(OpKind::Create, key_path(i)).with_data(value.clone()))
}

/// Deletes undoing worker `worker`'s setup and creates (cleanup; ignore `NoNode`).
pub fn cleanup_ops(
    spec: &WorkloadSpec,
    created: u64,
    worker: usize,
    workers: usize,
) -> impl Iterator<Item = Op> + use<> {
    let keys = if spec.kind.needs_keys() {
        spec.key_count
    } else {
        0
    };
    let keys = (worker as u64..keys)
        .step_by(workers)
        .map(|i| Op::new(OpKind::Delete, key_path(i)));
    let made = (0..created).map(move |n| Op::new(OpKind::Delete, created_path(worker, n)));
    keys.chain(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WorkloadKind, keys: u64, dist: KeyDist) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            key_count: keys,
            dist,
            value_bytes: 16,
        }
    }

    fn count(g: &mut OpGen, n: usize, kind: OpKind) -> usize {
        (0..n)
            .filter(|_| g.next_op().expect("op").kind == kind)
            .count()
    }

    #[test]
    fn mix_proportions_are_exact_per_block() {
        for seed in [1, 2, 0xdead_beef] {
            let s = spec(
                WorkloadKind::Mix {
                    read: 90,
                    write: 10,
                },
                100,
                KeyDist::Uniform,
            );
            let mut g = OpGen::new(&s, seed, 0, 1);
            // 10 blocks of 10 (90/10 reduces to 9/1): exactly 900 gets, 100 sets.
            let gets = count(&mut g, 1000, OpKind::Get);
            assert_eq!(gets, 900, "seed {seed}");
            // and every block of 10 holds exactly one set
            let block: Vec<_> = (0..10).map(|_| g.next_op().unwrap().kind).collect();
            assert_eq!(block.iter().filter(|k| **k == OpKind::Set).count(), 1);
        }
        let s = spec(
            WorkloadKind::Mix { read: 2, write: 3 },
            10,
            KeyDist::Uniform,
        );
        let mut g = OpGen::new(&s, 7, 0, 1);
        assert_eq!(count(&mut g, 500, OpKind::Set), 300);
    }

    #[test]
    fn mix_is_shuffled_and_seeded() {
        let s = spec(
            WorkloadKind::Mix { read: 1, write: 1 },
            10,
            KeyDist::Uniform,
        );
        let seq = |seed| {
            let mut g = OpGen::new(&s, seed, 0, 1);
            (0..64)
                .map(|_| g.next_op().unwrap().kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(5), seq(5), "same seed, same ops");
        assert_ne!(seq(5), seq(6), "different seed, different order");
        let alternating: Vec<_> = (0..64)
            .map(|i| if i % 2 == 0 { OpKind::Get } else { OpKind::Set })
            .collect();
        assert_ne!(seq(5), alternating, "blocks are shuffled");
    }

    #[test]
    fn parse_errors_are_clear() {
        assert!(WorkloadKind::parse("mix:1").unwrap_err().contains("R/W"));
        assert!(WorkloadKind::parse("mix:0/0").unwrap_err().contains("> 0"));
        assert!(
            WorkloadKind::parse("nope")
                .unwrap_err()
                .contains("unknown workload")
        );
        assert_eq!(
            WorkloadKind::parse("mix:90/10").unwrap(),
            WorkloadKind::Mix {
                read: 90,
                write: 10
            }
        );
        assert!(KeyDist::parse("zipf:-1").is_err());
        assert!(KeyDist::parse("zipf:x").is_err());
        assert_eq!(KeyDist::parse("zipf:0.99").unwrap(), KeyDist::Zipf(0.99));
        for w in ["get", "mix:3/1", "watch-fanout", "lock"] {
            assert_eq!(WorkloadKind::parse(w).unwrap().to_string(), w);
        }
    }

    /// Exact Zipf pmf over 1..=n.
    fn pmf(n: u64, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    #[test]
    fn zipf_matches_exact_pmf() {
        const SAMPLES: usize = 200_000;
        for (n, s, seed) in [
            (100u64, 0.99, 11u64),
            (1000, 1.0, 12),
            (50, 1.5, 13),
            (10, 0.5, 14),
        ] {
            let z = Zipf::new(n, s);
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut hist = vec![0u64; n as usize];
            for _ in 0..SAMPLES {
                let k = z.sample(&mut rng);
                assert!((1..=n).contains(&k), "rank {k} out of 1..={n}");
                hist[k as usize - 1] += 1;
            }
            let p = pmf(n, s);
            // Each log2 bucket of ranks ([1], [2,3], [4,7], ...) and each of the 3 head
            // ranks must be within 5 standard deviations of its binomial expectation.
            let mut groups: Vec<(u64, u64)> = (0..3).map(|k| (k, k + 1)).collect();
            groups.extend(
                (0..)
                    .map(|b| (1u64 << b) - 1)
                    .take_while(|lo| *lo < n)
                    .map(|lo| (lo, (2 * lo + 1).min(n))),
            );
            for (lo, hi) in groups {
                let obs: u64 = hist[lo as usize..hi as usize].iter().sum();
                let q: f64 = p[lo as usize..hi as usize].iter().sum();
                let mean = q * SAMPLES as f64;
                let sd = (mean * (1.0 - q)).sqrt().max(1.0);
                let z = (obs as f64 - mean).abs() / sd;
                assert!(
                    z < 5.0,
                    "n={n} s={s} ranks {}..={hi}: {obs} vs {mean:.0} (z {z:.1}; replay: seed {seed})",
                    lo + 1
                );
            }
        }
    }

    #[test]
    fn zipf_single_key_and_uniform_range() {
        let mut rng = SmallRng::seed_from_u64(3);
        let z = Zipf::new(1, 0.99);
        assert!((0..100).all(|_| z.sample(&mut rng) == 1));
        let u = KeyChooser::new(7, KeyDist::Uniform);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[u.choose(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "uniform covers every key");
    }

    #[test]
    fn delete_runs_dry_after_its_share() {
        let s = spec(WorkloadKind::Delete, 10, KeyDist::Uniform);
        let mut g = OpGen::new(&s, 1, 1, 3); // keys 1, 4, 7
        let paths: Vec<_> = std::iter::from_fn(|| g.next_op()).map(|o| o.path).collect();
        assert_eq!(paths, [key_path(1), key_path(4), key_path(7)]);
    }

    #[test]
    fn create_names_are_unique_and_cleaned_up() {
        let s = spec(WorkloadKind::Create, 0, KeyDist::Uniform);
        let mut g = OpGen::new(&s, 1, 2, 4);
        let a = g.next_op().unwrap();
        let b = g.next_op().unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(a.data.as_ref().unwrap().len(), 16);
        let clean: Vec<_> = cleanup_ops(&s, g.created(), 2, 4).map(|o| o.path).collect();
        assert_eq!(clean, [a.path, b.path]);
    }

    #[test]
    fn setup_partitions_keys_across_workers() {
        let s = spec(WorkloadKind::Get, 10, KeyDist::Uniform);
        let v: Arc<[u8]> = Arc::from(&b"x"[..]);
        let mut all: Vec<_> = (0..3)
            .flat_map(|w| setup_ops(&s, v.clone(), w, 3).map(|o| o.path))
            .collect();
        all.sort();
        let want: Vec<_> = (0..10).map(key_path).collect();
        assert_eq!(all, want);
    }
}
