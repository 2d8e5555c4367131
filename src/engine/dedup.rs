//! Duplicate suppression by `event_id` (contract §1).
//!
//! An event is a duplicate when an accepted event with the same id and an
//! event time within `dedup_horizon` of its own was seen before. Ids are
//! kept as 128-bit fingerprints with the event time of their first sighting,
//! and forgotten once they are older than the horizon (plus lateness) behind
//! the watermark, so memory is bounded by the traffic of one horizon.
//!
//! This is the engine's largest table (one entry per event of the horizon,
//! about a million at 1M events/s with the defaults), and nearly every probe
//! is for an id it does not hold, at a random place. So it is its own
//! open-addressing table ([`SeenIds`]) rather than a general hash map:
//!
//! - a slot is the whole entry (fingerprint and first event time, 24
//!   bytes), so a probe costs one cache miss where a Swiss table costs two
//!   (control bytes, then the entry);
//! - linear probing from the slot the fingerprint hashes to, with the table
//!   at most 5/8 full (about 4 slots, 2 cache lines, for a miss), and
//!   backward-shift deletion, so there are no tombstones;
//! - [`Dedup::prefetch`] starts loading an id's slot early: a caller that
//!   decodes one event ahead (see `replay`) hides the miss behind the
//!   previous event's work;
//! - a vacant slot is all zeros, so a new table is zeroed memory the kernel
//!   hands over lazily.
//!
//! It is serialized as the map from fingerprint to first event time it
//! stands for, so a checkpoint does not depend on this layout.

use super::fpmap::fold;
use crate::event::Fp;
use crate::time::Micros;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    horizon: Micros,
    seen: SeenIds,
}

impl Dedup {
    pub fn new(horizon: Micros) -> Self {
        Dedup {
            horizon,
            seen: SeenIds::default(),
        }
    }

    /// Returns `true` if `id` is a duplicate; otherwise remembers it.
    #[inline]
    pub fn check_and_insert(&mut self, id: Fp, ts: Micros) -> bool {
        let horizon = self.horizon;
        // One probe of the table for both the lookup and the insert.
        match self.seen.probe(id) {
            Ok(i) => {
                if (ts - self.seen.first(i)).abs() <= horizon {
                    return true;
                }
                self.seen.set_first(i, ts);
                false
            }
            Err(vacant) => {
                self.seen.insert_at(vacant, id, ts);
                false
            }
        }
    }

    /// Starts loading the slot `id` would be found in (a hint; see the
    /// module docs).
    #[inline]
    pub fn prefetch(&self, id: Fp) {
        self.seen.prefetch(id);
    }

    /// Forgets ids first seen before `before`.
    pub fn evict(&mut self, before: Micros) {
        self.seen.retain(|ts| ts >= before);
    }

    pub fn len(&self) -> usize {
        self.seen.len
    }

    pub fn is_empty(&self) -> bool {
        self.seen.len == 0
    }
}

/// One slot: fingerprint (low, high) and the first event time with its
/// sign bit flipped, so that an all-zero slot is vacant (event times are
/// validated years 0001–9998, never `i64::MIN`).
type Slot = [u64; 3];

const FLIP: u64 = 1 << 63;

fn encode(ts: Micros) -> u64 {
    (ts as u64) ^ FLIP
}

fn decode(v: u64) -> Micros {
    (v ^ FLIP) as Micros
}

fn split(id: Fp) -> (u64, u64) {
    (id as u64, (id >> 64) as u64)
}

/// The smallest table allocated (24 KiB).
const MIN_SLOTS: usize = 1024;

/// Fingerprint → first event time, open addressing (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SeenIds {
    /// A power of two long, or empty before the first insert.
    slots: Vec<Slot>,
    len: usize,
}

impl SeenIds {
    /// The slot `id` hashes to; `slots` must not be empty.
    #[inline]
    fn home(&self, id: Fp) -> usize {
        // The high bits of the hash pick the slot (`len` is a power of two).
        let shift = 64 - self.slots.len().trailing_zeros();
        (fold(id) >> shift) as usize
    }

