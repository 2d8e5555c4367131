//! The event-time KPI engine: pure, deterministic, no I/O, no clock.
//!
//! Input is `(partition, event)` plus the wall time the caller observed (used
//! only for partition idleness); output is KPI records. In between:
//!
//! 1. [`Dedup`] drops repeated `event_id`s;
//! 2. [`Watermarks`] track `max ts − max_out_of_orderness` per partition;
//! 3. events at or above the watermark wait in an event-time-ordered buffer;
//!    events below it are *late* and are applied at once;
//! 4. processing walks time points in order: at each `t`, windows ending at
//!    `t` fire, then events at `t` are applied (arrival order), then timers
//!    due at `t` (creation order);
//! 5. [`Entities`] turn events into observations, which [`Windows`]
//!    aggregate in panes and emit as rows; late observations revise rows.
//!
//! All state is `serde`-serializable (see [`Engine::snapshot`]).

pub mod accum;
pub mod churn;
pub mod dedup;
pub mod entities;
pub mod fpmap;
pub mod kpi;
pub mod lookahead;
pub mod queue;
pub mod sketch;
pub mod table;
pub mod watermark;
pub mod windows;

use crate::decode::{decode, DecodeError};
use crate::event::{Event, Fp};
use crate::intern::Interner;
use crate::record::KpiRecord;
use crate::time::Micros;
use accum::Update;
use churn::SubscriptionBase;
use dedup::Dedup;
use entities::{CartTimer, Entities, KpiRules};
use kpi::{Dim, Kpi};
use queue::TimeQueue;
use serde::{Deserialize, Serialize};
use watermark::{PartitionId, Watermarks};
use windows::{Dirty, GroupingSets, Observation, Row, WindowSpec, Windows};

/// Validated engine settings (built from the `[engine]` and `[kpi]` config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    pub max_out_of_orderness: Micros,
    pub allowed_lateness: Micros,
    pub idle_timeout: Micros,
    pub dedup_horizon: Micros,
    /// Entity state idle for longer than this (event time) is dropped.
    pub entity_ttl: Micros,
    pub windows: Vec<WindowSpec>,
    pub grouping_sets: Vec<Vec<Dim>>,
    pub rules: KpiRules,
}

/// Engine state could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("engine state is corrupt or from an incompatible version: {0}")]
    Decode(#[from] postcard::Error),
    #[error("engine state was written with other settings; refusing to mix them")]
    SettingsChanged,
}

/// What the engine has seen, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Valid, non-duplicate events.
    pub accepted: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Events that arrived below the watermark.
    pub late: u64,
    /// Late events dropped from at least one window (beyond `allowed_lateness`).
    pub late_dropped: u64,
    pub orphans: u64,
    /// Records emitted, first revisions and later ones.
    pub records: u64,
    pub revisions: u64,
    pub evicted_entities: u64,
}

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Buffered, to be processed in event-time order.
    Buffered,
    /// Below the watermark: applied at once, within lateness everywhere.
    Late,
    /// Below the watermark and beyond `allowed_lateness` for at least one
    /// window containing it: dropped there (entity state still updated).
    LateDropped,
    Duplicate,
}

/// The engine. See the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    settings: EngineSettings,
    interner: Interner,
    watermarks: Watermarks,
    /// Processing clock: every time point below it has been processed and
    /// every window ending at or before it has fired.
    clock: Micros,
    /// Events at or above the watermark, by `(ts, arrival seq)`.
    buffer: TimeQueue<Event>,
    /// Pending cart timers, by `(due, creation seq)`.
    timers: TimeQueue<Fp>,
    seq: u64,
    dedup: Dedup,
    entities: Entities,
    base: SubscriptionBase,
    windows: Windows,
    grouping: GroupingSets,
    counters: Counters,
    next_gc: Micros,
    /// When each table is swept next (see [`Engine::collect_garbage`]); not
    /// part of the state: a restored engine sweeps everything once.
    #[serde(skip)]
    sweeps: Sweeps,
    #[serde(skip)]
    scratch: Scratch,
}

/// Queued events whose entity slots are prefetched together, back to back,
/// so that their TLB walks overlap (as the dedup slots' in
/// [`lookahead`]): +2-9% events/s on the bench's steady phase over one
/// prefetch per event in two of three alternating rounds, even in the
/// third.
const PREFETCH_BATCH: usize = 16;

