//! Hopping windows, grouping sets and revisions (contract §2–§3).
//!
//! Observations are aggregated into *panes* of one step, keyed by KPI and
//! the observation's own dimension values. When processing reaches a
//! window's end, the panes it covers are rolled up into one accumulator per
//! (KPI, group) for every grouping set, and the rows are emitted. A long
//! window with a short step (24h every 1m) therefore costs one accumulator
//! update per observation and a merge of panes per firing, never a copy of
//! every observation per window. Windows whose step is a multiple of
//! another window's step build their panes from that window's panes when
//! they fire (see [`Windows`]), so with the default windows (steps 1m, 5m,
//! 1h) an in-order observation updates one pane, not three.
//!
//! A fired window keeps its rolled-up rows while `end + allowed_lateness` is
//! above the watermark. A late observation updates those rows directly and
//! marks them dirty; the engine re-emits dirty rows with `revision + 1`.
//! A pane is dropped once every window containing it has fired and every
//! window built from it has taken it.

use super::accum::{Acc, Update};
use super::kpi::{read, Dim, Kpi, KpiKind, Reading};
use super::table::{deserialize_map, serialize_map, FpTable};
use crate::intern::Sym;
use crate::time::Micros;
use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A configured window: `[k·step, k·step + size)`, aligned to the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub size: Micros,
    pub step: Micros,
    /// `"5m"`, `"1h"`, … (contract §3).
    pub name: Arc<str>,
}

impl WindowSpec {
    pub fn new(size: Micros, step: Micros) -> Self {
        WindowSpec {
            size,
            step,
            name: crate::time::duration_name(size).into(),
        }
    }

    fn panes_per_window(&self) -> i64 {
        self.size / self.step
    }
}

/// Dimension values of an observation: channel, region, agent_id.
pub type Dims = [Sym; 3];

/// One contribution of an event (or timer) to a KPI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Observed-at time: decides which windows it belongs to.
    pub t: Micros,
    pub kpi: Kpi,
    pub dims: Dims,
    pub update: Update,
}

/// A group: the index of its grouping set and the values of that set's
/// dimensions, in the set's order (unused slots are `Sym::UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    pub set: u8,
    pub values: [Sym; 3],
}

/// The configured grouping sets and, per KPI, the sets that apply to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupingSets {
    sets: Vec<Vec<Dim>>,
    per_kpi: Vec<Vec<u8>>,
}

impl GroupingSets {
    pub fn new(sets: Vec<Vec<Dim>>) -> Self {
        let per_kpi = Kpi::ALL
            .iter()
            .map(|kpi| {
                (0..sets.len() as u8)
                    .filter(|&i| sets[i as usize].iter().all(|d| kpi.dims() & d.bit() != 0))
                    .collect()
            })
            .collect();
        GroupingSets { sets, per_kpi }
    }

    pub fn dims(&self, set: u8) -> &[Dim] {
        &self.sets[set as usize]
    }

    /// Grouping sets that apply to `kpi`.
    pub fn for_kpi(&self, kpi: Kpi) -> &[u8] {
        &self.per_kpi[kpi as usize]
    }

    pub fn key(&self, set: u8, dims: &Dims) -> GroupKey {
        let mut values = [Sym::UNKNOWN; 3];
        for (slot, d) in values.iter_mut().zip(&self.sets[set as usize]) {
            *slot = dims[*d as usize];
        }
        GroupKey { set, values }
    }

    /// The region of a group, if its set has the region dimension (churn).
    pub fn region_of(&self, key: &GroupKey) -> Option<Sym> {
        self.dims(key.set)
            .iter()
            .position(|d| *d == Dim::Region)
            .map(|i| key.values[i])
    }
}

/// Answers "subscriptions active at boundary `t`" for churn denominators.
pub trait ChurnBase {
    fn active_at(&self, boundary: Micros, region: Option<Sym>) -> u64;
}

/// A row leaving the window layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub window: usize,
    pub start: Micros,
    pub end: Micros,
    pub kpi: Kpi,
    pub group: GroupKey,
    pub reading: Reading,
    pub revision: u32,
}

