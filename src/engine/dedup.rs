//! Duplicate suppression by `event_id` (contract §1).
//!
//! An event is a duplicate when an accepted event with the same id and an
//! event time within `dedup_horizon` of its own was seen before. Ids are
//! kept as 128-bit fingerprints with the event time of their first sighting,
//! and forgotten once they are older than the horizon (plus lateness) behind
//! the watermark, so memory is bounded by the traffic of one horizon.
//!
//! The ids live in an [`OpenTable`] of 24-byte slots (fingerprint and first
//! event time), the engine's largest table: about a million entries with
//! the default 1h horizon at the bench's rate.

use super::table::{deserialize_map, serialize_map, OpenTable, Slot};
use crate::event::Fp;
use crate::time::Micros;
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
        let table = &mut self.seen.0;
        match table.probe(id) {
            Ok(i) => {
                let first = &mut table.slot_mut(i)[2];
                if (ts - decode(*first)).abs() <= horizon {
                    return true;
                }
                *first = encode(ts);
                false
            }
            Err(vacant) => {
                table.insert_at(vacant, seen(id, ts));
                false
            }
        }
    }

    /// Starts loading the slot `id` would be found in (a hint; see the
    /// module docs).
    #[inline]
    pub fn prefetch(&self, id: Fp) {
        self.seen.0.prefetch(id);
    }

    /// Forgets ids first seen before `before`.
    pub fn evict(&mut self, before: Micros) {
        self.seen.0.retain(|s| decode(s[2]) >= before);
    }

    pub fn len(&self) -> usize {
        self.seen.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.0.is_empty()
    }
}

/// One slot: fingerprint (low, high) and the first event time with its
/// sign bit flipped, so that an all-zero slot is vacant (event times are
/// validated years 0001–9998, never `i64::MIN`, so an occupied slot's
/// third word is never zero).
type SeenSlot = [u64; 3];

impl Slot for SeenSlot {
    const VACANT: Self = [0; 3];

    #[inline]
    fn key(&self) -> Option<Fp> {
        (self[2] != 0).then(|| u128::from(self[0]) | (u128::from(self[1]) << 64))
    }
}

const FLIP: u64 = 1 << 63;

fn encode(ts: Micros) -> u64 {
    (ts as u64) ^ FLIP
}

fn decode(v: u64) -> Micros {
    (v ^ FLIP) as Micros
}

fn seen(id: Fp, ts: Micros) -> SeenSlot {
    [id as u64, (id >> 64) as u64, encode(ts)]
}

/// Fingerprint → first event time.
#[derive(Debug, Clone, Default)]
pub struct SeenIds(OpenTable<SeenSlot>);

impl SeenIds {
    fn iter(&self) -> impl Iterator<Item = (Fp, Micros)> + '_ {
        self.0
            .iter()
            .map(|s| (s.key().expect("occupied"), decode(s[2])))
    }
}

/// Serialized as a map from fingerprint to first event time, as the hash
/// map it replaced was (checkpoints written before it still restore).
impl Serialize for SeenIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_map(serializer, self.0.len(), self.iter())
    }
}

impl<'de> Deserialize<'de> for SeenIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_map(deserializer, |seen_ids: &mut SeenIds, id, ts: Micros| {
            if ts == Micros::MIN {
                return Err("event time out of range");
            }
            seen_ids.0.put(seen(id, ts));
            Ok(())
        })
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
                prop_assert!(d.seen.0.probe(id).is_ok());
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
