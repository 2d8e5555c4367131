//! The latest KPI rows, for Prometheus gauges and `/api/kpis`.
//!
//! A *row* is one KPI for one window size and one group (the record key
//! `kpi|window|group`). The store keeps, per row, the record of the latest
//! fired window (highest `window_start`; within it the highest revision) and
//! the wall time it arrived. From that it builds:
//!
//! - the KPI metric families of docs/metrics.md, at scrape time, with the
//!   **cardinality guard**: per dimension at most `limit` distinct values get
//!   their own label value; rows of further values are exported under the
//!   value `other`, aggregated from their counts, numerators and sums (a
//!   ratio of sums, never an average of ratios; no quantiles for `other`);
//! - the answers of `/api/kpis` (real group values, no guard).
//!
//! Rows that receive nothing for `ttl` of wall time are removed ([`KpiStore::expire`]),
//! and their dimension values give their place back to new ones.

use crate::engine::kpi::Value;
use crate::engine::kpi::{Dim, Kpi, KpiKind};
use crate::record::KpiRecord;
use crate::time::{format_rfc3339, Micros, MICROS_PER_SEC};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The label value of rows beyond the per-dimension limit.
pub const OTHER: &str = "other";

/// The grouping label of a group: its dimensions joined by `+`, `overall`
/// when it has none.
pub fn grouping_name(group: &[(&'static str, Arc<str>)]) -> String {
    if group.is_empty() {
        return "overall".into();
    }
    group.iter().map(|(d, _)| *d).collect::<Vec<_>>().join("+")
}

/// One held row.
#[derive(Debug, Clone)]
struct Held {
    record: KpiRecord,
    kpi: Kpi,
    /// Wall time of the last record.
    updated_at: Micros,
    grouping: String,
    /// The group's label values after the guard; `admitted[i]` says whether
    /// `labels[i]` holds a place in the guard (else it is [`OTHER`]).
    labels: Vec<(&'static str, Arc<str>, bool)>,
}

/// Which values of one dimension have their own label value, and how many
/// rows use each.
#[derive(Debug, Default)]
struct DimGuard {
    admitted: HashMap<Arc<str>, usize>,
}

/// What [`KpiStore::update`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The record replaced the row's previous one (or started the row).
    pub stored: bool,
    /// Per dimension (channel, region, agent_id): the record was folded into
    /// `other` for that dimension.
    pub overflow: [bool; 3],
}

/// Filters of `/api/kpis`; `None` matches everything.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KpiQuery {
    pub kpi: Option<String>,
    pub window: Option<String>,
    pub grouping: Option<String>,
    /// Rows whose group has this value for this dimension.
    pub dims: Vec<(Dim, String)>,
}

/// The store; see the module docs.
#[derive(Debug)]
pub struct KpiStore {
    rows: BTreeMap<String, Held>,
    guards: [DimGuard; 3],
    limit: usize,
    ttl: Micros,
}

impl KpiStore {
    /// `limit` values per dimension; rows idle for `ttl` (µs of wall time)
    /// are removed.
    pub fn new(limit: usize, ttl: Micros) -> Self {
        KpiStore {
            rows: BTreeMap::new(),
            guards: Default::default(),
            limit: limit.max(1),
            ttl,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Takes a record emitted at wall time `wall`. A record of an older
    /// window than the row holds, or an older revision of the same window,
    /// changes nothing.
    pub fn update(&mut self, r: &KpiRecord, wall: Micros) -> Update {
        let Some(kpi) = Kpi::from_name(r.kpi) else {
            return Update {
                stored: false,
                overflow: [false; 3],
            };
        };
        let key = r.key();
        let held = match self.rows.get_mut(&key) {
            Some(h) => {
                if (r.window_start, r.revision) < (h.record.window_start, h.record.revision) {
                    return Update {
                        stored: false,
                        overflow: [false; 3],
                    };
                }
                h.record = r.clone();
                h.updated_at = wall;
                h
            }
            None => {
                let labels = r
                    .group
                    .iter()
                    .map(|(d, v)| {
                        let admitted = Dim::parse(d).is_some_and(|dim| self.admit(dim, v));
                        let value = if admitted {
                            v.clone()
                        } else {
                            Arc::from(OTHER)
                        };
                        (*d, value, admitted)
                    })
                    .collect();
                self.rows.entry(key).or_insert(Held {
                    record: r.clone(),
                    kpi,
                    updated_at: wall,
                    grouping: grouping_name(&r.group),
                    labels,
                })
            }
        };
        let mut overflow = [false; 3];
        for (d, _, admitted) in &held.labels {
            if let (false, Some(dim)) = (admitted, Dim::parse(d)) {
                overflow[dim as usize] = true;
            }
        }
        Update {
            stored: true,
            overflow,
        }
    }

    fn admit(&mut self, dim: Dim, value: &Arc<str>) -> bool {
        let guard = &mut self.guards[dim as usize];
        if let Some(n) = guard.admitted.get_mut(value) {
            *n += 1;
            return true;
        }
        if guard.admitted.len() < self.limit {
            guard.admitted.insert(value.clone(), 1);
            return true;
        }
        false
    }

    /// Removes rows with no record for the TTL; returns how many.
    pub fn expire(&mut self, wall: Micros) -> usize {
        let ttl = self.ttl;
        let before = self.rows.len();
        let guards = &mut self.guards;
        self.rows.retain(|_, h| {
            let keep = wall.saturating_sub(h.updated_at) < ttl;
            if !keep {
                for (d, v, admitted) in &h.labels {
                    let Some(dim) = Dim::parse(d).filter(|_| *admitted) else {
                        continue;
                    };
                    let g = &mut guards[dim as usize].admitted;
                    if let Some(n) = g.get_mut(v) {
                        *n -= 1;
                        if *n == 0 {
                            g.remove(v);
                        }
                    }
                }
            }
            keep
        });
        before - self.rows.len()
    }

    /// Values of `dim` that currently have their own label value.
    pub fn admitted(&self, dim: Dim) -> usize {
        self.guards[dim as usize].admitted.len()
    }

    /// The rows matching `q`, as JSON objects (the record plus `key` and
    /// `updated_at`), sorted by key.
    pub fn query(&self, q: &KpiQuery) -> Vec<serde_json::Value> {
        self.rows
            .iter()
            .filter(|(_, h)| {
                let r = &h.record;
                q.kpi.as_deref().is_none_or(|k| k == r.kpi)
                    && q.window.as_deref().is_none_or(|w| w == &*r.window)
                    && q.grouping.as_deref().is_none_or(|g| g == h.grouping)
                    && q.dims.iter().all(|(d, v)| {
                        r.group
                            .iter()
                            .any(|(name, value)| *name == d.name() && &**value == v)
                    })
            })
            .map(|(key, h)| {
                let mut v = serde_json::to_value(&h.record).expect("records serialize");
                if let serde_json::Value::Object(o) = &mut v {
                    o.insert("key".into(), key.clone().into());
                    o.insert("updated_at".into(), format_rfc3339(h.updated_at).into());
                }
                v
            })
            .collect()
    }

    /// The KPI metric families (docs/metrics.md), guard applied.
    pub fn families(&self) -> Vec<MetricFamily> {
        // Series identity: (kpi, window, grouping, guarded labels). Rows with
        // no `other` label are alone in their series; `other` series sum the
        // rows of their latest window.
        let mut series: BTreeMap<SeriesKey<'_>, Agg<'_>> = BTreeMap::new();
        for h in self.rows.values() {
            let key = SeriesKey {
                kpi: h.record.kpi,
                window: &h.record.window,
                grouping: &h.grouping,
                labels: h.labels.iter().map(|(d, v, _)| (*d, &**v)).collect(),
            };
            series
                .entry(key)
                .and_modify(|a| a.add(h))
                .or_insert_with(|| Agg::new(h));
        }
        let mut fams = Families::default();
        for (key, agg) in &series {
            let mut labels = vec![label("window", key.window), label("grouping", key.grouping)];
            labels.extend(key.labels.iter().map(|(d, v)| label(d, v)));
            let name = format!("cxpulse_kpi_{}", key.kpi);
            let kind = agg.kind;
            let single = agg.single();
            let count = agg.count as f64;
            let help = help_of(agg.kpi);
            // The value, or the quantiles and the mean for distributions.
            if kind == KpiKind::Distribution {
                if let Some(q) = single.and_then(|r| r.quantiles) {
                    for (p, v) in ["0.5", "0.9", "0.99"].into_iter().zip(q) {
                        let mut l = labels.clone();
                        l.push(label("quantile", p));
                        fams.gauge(&name, help, l, v);
                    }
                }
                let mean = match single {
                    Some(r) => value_f64(r.value),
                    None => agg.sum / count,
                };
                fams.gauge(
                    &format!("{name}_mean"),
                    "Mean of the KPI's window, seconds.",
                    labels.clone(),
                    mean,
                );
                fams.gauge(&format!("{name}_sum"), SUM_HELP, labels.clone(), agg.sum);
            } else {
                let value = match single {
                    Some(r) => value_f64(r.value),
                    None => agg.derived_value(),
                };
                fams.gauge(&name, help, labels.clone(), value);
                if kind == KpiKind::Mean {
                    fams.gauge(&format!("{name}_sum"), SUM_HELP, labels.clone(), agg.sum);
                }
            }
            fams.gauge(&format!("{name}_count"), COUNT_HELP, labels.clone(), count);
            if matches!(kind, KpiKind::Ratio | KpiKind::Churn | KpiKind::Score) {
                fams.gauge(
                    &format!("{name}_numerator"),
                    NUMERATOR_HELP,
                    labels.clone(),
                    agg.numerator,
                );
            }
            let mut l = vec![label("kpi", key.kpi)];
            l.extend(labels);
            fams.gauge(
                "cxpulse_kpi_window_end_timestamp_seconds",
                "End of the window the KPI row's values belong to (Unix seconds).",
                l,
                agg.end as f64 / MICROS_PER_SEC as f64,
            );
        }
        fams.0.into_values().collect()
    }
}

const COUNT_HELP: &str = "Observations in the KPI's latest window (the denominator of ratios).";
const NUMERATOR_HELP: &str =
    "Numerator of the KPI in its latest window (nps: promoters minus detractors).";
const SUM_HELP: &str = "Sum of the observed values in the KPI's latest window.";

fn help_of(kpi: Kpi) -> &'static str {
    match kpi.kind() {
        KpiKind::Count => "KPI (count of events) in its latest fired window.",
        KpiKind::Distribution => "KPI quantiles (seconds) in its latest fired window.",
        KpiKind::Ratio | KpiKind::Churn => "KPI ratio (0..1) in its latest fired window.",
        KpiKind::Mean => "KPI mean in its latest fired window.",
        KpiKind::Score => "Net promoter score (-100..100) in its latest fired window.",
        KpiKind::Sum => "KPI sum in its latest fired window.",
    }
}

fn value_f64(v: Value) -> f64 {
    match v {
        Value::Int(n) => n as f64,
        Value::Float(x) => x,
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey<'a> {
    kpi: &'static str,
    window: &'a str,
    grouping: &'a str,
    labels: Vec<(&'static str, &'a str)>,
}

/// The rows of one series: their latest window's counts, numerators and sums.
struct Agg<'a> {
    kpi: Kpi,
    kind: KpiKind,
    start: Micros,
    end: Micros,
    rows: Vec<&'a KpiRecord>,
    count: u64,
    numerator: f64,
    /// Sum of values (means, distributions, sums).
    sum: f64,
}

impl<'a> Agg<'a> {
    fn new(h: &'a Held) -> Self {
        let mut a = Agg {
            kpi: h.kpi,
            kind: h.kpi.kind(),
            start: h.record.window_start,
            end: h.record.window_end,
            rows: Vec::new(),
            count: 0,
            numerator: 0.0,
            sum: 0.0,
        };
        a.take(&h.record);
        a
    }

    fn add(&mut self, h: &'a Held) {
        let r = &h.record;
        if r.window_start > self.start {
            *self = Agg::new(h);
        } else if r.window_start == self.start {
            self.take(r);
        }
    }

    fn take(&mut self, r: &'a KpiRecord) {
        let value = value_f64(r.value);
        self.rows.push(r);
        self.count += r.count;
        self.numerator += match self.kind {
            // NPS records carry the score; its numerator is
            // promoters − detractors = score × responses / 100 (an integer).
            KpiKind::Score => (value * r.count as f64 / 100.0).round(),
            _ => r.numerator.unwrap_or(0) as f64,
        };
        self.sum += match self.kind {
            KpiKind::Mean | KpiKind::Distribution => value * r.count as f64,
            KpiKind::Sum => value,
            _ => 0.0,
        };
    }

    /// The one record of a series that is a single row.
    fn single(&self) -> Option<&'a KpiRecord> {
        (self.rows.len() == 1).then(|| self.rows[0])
    }

    /// The KPI value recomputed from the summed parts (`other` series).
    fn derived_value(&self) -> f64 {
        let n = self.count as f64;
        let ratio = |x: f64| if n > 0.0 { x / n } else { 0.0 };
        match self.kind {
            KpiKind::Count => n,
            KpiKind::Sum => self.sum,
            KpiKind::Mean | KpiKind::Distribution => ratio(self.sum),
            KpiKind::Ratio | KpiKind::Churn => ratio(self.numerator),
            KpiKind::Score => 100.0 * ratio(self.numerator),
        }
    }
}

/// Metric families by name, in name order.
#[derive(Default)]
struct Families(BTreeMap<String, MetricFamily>);

impl Families {
    fn gauge(&mut self, name: &str, help: &str, labels: Vec<LabelPair>, value: f64) {
        let fam = self.0.entry(name.to_string()).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(MetricType::GAUGE);
            f
        });
        let mut g = Gauge::default();
        g.set_value(value);
        let mut m = Metric::default();
        m.set_label(labels);
        m.set_gauge(g);
        fam.mut_metric().push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kpi: &'static str, group: &[(&'static str, &str)], start_min: i64) -> KpiRecord {
        KpiRecord {
            kpi,
            window: Arc::from("5m"),
            window_start: start_min * 60 * MICROS_PER_SEC,
            window_end: (start_min + 5) * 60 * MICROS_PER_SEC,
            group: group.iter().map(|(d, v)| (*d, Arc::from(*v))).collect(),
            value: Value::Float(0.0),
            count: 0,
            numerator: None,
            quantiles: None,
            revision: 0,
        }
    }

    fn ratio(group: &[(&'static str, &str)], start: i64, num: u64, n: u64) -> KpiRecord {
        let mut r = rec("csat_rate", group, start);
        r.numerator = Some(num);
        r.count = n;
        r.value = Value::Float(num as f64 / n as f64);
        r
    }

    #[test]
    fn keeps_the_latest_window_and_revision() {
        let mut s = KpiStore::new(10, 60 * MICROS_PER_SEC);
        assert!(s.update(&ratio(&[], 10, 1, 2), 0).stored);
        // An older window does not replace a newer one.
        assert!(!s.update(&ratio(&[], 9, 2, 2), 0).stored);
        let mut rev = ratio(&[], 10, 2, 3);
        rev.revision = 1;
        assert!(s.update(&rev, 0).stored);
        // A stale revision 0 arriving after revision 1 is ignored.
        assert!(!s.update(&ratio(&[], 10, 0, 5), 0).stored);
        let rows = s.query(&KpiQuery::default());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["numerator"], 2);
        assert_eq!(rows[0]["revision"], 1);
        assert_eq!(rows[0]["key"], "csat_rate|5m|");
    }

    #[test]
    fn values_beyond_the_limit_are_aggregated_under_other() {
        let mut s = KpiStore::new(2, 3600 * MICROS_PER_SEC);
        let g = |a: &'static str| [("agent_id", a)];
        s.update(&ratio(&g("a1"), 10, 1, 2), 0);
        s.update(&ratio(&g("a2"), 10, 3, 4), 0);
        // a3 and a4 exceed the limit of 2: one `other` series with
        // (1 + 2) / (4 + 4), a ratio of sums.
        assert_eq!(
            s.update(&ratio(&g("a3"), 10, 1, 4), 0).overflow,
            [false, false, true]
        );
        s.update(&ratio(&g("a4"), 10, 2, 4), 0);
        // An `other` row of an older window does not mix into the newer one.
        s.update(&ratio(&g("a5"), 5, 4, 4), 0);
        assert_eq!(s.admitted(Dim::AgentId), 2);
        let fams = s.families();
        let find = |name: &str, agent: &str| -> f64 {
            let f = fams.iter().find(|f| f.name() == name).unwrap();
            f.get_metric()
                .iter()
                .find(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == "agent_id" && l.value() == agent)
                })
                .unwrap()
                .get_gauge()
                .get_value()
        };
        assert_eq!(find("cxpulse_kpi_csat_rate", "a1"), 0.5);
        assert_eq!(find("cxpulse_kpi_csat_rate", OTHER), 3.0 / 8.0);
        assert_eq!(find("cxpulse_kpi_csat_rate_numerator", OTHER), 3.0);
        assert_eq!(find("cxpulse_kpi_csat_rate_count", OTHER), 8.0);
        // The API shows real values.
        let q = KpiQuery {
            dims: vec![(Dim::AgentId, "a4".into())],
            ..Default::default()
        };
        assert_eq!(s.query(&q).len(), 1);
    }

    #[test]
    fn idle_rows_expire_and_free_their_place() {
        let ttl = 100;
        let mut s = KpiStore::new(1, ttl);
        s.update(&ratio(&[("region", "eu")], 1, 1, 1), 0);
        assert_eq!(
            s.update(&ratio(&[("region", "us")], 1, 1, 1), 50).overflow,
            [false, true, false]
        );
        assert_eq!(s.expire(99), 0);
        s.update(&ratio(&[("region", "us")], 2, 1, 1), 120);
        // eu (last record at 0) expires at 100; us (at 120) stays, still `other`.
        assert_eq!(s.expire(150), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.admitted(Dim::Region), 0);
        // The freed place goes to the next new value.
        s.update(&ratio(&[("region", "apac")], 2, 1, 1), 150);
        assert_eq!(s.admitted(Dim::Region), 1);
    }

    #[test]
    fn distribution_and_score_families() {
        let mut s = KpiStore::new(10, MICROS_PER_SEC);
        let mut d = rec("chat_wait_time_seconds", &[("region", "eu")], 0);
        d.value = Value::Float(30.0);
        d.count = 4;
        d.quantiles = Some([20.0, 50.0, 70.0]);
        s.update(&d, 0);
        let mut n = rec("nps", &[], 0);
        n.value = Value::Float(-25.0);
        n.count = 8;
        s.update(&n, 0);
        let fams = s.families();
        let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
        for want in [
            "cxpulse_kpi_chat_wait_time_seconds",
            "cxpulse_kpi_chat_wait_time_seconds_mean",
            "cxpulse_kpi_chat_wait_time_seconds_sum",
            "cxpulse_kpi_chat_wait_time_seconds_count",
            "cxpulse_kpi_nps",
            "cxpulse_kpi_nps_numerator",
            "cxpulse_kpi_nps_count",
            "cxpulse_kpi_window_end_timestamp_seconds",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let get = |name: &str| fams.iter().find(|f| f.name() == name).unwrap();
        assert_eq!(
            get("cxpulse_kpi_chat_wait_time_seconds").get_metric().len(),
            3
        );
        assert_eq!(
            get("cxpulse_kpi_chat_wait_time_seconds_sum").get_metric()[0]
                .get_gauge()
                .get_value(),
            120.0
        );
        // −25 × 8 / 100 = −2: two more detractors than promoters.
        assert_eq!(
            get("cxpulse_kpi_nps_numerator").get_metric()[0]
                .get_gauge()
                .get_value(),
            -2.0
        );
        assert_eq!(
            get("cxpulse_kpi_window_end_timestamp_seconds").get_metric()[0]
                .get_gauge()
                .get_value(),
            300.0
        );
    }
}
