//! What the seeded simulations share: their knobs from the environment and the seed
//! loop that prints how to replay a failing seed.
#![allow(dead_code)]

/// A number from the environment; a value that is not one stops the test, naming it.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

/// Runs `run` on the seeds `{prefix}_SEED` names (one), else on 0..`{prefix}_SEEDS`
/// (default `seeds_default`). A failing seed panics with the command that replays it.
/// Returns each seed's result, in seed order.
pub fn for_each_seed<T>(
    prefix: &str,
    test: &str,
    seeds_default: u64,
    mut run: impl FnMut(u64) -> Result<T, String>,
) -> Vec<T> {
    let seeds: Vec<u64> = match env_u64(&format!("{prefix}_SEED")) {
        Some(s) => vec![s],
        None => (0..env_u64(&format!("{prefix}_SEEDS")).unwrap_or(seeds_default)).collect(),
    };
    seeds
        .into_iter()
        .map(|seed| {
            run(seed).unwrap_or_else(|e| {
                panic!(
                    "seed {seed}: {e}\nreplay: {prefix}_SEED={seed} cargo test -p engine \
                     --test {test}"
                )
            })
        })
        .collect()
}

/// A txn in a simulated log: its zxid and bytes.
pub type Entry = (i64, std::sync::Arc<[u8]>);

/// Server `id` applies its log entries `from..end`. Each must be the txn every server
/// applied at that position (`chosen`, the one sequence of the ensemble); an entry
/// applied first anywhere joins `chosen` only if `holders(entry)` (voters holding it
/// durably, byte for byte) reach `quorum`: only a majority's durable copies keep a
/// later leader from choosing otherwise.
pub fn apply_chosen(
    id: u64,
    log: &[Entry],
    from: usize,
    end: usize,
    chosen: &mut Vec<Entry>,
    quorum: usize,
    holders: impl Fn(&Entry) -> usize,
) -> Result<(), String> {
    for (i, e) in log.iter().enumerate().take(end).skip(from) {
        match chosen.get(i) {
            Some(c) if c.0 == e.0 && c.1[..] == e.1[..] => {}
            Some(c) => {
                return Err(format!(
                    "{id} applied {:#x} at {i} where {:#x} was applied",
                    e.0, c.0
                ));
            }
            None => {
                let n = holders(e);
                if n < quorum {
                    return Err(format!(
                        "{id} applied {:#x} first while it was durable on only {n} voters",
                        e.0
                    ));
                }
                chosen.push(e.clone());
            }
        }
    }
    Ok(())
}

/// splitmix64: a tiny deterministic generator (no dependency, same on every platform).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}