/// A pane entry: the KPI and the observation's own dimension values.
/// Stored packed into one `u128` ([`PaneKey::pack`]) in the pane's
/// [`FpTable`] (a pane update is the engine's hottest map access); ordered
/// (and encoded) like the `(kpi, dims)` tuple it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct PaneKey {
    kpi: Kpi,
    dims: Dims,
}

impl PaneKey {
    /// `kpi` in bits 96.., the dimension values below it, in order: the
    /// packed keys sort as the keys do.
    fn pack(self) -> u128 {
        let [a, b, c] = self.dims.map(|s| u128::from(s.0));
        (u128::from(self.kpi as u8) << 96) | (a << 64) | (b << 32) | c
    }

    fn unpack(k: u128) -> PaneKey {
        PaneKey {
            kpi: Kpi::ALL[(k >> 96) as usize],
            dims: [(k >> 64) as u32, (k >> 32) as u32, k as u32].map(Sym),
        }
    }
}

type RowKey = (Kpi, GroupKey);

/// One pane: its entries, and (once a window firing over it asked) the
/// rows they make in every grouping set. A 5m window every 1m fires five
/// times over each pane; with the rows kept, each firing merges a pane's
/// rows instead of its entries once per grouping set. Any change to the
/// entries drops the rows, so they are always the entries' rows, built
/// the same way (entries in key order): checkpoints hold the entries only,
/// as a map from [`PaneKey`] to accumulator.
#[derive(Debug, Clone, Default)]
struct Pane {
    /// Accumulators by packed [`PaneKey`]. An open-addressing table whose
    /// slot holds key and accumulator: one probe, mostly one cache line,
    /// where a `HashMap` read a control group first.
    entries: FpTable<Acc>,
    rows: Option<Vec<(RowKey, Acc)>>,
}

impl Pane {
    /// The entry of `key`, for a change: the rows no longer hold.
    fn entry(&mut self, key: PaneKey) -> &mut Acc {
        self.rows = None;
        self.entries.get_or_insert_with(key.pack(), Acc::default)
    }

    /// The entries in key order (merged in that order, floating-point sums
    /// come out bit-identical on every run and after every restore).
    fn sorted_entries(&self) -> impl Iterator<Item = (PaneKey, &Acc)> {
        let mut entries: Vec<(u128, &Acc)> = self.entries.iter().collect();
        entries.sort_unstable_by_key(|e| e.0);
        entries
            .into_iter()
            .map(|(k, acc)| (PaneKey::unpack(k), acc))
    }

    /// The pane's rows in every grouping set, in key order (a row's sum
    /// depends only on the order of the panes and of the entries).
    fn rows(&mut self, sets: &GroupingSets) -> &[(RowKey, Acc)] {
        if self.rows.is_none() {
            let mut rows: AHashMap<RowKey, Acc> = AHashMap::new();
            for (PaneKey { kpi, dims }, acc) in self.sorted_entries() {
                for &set in sets.for_kpi(kpi) {
                    rows.entry((kpi, sets.key(set, &dims)))
                        .or_default()
                        .merge(acc);
                }
            }
            let mut rows: Vec<(RowKey, Acc)> = rows.into_iter().collect();
            rows.sort_unstable_by_key(|r| r.0);
            self.rows = Some(rows);
        }
        self.rows.as_deref().unwrap_or_default()
    }
}

/// Encoded as the map from [`PaneKey`] to accumulator it stands for (the
/// `HashMap` a pane once was, so checkpoints do not depend on the table).
impl Serialize for Pane {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self
            .entries
            .iter()
            .map(|(k, acc)| (PaneKey::unpack(k), acc));
        serialize_map(serializer, self.entries.len(), entries)
    }
}

impl<'de> Deserialize<'de> for Pane {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_map(deserializer, |pane: &mut Pane, key: PaneKey, acc| {
            *pane.entry(key) = acc;
            Ok(())
        })
    }
}

/// A row of a fired window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FiredRow {
    /// Shared with the rows of the next windows while none of them changes
    /// (a 24h window every 1h over sparse data fires 24 times over the same
    /// accumulators); a late observation copies it first. Checkpoints hold
    /// the accumulator itself.
    acc: Arc<Acc>,
    /// Last emitted revision; `None` if the row never met the emit condition.
    revision: Option<u32>,
    churn_base: u64,
    /// The reading emitted last, while `acc` has not changed since (a
    /// window sharing `acc` reads the same numbers, churn aside). Not in
    /// checkpoints: a restored row reads its accumulator again.
    #[serde(skip)]
    reading: Option<Reading>,
}

