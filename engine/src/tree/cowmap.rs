//! The tree's path map: a hash map split into shards by hash, each shard an
//! `Arc`-shared std `HashMap`, so a clone costs O(shards) (pointer copies), not O(n).
//!
//! Contract: [`CowMap::clone`] is a frozen copy; a later change to either side first
//! makes the touched shard unique (`Arc::make_mut`: copies that shard's slots, about
//! `SHARD_LEN_MAX` key and value pointers, once per shard per clone) and then the
//! touched value (one `Arc::make_mut` of it), so neither side ever sees the other's
//! changes. Lookups cost one hash to pick the shard, one std hash-map probe and one
//! pointer to the value (a persistent hash trie, measured first, was 1.5-2x slower on
//! lookups at 100k-1M entries). Values behind their own pointer cost that pointer per
//! lookup, but a slot is 24 bytes instead of the value's size: a 1M-znode restore moves
//! and faults in a seventh of the bytes, and a shard copy copies no value.
//!
//! Invariants: `len` is the sum of the shards' lengths; a key lives in shard
//! `shard_of(key)`; no shard holds more than `SHARD_LEN_MAX` on average (growth splits
//! every shard in two, O(n), as a std `HashMap`'s own resize is).
//!
//! The shard count need not be a power of two: a key's shard is its hash's top 32 bits
//! scaled to the count (multiply and shift), which still sends shard `i`'s keys to `2i`
//! and `2i + 1` when the count doubles. A map built at once ([`CowMap::from_entries`],
//! a restore) picks the count that fills each shard's table to about 70%: with a power
//! of two, 1M znodes made 4096 shards of ~244 entries, each in a 512-bucket table
//! (48% full; 338 of the ~580 bytes a znode took were table slots).

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Seeded per instance (random), as std's `RandomState`, but much cheaper per key.
type RandomState = foldhash::quality::RandomState;
use std::sync::Arc;

/// Average entries per shard above which the shard count doubles: a shard copy (the
/// first change to a shard after a snapshot) stays a few microseconds.
const SHARD_LEN_MAX: usize = 256;
/// Shards of an empty map.
const SHARD_COUNT_MIN: usize = 16;
/// The most shards: beyond 2^16 shards a snapshot's O(shards) clone would no longer be
/// negligible; shards then grow past `SHARD_LEN_MAX` instead.
const SHARD_COUNT_MAX: usize = 1 << 16;
/// Entries per shard a built map aims at: std's table holds at most 7/8 of its
/// (power-of-two) buckets, 224 of 256, and a shard's length varies around the mean by
/// about its square root, so 180 keeps nearly every shard within 256 buckets (~70% full).
const SHARD_LEN_BUILT: usize = 180;
const _: () = assert!(SHARD_LEN_BUILT < SHARD_LEN_MAX && SHARD_COUNT_MIN <= SHARD_COUNT_MAX);
const _: () = assert!(
    SHARD_COUNT_MAX <= 1 << 32,
    "shard_index scales 32 hash bits"
);

