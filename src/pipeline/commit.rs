//! Commit safety: which input offsets may be committed, and when.
//!
//! This is the only place that decides what cxpulse commits to Kafka, so
//! that checkpoints and exactly-once (a later issue) replace one module.
//!
//! # The guarantee: at-least-once, end to end
//!
//! An input offset is committed only when every KPI record that depends on
//! the events up to it has been acknowledged by the broker (`acks=all`,
//! idempotent producer). After a crash at any point, the group restarts from
//! the committed offsets and re-reads everything whose effect could be missing
//! from the KPI topic; KPI rows may then be written again, never lost.
//!
//! # What "depends on" means
//!
//! The engine keeps three kinds of state built from input events:
//!
//! 1. **the event-time buffer**: events at or above the watermark, not yet
//!    processed;
//! 2. **window state**: a window `[start, end)` fires when the watermark
//!    reaches `end` and can still be revised by late events until the
//!    watermark passes `end + allowed_lateness`; only then is its last
//!    revision final;
//! 3. **entity state**: open tickets, chats, carts (with their abandonment
//!    timer `cart_abandon_after` after the start) and subscriptions, which
//!    turn *later* events into observations (a reply becomes a first-reply
//!    time only because the ticket's `opened` event was seen).
//!
//! So each valid event (including duplicates, which may be re-reads of an
//! event still held in memory) gets a **release time** in event time:
//!
//! ```text
//! release = ts + largest window size + allowed_lateness
//!              (+ cart_abandon_after        for checkout.started: its timer
//!                                            observes at ts + cart_abandon_after)
//!              (+ kafka.restart_entity_lookback  for entity events, i.e.
//!                                            every type but survey.submitted)
//! ```
//!
//! Every window an event (or its cart timer) can feed ends at or before
//! `release − allowed_lateness`, so once the pipeline watermark `W` reaches
//! `release` those windows are final. An event is **in flight** while
//! `release > W`; a buffered event (ts ≥ W) always is. Invalid messages hold
//! nothing but their dead letter.
//!
//! Per partition the committable offset is the lowest in-flight offset, or
//! the last consumed offset + 1 when nothing is in flight. A **candidate**
//! `(offsets, W, seq)` is taken every `kafka.commit_interval`, where `seq` is
//! the sequence number of the last record (KPI record or dead letter) handed
//! to the producer at that moment: everything the engine emitted for windows
//! with `end + allowed_lateness ≤ W` (their final revisions) and every dead
//! letter of the released offsets has `seq` at or below it. The candidate is
//! committed once the producer has acknowledged every record up to `seq`
//! (acknowledgements are tracked in order, see `kafka_sink`). At shutdown a
//! last candidate is taken after the producer's explicit flush.
//!
//! # Restart: the resume watermark
//!
//! Each commit carries `W` in the offset metadata (`cxpulse1 wm=<µs>`). On
//! assignment the largest such value is the **resume watermark** `R`. It says
//! two things: every window with `end + allowed_lateness ≤ R` had its final
//! revision acknowledged before the restart, and every event below the
//! committed offsets only fed such windows. After a restart the engine starts
//! empty and re-reads from the committed offsets, so those windows would be
//! rebuilt from only part of their events: the pipeline **suppresses** KPI
//! records of windows with `end + allowed_lateness ≤ R` (they are already
//! final on the KPI topic). Every other window receives all of its events
//! again and is re-emitted complete: repeats have identical content (their
//! `revision` may restart at 0).
//!
//! # What a restart recovers, honestly
//!
//! - Windows: fully, as above.
//! - Entity state younger than the hold: an entity whose events all lie
//!   within `largest window + allowed_lateness + restart_entity_lookback` of
//!   event time is rebuilt from re-read events, so observations that join
//!   its events (reply times, one-touch resolution, chat waits, cart outcomes)
//!   are the same as without the restart.
//! - Older entity state is **not** restored until checkpoints exist (a later
//!   issue): a ticket opened before the hold and resolved after the restart
//!   is an orphan there, and the subscription base (active subscriptions,
//!   the churn denominator) only counts subscriptions started within the
//!   re-read range. With the default 24 h window the hold is a day of event
//!   time; raise `restart_entity_lookback` to trade re-reading for fidelity.
//! - Dedup: an `event_id` first seen before the committed offset and seen
//!   again after it only feeds windows that are already suppressed.
//!
//! Rebalances: KPIs aggregate across all partitions, so a group is meant to
//! have one member (others are standbys). A revoked partition is no longer
//! committed; if it comes back (the member rejoined after a session timeout)
//! its tracking is restored and the re-delivered offsets the engine already
//! holds are skipped. A commit racing with a revocation is at worst stale (it
//! never moves past what this member has made safe).

