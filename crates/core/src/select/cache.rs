//! The plan cache: bounded, sharded, with gradual eviction.
//!
//! Until issue 13 the cache was one `RwLock<HashMap>` cleared whole past 4,096 plans, so a
//! process cycling through 5,000 problems missed on every select (10x slower). This cache never
//! holds more than its capacity and evicts one entry at a time.
//!
//! Layout: `SHARDS` shards (fewer for a tiny capacity), each an `RwLock` over a map from the
//! key's hash to the first slot with that hash, and a `Vec` of slots (the "clock"); slots with
//! equal hashes are chained through `Slot::next`, and a hit compares the whole key, so a hash
//! collision is never a wrong plan. A hit takes the shard's read lock and sets the slot's
//! reference bit (an `AtomicBool`, written only when it was clear, so hits on a hot key do not
//! bounce its cache line between threads).
//!
//! Eviction (on insert into a full shard) is CLOCK, second chance, with a random hand: the
//! sweep starts at a pseudo-random slot, clears the reference bits it passes and evicts the
//! first slot without one. Entries hit since the last sweep over them survive it, so a hot set
//! stays cached while a stream of one-off keys passes through; and because the start is random,
//! a cyclic scan over more keys than the cache holds keeps a part of them (about 60% hits at
//! 1.2x the capacity, 20% at 2x) instead of none, as LRU, FIFO or a plain CLOCK hand would:
//! past the capacity the hit rate falls gradually, not off a cliff.
//!
//! Who does what: the selector hashes the key once and hands the hash and an equality test on
//! the key to this cache; the cache neither hashes nor clones keys on a hit. A poisoned shard
//! lock (a panic while it was held, which this code does not do) makes that shard a miss, as
//! the single-lock cache did.
//!
//! Concurrency is model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p
//! kernelyard-core --release --lib loom`, run by `.ci/run`): under `cfg(loom)` the lock and the
//! atomic below are loom's, and the `loom_model` tests explore every interleaving of racing
//! inserts, hits and evictions.

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicBool, Ordering},
    RwLock,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicBool, Ordering},
    RwLock,
};

use rustc_hash::FxHashMap;

/// Shards in a cache of at least `SHARDS` entries (a power of two).
const SHARDS: usize = 16;

/// The end of a hash chain.
const NONE: u32 = u32::MAX;

/// A bounded map from keys (looked up by a precomputed hash and an equality test) to values,
/// with CLOCK eviction from a random hand. See the module documentation.
pub(crate) struct ClockCache<K, V> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    /// Slots per shard; the cache holds at most `shards.len() * per_shard` entries.
    per_shard: usize,
}

struct Shard<K, V> {
    /// Hash -> the first slot in its chain. An Fx map: hashing the `u64` again with SipHash
    /// would cost more than the rest of a hit.
    heads: FxHashMap<u64, u32>,
    /// The clock: every entry of this shard, at most `per_shard`.
    slots: Vec<Slot<K, V>>,
    /// xorshift64 state for the hand's start; never zero.
    rng: u64,
}

struct Slot<K, V> {
    hash: u64,
    key: K,
    value: V,
    /// Set by a hit, cleared by an eviction sweep passing over it.
    referenced: AtomicBool,
    /// The next slot with the same hash, or `NONE`.
    next: u32,
}

impl<K, V: Clone> ClockCache<K, V> {
    /// A cache holding at most `capacity` entries (at least one). The bound is exact: the
    /// capacity is split evenly over the shards and never exceeded, so a capacity that is not a
    /// multiple of the shard count holds up to `SHARDS - 1` fewer entries.
    pub(crate) fn new(capacity: usize) -> Self {
        // Slot indices are u32; a larger capacity is clamped (that is ~4 billion plans).
        let capacity = capacity.clamp(1, NONE as usize);
        // The largest power of two up to `SHARDS` that leaves every shard at least one slot.
        let shards = 1 << SHARDS.min(capacity).ilog2();
        let per_shard = capacity / shards;
        ClockCache {
            shards: (0..shards)
                .map(|i| {
                    RwLock::new(Shard {
                        heads: FxHashMap::default(),
                        slots: Vec::new(),
                        // Distinct per shard and never zero (all xorshift needs).
                        rng: 0x9E37_79B9_7F4A_7C15 ^ ((i as u64) << 1 | 1),
                    })
                })
                .collect(),
            per_shard,
        }
    }