    fn home_of(&self, slot: &Slot) -> usize {
        self.home(u128::from(slot[0]) | (u128::from(slot[1]) << 64))
    }

    #[inline]
    fn prefetch(&self, id: Fp) {
        if self.slots.is_empty() {
            return;
        }
        let slot = &self.slots[self.home(id)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint; it never faults and does not
        // change memory, and the address is that of a live slot.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(slot.as_ptr().cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Where `id` is (`Ok`), or the vacant slot where its probe ended
    /// (`Err`; `usize::MAX` while the table is empty).
    #[inline]
    fn probe(&self, id: Fp) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        let (lo, hi) = split(id);
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            let s = &self.slots[i];
            if s[2] == 0 {
                return Err(i);
            }
            if s[0] == lo && s[1] == hi {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn first(&self, i: usize) -> Micros {
        decode(self.slots[i][2])
    }

    fn set_first(&mut self, i: usize, ts: Micros) {
        self.slots[i][2] = encode(ts);
    }

    /// Inserts `id`, absent, whose probe ended at slot `vacant`.
    #[inline]
    fn insert_at(&mut self, vacant: usize, id: Fp, ts: Micros) {
        let (lo, hi) = split(id);
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
            self.place([lo, hi, encode(ts)]);
        } else {
            self.slots[vacant] = [lo, hi, encode(ts)];
        }
        self.len += 1;
    }

    /// Puts an entry in the first vacant slot from its home.
    fn place(&mut self, entry: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = self.home_of(&entry);
        while self.slots[i][2] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = entry;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        // `vec!` of zeros is zeroed memory from the allocator (calloc): the
        // pages are touched as entries land, not all up front.
        let old = std::mem::replace(&mut self.slots, vec![[0u64; 3]; size]);
        for entry in old.into_iter().filter(|s| s[2] != 0) {
            self.place(entry);
        }
    }

    /// Keeps the entries whose first event time passes `keep`.
    fn retain(&mut self, keep: impl Fn(Micros) -> bool) {
        if self.len == 0 {
            return;
        }
        let size = self.slots.len();
        // Start after a vacant slot: no run of occupied slots wraps past
        // it, so every entry shifted back by a removal lands at or after
        // the sweep's position and is still checked, and entries already
        // checked never move.
        let start = self
            .slots
            .iter()
            .position(|s| s[2] == 0)
            .expect("the table is never full");
        let mut k = 1;
        while k < size {
            let i = (start + k) & (size - 1);
            let s = self.slots[i];
            if s[2] != 0 && !keep(decode(s[2])) {
                // Slot i now holds the next entry of its run, or is vacant:
                // look at it again.
                self.remove_at(i);
            } else {
                k += 1;
            }
        }
    }

    /// Empties slot `hole`, shifting back later entries of its run that may
    /// live there (backward-shift deletion: lookups stay correct with no
    /// tombstones).
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s[2] == 0 {
                break;
            }
            // It may move to `hole` unless its home lies after `hole`
            // (cyclically, within (hole, j]).
            let from_home = j.wrapping_sub(self.home_of(&s)) & mask;
            let from_hole = j.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = [0; 3];
        self.len -= 1;
    }

    fn iter(&self) -> impl Iterator<Item = (Fp, Micros)> + '_ {
        self.slots
            .iter()
            .filter(|s| s[2] != 0)
            .map(|s| (u128::from(s[0]) | (u128::from(s[1]) << 64), decode(s[2])))
    }

    /// Inserts or overwrites (restores only).
    fn set(&mut self, id: Fp, ts: Micros) {
        match self.probe(id) {
            Ok(i) => self.set_first(i, ts),
            Err(vacant) => self.insert_at(vacant, id, ts),
        }
    }
}

