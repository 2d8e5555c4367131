//! An event-time priority queue for items that are mostly pushed ahead of
//! the processing clock and popped in `(time, sequence)` order.
//!
//! Items are kept in *buckets* of [`BUCKET_SPAN`] of event time, unsorted
//! while they wait. Only the earliest bucket is sorted, when popping reaches
//! it; it is then drained from the tail of a `Vec`. Pushing is an append to
//! one bucket and popping is O(1), where a binary heap of the tens of
//! thousands of events within the out-of-orderness bound paid a sift through
//! cache-missing levels on every push and pop. Sorting a bucket once costs
//! `O(b log b)` for its `b` items, in cache.
//!
//! The order is exactly the heap's: ascending `(time, seq)`, every key
//! distinct (`seq` is an arrival counter). Because items reach a bucket in
//! `seq` order, a bucket is sorted as `u64` keys `(time within the bucket,
//! position)` and then permuted once, instead of moving whole items
//! through a comparison sort.
//!
//! The waiting buckets are found by a hash map (a push lands in one of the
//! few hundred buckets within the out-of-orderness bound, at random when
//! events are disordered: a B-tree search there cost more than the rest of
//! the push); their numbers are also kept in order, touched only when a
//! bucket is created or taken.

use crate::time::Micros;
use ahash::AHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

/// Bucket width in µs as a power of two: 2^16 µs ≈ 65 ms.
const BUCKET_SHIFT: u32 = 16;

/// Event time covered by one bucket, in µs.
pub const BUCKET_SPAN: Micros = 1 << BUCKET_SHIFT;

/// One queued item and its ordering key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Entry<T> {
    t: Micros,
    seq: u64,
    item: T,
}

impl<T> Entry<T> {
    fn key(&self) -> (Micros, u64) {
        (self.t, self.seq)
    }
}

/// Min-queue on `(time, seq)`. See the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeQueue<T> {
    /// The earliest bucket, sorted *descending* so the next item is last.
    /// Holds every queued item whose bucket is `<= front_bucket`.
    front: Vec<Entry<T>>,
    front_bucket: i64,
    /// Later buckets, unsorted, by bucket number (`t >> BUCKET_SHIFT`).
    later: Buckets<T>,
    len: usize,
    /// Drained buckets' vectors, reused for new buckets so that a bucket
    /// does not regrow (and copy) from empty each time.
    #[serde(skip, default = "Vec::new")]
    spare: Vec<Vec<Entry<T>>>,
    /// Scratch for sorting a bucket.
    #[serde(skip)]
    keys: Vec<u64>,
}

/// Drained bucket vectors kept for reuse.
const MAX_SPARE: usize = 16;

