//! Watermarks: per input partition `max ts − max_out_of_orderness`, and the
//! pipeline's watermark, the minimum over partitions that are not idle
//! (contract §2).
//!
//! Idleness is measured in wall time, which the caller passes in; the engine
//! never reads a clock. When every partition is idle the watermark keeps
//! moving with wall time from the last event seen, so the last windows close
//! even when the stream goes quiet. The pipeline watermark never goes back.

use crate::time::Micros;
use serde::{Deserialize, Serialize};

/// Identifies an input partition (a file, or a topic-partition).
pub type PartitionId = u32;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionClock {
    max_ts: Option<Micros>,
    last_activity: Micros,
    idle: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermarks {
    max_out_of_orderness: Micros,
    idle_timeout: Micros,
    /// By partition id: a sorted vector, not a map, because it is read on
    /// every event and scanned whenever the watermark may move (postcard
    /// encodes it exactly as it encoded the map it replaced).
    partitions: Vec<(PartitionId, PartitionClock)>,
    current: Micros,
    /// Wall time of the last message from any partition.
    last_activity: Micros,
}

impl Watermarks {
    pub fn new(max_out_of_orderness: Micros, idle_timeout: Micros) -> Self {
        Watermarks {
            max_out_of_orderness,
            idle_timeout,
            partitions: Vec::new(),
            current: Micros::MIN,
            last_activity: Micros::MIN,
        }
    }

    /// The pipeline watermark.
    pub fn current(&self) -> Micros {
        self.current
    }

    /// Registers a partition (on assignment): it holds the watermark back
    /// until it delivers data or goes idle.
    pub fn assign(&mut self, p: PartitionId, wall: Micros) {
        self.clock_of(p, wall);
    }

    /// Where `p` is (`Ok`) or would be inserted (`Err`) in `partitions`.
    fn find(&self, p: PartitionId) -> Result<usize, usize> {
        self.partitions.binary_search_by_key(&p, |(id, _)| *id)
    }

    /// The clock of `p`, registered at wall time `wall` if new.
    fn clock_of(&mut self, p: PartitionId, wall: Micros) -> &mut PartitionClock {
        let i = match self.find(p) {
            Ok(i) => i,
            Err(i) => {
                let clock = PartitionClock {
                    max_ts: None,
                    last_activity: wall,
                    idle: false,
                };
                self.partitions.insert(i, (p, clock));
                i
            }
        };
        &mut self.partitions[i].1
    }

    fn values(&self) -> impl Iterator<Item = &PartitionClock> {
        self.partitions.iter().map(|(_, c)| c)
    }

    /// After a restore: the wall-clock activity of every partition restarts
    /// at `wall`, so that the time the process was down does not make them
    /// all idle (which would advance the watermark with wall time before
    /// their backlog is read).
    pub fn resume(&mut self, wall: Micros) {
        for (_, c) in &mut self.partitions {
            c.last_activity = wall;
            c.idle = false;
        }
        self.last_activity = wall;
    }

    /// Forgets a partition (on revocation).
    pub fn revoke(&mut self, p: PartitionId) {
        if let Ok(i) = self.find(p) {
            self.partitions.remove(i);
        }
    }

    /// Records a message from `p` at wall time `wall` (valid or not: any
    /// message shows the partition is alive).
    pub fn activity(&mut self, p: PartitionId, wall: Micros) {
        let c = self.clock_of(p, wall);
        c.last_activity = c.last_activity.max(wall);
        c.idle = false;
        self.last_activity = self.last_activity.max(wall);
    }

    /// Records an accepted event's time on `p` (after [`Self::activity`]).
    /// Returns whether the pipeline watermark may have moved, i.e. whether
    /// [`Self::update`] is needed: not when `p`'s own watermark was already
    /// above the pipeline's, because then another active partition holds it
    /// (the pipeline watermark is at least the minimum over active ones).
    pub fn observe(&mut self, p: PartitionId, ts: Micros) -> bool {
        let ooo = self.max_out_of_orderness;
        match self.find(p) {
            Ok(i) => {
                let c = &mut self.partitions[i].1;
                let before = c.max_ts.map_or(Micros::MIN, |m| m.saturating_sub(ooo));
                c.max_ts = Some(c.max_ts.map_or(ts, |m| m.max(ts)));
                before <= self.current
            }
            Err(_) => true,
        }
    }

    /// Re-evaluates idleness at wall time `wall` and recomputes the watermark.
    pub fn tick(&mut self, wall: Micros) -> Micros {
        for (_, c) in &mut self.partitions {
            c.idle = wall.saturating_sub(c.last_activity) >= self.idle_timeout;
        }
        self.recompute(Some(wall))
    }

    /// Recomputes the watermark after new events (no idleness change).
    pub fn update(&mut self) -> Micros {
        self.recompute(None)
    }

    fn recompute(&mut self, wall: Option<Micros>) -> Micros {
        let ooo = self.max_out_of_orderness;
        let of = |c: &PartitionClock| c.max_ts.map_or(Micros::MIN, |m| m.saturating_sub(ooo));
        let active = self.values().filter(|c| !c.idle).map(of).min();
        let candidate = match active {
            Some(w) => w,
            None => {
                // Every partition is idle: advance with wall time since the
                // last message, from the furthest partition.
                let furthest = self.values().map(of).max().unwrap_or(Micros::MIN);
                match wall {
                    Some(wall) if furthest > Micros::MIN && self.last_activity > Micros::MIN => {
                        furthest.saturating_add(wall.saturating_sub(self.last_activity).max(0))
                    }
                    _ => furthest,
                }
            }
        };
        self.current = self.current.max(candidate);
        self.current
    }

    /// Per-partition `(id, max ts, idle)` for metrics.
    pub fn partitions(&self) -> impl Iterator<Item = (PartitionId, Option<Micros>, bool)> + '_ {
        self.partitions.iter().map(|(p, c)| (*p, c.max_ts, c.idle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_over_active_partitions_and_idle_release() {
        let mut w = Watermarks::new(10, 1_000);
        w.activity(0, 0);
        w.activity(1, 0);
        w.observe(0, 500);
        assert_eq!(w.update(), Micros::MIN, "partition 1 has no data yet");
        w.observe(1, 300);
        assert_eq!(w.update(), 290);
        // Partition 1 goes quiet; partition 0 keeps talking.
        w.activity(0, 1_500);
        w.observe(0, 800);
        assert_eq!(
            w.tick(1_500),
            790,
            "idle partition 1 no longer holds it back"
        );
        // Everything quiet: the watermark follows wall time.
        assert_eq!(w.tick(3_000), 790 + 1_500);
        // Never backwards, even when partition 1 wakes up behind.
        w.activity(1, 3_100);
        w.observe(1, 400);
        assert_eq!(w.update(), 790 + 1_500);
    }

    #[test]
    fn resume_after_restore_does_not_count_downtime_as_idleness() {
        let mut w = Watermarks::new(10, 1_000);
        w.activity(0, 0);
        w.activity(1, 0);
        w.observe(0, 500);
        w.observe(1, 300);
        assert_eq!(w.update(), 290);
        // The process was down for a long time (wall 0 -> 100_000). Without
        // `resume`, both partitions would look idle and the watermark would
        // jump with wall time before their backlog is read.
        let mut restored = w.clone();
        restored.resume(100_000);
        assert_eq!(restored.tick(100_500), 290);
        // Still released once they really go quiet after the restart.
        assert_eq!(restored.tick(101_500), 490 + 1_500);
        assert!(w.tick(100_500) > 290, "the unresumed clocks count downtime");
    }

    #[test]
    fn partitions_encode_as_the_map_they_replaced() {
        // Checkpoints written when `partitions` was a BTreeMap still read.
        let clock = |ts| PartitionClock {
            max_ts: ts,
            last_activity: 7,
            idle: false,
        };
        let as_map: std::collections::BTreeMap<PartitionId, PartitionClock> =
            [(3, clock(Some(5))), (9, clock(None))]
                .into_iter()
                .collect();
        let mut w = Watermarks::new(10, 1_000);
        w.activity(9, 7);
        w.activity(3, 7);
        w.observe(3, 5);
        assert_eq!(
            postcard::to_stdvec(&w.partitions).unwrap(),
            postcard::to_stdvec(&as_map).unwrap()
        );
    }
}