    /// The most entries the cache holds.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.len() * self.per_shard
    }

    /// Entries held now (a snapshot; other threads may insert meanwhile).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|s| s.slots.len()).unwrap_or(0))
            .sum()
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        // The Fx hash's low bits carry its best entropy (`FxHasher::finish` rotates the product's
        // top bits down); the shard map hashes the whole `u64` again, so sharing the low bits
        // within a shard costs it nothing.
        &self.shards[hash as usize & (self.shards.len() - 1)]
    }

    /// The value for the key with `hash` for which `eq` holds, marking it recently used.
    pub(crate) fn get(&self, hash: u64, eq: impl Fn(&K) -> bool) -> Option<V> {
        let shard = self.shard(hash).read().ok()?;
        let slot = shard.find(hash, &eq)?;
        // A relaxed load first: a hot entry's bit is already set, and not storing keeps its
        // cache line shared between the threads that hit it.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    /// Inserts `value` for `key` (whose hash is `hash` and for which `eq` holds), evicting one
    /// entry of the shard if it is full, and returns it; if another thread inserted the key
    /// first, returns that value instead, so one key has one value.
    pub(crate) fn insert(&self, hash: u64, key: K, value: V, eq: impl Fn(&K) -> bool) -> V {
        let Ok(mut shard) = self.shard(hash).write() else {
            return value;
        };
        if let Some(slot) = shard.find(hash, &eq) {
            return slot.value.clone();
        }
        let slot = Slot {
            hash,
            key,
            value: value.clone(),
            referenced: AtomicBool::new(false),
            next: NONE,
        };
        shard.insert(slot, self.per_shard);
        value
    }
}

impl<K, V> Shard<K, V> {
    fn find(&self, hash: u64, eq: &impl Fn(&K) -> bool) -> Option<&Slot<K, V>> {
        let mut i = *self.heads.get(&hash)?;
        loop {
            let slot = self.slots.get(i as usize)?;
            if eq(&slot.key) {
                return Some(slot);
            }
            i = slot.next;
        }
    }

    // Indexing below cannot go out of bounds: slots are never removed, so every index held in
    // `heads` and `next` is below `slots.len()`, and the hand is taken modulo it.

    /// Adds `slot` (whose key is not present): into a free slot, or over the victim of a sweep.
    fn insert(&mut self, slot: Slot<K, V>, per_shard: usize) {
        let hash = slot.hash;
        let at = if self.slots.len() < per_shard || self.slots.is_empty() {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let victim = self.victim();
            self.unlink(victim);
            self.slots[victim] = slot;
            victim
        };
        let head = self.heads.insert(hash, at as u32);
        self.slots[at].next = head.unwrap_or(NONE);
    }