/// Serialized as a map from fingerprint to first event time, as the hash
/// map it replaced was (checkpoints written before it still restore).
impl Serialize for SeenIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // With its length up front (postcard needs it; `iter` filters).
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (id, ts) in self.iter() {
            map.serialize_entry(&id, &ts)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SeenIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = SeenIds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map from event id fingerprint to first event time")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SeenIds, A::Error> {
                let mut seen = SeenIds::default();
                while let Some((id, ts)) = map.next_entry::<Fp, Micros>()? {
                    if ts == Micros::MIN {
                        return Err(serde::de::Error::custom("event time out of range"));
                    }
                    seen.set(id, ts);
                }
                Ok(seen)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn within_horizon_only() {
        let mut d = Dedup::new(100);
        assert!(!d.check_and_insert(1, 1000));
        assert!(d.check_and_insert(1, 1050));
        assert!(d.check_and_insert(1, 900));
        assert!(
            !d.check_and_insert(1, 1200),
            "beyond the horizon it is a new event"
        );
        assert!(!d.check_and_insert(2, 1000));
        d.evict(1100);
        assert_eq!(d.len(), 1);
    }

    /// The rule, on a plain map: what the table must agree with.
    #[derive(Default)]
    struct Model(HashMap<Fp, Micros>);

    impl Model {
        fn check_and_insert(&mut self, horizon: Micros, id: Fp, ts: Micros) -> bool {
            match self.0.get(&id) {
                Some(&first) if (ts - first).abs() <= horizon => true,
                _ => {
                    self.0.insert(id, ts);
                    false
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        See(Fp, Micros),
        Evict(Micros),
    }

    /// Ids mostly from a small pool, so they repeat, runs form and wrap
    /// around the end of the table.
    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let id = prop_oneof![0u128..3000, any::<u128>()];
        let op = prop_oneof![
            20 => (id, 0i64..10_000).prop_map(|(i, t)| Op::See(i, t)),
            1 => (0i64..10_000).prop_map(Op::Evict),
        ];
        proptest::collection::vec(op, 1..4000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of sightings and evictions (growth, runs that wrap
        /// around the end, removals in the middle of runs) answers as the
        /// plain map does, and keeps exactly its entries.
        #[test]
        fn agrees_with_a_plain_map(ops in ops()) {
            let horizon = 500;
            let mut d = Dedup::new(horizon);
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::See(id, ts) => prop_assert_eq!(
                        d.check_and_insert(id, ts),
                        m.check_and_insert(horizon, id, ts)
                    ),
                    Op::Evict(before) => {
                        d.evict(before);
                        m.0.retain(|_, ts| *ts >= before);
                    }
                }
                prop_assert_eq!(d.len(), m.0.len());
            }
            let held: HashMap<Fp, Micros> = d.seen.iter().collect();
            prop_assert_eq!(&held, &m.0);
            // Every entry is found from its home (no entry is stranded
            // behind a vacant slot).
            for &id in m.0.keys() {
                prop_assert!(d.seen.probe(id).is_ok());
            }
        }
    }

    #[test]
    fn serialized_as_the_map_it_stands_for() {
        let mut d = Dedup::new(7);
        for i in 0..5000u128 {
            d.check_and_insert(
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
                i as i64 * 3,
            );
        }
        d.evict(6000);
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct AsMap {
            horizon: Micros,
            seen: HashMap<Fp, Micros>,
        }
        let bytes = postcard::to_stdvec(&d).unwrap();
        let map: AsMap = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(map.horizon, 7);
        assert_eq!(map.seen, d.seen.iter().collect::<HashMap<_, _>>());
        assert_eq!(map.seen.len(), 3000);
        // And a map written by the old layout restores into the table.
        let back: Dedup = postcard::from_bytes(&postcard::to_stdvec(&map).unwrap()).unwrap();
        assert_eq!(back.len(), 3000);
        assert_eq!(back.seen.iter().collect::<HashMap<_, _>>(), map.seen);
        let mut back = back;
        assert!(back.check_and_insert(
            4999u128.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
            4999 * 3
        ));
    }
}