use crate::engine::EngineSettings;
use crate::event::{Body, Event};
use crate::record::KpiRecord;
use crate::time::{Micros, MICROS_PER_MILLI};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// `(topic, partition, next offset)` per partition.
pub type Positions = Vec<(Arc<str>, i32, i64)>;

/// Identifies an input partition inside the pipeline (see
/// [`super::partition_id`]).
pub type PartitionId = u32;

/// Computes each event's release time (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// Largest window size + allowed_lateness.
    pub windows: Micros,
    /// `cart_abandon_after`.
    pub cart: Micros,
    /// `kafka.restart_entity_lookback`.
    pub entity: Micros,
}

impl Horizon {
    pub fn new(settings: &EngineSettings, restart_entity_lookback: Micros) -> Self {
        let largest = settings.windows.iter().map(|w| w.size).max().unwrap_or(0);
        Horizon {
            windows: largest.saturating_add(settings.allowed_lateness),
            cart: settings.rules.cart_abandon_after,
            entity: restart_entity_lookback,
        }
    }

    /// Event time at which every window `event` can feed is final.
    pub fn release(&self, event: &Event) -> Micros {
        let mut r = event.ts.saturating_add(self.windows);
        match event.body {
            Body::SurveySubmitted { .. } => {}
            Body::CheckoutStarted { .. } => {
                r = r.saturating_add(self.cart).saturating_add(self.entity);
            }
            _ => r = r.saturating_add(self.entity),
        }
        r
    }
}

/// A run of consecutive offsets of one partition whose events are released
/// together: at the latest release time among them (conservative).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    first_offset: i64,
    /// Release time of the bucket's first event; later events join the bucket
    /// while their release is within `granularity` of it.
    anchor: Micros,
    /// Latest release time in the bucket.
    release: Micros,
}

#[derive(Debug)]
struct Track {
    topic: Arc<str>,
    partition: i32,
    /// In offset order. The front is the lowest offset that may be in flight.
    buckets: VecDeque<Bucket>,
    /// Last consumed offset + 1, once something was consumed.
    next_offset: Option<i64>,
    /// Last offset committed (or planned) for this partition.
    committed: Option<i64>,
}

impl Track {
    /// The lowest offset still in flight at watermark `w`, or the next offset
    /// to consume when none is. `None` if nothing was consumed yet.
    fn safe_offset(&mut self, w: Micros) -> Option<i64> {
        while self.buckets.front().is_some_and(|b| b.release <= w) {
            self.buckets.pop_front();
        }
        match self.buckets.front() {
            Some(b) => Some(b.first_offset),
            None => self.next_offset,
        }
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    /// Last record sequence number emitted when the candidate was taken.
    seq: u64,
    watermark: Micros,
    offsets: Vec<(PartitionId, i64)>,
}

/// Offsets to commit, with the metadata that carries the resume watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    /// `(topic, partition, offset)`: the next offset to read.
    pub offsets: Vec<(Arc<str>, i32, i64)>,
    pub metadata: String,
    /// The watermark the plan is safe for.
    pub watermark: Micros,
}

/// The offset-metadata prefix of cxpulse commits.
const METADATA_PREFIX: &str = "cxpulse1 wm=";

/// Encodes the resume watermark as offset metadata.
pub fn encode_metadata(watermark: Micros) -> String {
    format!("{METADATA_PREFIX}{watermark}")
}

/// Decodes offset metadata written by [`encode_metadata`]; anything else
/// (another tool's commit, no metadata) gives `None`.
pub fn decode_metadata(metadata: &str) -> Option<Micros> {
    metadata.strip_prefix(METADATA_PREFIX)?.trim().parse().ok()
}

/// Keeps at most this many pending candidates (when acknowledgements stall,
/// e.g. while a broker is down, newer candidates replace the newest one).
const MAX_CANDIDATES: usize = 8;

