//! The tree's path map: a hash map split into shards by hash, each shard an
//! `Arc`-shared std `HashMap`, so a clone costs O(shards) (pointer copies), not O(n).
//!
//! Contract: [`CowMap::clone`] is a frozen copy; a later change to either side first
//! makes the touched shard unique (`Arc::make_mut`: clones that shard's entries, about
//! `SHARD_LEN_MAX` of them, once per shard per clone; keys are `Arc<str>` and values
//! should be cheap to clone too), so neither side ever sees the other's changes. Lookups cost one std hash-map probe plus
//! one hash to pick the shard, so reads stay as fast as a plain `HashMap` (a persistent
//! hash trie, measured first, was 1.5-2x slower on lookups at 100k-1M entries).
//!
//! Invariants: `len` is the sum of the shards' lengths; a key lives in shard
//! `shard_of(key)`; the shard count is `1 << bits`; no shard holds more than
//! `SHARD_LEN_MAX` on average (growth splits every shard in two, O(n), as a std
//! `HashMap`'s own resize is).

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Seeded per instance (random), as std's `RandomState`, but much cheaper per key.
type RandomState = foldhash::quality::RandomState;
use std::sync::Arc;

/// Average entries per shard above which the shard count doubles: a shard copy (the
/// first change to a shard after a snapshot) stays a few microseconds.
const SHARD_LEN_MAX: usize = 256;
/// Shards of an empty map (log2).
const SHARD_BITS_MIN: u32 = 4;
/// The most shards (log2): beyond 2^16 shards a snapshot's O(shards) clone would no
/// longer be negligible; shards then grow past `SHARD_LEN_MAX` instead.
const SHARD_BITS_MAX: u32 = 16;

type Map<V> = HashMap<Arc<str>, V, RandomState>;
type Shard<V> = Arc<Map<V>>;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct CowMap<V> {
    shards: Vec<Shard<V>>,
    bits: u32,
    len: usize,
    /// Random keys: clients cannot aim paths at one shard.
    hasher: RandomState,
}

impl<V: Clone> Default for CowMap<V> {
    fn default() -> Self {
        CowMap::new()
    }
}

impl<V: Clone> CowMap<V> {
    pub(crate) fn new() -> Self {
        CowMap {
            shards: (0..1usize << SHARD_BITS_MIN)
                .map(|_| Arc::default())
                .collect(),
            bits: SHARD_BITS_MIN,
            len: 0,
            hasher: RandomState::default(),
        }
    }

    /// A map of `entries` (distinct keys), built shard by shard: the entries are
    /// dealt to their shards first, so each shard's table is filled while it is hot
    /// in the cache instead of every insert landing on a random one of them (a 1M
    /// entry restore spent a third of its time in cache-missing inserts), and the
    /// shards are filled on up to `threads` threads.
    pub(crate) fn from_entries(entries: Vec<(Arc<str>, V)>, threads: usize) -> Self
    where
        V: Send + Sync,
    {
        // The shards are made below; the skeleton only places keys.
        let mut m = CowMap {
            shards: Vec::new(),
            bits: bits_for(entries.len()),
            len: 0,
            hasher: RandomState::default(),
        };
        let shard_count = 1usize << m.bits;
        let mut buckets: Vec<Vec<(Arc<str>, V)>> = {
            let shard: Vec<u32> = entries.iter().map(|(k, _)| m.shard_of(k) as u32).collect();
            let mut counts = vec![0usize; shard_count];
            shard.iter().for_each(|&i| counts[i as usize] += 1);
            let mut buckets: Vec<Vec<_>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
            for (e, i) in entries.into_iter().zip(shard) {
                buckets[i as usize].push(e);
            }
            buckets
        };
        let fill = |bucket: &mut Vec<(Arc<str>, V)>| {
            let mut map = Map::with_capacity_and_hasher(bucket.len(), RandomState::default());
            map.extend(bucket.drain(..));
            Arc::new(map)
        };
        let per_thread = shard_count.div_ceil(threads.clamp(1, shard_count));
        let mut filled: Vec<Option<Vec<Shard<V>>>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = buckets
                .chunks_mut(per_thread)
                .map(|chunk| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || {
                            chunk.iter_mut().map(fill).collect::<Vec<_>>()
                        })
                        .ok()
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.map(|j| j.join().expect("filling a shard does not panic")))
                .collect()
        });
        // Runs no thread took (the system refused one) are filled here.
        for (k, chunk) in buckets.chunks_mut(per_thread).enumerate() {
            if filled[k].is_none() {
                filled[k] = Some(chunk.iter_mut().map(fill).collect());
            }
        }
        m.shards = filled.into_iter().flatten().flatten().collect();
        debug_assert!(m.shards.len() == shard_count, "every shard filled");
        m.len = m.shards.iter().map(|s| s.len()).sum();
        m
    }

    fn shard_of(&self, key: &str) -> usize {
        shard_index(self.hasher.hash_one(key), self.bits)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.shards[self.shard_of(key)].get(key)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value at `key`, its shard made unique first (only when the key is there).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = self.shard_of(key);
        let shard = &mut self.shards[i];
        // Copy a shared shard only for a key it holds.
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        let i = self.shard_of(&key);
        let old = Arc::make_mut(&mut self.shards[i]).insert(key, value);
        if old.is_none() {
            self.len += 1;
            self.grow_if_full();
        }
        old
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.shard_of(key);
        let shard = &mut self.shards[i];
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.iter().map(|(k, _)| k)
    }

    /// Doubles the shards when they are full on average: shard `i` splits into `2i`
    /// and `2i + 1` by the next hash bit. New maps are built, so clones sharing the
    /// old shards are untouched.
    fn grow_if_full(&mut self) {
        if self.bits >= SHARD_BITS_MAX || self.len <= self.shards.len() * SHARD_LEN_MAX {
            return;
        }
        let bits = self.bits + 1;
        let mut shards: Vec<Map<V>> = Vec::with_capacity(1 << bits);
        for old in &self.shards {
            let (mut lo, mut hi) = (Map::default(), Map::default());
            for (k, v) in old.iter() {
                let half = if shard_index(self.hasher.hash_one(&**k), bits).is_multiple_of(2) {
                    &mut lo
                } else {
                    &mut hi
                };
                half.insert(k.clone(), v.clone());
            }
            shards.push(lo);
            shards.push(hi);
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
        self.bits = bits;
        debug_assert!(
            self.shards.iter().map(|s| s.len()).sum::<usize>() == self.len,
            "a split keeps every entry"
        );
    }
}