impl<T> Default for TimeQueue<T> {
    fn default() -> Self {
        TimeQueue {
            front: Vec::new(),
            front_bucket: i64::MIN,
            later: Buckets::default(),
            len: 0,
            spare: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl<T: Copy> TimeQueue<T> {
    pub fn push(&mut self, t: Micros, seq: u64, item: T) {
        let entry = Entry { t, seq, item };
        let bucket = t >> BUCKET_SHIFT;
        if bucket <= self.front_bucket {
            // Rare: at or before the bucket being drained. Keep it sorted.
            let pos = self.front.partition_point(|e| e.key() > entry.key());
            self.front.insert(pos, entry);
        } else {
            let spare = &mut self.spare;
            self.later
                .get_or_insert(bucket, || spare.pop().unwrap_or_default())
                .push(entry);
        }
        self.len += 1;
    }

    /// Makes the earliest bucket the (sorted) front if the front is empty.
    #[inline]
    fn refill(&mut self) {
        if self.front.is_empty() {
            self.take_next_bucket();
        }
    }

    /// [`refill`](Self::refill)'s work, once per bucket: kept out of line
    /// so that the per-item calls stay small enough to inline.
    #[inline(never)]
    fn take_next_bucket(&mut self) {
        let Some((bucket, mut entries)) = self.later.pop_first() else {
            return;
        };
        // Entries arrived in `seq` order, so (time, position) sorts them
        // by (time, seq); the time fits in BUCKET_SHIFT bits of the bucket.
        let base = bucket << BUCKET_SHIFT;
        debug_assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
        debug_assert!(entries.len() < 1 << 32);
        let keys = &mut self.keys;
        keys.clear();
        keys.extend(
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| (((e.t - base) as u64) << 32) | i as u64),
        );
        keys.sort_unstable();
        // The front is drained from its tail: descending order.
        self.front.clear();
        self.front.extend(
            keys.iter()
                .rev()
                .map(|k| entries[(k & 0xffff_ffff) as usize]),
        );
        entries.clear();
        if self.spare.len() < MAX_SPARE {
            self.spare.push(entries);
        }
        self.front_bucket = bucket;
    }

    /// Time of the earliest item.
    #[inline]
    pub fn next_time(&mut self) -> Option<Micros> {
        self.refill();
        self.front.last().map(|e| e.t)
    }

    /// The earliest item, if the front bucket holds it (a cheap look
    /// ahead: no bucket is sorted for it).
    pub fn peek_front(&self) -> Option<&T> {
        self.front.last().map(|e| &e.item)
    }

    /// Up to `n` of the earliest items, in order, as far as the front
    /// bucket holds them (no bucket is sorted for them).
    pub fn peek_front_n(&self, n: usize) -> impl Iterator<Item = &T> {
        self.front.iter().rev().take(n).map(|e| &e.item)
    }

    /// Pops the earliest item if its time is `t`.
    #[inline]
    pub fn pop_at(&mut self, t: Micros) -> Option<T> {
        if self.next_time()? != t {
            return None;
        }
        self.len -= 1;
        self.front.pop().map(|e| e.item)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The waiting buckets (see the module docs). Serialized as the
/// `BTreeMap<bucket, entries>` they once were: a map in ascending bucket
/// order, so the state format does not depend on this layout.
#[derive(Debug, Clone)]
struct Buckets<T> {
    map: AHashMap<i64, Vec<Entry<T>>>,
    order: BTreeSet<i64>,
}

impl<T> Default for Buckets<T> {
    fn default() -> Self {
        Buckets {
            map: AHashMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<T> Buckets<T> {
    fn get_or_insert(
        &mut self,
        bucket: i64,
        new: impl FnOnce() -> Vec<Entry<T>>,
    ) -> &mut Vec<Entry<T>> {
        let order = &mut self.order;
        self.map.entry(bucket).or_insert_with(|| {
            order.insert(bucket);
            new()
        })
    }

    /// Removes and returns the earliest bucket.
    fn pop_first(&mut self) -> Option<(i64, Vec<Entry<T>>)> {
        let bucket = self.order.pop_first()?;
        let entries = self.map.remove(&bucket)?;
        Some((bucket, entries))
    }
}

impl<T: Serialize> Serialize for Buckets<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.order.iter().map(|b| (b, &self.map[b])))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Buckets<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sorted = BTreeMap::<i64, Vec<Entry<T>>>::deserialize(d)?;
        Ok(Buckets {
            order: sorted.keys().copied().collect(),
            map: sorted.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    proptest! {
        /// Same pops as a binary heap on `(time, seq)` under any interleaving
        /// of pushes (never below the last popped time) and pops.
        #[test]
        fn pops_like_a_heap(ops in proptest::collection::vec((0i64..400_000, any::<bool>()), 0..400)) {
            let mut q = TimeQueue::default();
            let mut heap = BinaryHeap::new();
            let mut clock = i64::MIN;
            for (seq, (dt, pop)) in ops.into_iter().enumerate() {
                if pop {
                    let want = heap.peek().map(|Reverse((t, _, _))| *t);
                    prop_assert_eq!(q.next_time(), want);
                    if let Some(t) = want {
                        clock = t;
                        let Reverse((_, _, item)) = heap.pop().unwrap();
                        prop_assert_eq!(q.pop_at(t), Some(item));
                    }
                } else {
                    let t = clock.max(0) + dt;
                    q.push(t, seq as u64, seq);
                    heap.push(Reverse((t, seq as u64, seq)));
                }
                prop_assert_eq!(q.len(), heap.len());
            }
            while let Some(Reverse((t, _, item))) = heap.pop() {
                prop_assert_eq!(q.pop_at(t), Some(item));
            }
            prop_assert!(q.is_empty());
        }

        /// The waiting buckets encode exactly as the `BTreeMap` they were
        /// (checkpoints keep their format), and decode to the same queue.
        #[test]
        fn buckets_encode_as_a_sorted_map(ts in proptest::collection::vec(0i64..2_000_000, 0..200)) {
            let mut q = TimeQueue::default();
            let mut map: BTreeMap<i64, Vec<Entry<u32>>> = BTreeMap::new();
            for (seq, t) in ts.iter().enumerate() {
                q.push(*t, seq as u64, seq as u32);
                map.entry(t >> BUCKET_SHIFT).or_default().push(Entry { t: *t, seq: seq as u64, item: seq as u32 });
            }
            let bytes = postcard::to_stdvec(&q.later).unwrap();
            prop_assert_eq!(&bytes, &postcard::to_stdvec(&map).unwrap());
            let mut back: TimeQueue<u32> = postcard::from_bytes(&postcard::to_stdvec(&q).unwrap()).unwrap();
            let mut sorted: Vec<(i64, u64)> = ts.iter().enumerate().map(|(i, t)| (*t, i as u64)).collect();
            sorted.sort_unstable();
            for (t, seq) in sorted {
                prop_assert_eq!(back.pop_at(t), Some(seq as u32));
            }
            prop_assert!(back.next_time().is_none());
        }
    }
}