/// Tracks in-flight offsets per partition and decides what to commit.
#[derive(Debug)]
pub struct CommitTracker {
    horizon: Horizon,
    allowed_lateness: Micros,
    granularity: Micros,
    tracks: BTreeMap<PartitionId, Track>,
    /// Tracking of revoked partitions, restored if they are assigned again.
    revoked: BTreeMap<PartitionId, Track>,
    candidates: VecDeque<Candidate>,
    /// See the module docs; `Micros::MIN` when nothing was committed before.
    resume_watermark: Micros,
    /// The largest watermark committed so far in this run.
    committed_watermark: Micros,
}

impl CommitTracker {
    pub fn new(horizon: Horizon, allowed_lateness: Micros) -> Self {
        CommitTracker {
            horizon,
            allowed_lateness,
            // Bucketing delays a release by at most a thousandth of the hold
            // and bounds memory to about a thousand buckets per partition.
            granularity: (horizon.windows / 1000).max(MICROS_PER_MILLI),
            tracks: BTreeMap::new(),
            revoked: BTreeMap::new(),
            candidates: VecDeque::new(),
            resume_watermark: Micros::MIN,
            committed_watermark: Micros::MIN,
        }
    }

    pub fn horizon(&self) -> &Horizon {
        &self.horizon
    }

    /// The resume watermark (see the module docs).
    pub fn resume_watermark(&self) -> Micros {
        self.resume_watermark
    }

    /// A partition was assigned; `metadata` is its committed offset metadata.
    ///
    /// A partition this process had before (revoked by a rebalance, e.g.
    /// after a session timeout) gets its tracking back: the engine still
    /// holds its events, so what it had consumed stays in flight, and the
    /// pipeline skips re-delivered offsets below [`Self::next_offset`]
    /// (re-reading them would count them twice once dedup has forgotten them).
    pub fn assign(
        &mut self,
        p: PartitionId,
        topic: Arc<str>,
        partition: i32,
        metadata: Option<&str>,
    ) {
        if let Some(w) = metadata.and_then(decode_metadata) {
            self.resume_watermark = self.resume_watermark.max(w);
        }
        let track = self.revoked.remove(&p).unwrap_or(Track {
            topic,
            partition,
            buckets: VecDeque::new(),
            next_offset: None,
            committed: None,
        });
        self.tracks.entry(p).or_insert(track);
    }

    /// A partition was revoked: it is no longer ours to commit. Its tracking
    /// is kept aside in case it comes back (see [`Self::assign`]).
    pub fn revoke(&mut self, p: PartitionId) {
        if let Some(t) = self.tracks.remove(&p) {
            self.revoked.insert(p, t);
        }
        for c in &mut self.candidates {
            c.offsets.retain(|(q, _)| *q != p);
        }
    }

    /// The next offset of `p` this process has not consumed yet, if it has
    /// consumed any: offsets below it are already in the engine.
    pub fn next_offset(&self, p: PartitionId) -> Option<i64> {
        self.tracks.get(&p).and_then(|t| t.next_offset)
    }

    /// A valid event (processed, buffered, late or duplicate) was consumed
    /// from `p` at `offset`.
    pub fn track_event(&mut self, p: PartitionId, offset: i64, event: &Event) {
        let release = self.horizon.release(event);
        let gran = self.granularity;
        let Some(t) = self.tracks.get_mut(&p) else {
            return;
        };
        t.next_offset = Some(offset + 1);
        match t.buckets.back_mut() {
            Some(b) if release <= b.anchor.saturating_add(gran) => {
                b.release = b.release.max(release);
            }
            _ => t.buckets.push_back(Bucket {
                first_offset: offset,
                anchor: release,
                release,
            }),
        }
    }

    /// A message that holds nothing in the engine (invalid input) was
    /// consumed from `p` at `offset`; its dead letter is covered by `seq`.
    pub fn track_other(&mut self, p: PartitionId, offset: i64) {
        if let Some(t) = self.tracks.get_mut(&p) {
            t.next_offset = Some(offset + 1);
        }
    }