/// Values sit behind their own `Arc`: a shard copy (the first change to a shard after
/// a snapshot image) copies pointers, a later change to one value copies that value
/// only (`Arc::make_mut`), and building a map moves 24-byte slots, not the values.
type Map<V> = HashMap<Arc<str>, Arc<V>, RandomState>;
type Shard<V> = Arc<Map<V>>;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct CowMap<V> {
    shards: Vec<Shard<V>>,
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
            shards: (0..SHARD_COUNT_MIN).map(|_| Arc::default()).collect(),
            len: 0,
            hasher: RandomState::default(),
        }
    }

    /// A map of `entries` (distinct keys), built shard by shard: the entries are
    /// dealt to their shards first, so each shard's table is filled while it is hot
    /// in the cache instead of every insert landing on a random one of them (a 1M
    /// entry restore spent a third of its time in cache-missing inserts), and the
    /// shards are filled on up to `threads` threads.
    pub(crate) fn from_entries(entries: Vec<(Arc<str>, Arc<V>)>, threads: usize) -> Self
    where
        V: Send + Sync,
    {
        let shard_count = count_for(entries.len());
        let hasher = RandomState::default();
        let mut buckets: Vec<Vec<(Arc<str>, Arc<V>)>> = {
            let shard: Vec<u32> = entries
                .iter()
                .map(|(k, _)| shard_index(hasher.hash_one(&**k), shard_count) as u32)
                .collect();
            let mut counts = vec![0usize; shard_count];
            shard.iter().for_each(|&i| counts[i as usize] += 1);
            let mut buckets: Vec<Vec<_>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
            for (e, i) in entries.into_iter().zip(shard) {
                buckets[i as usize].push(e);
            }
            buckets
        };
        let fill = |bucket: &mut Vec<(Arc<str>, Arc<V>)>| {
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
        let shards: Vec<Shard<V>> = filled.into_iter().flatten().flatten().collect();
        debug_assert!(shards.len() == shard_count, "every shard filled");
        let len = shards.iter().map(|s| s.len()).sum();
        CowMap {
            shards,
            len,
            hasher,
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        shard_index(self.hasher.hash_one(key), self.shards.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.shards[self.shard_of(key)].get(key).map(|v| &**v)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value at `key`, its shard and then the value made unique first (only when
    /// the key is there).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = self.shard_of(key);
        let shard = &mut self.shards[i];
        // Copy a shared shard only for a key it holds.
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).get_mut(key).map(Arc::make_mut)
    }

    pub(crate) fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        let i = self.shard_of(&key);
        let old = Arc::make_mut(&mut self.shards[i])
            .insert(key, Arc::new(value))
            .map(Arc::unwrap_or_clone);
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
        let old = Arc::make_mut(shard).remove(key).map(Arc::unwrap_or_clone);
        self.len -= usize::from(old.is_some());
        old
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k, &**v)))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.iter().map(|(k, _)| k)
    }

    /// Doubles the shards when they are full on average: shard `i` splits into `2i`
    /// and `2i + 1` (see the module docs). New maps are built, so clones sharing the
    /// old shards are untouched.
    fn grow_if_full(&mut self) {
        let count = self.shards.len();
        if count * 2 > SHARD_COUNT_MAX || self.len <= count * SHARD_LEN_MAX {
            return;
        }
        let mut shards: Vec<Map<V>> = Vec::with_capacity(count * 2);
        for (i, old) in self.shards.iter().enumerate() {
            let (mut lo, mut hi) = (Map::default(), Map::default());
            for (k, v) in old.iter() {
                let j = shard_index(self.hasher.hash_one(&**k), count * 2);
                debug_assert!(j / 2 == i, "a split sends shard i's keys to 2i and 2i + 1");
                let half = if j.is_multiple_of(2) {
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
        debug_assert!(
            self.shards.iter().map(|s| s.len()).sum::<usize>() == self.len,
            "a split keeps every entry"
        );
    }
}

/// The shard count of a map built with `n` entries (see `SHARD_LEN_BUILT`).
fn count_for(n: usize) -> usize {
    n.div_ceil(SHARD_LEN_BUILT)
        .clamp(SHARD_COUNT_MIN, SHARD_COUNT_MAX)
}

/// The shard of a key with hash `h` among `count`: the top 32 bits scaled to the count,
/// so that doubling the count sends shard `i`'s keys to `2i` and `2i + 1`
/// (`floor(2x)` is `2 floor(x)` or one more).
fn shard_index(h: u64, count: usize) -> usize {
    debug_assert!(
        (1..=SHARD_COUNT_MAX).contains(&count),
        "shard count in range"
    );
    (((h >> 32) * count as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_frozen_and_growth_keeps_entries() {
        let mut m: CowMap<u32> = CowMap::new();
        let n = 16 * SHARD_COUNT_MIN * SHARD_LEN_MAX / 8;
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
        assert!(m.shards.len() > SHARD_COUNT_MIN, "grew");
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
            let entries = (0..n)
                .map(|i| (format!("/k{i}").into(), Arc::new(i)))
                .collect();
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
    fn a_built_map_fills_its_shard_tables() {
        let n = 300_000;
        let entries = (0..n)
            .map(|i| (format!("/k{i}").into(), Arc::new(i)))
            .collect();
        let built: CowMap<usize> = CowMap::from_entries(entries, 2);
        assert_eq!(built.shards.len(), n.div_ceil(SHARD_LEN_BUILT));
        let (len, capacity) = built
            .shards
            .iter()
            .fold((0, 0), |(l, c), s| (l + s.len(), c + s.capacity()));
        // capacity() is 7/8 of the buckets: 0.6 of it is ~53% of the buckets used.
        assert!(
            len * 10 >= capacity * 6,
            "{len} entries in room for {capacity}"
        );
    }

    #[test]
    fn growth_from_a_built_map_splits_shards_in_place() {
        let entries = (0..5000)
            .map(|i| (format!("/k{i}").into(), Arc::new(i)))
            .collect();
        let mut m: CowMap<usize> = CowMap::from_entries(entries, 1);
        let count = m.shards.len();
        assert!(
            !count.is_power_of_two(),
            "{count}: the test wants an odd count"
        );
        for i in 5000..count * SHARD_LEN_MAX + 1 {
            m.insert(format!("/k{i}").into(), i);
        }
        assert_eq!(m.shards.len(), count * 2);
        for (i, shard) in m.shards.iter().enumerate() {
            assert!(shard.keys().all(|k| m.shard_of(k) == i));
        }
        assert!((0..m.len()).all(|i| m.get(&format!("/k{i}")) == Some(&i)));
    }
}