/// Next sweep of each table, in event time.
#[derive(Debug, Clone, Copy)]
struct Sweeps {
    base: Micros,
    dedup: Micros,
    entities: Micros,
}

impl Default for Sweeps {
    fn default() -> Self {
        Sweeps {
            base: Micros::MIN,
            dedup: Micros::MIN,
            entities: Micros::MIN,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    obs: Vec<Observation>,
    timers: Vec<CartTimer>,
    dirty: Vec<Dirty>,
    rows: Vec<Row>,
    /// Distribution samples for processing-time histograms, when tapped
    /// ([`Engine::tap_samples`]); not part of the state.
    samples: Option<Vec<(Kpi, f64)>>,
    /// Queued events after the one being applied whose entity slots are
    /// already prefetched.
    prefetched: usize,
}

impl Engine {
    pub fn new(settings: EngineSettings) -> Self {
        Engine {
            interner: Interner::default(),
            watermarks: Watermarks::new(settings.max_out_of_orderness, settings.idle_timeout),
            clock: Micros::MIN,
            buffer: TimeQueue::default(),
            timers: TimeQueue::default(),
            seq: 0,
            dedup: Dedup::new(settings.dedup_horizon),
            entities: Entities::default(),
            base: SubscriptionBase::default(),
            windows: Windows::new(&settings.windows),
            grouping: GroupingSets::new(settings.grouping_sets.clone()),
            counters: Counters::default(),
            next_gc: Micros::MIN,
            sweeps: Sweeps::default(),
            scratch: Scratch::default(),
            settings,
        }
    }

    /// Serializes the whole engine state (compact binary, postcard).
    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("engine state always serializes")
    }

    /// Restores a snapshot taken with the same settings.
    pub fn restore(bytes: &[u8], settings: &EngineSettings) -> Result<Engine, StateError> {
        let mut engine: Engine = postcard::from_bytes(bytes)?;
        if &engine.settings != settings {
            return Err(StateError::SettingsChanged);
        }
        engine.interner.rebuild_index();
        Ok(engine)
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// The pipeline watermark.
    pub fn watermark(&self) -> Micros {
        self.watermarks.current()
    }

    pub fn watermarks(&self) -> &Watermarks {
        &self.watermarks
    }

    /// Events waiting in the event-time buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Starts (or stops) collecting every distribution sample (chat wait,
    /// first reply, …) as it is observed, for [`Engine::take_samples`]. Off by
    /// default; results do not depend on it.
    pub fn tap_samples(&mut self, on: bool) {
        self.scratch.samples = on.then(Vec::new);
    }

    /// Moves the samples collected since the last call into `out`.
    pub fn take_samples(&mut self, out: &mut Vec<(Kpi, f64)>) {
        if let Some(s) = &mut self.scratch.samples {
            out.append(s);
        }
    }

    /// Open entity states: tickets, chats, carts, subscriptions.
    pub fn entity_counts(&self) -> [usize; 4] {
        self.entities.counts()
    }

    /// Continues after a restore at wall time `wall` (see
    /// [`Watermarks::resume`]).
    pub fn resume(&mut self, wall: Micros) {
        self.watermarks.resume(wall);
    }

    /// Registers an input partition (see [`Watermarks::assign`]).
    pub fn assign(&mut self, p: PartitionId, wall: Micros) {
        self.watermarks.assign(p, wall);
    }

    pub fn revoke(&mut self, p: PartitionId, out: &mut Vec<KpiRecord>) {
        self.watermarks.revoke(p);
        let w = self.watermarks.update();
        self.advance(w, out);
    }

    /// Decodes and processes one raw input. Invalid input changes nothing
    /// but the `invalid` counter (it still shows the partition is alive).
    pub fn ingest(
        &mut self,
        p: PartitionId,
        bytes: &[u8],
        wall: Micros,
        out: &mut Vec<KpiRecord>,
    ) -> Result<Outcome, DecodeError> {
        match decode(bytes, &mut self.interner) {
            Ok(event) => Ok(self.process(p, event, wall, out)),
            Err(e) => {
                self.reject(p, wall);
                Err(e)
            }
        }
    }

    /// Counts an input the caller rejected (decode error or pipeline
    /// policy) from partition `p`: only the `invalid` counter changes, and
    /// the partition is marked alive.
    pub fn reject(&mut self, p: PartitionId, wall: Micros) {
        self.watermarks.activity(p, wall);
        self.counters.invalid += 1;
    }

    /// Decodes without processing (for callers that route invalid input first).
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Event, DecodeError> {
        decode(bytes, &mut self.interner)
    }

    /// Starts loading the table slot `event` will probe first (its dedup
    /// entry), so that a caller that decodes ahead overlaps that cache miss
    /// with earlier events' work ([`lookahead`]). Only a hint: results do
    /// not depend on it.
    #[inline]
    pub fn prefetch(&self, event: &Event) {
        self.dedup.prefetch(event.id);
    }

    /// Processes one valid event from partition `p`.
    pub fn process(
        &mut self,
        p: PartitionId,
        event: Event,
        wall: Micros,
        out: &mut Vec<KpiRecord>,
    ) -> Outcome {
        self.watermarks.activity(p, wall);
        if self.dedup.check_and_insert(event.id, event.ts) {
            self.counters.duplicates += 1;
            return Outcome::Duplicate;
        }
        self.counters.accepted += 1;
        let outcome = if event.ts < self.watermarks.current() {
            self.counters.late += 1;
            let dropped = self.apply(&event);
            self.counters.late_dropped += u64::from(dropped);
            self.emit_revisions(out);
            if dropped {
                Outcome::LateDropped
            } else {
                Outcome::Late
            }
        } else {
            self.seq += 1;
            self.buffer.push(event.ts, self.seq, event);
            Outcome::Buffered
        };
        let w = if self.watermarks.observe(p, event.ts) {
            self.watermarks.update()
        } else {
            self.watermarks.current()
        };
        self.advance(w, out);
        outcome
    }

    /// Re-evaluates partition idleness at wall time `wall` and advances.
    pub fn tick(&mut self, wall: Micros, out: &mut Vec<KpiRecord>) {
        let w = self.watermarks.tick(wall);
        self.advance(w, out);
    }

    /// End of input: processes every buffered event and pending timer in
    /// time order, then fires every window that holds an observation.
    pub fn finish(&mut self, out: &mut Vec<KpiRecord>) {
        self.advance(Micros::MAX, out);
    }

    /// Applies one event now (in order or late): entity rules, timers,
    /// window routing. Returns `true` if an observation was dropped from a
    /// window beyond lateness.
    fn apply(&mut self, event: &Event) -> bool {
        let mut obs = std::mem::take(&mut self.scratch.obs);
        let mut timers = std::mem::take(&mut self.scratch.timers);
        let now = self.clock.max(event.ts);
        // State idle for the TTL is dropped before the event is applied.
        let before = now.saturating_sub(self.settings.entity_ttl);
        let applied = self.entities.apply(
            event,
            now,
            before,
            &self.settings.rules,
            &mut self.base,
            &mut obs,
            &mut timers,
        );
        self.counters.evicted_entities += u64::from(applied.expired);
        self.counters.orphans += u64::from(applied.orphan);
        for (due, checkout) in timers.drain(..) {
            if due < self.clock {
                // Already due (a very late start): fires at once.
                self.entities.cart_timer(due, checkout, &mut obs);
            } else {
                self.seq += 1;
                self.timers.push(due, self.seq, checkout);
            }
        }
        let dropped = self.route(&obs);
        obs.clear();
        self.scratch.obs = obs;
        self.scratch.timers = timers;
        dropped
    }

    /// Sends observations to every window; returns `true` if one was dropped
    /// from a window beyond lateness.
    fn route(&mut self, obs: &[Observation]) -> bool {
        if let Some(samples) = &mut self.scratch.samples {
            for o in obs {
                if let Update::Sample(v) = o.update {
                    samples.push((o.kpi, v));
                }
            }
        }
        let mut dropped = false;
        let at = windows::ObserveAt {
            sets: &self.grouping,
            watermark: self.watermarks.current(),
            allowed_lateness: self.settings.allowed_lateness,
            base: &self.base,
        };
        for o in obs {
            let mask = o.kpi.dims();
            let mut dims = o.dims;
            for d in Dim::ALL {
                if mask & d.bit() == 0 {
                    dims[d as usize] = crate::intern::Sym::UNKNOWN;
                }
            }
            dropped |= self.windows.observe(o, &dims, &at, &mut self.scratch.dirty);
        }
        dropped
    }

    fn emit_revisions(&mut self, out: &mut Vec<KpiRecord>) {
        let mut dirty = std::mem::take(&mut self.scratch.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let mut rows = std::mem::take(&mut self.scratch.rows);
        for d in &dirty {
            self.windows.reemit(d, &mut rows);
        }
        dirty.clear();
        self.scratch.dirty = dirty;
        self.counters.revisions += rows.iter().filter(|r| r.revision > 0).count() as u64;
        self.flush_rows(&mut rows, out);
        self.scratch.rows = rows;
    }

    fn flush_rows(&mut self, rows: &mut Vec<Row>, out: &mut Vec<KpiRecord>) {
        self.counters.records += rows.len() as u64;
        for row in rows.drain(..) {
            out.push(KpiRecord::from_row(
                row,
                &self.settings.windows,
                &self.grouping,
                &self.interner,
            ));
        }
    }

    /// Processes every time point below `watermark` and fires every window
    /// ending at or before it.
    fn advance(&mut self, watermark: Micros, out: &mut Vec<KpiRecord>) {
        if watermark <= self.clock {
            return;
        }
        let mut rows = std::mem::take(&mut self.scratch.rows);
        loop {
            let next_event = self.buffer.next_time().filter(|&t| t < watermark);
            let next_timer = self.timers.next_time().filter(|&t| t < watermark);
            let next_fire = self.windows.next_fire().filter(|&e| e <= watermark);
            let Some(t) = [next_event, next_timer, next_fire]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if next_fire == Some(t) {
                // Windows ending at t fire before anything happens at t.
                self.windows
                    .fire_due(t, &self.grouping, &self.base, &mut rows);
                continue;
            }
            self.clock = t;
            while let Some(event) = self.buffer.pop_at(t) {
                // The next events' entity slots load while these run: a
                // batch once the previous one is used up.
                if self.scratch.prefetched == 0 {
                    for next in self.buffer.peek_front_n(PREFETCH_BATCH) {
                        self.entities.prefetch(&next.body);
                        self.scratch.prefetched += 1;
                    }
                } else {
                    self.scratch.prefetched -= 1;
                }
                self.apply(&event);
            }
            while let Some(checkout) = self.timers.pop_at(t) {
                if let Some(&next) = self.timers.peek_front() {
                    self.entities.prefetch_cart(next);
                }
                let mut obs = std::mem::take(&mut self.scratch.obs);
                self.entities.cart_timer(t, checkout, &mut obs);
                self.route(&obs);
                obs.clear();
                self.scratch.obs = obs;
            }
        }
        self.clock = watermark;
        self.windows
            .reached(watermark, self.settings.allowed_lateness);
        self.flush_rows(&mut rows, out);
        self.scratch.rows = rows;
        self.collect_garbage();
    }

    /// Bounds state: entity TTL, dedup horizon, subscription history.
    /// Each table keeps a span of event time behind the clock and is swept
    /// after a tenth of that span (at least a second): a sweep then frees
    /// about a tenth of it, and a short dedup horizon does not sweep every
    /// entity every second. Results do not depend on when sweeps run: dedup
    /// compares event times, idle entities are dropped before their next
    /// event ([`Entities::apply`] checks the TTL), and the churn base keeps every change
    /// a window can still ask about.
    fn collect_garbage(&mut self) {
        let clock = self.clock;
        if clock == Micros::MAX || clock < self.next_gc {
            return;
        }
        let s = &self.settings;
        let max_size = s.windows.iter().map(|w| w.size).max().unwrap_or(0);
        let base_span = max_size.saturating_add(s.allowed_lateness);
        let dedup_span = s.dedup_horizon.saturating_add(s.allowed_lateness);
        let is_due = |next: &mut Micros, span: Micros| {
            let due = clock >= *next;
            if due {
                *next = clock.saturating_add((span / 10).max(crate::time::MICROS_PER_SEC));
            }
            due
        };
        let sweeps = &mut self.sweeps;
        if is_due(&mut sweeps.base, base_span) {
            self.base.fold(clock.saturating_sub(base_span));
        }
        if is_due(&mut sweeps.dedup, dedup_span) {
            self.dedup.evict(clock.saturating_sub(dedup_span));
        }
        if is_due(&mut sweeps.entities, s.entity_ttl) {
            self.counters.evicted_entities +=
                self.entities.evict(clock.saturating_sub(s.entity_ttl)) as u64;
        }
        self.next_gc = sweeps.base.min(sweeps.dedup).min(sweeps.entities);
    }
}
