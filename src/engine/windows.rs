//! Hopping windows, grouping sets and revisions (contract §2–§3).
//!
//! Observations are aggregated into *panes* of one step, keyed by KPI and
//! the observation's own dimension values. When processing reaches a
//! window's end, the panes it covers are rolled up into one accumulator per
//! (KPI, group) for every grouping set, and the rows are emitted. A long
//! window with a short step (24h every 1m) therefore costs one accumulator
//! update per observation and a merge of panes per firing, never a copy of
//! every observation per window.
//!
//! A fired window keeps its rolled-up rows while `end + allowed_lateness` is
//! above the watermark. A late observation updates those rows directly and
//! marks them dirty; the engine re-emits dirty rows with `revision + 1`.
//! A pane is dropped once every window containing it has fired.

use super::accum::{Acc, Update};
use super::kpi::{read, Dim, Kpi, KpiKind, Reading};
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

type PaneKey = (Kpi, Dims);
type RowKey = (Kpi, GroupKey);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FiredRow {
    acc: Acc,
    /// Last emitted revision; `None` if the row never met the emit condition.
    revision: Option<u32>,
    churn_base: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FiredWindow {
    rows: AHashMap<RowKey, FiredRow>,
}

/// State of one configured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowState {
    pub spec: WindowSpec,
    panes: BTreeMap<i64, AHashMap<PaneKey, Acc>>,
    /// Every window with `end <= fired_through` has fired (or was empty).
    fired_through: Micros,
    fired: BTreeMap<Micros, FiredWindow>,
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
        }
    }

    /// Adds an observation. Windows not yet fired get it through their pane;
    /// fired windows still within lateness get it directly (and a dirty mark);
    /// fired windows beyond lateness do not. Returns `true` if some window
    /// containing `t` was beyond lateness (the observation was dropped there).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        window: usize,
        obs: &Observation,
        dims: &Dims,
        sets: &GroupingSets,
        watermark: Micros,
        allowed_lateness: Micros,
        base: &dyn ChurnBase,
        dirty: &mut Vec<Dirty>,
    ) -> bool {
        let step = self.spec.step;
        let size = self.spec.size;
        let m = self.spec.panes_per_window();
        let k = obs.t.div_euclid(step);
        if (k + m).saturating_mul(step) > self.fired_through {
            self.panes
                .entry(k)
                .or_default()
                .entry((obs.kpi, *dims))
                .or_default()
                .apply(obs.update);
        }
        // Windows containing t end at (k-j)·step + size for j in 0..m; the
        // fired ones are those with end <= fired_through.
        let newest_end = k * step + size;
        if newest_end - (m - 1) * step > self.fired_through {
            return false; // no fired window contains t: the in-order case
        }
        let mut dropped = false;
        let mut end = (newest_end.min(self.fired_through)).div_euclid(step) * step;
        let oldest_end = newest_end - (m - 1) * step;
        while end >= oldest_end {
            if end.saturating_add(allowed_lateness) <= watermark {
                dropped = true;
                break; // older windows are beyond lateness too
            }
            let fw = self.fired.entry(end).or_default();
            for &set in sets.for_kpi(obs.kpi) {
                let group = sets.key(set, dims);
                let row = fw.rows.entry((obs.kpi, group)).or_insert_with(|| FiredRow {
                    churn_base: churn_base(obs.kpi, &group, end - size, sets, base),
                    ..FiredRow::default()
                });
                row.acc.apply(obs.update);
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

    /// End time of the next window that holds data and has not fired.
    pub fn next_fire(&self) -> Option<Micros> {
        let (&first, _) = self.panes.first_key_value()?;
        let step = self.spec.step;
        let after_fired = self
            .fired_through
            .div_euclid(step)
            .saturating_add(1)
            .saturating_mul(step);
        Some(after_fired.max((first + 1) * step))
    }

    /// Fires the window ending at `end`: rolls its panes up into groups and
    /// emits every row that meets the emit condition, at revision 0.
    pub fn fire(
        &mut self,
        window: usize,
        end: Micros,
        sets: &GroupingSets,
        base: &dyn ChurnBase,
        out: &mut Vec<Row>,
    ) {
        let step = self.spec.step;
        let start = end - self.spec.size;
        let mut rows: AHashMap<RowKey, Acc> = AHashMap::new();
        let mut entries: Vec<(&PaneKey, &Acc)> = Vec::new();
        for pane in self.panes.range(start / step..end / step).map(|(_, p)| p) {
            // Merge in key order, not hash order: floating-point sums then
            // come out bit-identical on every run and after every restore.
            entries.clear();
            entries.extend(pane.iter());
            entries.sort_unstable_by_key(|e| e.0);
            for ((kpi, dims), acc) in entries.iter().copied() {
                for &set in sets.for_kpi(*kpi) {
                    rows.entry((*kpi, sets.key(set, dims)))
                        .or_default()
                        .merge(acc);
                }
            }
        }
        let mut keys: Vec<RowKey> = rows.keys().copied().collect();
        keys.sort_unstable();
        let mut fired = FiredWindow::default();
        for key in keys {
            let acc = rows.remove(&key).unwrap_or_default();
            let churn_base = churn_base(key.0, &key.1, start, sets, base);
            let mut revision = None;
            if let Some(reading) = read(key.0, &acc, churn_base) {
                out.push(Row {
                    window,
                    start,
                    end,
                    kpi: key.0,
                    group: key.1,
                    reading,
                    revision: 0,
                });
                revision = Some(0);
            }
            fired.rows.insert(
                key,
                FiredRow {
                    acc,
                    revision,
                    churn_base,
                },
            );
        }
        self.fired.insert(end, fired);
        self.fired_through = end;
        let m = self.spec.panes_per_window();
        while let Some(entry) = self.panes.first_entry() {
            if (entry.key() + m) * step <= end {
                entry.remove();
            } else {
                break;
            }
        }
    }

    /// Re-emits a dirty row with its next revision, if it meets the emit condition.
    pub fn reemit(&mut self, d: &Dirty, out: &mut Vec<Row>) {
        let Some(row) = self
            .fired
            .get_mut(&d.end)
            .and_then(|fw| fw.rows.get_mut(&(d.kpi, d.group)))
        else {
            return;
        };
        if let Some(reading) = read(d.kpi, &row.acc, row.churn_base) {
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
    /// or before it has fired; fired windows beyond lateness are forgotten.
    pub fn reached(&mut self, watermark: Micros, allowed_lateness: Micros) {
        self.fired_through = self.fired_through.max(watermark);
        while let Some(entry) = self.fired.first_entry() {
            if entry.key().saturating_add(allowed_lateness) <= watermark {
                entry.remove();
            } else {
                break;
            }
        }
    }

    /// Number of panes and retained fired windows (state-size metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (self.panes.len(), self.fired.len())
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