    /// CLOCK from a random hand: the first slot without its reference bit, clearing the bits
    /// passed over. Ends within one turn (after which every bit is clear). `slots` is not empty.
    fn victim(&mut self) -> usize {
        let n = self.slots.len();
        // xorshift64: cheap, and enough to spread the hand's start over the shard.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let mut i = (x % n as u64) as usize;
        loop {
            // Relaxed loads and stores through `&mut self`: no other thread can see the slot
            // (the shard's write lock is held), so this is `get_mut` in a form loom models too.
            let referenced = &self.slots[i].referenced;
            if !referenced.load(Ordering::Relaxed) {
                return i;
            }
            referenced.store(false, Ordering::Relaxed);
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    /// Takes slot `v` out of its hash chain (its contents stay until overwritten).
    fn unlink(&mut self, v: usize) {
        let (hash, next) = (self.slots[v].hash, self.slots[v].next);
        let Some(&head) = self.heads.get(&hash) else {
            return;
        };
        if head as usize == v {
            if next == NONE {
                self.heads.remove(&hash);
            } else {
                self.heads.insert(hash, next);
            }
            return;
        }
        let mut p = head as usize;
        while self.slots[p].next != NONE {
            if self.slots[p].next as usize == v {
                self.slots[p].next = next;
                return;
            }
            p = self.slots[p].next as usize;
        }
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Every interleaving (loom) of the races the selector's cache sees: two threads inserting
    //! one key, a hit racing the eviction of its entry, inserts into a full shard from two
    //! threads. Run with `RUSTFLAGS="--cfg loom"`.
    use loom::sync::Arc;
    use loom::thread;

    use super::ClockCache;

    type Cache = ClockCache<u64, u64>;

    /// Every key's hash falls in shard 0 (of up to 16), so the threads race on one shard.
    fn hash(k: u64) -> u64 {
        k << 4
    }

    fn get(c: &Cache, k: u64) -> Option<u64> {
        c.get(hash(k), |&key| key == k)
    }

    fn insert(c: &Cache, k: u64, v: u64) -> u64 {
        c.insert(hash(k), k, v, |&key| key == k)
    }

    #[test]
    fn loom_racing_inserts_of_one_key_agree_on_one_value() {
        loom::model(|| {
            let c = Arc::new(Cache::new(2));
            let c1 = Arc::clone(&c);
            let t = thread::spawn(move || insert(&c1, 7, 100));
            let mine = insert(&c, 7, 200);
            let theirs = t.join().unwrap();
            assert_eq!(mine, theirs, "one key, one value");
            assert!(mine == 100 || mine == 200);
            assert_eq!(get(&c, 7), Some(mine));
            assert_eq!(c.len(), 1);
        });
    }

    #[test]
    fn loom_a_hit_racing_an_eviction_sees_the_whole_entry_or_none() {
        loom::model(|| {
            // One shard of one slot: inserting key 2 evicts key 1 whatever its reference bit.
            let c = Arc::new(Cache::new(1));
            insert(&c, 1, 10);
            let c1 = Arc::clone(&c);
            let t = thread::spawn(move || get(&c1, 1));
            assert_eq!(insert(&c, 2, 20), 20);
            let hit = t.join().unwrap();
            assert!(hit == Some(10) || hit.is_none(), "a hit saw {hit:?}");
            assert_eq!(get(&c, 1), None);
            assert_eq!(get(&c, 2), Some(20));
            assert_eq!(c.len(), 1);
        });
    }

    #[test]
    fn loom_inserts_into_a_full_shard_keep_the_bound_and_the_chains() {
        loom::model(|| {
            // Shard 0 of two slots (16 shards of 2) holding keys 1 and 2; two threads insert 3
            // and 4, one of them hitting key 1 first (its reference bit set, which a sweep
            // must clear).
            let c = Arc::new(Cache::new(32));
            insert(&c, 1, 10);
            insert(&c, 2, 20);
            let c1 = Arc::clone(&c);
            let t = thread::spawn(move || {
                let hit = get(&c1, 1);
                (hit, insert(&c1, 3, 30))
            });
            assert_eq!(insert(&c, 4, 40), 40);
            let (hit, three) = t.join().unwrap();
            assert!(hit == Some(10) || hit.is_none());
            assert_eq!(three, 30);
            assert_eq!(c.len(), 2, "the bound holds");
            // Whatever survived is found under its own key with its own value.
            for k in 1..=4 {
                if let Some(v) = get(&c, k) {
                    assert_eq!(v, k * 10);
                }
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::{ClockCache, NONE, SHARDS};

    /// splitmix64: well-spread hashes for integer keys.
    fn mix(k: u64) -> u64 {
        let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    type Cache = ClockCache<u64, Arc<u64>>;

    fn get(c: &Cache, k: u64) -> Option<Arc<u64>> {
        c.get(mix(k), |&key| key == k)
    }

    fn insert(c: &Cache, k: u64) -> Arc<u64> {
        c.insert(mix(k), k, Arc::new(k), |&key| key == k)
    }

    fn get_or_insert(c: &Cache, k: u64) -> (Arc<u64>, bool) {
        match get(c, k) {
            Some(v) => (v, true),
            None => (insert(c, k), false),
        }
    }

    /// Every slot is in the chain of its own hash exactly once, chains hold nothing else, and
    /// no shard is over its share.
    fn check_invariants<K>(c: &ClockCache<K, Arc<u64>>) {
        for shard in c.shards.iter() {
            let shard = shard.read().unwrap();
            assert!(shard.slots.len() <= c.per_shard);
            let mut seen = HashSet::new();
            for (&hash, &head) in &shard.heads {
                let mut i = head;
                while i != NONE {
                    let slot = &shard.slots[i as usize];
                    assert_eq!(slot.hash, hash, "slot {i} is in another hash's chain");
                    assert!(seen.insert(i), "slot {i} is chained twice");
                    i = slot.next;
                }
            }
            assert_eq!(seen.len(), shard.slots.len(), "a slot is in no chain");
        }
    }

    #[test]
    fn capacity_is_split_over_shards_and_never_exceeded() {
        for (asked, bound) in [(1, 1), (3, 2), (5, 4), (16, 16), (100, 96), (4096, 4096)] {
            let c = Cache::new(asked);
            assert_eq!(c.capacity(), bound, "capacity {asked}");
            assert!(c.shards.len().is_power_of_two() && c.shards.len() <= SHARDS);
        }
        assert_eq!(
            Cache::new(0).capacity(),
            1,
            "a zero capacity still caches one plan"
        );

        let c = Cache::new(64);
        for k in 0..5_000 {
            insert(&c, k);
            assert!(c.len() <= 64, "{} entries after {k} inserts", c.len());
        }
        assert_eq!(
            c.len(),
            64,
            "a full cache stays full: eviction replaces, not clears"
        );
        check_invariants(&c);
    }

    #[test]
    fn a_hit_returns_the_inserted_value_and_a_second_insert_keeps_the_first() {
        let c = Cache::new(256);
        let first = insert(&c, 7);
        assert!(Arc::ptr_eq(&get(&c, 7).unwrap(), &first));
        let again = c.insert(mix(7), 7, Arc::new(7), |&k| k == 7);
        assert!(Arc::ptr_eq(&again, &first), "one key has one value");
        assert_eq!(c.len(), 1);
        assert!(get(&c, 8).is_none());
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_key() {
        // Every key in one of three hashes: the chains carry the collisions, a lookup compares
        // the key, and eviction unlinks from the middle of a chain. The hashes are multiples of
        // the shard count, so all keys share one shard of 16 slots.
        let c: ClockCache<u64, Arc<u64>> = ClockCache::new(16 * SHARDS);
        let hash = |k: u64| (k % 3) * SHARDS as u64;
        let mut present = Vec::new();
        for k in 0..400u64 {
            c.insert(hash(k), k, Arc::new(k), |&key| key == k);
            present.push(k);
            // Touch every fifth key so that sweeps also meet referenced slots in the chains.
            if k % 5 == 0 {
                let _ = c.get(hash(k / 2), |&key| key == k / 2);
            }
            check_invariants(&c);
            present.retain(|&p| match c.get(hash(p), |&key| key == p) {
                Some(v) => {
                    assert_eq!(*v, p, "key {p} returned key {v}'s value");
                    true
                }
                None => false,
            });
            assert_eq!(present.len(), c.len(), "after inserting {k}");
        }
        assert_eq!(c.len(), 16, "the one shard is full");
    }

    #[test]
    fn eviction_keeps_recently_used_keys() {
        let c = Cache::new(1024);
        let hot: Vec<u64> = (0..32).collect();
        let hot_values: Vec<Arc<u64>> = hot.iter().map(|&k| insert(&c, k)).collect();
        // A stream of 20,000 one-off keys, the hot set used between any two of them.
        for cold in 1_000_000..1_020_000 {
            insert(&c, cold);
            for (&k, v) in hot.iter().zip(&hot_values) {
                let got = get(&c, k).unwrap_or_else(|| panic!("hot key {k} evicted at {cold}"));
                assert!(Arc::ptr_eq(&got, v));
            }
        }
        assert_eq!(c.len(), c.capacity());
        // Keys not used since they were inserted were evicted instead.
        assert!(get(&c, 1_000_000).is_none());
        check_invariants(&c);
    }

    /// Hit rate of `passes` cycles over `keys` keys, after one pass to fill the cache.
    fn cycle_hit_rate(c: &Cache, keys: u64, passes: u64) -> f64 {
        for k in 0..keys {
            get_or_insert(c, k);
        }
        let mut hits = 0;
        for _ in 0..passes {
            for k in 0..keys {
                let (v, hit) = get_or_insert(c, k);
                assert_eq!(*v, k);
                hits += u64::from(hit);
            }
        }
        hits as f64 / (keys * passes) as f64
    }

    #[test]
    fn a_cycle_larger_than_the_cache_keeps_part_of_its_hits() {
        // Within the capacity (with room for uneven shards) every select after the first pass
        // hits; past it the hit rate falls gradually (the single-lock cache, cleared whole,
        // and any LRU give 0 on a cycle larger than the cache).
        let capacity = 4096;
        assert_eq!(cycle_hit_rate(&Cache::new(capacity), 3_000, 3), 1.0);
        let mut last = 1.0;
        for (keys, at_least) in [(5_000, 0.45), (6_000, 0.3), (8_192, 0.12)] {
            let rate = cycle_hit_rate(&Cache::new(capacity), keys, 5);
            assert!(
                rate >= at_least && rate < last,
                "{keys} keys: hit rate {rate:.3} (want at least {at_least}, below {last:.3})"
            );
            last = rate;
        }
    }

    #[test]
    fn concurrent_use_on_overlapping_keys_stays_correct() {
        const THREADS: u64 = 4;
        // Small: constant eviction under contention. Large: no eviction, so every thread must
        // see the one value of each key.
        for capacity in [48, 4096] {
            let c = Cache::new(capacity);
            let seen: Vec<Vec<Arc<u64>>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let c = &c;
                        s.spawn(move || {
                            // Thread t uses keys t*100 .. t*100 + 400: each overlaps the next.
                            let keys = t * 100..t * 100 + 400;
                            let mut last = Vec::new();
                            for round in 0..20 {
                                for k in keys.clone() {
                                    let (v, _) = get_or_insert(c, k);
                                    assert_eq!(*v, k, "thread {t} round {round}");
                                    if round == 19 {
                                        last.push(v);
                                    }
                                }
                                assert!(c.len() <= c.capacity());
                            }
                            last
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            check_invariants(&c);
            assert!(c.len() <= c.capacity());
            if capacity == 4096 {
                assert_eq!(c.len(), 700);
                for t in 0..THREADS as usize - 1 {
                    // Keys (t+1)*100 .. t*100+400 are shared by threads t and t+1.
                    for i in 0..300 {
                        assert!(Arc::ptr_eq(&seen[t][100 + i], &seen[t + 1][i]));
                    }
                }
            }
        }
    }
}
