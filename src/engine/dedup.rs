//! Duplicate suppression by `event_id` (contract §1).
//!
//! An event is a duplicate when an accepted event with the same id and an
//! event time within `dedup_horizon` of its own was seen before. Ids are
//! kept as 128-bit fingerprints with the event time of their first sighting,
//! and forgotten once they are older than the horizon (plus lateness) behind
//! the watermark, so memory is bounded by the traffic of one horizon.

use super::fpmap::FpMap;
use crate::event::Fp;
use crate::time::Micros;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    horizon: Micros,
    seen: FpMap<Micros>,
}

impl Dedup {
    pub fn new(horizon: Micros) -> Self {
        Dedup {
            horizon,
            seen: FpMap::default(),
        }
    }

    /// Returns `true` if `id` is a duplicate; otherwise remembers it.
    pub fn check_and_insert(&mut self, id: Fp, ts: Micros) -> bool {
        // One probe of the table for both the lookup and the insert.
        match self.seen.entry(id.into()) {
            Entry::Occupied(mut first) => {
                if (ts - *first.get()).abs() <= self.horizon {
                    return true;
                }
                first.insert(ts);
                false
            }
            Entry::Vacant(v) => {
                v.insert(ts);
                false
            }
        }
    }

    /// Forgets ids first seen before `before`.
    pub fn evict(&mut self, before: Micros) {
        self.seen.retain(|_, ts| *ts >= before);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