    /// Takes a candidate at watermark `watermark`, after the record with
    /// sequence number `seq` was handed to the producer.
    pub fn checkpoint(&mut self, watermark: Micros, seq: u64) {
        let offsets: Vec<(PartitionId, i64)> = self
            .tracks
            .iter_mut()
            .filter_map(|(p, t)| t.safe_offset(watermark).map(|o| (*p, o)))
            .collect();
        let c = Candidate {
            seq,
            watermark,
            offsets,
        };
        if self.candidates.len() >= MAX_CANDIDATES {
            // Replace the newest: the oldest ones become ready first.
            self.candidates.pop_back();
        }
        self.candidates.push_back(c);
    }

    /// The newest candidate whose records are all acknowledged
    /// (`acked_through`: every sequence number up to it), as a plan, if it
    /// moves any offset or the resume watermark. Older candidates are dropped.
    pub fn ready(&mut self, acked_through: u64) -> Option<CommitPlan> {
        let mut best = None;
        while self
            .candidates
            .front()
            .is_some_and(|c| c.seq <= acked_through)
        {
            best = self.candidates.pop_front();
        }
        let c = best?;
        // The metadata never goes back: a restart that is still re-reading
        // (watermark below the resume watermark) keeps the older, larger claim,
        // which stays true.
        let watermark = c.watermark.max(self.resume_watermark);
        let mut offsets = Vec::new();
        let mut moved = false;
        for (p, o) in c.offsets {
            let Some(t) = self.tracks.get_mut(&p) else {
                continue;
            };
            if t.committed != Some(o) {
                moved = true;
            }
            t.committed = Some(o);
            offsets.push((t.topic.clone(), t.partition, o));
        }
        if !moved && watermark <= self.committed_watermark {
            return None;
        }
        self.committed_watermark = self.committed_watermark.max(watermark);
        if offsets.is_empty() {
            return None;
        }
        Some(CommitPlan {
            offsets,
            metadata: encode_metadata(watermark),
            watermark,
        })
    }

    /// Whether `record` belongs to a window that was already final (and
    /// acknowledged) before this run: see "the resume watermark".
    pub fn suppress(&self, record: &KpiRecord) -> bool {
        self.resume_watermark > Micros::MIN
            && record.window_end.saturating_add(self.allowed_lateness) <= self.resume_watermark
    }

    /// Continues `p` after a restored checkpoint: offsets below `offset` are
    /// already in the engine state (and skipped if delivered again).
    pub fn resume_at(&mut self, p: PartitionId, offset: i64) {
        if let Some(t) = self.tracks.get_mut(&p) {
            t.next_offset = Some(t.next_offset.map_or(offset, |n| n.max(offset)));
        }
    }

    /// `(topic, partition, next offset)` of every partition whose messages
    /// the engine holds, assigned or revoked: what a checkpoint covers.
    pub fn positions(&self) -> Positions {
        self.tracks
            .values()
            .chain(self.revoked.values())
            .filter_map(|t| t.next_offset.map(|o| (t.topic.clone(), t.partition, o)))
            .collect()
    }

    /// Whether `p` is assigned now.
    pub fn is_assigned(&self, p: PartitionId) -> bool {
        self.tracks.contains_key(&p)
    }

    /// Partitions tracked, and the in-flight buckets they hold (for logs).
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.tracks.len(),
            self.tracks.values().map(|t| t.buckets.len()).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::time::MICROS_PER_SEC;

    const S: Micros = MICROS_PER_SEC;

    fn horizon() -> Horizon {
        Horizon {
            windows: 100 * S,
            cart: 50 * S,
            entity: 0,
        }
    }

    fn survey(ts: Micros) -> Event {
        Event {
            id: ts as u128,
            ts,
            region: Sym::UNKNOWN,
            channel: Sym::UNKNOWN,
            body: Body::SurveySubmitted {
                survey: crate::event::SurveyKind::Csat,
                score: 5,
                agent: Sym::UNKNOWN,
            },
        }
    }

    fn cart(ts: Micros) -> Event {
        Event {
            body: Body::CheckoutStarted { checkout: 7 },
            ..survey(ts)
        }
    }

    fn tracker() -> CommitTracker {
        let mut t = CommitTracker::new(horizon(), 10 * S);
        t.assign(1, "cx.surveys".into(), 0, None);
        t
    }