/// The shard bits growth from empty reaches at `n` entries.
fn bits_for(n: usize) -> u32 {
    let mut bits = SHARD_BITS_MIN;
    while bits < SHARD_BITS_MAX && n > (1usize << bits) * SHARD_LEN_MAX {
        bits += 1;
    }
    bits
}

/// The shard of a key with hash `h` among `1 << bits` (the top bits, so a split
/// sends shard `i`'s keys to `2i` and `2i + 1`).
fn shard_index(h: u64, bits: u32) -> usize {
    debug_assert!((1..64).contains(&bits), "shard bits in range");
    (h >> (64 - bits)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_frozen_and_growth_keeps_entries() {
        let mut m: CowMap<u32> = CowMap::new();
        let n = (16 << SHARD_BITS_MIN) * SHARD_LEN_MAX / 8;
        for i in 0..n as u32 {
            assert!(m.insert(format!("/k{i}").into(), i).is_none());
        }
        let frozen = m.clone();
        for i in 0..n as u32 {
            if i % 2 == 0 {
                *m.get_mut(&format!("/k{i}")).unwrap() += 1;
            } else {
                assert_eq!(m.remove(&format!("/k{i}")), Some(i));
            }
        }
        // More inserts force splits while `frozen` shares the old shards.
        for i in n as u32..2 * n as u32 {
            m.insert(format!("/k{i}").into(), i);
        }
        assert!(m.bits > SHARD_BITS_MIN, "grew");
        assert_eq!(frozen.len(), n);
        for i in 0..n as u32 {
            assert_eq!(frozen.get(&format!("/k{i}")), Some(&i));
        }
        assert_eq!(m.len(), n / 2 + n);
        assert_eq!(m.iter().count(), m.len());
        assert_eq!(m.get("/k0"), Some(&1));
        assert_eq!(m.get("/k1"), None);
        assert!(m.get_mut("/nope").is_none() && m.remove("/nope").is_none());
    }

    #[test]
    fn a_map_built_from_entries_holds_them_all_in_their_shards() {
        for (n, threads) in [(0, 1), (1, 4), (5000, 1), (300_000, 3)] {
            let entries = (0..n).map(|i| (format!("/k{i}").into(), i)).collect();
            let mut m: CowMap<usize> = CowMap::from_entries(entries, threads);
            assert_eq!(m.len(), n);
            assert!((0..n).all(|i| m.get(&format!("/k{i}")) == Some(&i)));
            // Each key where a lookup looks, and growth goes on from there.
            for (i, shard) in m.shards.iter().enumerate() {
                assert!(shard.keys().all(|k| m.shard_of(k) == i));
            }
            m.insert("/more".into(), 7);
            assert_eq!((m.len(), m.get("/more")), (n + 1, Some(&7)));
        }
    }

    #[test]
    fn a_built_map_has_the_shards_growth_from_empty_reaches() {
        for n in [0, 1, 4096, 4097, 5000, 300_000] {
            let mut grown: CowMap<usize> = CowMap::new();
            for i in 0..n {
                grown.insert(format!("/k{i}").into(), i);
            }
            let entries = (0..n).map(|i| (format!("/k{i}").into(), i)).collect();
            let built: CowMap<usize> = CowMap::from_entries(entries, 2);
            assert_eq!(
                (bits_for(n), built.bits),
                (grown.bits, grown.bits),
                "n = {n}"
            );
        }
    }
}