impl FiredRow {
    fn apply(&mut self, update: Update) {
        Arc::make_mut(&mut self.acc).apply(update);
        self.reading = None;
    }

    /// Reads the row (reusing the reading of `shared` when it holds the
    /// same accumulator and the KPI does not read the churn base).
    fn read(&mut self, kpi: Kpi, shared: Option<&FiredRow>) -> Option<Reading> {
        let reading = match shared {
            Some(prev)
                if kpi.kind() != KpiKind::Churn
                    && prev.reading.is_some()
                    && Arc::ptr_eq(&prev.acc, &self.acc) =>
            {
                prev.reading
            }
            _ => read(kpi, &self.acc, self.churn_base),
        };
        self.reading = reading;
        reading
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FiredWindow {
    /// In key order, so rows are emitted in the same order on every run.
    rows: FiredRows,
    /// Its oldest pane (the one the next window does not contain) held
    /// data when it fired, or got some since.
    oldest_pane_had_data: bool,
}

/// A fired window's rows in key order, in a sorted vector: a firing
/// builds it in one pass (its rows come in key order), late observations
/// and re-emits find a row by binary search, and dropping it frees one
/// allocation. A `BTreeMap` here cost a sort check, a node allocation per
/// eleven rows and their frees on every firing, for lookups that only late
/// data makes. Encoded as the `BTreeMap` it was.
#[derive(Debug, Clone, Default)]
struct FiredRows(Vec<(RowKey, FiredRow)>);

impl FiredRows {
    /// Rows already in strictly ascending key order.
    fn from_sorted(rows: Vec<(RowKey, FiredRow)>) -> Self {
        debug_assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        FiredRows(rows)
    }

    fn iter(&self) -> impl Iterator<Item = &(RowKey, FiredRow)> {
        self.0.iter()
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`).
    fn find(&self, key: &RowKey) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    fn get_mut(&mut self, key: &RowKey) -> Option<&mut FiredRow> {
        let i = self.find(key).ok()?;
        Some(&mut self.0[i].1)
    }

    /// The row of `key`, made by `new` (in its place in key order) if absent.
    fn get_or_insert_with(&mut self, key: RowKey, new: impl FnOnce() -> FiredRow) -> &mut FiredRow {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, new()));
                i
            }
        };
        &mut self.0[i].1
    }
}

impl Serialize for FiredRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, row)| (k, row)))
    }
}

impl<'de> Deserialize<'de> for FiredRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = BTreeMap::<RowKey, FiredRow>::deserialize(d)?;
        Ok(FiredRows(rows.into_iter().collect()))
    }
}

/// Where an observation lands: the grouping sets, the watermark and
/// lateness that decide whether fired windows still take it, and the churn
/// base for rows it creates in them.
#[derive(Clone, Copy)]
pub struct ObserveAt<'a> {
    pub sets: &'a GroupingSets,
    pub watermark: Micros,
    pub allowed_lateness: Micros,
    pub base: &'a dyn ChurnBase,
}

/// All configured windows.
///
/// A window whose step is a multiple of another window's step (1h every 5m
/// over 5m every 1m, 24h every 1h over 1h every 5m) has that window as its
/// *source*: it does not aggregate in-order observations itself. When it
/// fires, the source's panes of the slots it has not seen yet are rolled up
/// into its own panes (one merge per key and source pane), and from then on
/// late observations of those slots update its panes directly. An in-order
/// observation therefore costs one pane update in total, not one per
/// window, and a source keeps its panes until every window rolled up from
/// it has taken them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Windows {
    states: Vec<WindowState>,
}

impl Windows {
    pub fn new(specs: &[WindowSpec]) -> Self {
        let mut states: Vec<WindowState> = specs.iter().cloned().map(WindowState::new).collect();
        for i in 0..states.len() {
            let step = states[i].spec.step;
            // The coarsest other step that divides this one (an equal step
            // only from an earlier window, so sources never form a cycle).
            let source = (0..states.len())
                .filter(|&j| {
                    let s = states[j].spec.step;
                    j != i && step % s == 0 && (s < step || j < i)
                })
                .max_by_key(|&j| (states[j].spec.step, std::cmp::Reverse(j)));
            if let Some(j) = source {
                states[i].source = Some(j);
                states[i].rolled_up_through = Micros::MIN;
            }
        }
        let mut windows = Windows { states };
        windows.retain_for_dependents();
        windows
    }

    /// Adds an observation to every window (see [`WindowState::observe`]).
    /// Returns `true` if it was dropped from some window beyond lateness.
    pub fn observe(
        &mut self,
        obs: &Observation,
        dims: &Dims,
        at: &ObserveAt,
        dirty: &mut Vec<Dirty>,
    ) -> bool {
        let mut dropped = false;
        for (i, win) in self.states.iter_mut().enumerate() {
            dropped |= win.observe(i, obs, dims, at, dirty);
        }
        dropped
    }

    /// End time of the next window (of any size) that holds data and has
    /// not fired.
    pub fn next_fire(&self) -> Option<Micros> {
        self.states.iter().filter_map(|w| w.next_fire).min()
    }

    /// Fires every window ending at `t` that holds data.
    pub fn fire_due(
        &mut self,
        t: Micros,
        sets: &GroupingSets,
        base: &dyn ChurnBase,
        out: &mut Vec<Row>,
    ) {
        for i in 0..self.states.len() {
            if self.states[i].next_fire != Some(t) {
                continue;
            }
            self.roll_up(i, t);
            self.states[i].fire(i, t, sets, base, out);
            let after = self.states[i].own_data_after_fire();
            let from_source = self.states[i]
                .source
                .and_then(|j| self.first_data_from(j, t))
                .map(|at| at.div_euclid(self.states[i].spec.step));
            let win = &mut self.states[i];
            win.next_fire = [after, from_source]
                .into_iter()
                .flatten()
                .min()
                .map(|k| (k + 1).saturating_mul(win.spec.step).max(t + win.spec.step));
        }
        self.retain_for_dependents();
    }

    /// Processing has reached `watermark` (see [`WindowState::reached`]).
    pub fn reached(&mut self, watermark: Micros, allowed_lateness: Micros) {
        for win in &mut self.states {
            win.reached(watermark, allowed_lateness);
        }
        self.retain_for_dependents();
    }

    /// Re-emits a dirty row with its next revision (see [`WindowState::reemit`]).
    pub fn reemit(&mut self, d: &Dirty, out: &mut Vec<Row>) {
        self.states[d.window].reemit(d, out);
    }

    /// Brings window `i`'s panes up to `end`: merges the source's panes of
    /// every slot from `rolled_up_through` to `end` into its own, after
    /// bringing the source itself up to `end`.
    fn roll_up(&mut self, i: usize, end: Micros) {
        let Some(j) = self.states[i].source else {
            return;
        };
        let from = self.states[i].rolled_up_through;
        if from >= end {
            return;
        }
        self.roll_up(j, end);
        let (src, dst) = if j < i {
            let (a, b) = self.states.split_at_mut(i);
            (&a[j], &mut b[0])
        } else {
            let (a, b) = self.states.split_at_mut(j);
            (&b[0], &mut a[i])
        };
        let (sj, si) = (src.spec.step, dst.spec.step);
        for (&k, pane) in src.panes.range(from.div_euclid(sj)..end.div_euclid(sj)) {
            let slot = dst.panes.entry((k * sj).div_euclid(si)).or_default();
            for (key, acc) in pane.sorted_entries() {
                slot.entry(key).merge(acc);
            }
        }
        dst.rolled_up_through = end;
    }

    /// Start of the earliest pane at or after `from` holding data of window
    /// `j`, its own or (not rolled up yet) its source's.
    fn first_data_from(&self, j: usize, from: Micros) -> Option<Micros> {
        let w = &self.states[j];
        let own = w
            .panes
            .range(from.div_euclid(w.spec.step)..)
            .next()
            .map(|(k, _)| k * w.spec.step);
        let source = w
            .source
            .and_then(|h| self.first_data_from(h, from.max(w.rolled_up_through)));
        own.into_iter().chain(source).min()
    }

    /// Tells each source how far back its dependents still need its panes,
    /// and drops the panes nobody needs any more.
    fn retain_for_dependents(&mut self) {
        for j in 0..self.states.len() {
            let retain_from = self
                .states
                .iter()
                .filter(|w| w.source == Some(j))
                .map(|w| w.rolled_up_through)
                .min()
                .unwrap_or(Micros::MAX);
            let win = &mut self.states[j];
            win.retain_from = retain_from;
            win.drop_panes();
        }
    }
}

/// State of one configured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowState {
    pub spec: WindowSpec,
    panes: BTreeMap<i64, Pane>,
    /// Every window with `end <= fired_through` has fired (or was empty).
    fired_through: Micros,
    fired: BTreeMap<Micros, FiredWindow>,
    /// The window whose panes are rolled up into this one's (see [`Windows`]).
    source: Option<usize>,
    /// With a source: the own panes hold every observation before this time
    /// (rolled up, then kept current by late observations); observations at
    /// or after it are only in the source so far. Without one: `MAX`.
    rolled_up_through: Micros,
    /// Panes ending after this time are kept for the windows rolled up from
    /// this one, even once this window's own windows have all fired.
    retain_from: Micros,
    /// End of the next window that holds data and has not fired.
    next_fire: Option<Micros>,
    /// The slot (pane) of the last observation: consecutive observations
    /// mostly share it, and finding it anew costs a 64-bit division.
    #[serde(skip)]
    last_slot: Slot,
    /// [`Self::reached`] moves `rolled_up_through` to the start of the
    /// watermark's slot, which changes only once the watermark reaches
    /// this time: until then it skips the division (it runs after every
    /// event).
    #[serde(skip, default = "never")]
    next_slot_start: Micros,
}

/// A time every watermark reaches (nothing is cached yet).
fn never() -> Micros {
    Micros::MIN
}

/// A slot of one step, `[start, start + step)`, and its number `k`
/// (`start = k·step`). The default contains no time.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    k: i64,
    start: Micros,
    end: Micros,
}

/// A row changed by a late observation, to be re-emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dirty {
    pub window: usize,
    pub end: Micros,
    pub kpi: Kpi,
    pub group: GroupKey,
}

impl WindowState {
    pub fn new(spec: WindowSpec) -> Self {
        WindowState {
            spec,
            panes: BTreeMap::new(),
            fired_through: Micros::MIN,
            fired: BTreeMap::new(),
            source: None,
            rolled_up_through: Micros::MAX,
            retain_from: Micros::MAX,
            next_fire: None,
            last_slot: Slot::default(),
            next_slot_start: never(),
        }
    }

    /// Number of the slot containing `t` (`⌊t / step⌋`).
    fn slot_of(&mut self, t: Micros) -> i64 {
        let s = self.last_slot;
        if s.start <= t && t < s.end {
            return s.k;
        }
        let step = self.spec.step;
        let k = t.div_euclid(step);
        let start = k.saturating_mul(step);
        self.last_slot = Slot {
            k,
            start,
            end: start.saturating_add(step),
        };
        k
    }

    /// Adds an observation. Windows not yet fired get it through their pane
    /// (or their source's, for slots not rolled up yet); fired windows still
    /// within lateness get it directly (and a dirty mark); fired windows
    /// beyond lateness do not. Returns `true` if some window containing `t`
    /// was beyond lateness (the observation was dropped there).
    fn observe(
        &mut self,
        window: usize,
        obs: &Observation,
        dims: &Dims,
        at: &ObserveAt,
        dirty: &mut Vec<Dirty>,
    ) -> bool {
        let ObserveAt {
            sets,
            watermark,
            allowed_lateness,
            base,
        } = *at;
        let step = self.spec.step;
        let size = self.spec.size;
        // The common case for a window rolled up from a source, in order:
        // its slot is not rolled up yet (the source's pane takes the
        // observation), no fired window contains t, and the window to fire
        // next ends no later than the first one containing t, `(k + 1) ·
        // step` for t's slot k. Window ends are multiples of the step, so
        // that is `next_fire - step <= t`, known before t's slot is.
        // Nothing to do.
        debug_assert!(self
            .next_fire
            .is_none_or(|f| f.rem_euclid(step) == 0 || f == Micros::MAX));
        if obs.t >= self.rolled_up_through
            && obs.t >= self.fired_through
            && self
                .next_fire
                .is_some_and(|f| f.saturating_sub(step) <= obs.t)
        {
            return false;
        }
        let k = self.slot_of(obs.t);
        let oldest_end = (k + 1) * step;
        // Windows containing t end at (k-j)·step + size for j in 0..m (m =
        // size / step), from newest_end down to oldest_end = (k+1)·step;
        // the fired ones are those with end <= fired_through.
        let newest_end = k * step + size;
        if newest_end > self.fired_through {
            // The earliest window containing t that has not fired holds
            // data: the oldest one if it is after fired_through (in order:
            // no division needed), else the first one after it.
            let end = if oldest_end > self.fired_through {
                oldest_end
            } else {
                self.after_fired()
            };
            self.next_fire = Some(self.next_fire.map_or(end, |f| f.min(end)));
        }
        // The pane (which ends at oldest_end) is needed by an unfired window
        // of this size, or by a window rolled up from this one that has not
        // taken it yet; slots not rolled up here yet are in the source's panes.
        let needed = newest_end > self.fired_through || oldest_end > self.retain_from;
        if needed && obs.t < self.rolled_up_through {
            self.panes
                .entry(k)
                .or_default()
                .entry(PaneKey {
                    kpi: obs.kpi,
                    dims: *dims,
                })
                .apply(obs.update);
        }
        if oldest_end > self.fired_through {
            return false; // no fired window contains t: the in-order case
        }
        let mut dropped = false;
        let mut end = (newest_end.min(self.fired_through)).div_euclid(step) * step;
        while end >= oldest_end {
            if end.saturating_add(allowed_lateness) <= watermark {
                dropped = true;
                break; // older windows are beyond lateness too
            }
            let fw = self.fired.entry(end).or_default();
            fw.oldest_pane_had_data |= obs.t < end - size + step;
            for &set in sets.for_kpi(obs.kpi) {
                let group = sets.key(set, dims);
                let row = fw.rows.get_or_insert_with((obs.kpi, group), || FiredRow {
                    churn_base: churn_base(obs.kpi, &group, end - size, sets, base),
                    ..FiredRow::default()
                });
                row.apply(obs.update);
                dirty.push(Dirty {
                    window,
                    end,
                    kpi: obs.kpi,
                    group,
                });
            }
            end -= step;
        }
        dropped
    }

    /// End of the first window after `fired_through`.
    fn after_fired(&self) -> Micros {
        let step = self.spec.step;
        self.fired_through
            .div_euclid(step)
            .saturating_add(1)
            .saturating_mul(step)
    }

    /// After a firing: the first own pane some unfired window contains.
    fn own_data_after_fire(&self) -> Option<i64> {
        let m = self.spec.panes_per_window();
        let first_live = self.fired_through.div_euclid(self.spec.step) - m + 1;
        self.panes.range(first_live..).next().map(|(k, _)| *k)
    }

    /// Fires the window ending at `end`: rolls its panes up into groups and
    /// emits every row that meets the emit condition, at revision 0.
    fn fire(
        &mut self,
        window: usize,
        end: Micros,
        sets: &GroupingSets,
        base: &dyn ChurnBase,
        out: &mut Vec<Row>,
    ) {
        let step = self.spec.step;
        let start = end - self.spec.size;
        let mut fired = FiredWindow {
            oldest_pane_had_data: self.panes.contains_key(&(start / step)),
            ..FiredWindow::default()
        };
        let mut emit = |key: RowKey, mut row: FiredRow, shared: Option<&FiredRow>| {
            row.churn_base = churn_base(key.0, &key.1, start, sets, base);
            if let Some(reading) = row.read(key.0, shared) {
                out.push(Row {
                    window,
                    start,
                    end,
                    kpi: key.0,
                    group: key.1,
                    reading,
                    revision: 0,
                });
                row.revision = Some(0);
            }
            (key, row)
        };
        fired.rows = FiredRows::from_sorted(match self.fired.get(&(end - step)) {
            // The previous window held exactly these panes' data: nothing
            // left with its oldest pane and nothing came with the newest
            // (long windows over sparse data, the end-of-input flush). Its
            // accumulators are shared, not copied.
            Some(prev)
                if !prev.oldest_pane_had_data && !self.panes.contains_key(&(end / step - 1)) =>
            {
                prev.rows
                    .iter()
                    .map(|(key, row)| {
                        let shared = FiredRow {
                            acc: Arc::clone(&row.acc),
                            ..FiredRow::default()
                        };
                        emit(*key, shared, Some(row))
                    })
                    .collect()
            }
            _ => self
                .merge_panes(start, end, sets)
                .into_iter()
                .map(|(key, acc)| {
                    let row = FiredRow {
                        acc: Arc::new(acc),
                        ..FiredRow::default()
                    };
                    emit(key, row, None)
                })
                .collect(),
        });
        self.fired.insert(end, fired);
        self.fired_through = end;
    }

    /// Rolls the panes of `[start, end)` up into one accumulator per row,
    /// in key order: each pane's rows (see [`Pane::rows`], in key order
    /// too) are merged into the window's pane by pane in time order, in one
    /// pass over both lists.
    fn merge_panes(
        &mut self,
        start: Micros,
        end: Micros,
        sets: &GroupingSets,
    ) -> Vec<(RowKey, Acc)> {
        let step = self.spec.step;
        let mut rows: Vec<(RowKey, Acc)> = Vec::new();
        let mut new: Vec<(RowKey, Acc)> = Vec::new();
        for pane in self
            .panes
            .range_mut(start / step..end / step)
            .map(|(_, p)| p)
        {
            let mut at = 0;
            for (key, acc) in pane.rows(sets) {
                while at < rows.len() && rows[at].0 < *key {
                    at += 1;
                }
                match rows.get_mut(at) {
                    Some((k, mine)) if k == key => mine.merge(acc),
                    _ => {
                        let mut mine = Acc::default();
                        mine.merge(acc);
                        new.push((*key, mine));
                    }
                }
            }
            if !new.is_empty() {
                rows = merge_by_key(std::mem::take(&mut rows), new.drain(..));
            }
        }
        rows
    }

    /// Drops the panes that no unfired window of this size contains and no
    /// window rolled up from this one still needs.
    fn drop_panes(&mut self) {
        let step = self.spec.step;
        let m = self.spec.panes_per_window();
        while let Some(entry) = self.panes.first_entry() {
            let k = *entry.key();
            if (k + m).saturating_mul(step) <= self.fired_through
                && (k + 1).saturating_mul(step) <= self.retain_from
            {
                entry.remove();
            } else {
                break;
            }
        }
    }

    /// Re-emits a dirty row with its next revision, if it meets the emit condition.
    fn reemit(&mut self, d: &Dirty, out: &mut Vec<Row>) {
        let Some(row) = self
            .fired
            .get_mut(&d.end)
            .and_then(|fw| fw.rows.get_mut(&(d.kpi, d.group)))
        else {
            return;
        };
        if let Some(reading) = row.read(d.kpi, None) {
            let revision = row.revision.map_or(0, |r| r + 1);
            row.revision = Some(revision);
            out.push(Row {
                window: d.window,
                start: d.end - self.spec.size,
                end: d.end,
                kpi: d.kpi,
                group: d.group,
                reading,
                revision,
            });
        }
    }

    /// Called when processing has reached `watermark`: every window ending at
    /// or before it has fired (the engine fires every window holding data
    /// first), so every slot ending by then is rolled up; fired windows
    /// beyond lateness are forgotten.
    fn reached(&mut self, watermark: Micros, allowed_lateness: Micros) {
        self.fired_through = self.fired_through.max(watermark);
        if self.source.is_some() && watermark >= self.next_slot_start {
            let step = self.spec.step;
            let slot_start = watermark.div_euclid(step).saturating_mul(step);
            self.rolled_up_through = self.rolled_up_through.max(slot_start);
            self.next_slot_start = slot_start.saturating_add(step);
        }
        while let Some(entry) = self.fired.first_entry() {
            if entry.key().saturating_add(allowed_lateness) <= watermark {
                entry.remove();
            } else {
                break;
            }
        }
    }
}

fn churn_base(
    kpi: Kpi,
    group: &GroupKey,
    start: Micros,
    sets: &GroupingSets,
    base: &dyn ChurnBase,
) -> u64 {
    if kpi.kind() == KpiKind::Churn {
        base.active_at(start, sets.region_of(group))
    } else {
        0
    }
}

/// Merges two lists of rows in key order, with no key in both, into one
/// list in key order ([`WindowState::merge_panes`]).
fn merge_by_key(
    a: Vec<(RowKey, Acc)>,
    b: impl Iterator<Item = (RowKey, Acc)>,
) -> Vec<(RowKey, Acc)> {
    let mut out = Vec::with_capacity(a.len() + b.size_hint().0);
    let mut b = b.peekable();
    for row in a {
        while let Some(next) = b.next_if(|n| n.0 < row.0) {
            out.push(next);
        }
        out.push(row);
    }
    out.extend(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn pane_key() -> impl Strategy<Value = PaneKey> {
        (0..Kpi::ALL.len(), any::<[u32; 3]>()).prop_map(|(k, d)| PaneKey {
            kpi: Kpi::ALL[k],
            dims: d.map(Sym),
        })
    }

    proptest! {
        /// A packed key unpacks to itself, and packed keys sort as keys do
        /// (the pane's entries are merged in that order).
        #[test]
        fn pane_keys_pack_in_key_order(a in pane_key(), b in pane_key()) {
            prop_assert_eq!(PaneKey::unpack(a.pack()), a);
            prop_assert_eq!(a.pack().cmp(&b.pack()), a.cmp(&b));
        }
    }

    /// A fired window's rows are encoded as the `BTreeMap` they were, and
    /// a row inserted later (a late observation's new group) takes its
    /// place in key order.
    #[test]
    fn fired_rows_encode_as_the_map_they_were() {
        let key = |kpi: usize, agent: u32| {
            (
                Kpi::ALL[kpi],
                GroupKey {
                    set: 3,
                    values: [Sym(agent), Sym::UNKNOWN, Sym::UNKNOWN],
                },
            )
        };
        let row = |n: u64| FiredRow {
            churn_base: n,
            revision: Some(n as u32),
            ..FiredRow::default()
        };
        let mut map: BTreeMap<RowKey, FiredRow> = BTreeMap::new();
        for (i, &kpi) in [4usize, 0, 9, 2].iter().enumerate() {
            for agent in [7u32, 1, 30] {
                map.insert(key(kpi, agent), row(i as u64 * 100 + u64::from(agent)));
            }
        }
        let bytes = postcard::to_stdvec(&map).unwrap();
        let mut rows: FiredRows = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&rows).unwrap(), bytes);
        assert_eq!(rows.get_mut(&key(9, 30)).map(|r| r.churn_base), Some(230));
        assert!(rows.get_mut(&key(9, 2)).is_none());
        rows.get_or_insert_with(key(9, 2), || row(999));
        rows.get_or_insert_with(key(0, 7), || unreachable!("present"));
        map.insert(key(9, 2), row(999));
        assert_eq!(
            postcard::to_stdvec(&rows).unwrap(),
            postcard::to_stdvec(&map).unwrap()
        );
        let keys: Vec<RowKey> = rows.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, map.keys().copied().collect::<Vec<_>>());
    }

    /// A pane is encoded as the `HashMap<PaneKey, Acc>` it was before its
    /// entries moved to a table: each decodes the other.
    #[test]
    fn a_pane_encodes_as_the_map_it_was() {
        let mut map: HashMap<PaneKey, Acc> = HashMap::new();
        for (i, &kpi) in Kpi::ALL.iter().enumerate() {
            for agent in 0..40u32 {
                let key = PaneKey {
                    kpi,
                    dims: [Sym(i as u32 % 3), Sym(7), Sym(agent)],
                };
                let mut acc = Acc::default();
                for v in 0..=agent % 4 {
                    acc.apply(Update::Sample(f64::from(v) * 1.5 + f64::from(agent)));
                }
                map.insert(key, acc);
            }
        }
        let pane: Pane = postcard::from_bytes(&postcard::to_stdvec(&map).unwrap()).unwrap();
        assert_eq!(pane.entries.len(), map.len());
        let back: HashMap<PaneKey, Acc> =
            postcard::from_bytes(&postcard::to_stdvec(&pane).unwrap()).unwrap();
        assert_eq!(back, map);
        let sorted: Vec<_> = pane.sorted_entries().collect();
        assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(sorted.iter().all(|(k, acc)| map[k] == **acc));
    }
}
