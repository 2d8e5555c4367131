//! The subscription base: how many subscriptions are active, per region,
//! as of each window boundary (the churn denominator, contract §4).
//!
//! Every start and cancellation is logged with the running count after it
//! and its *change point*: the processing clock when it was applied (its own
//! `ts` when processed in order, the current clock when late). The snapshot
//! of boundary `b` is the last count whose change point is below `b`: exactly
//! what a snapshot taken when processing crossed `b` would have held, and a
//! late change never alters a snapshot taken before it. Logs are folded once
//! no retained window can start before them.

use super::windows::ChurnBase;
use crate::intern::Sym;
use crate::time::Micros;
use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Running counts of one region (or of all regions): `(change point, count)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CountLog {
    entries: VecDeque<(Micros, i64)>,
}

impl CountLog {
    fn current(&self) -> i64 {
        self.entries.back().map_or(0, |e| e.1)
    }

    fn change(&mut self, at: Micros, delta: i64) {
        let next = self.current() + delta;
        match self.entries.back_mut() {
            Some(last) if last.0 == at => last.1 = next,
            _ => self.entries.push_back((at, next)),
        }
    }

    fn at(&self, boundary: Micros) -> i64 {
        // Entries are in change-point order: find the last one below `boundary`.
        let idx = self.entries.partition_point(|e| e.0 < boundary);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].1
        }
    }

    /// Drops entries superseded before `before`, keeping the one in force.
    fn fold(&mut self, before: Micros) {
        while self.entries.len() >= 2 && self.entries[1].0 < before {
            self.entries.pop_front();
        }
    }
}

/// Active subscriptions over processing time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubscriptionBase {
    total: CountLog,
    by_region: AHashMap<Sym, CountLog>,
}

impl SubscriptionBase {
    /// Records a start (`+1`) or cancellation (`-1`) applied at change point `at`.
    pub fn change(&mut self, at: Micros, region: Sym, delta: i64) {
        self.total.change(at, delta);
        self.by_region.entry(region).or_default().change(at, delta);
    }

    /// Forgets history no window starting at or after `before` can need.
    pub fn fold(&mut self, before: Micros) {
        self.total.fold(before);
        for log in self.by_region.values_mut() {
            log.fold(before);
        }
    }

    pub fn active(&self) -> i64 {
        self.total.current()
    }
}

impl ChurnBase for SubscriptionBase {
    fn active_at(&self, boundary: Micros, region: Option<Sym>) -> u64 {
        let n = match region {
            None => self.total.at(boundary),
            Some(r) => self.by_region.get(&r).map_or(0, |l| l.at(boundary)),
        };
        n.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_last_change_before_boundary() {
        let mut b = SubscriptionBase::default();
        let eu = Sym(1);
        let us = Sym(2);
        b.change(10, eu, 1);
        b.change(10, us, 1);
        b.change(20, eu, 1);
        b.change(30, eu, -1);
        assert_eq!(
            b.active_at(10, None),
            0,
            "changes at the boundary come after its snapshot"
        );
        assert_eq!(b.active_at(11, None), 2);
        assert_eq!(b.active_at(21, Some(eu)), 2);
        assert_eq!(b.active_at(31, Some(eu)), 1);
        assert_eq!(b.active_at(31, Some(us)), 1);
        assert_eq!(b.active_at(31, Some(Sym(9))), 0);
        b.fold(25);
        assert_eq!(b.active_at(25, Some(eu)), 2);
        assert_eq!(b.active_at(31, None), 2);
    }
}