    #[test]
    fn commits_lowest_in_flight_offset_once_acked() {
        let mut t = tracker();
        for (o, ts) in [(0, 0), (1, 10 * S), (2, 5 * S), (3, 300 * S)] {
            t.track_event(1, o, &survey(ts));
        }
        t.track_other(1, 4);
        // Watermark 50s: nothing released (first release at 100s).
        t.checkpoint(50 * S, 3);
        assert_eq!(t.ready(2), None, "records up to 3 not acked yet");
        let plan = t.ready(3).unwrap();
        assert_eq!(plan.offsets, vec![("cx.surveys".into(), 0, 0)]);
        // Watermark 120s: offsets 0..=2 released, 3 (ts 300s) is in flight.
        t.checkpoint(120 * S, 5);
        let plan = t.ready(9).unwrap();
        assert_eq!(plan.offsets, vec![("cx.surveys".into(), 0, 3)]);
        assert_eq!(decode_metadata(&plan.metadata), Some(120 * S));
        // Everything released: last consumed + 1 (the invalid message at 4).
        t.checkpoint(1_000 * S, 5);
        let plan = t.ready(5).unwrap();
        assert_eq!(plan.offsets, vec![("cx.surveys".into(), 0, 5)]);
        // Nothing new: no plan.
        t.checkpoint(1_000 * S, 5);
        assert_eq!(t.ready(5), None);
    }

    #[test]
    fn cart_timers_hold_longer() {
        let mut t = tracker();
        t.track_event(1, 0, &cart(0));
        t.track_event(1, 1, &survey(S));
        t.checkpoint(120 * S, 0);
        assert_eq!(t.ready(0).unwrap().offsets[0].2, 0, "cart holds until 150s");
        t.checkpoint(150 * S, 0);
        assert_eq!(t.ready(0).unwrap().offsets[0].2, 2);
    }

    #[test]
    fn suppresses_windows_final_before_restart() {
        let mut t = CommitTracker::new(horizon(), 10 * S);
        t.assign(1, "a".into(), 0, Some(&encode_metadata(500 * S)));
        t.assign(2, "a".into(), 1, Some("someone else's"));
        assert_eq!(t.resume_watermark(), 500 * S);
        let rec = |end: Micros| KpiRecord {
            kpi: "nps",
            window: "1m".into(),
            window_start: end - 60 * S,
            window_end: end,
            group: vec![],
            value: crate::engine::kpi::Value::Int(1),
            count: 1,
            numerator: None,
            quantiles: None,
            revision: 0,
        };
        assert!(t.suppress(&rec(490 * S)));
        assert!(!t.suppress(&rec(491 * S)));
        // The metadata never goes back while re-reading.
        t.track_event(1, 0, &survey(0));
        t.checkpoint(200 * S, 0);
        assert_eq!(
            decode_metadata(&t.ready(0).unwrap().metadata),
            Some(500 * S)
        );
    }

    #[test]
    fn revoked_partitions_are_not_committed() {
        let mut t = tracker();
        t.assign(2, "cx.surveys".into(), 1, None);
        t.track_event(1, 0, &survey(0));
        t.track_event(2, 7, &survey(0));
        t.checkpoint(1_000 * S, 0);
        t.revoke(2);
        let plan = t.ready(0).unwrap();
        assert_eq!(plan.offsets, vec![("cx.surveys".into(), 0, 1)]);
        assert_eq!(t.next_offset(2), None);
    }

    #[test]
    fn a_partition_that_comes_back_keeps_its_tracking() {
        let mut t = tracker();
        t.track_event(1, 10, &survey(0));
        t.track_event(1, 11, &survey(500 * S));
        t.revoke(1);
        t.assign(1, "cx.surveys".into(), 0, None);
        assert_eq!(t.next_offset(1), Some(12), "offsets below 12 are skipped");
        t.checkpoint(200 * S, 0);
        assert_eq!(
            t.ready(0).unwrap().offsets[0].2,
            11,
            "11 is still in flight"
        );
    }

    #[test]
    fn buckets_bound_memory() {
        let mut t = tracker();
        for o in 0..100_000 {
            t.track_event(1, o, &survey(o * 1_000)); // 1000 events/s of event time
        }
        let (_, buckets) = t.in_flight();
        assert!(buckets <= 1_100, "{buckets}");
    }
}
