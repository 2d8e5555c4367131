//! Shared helpers for the contract tests: building events, running the
//! engine over in-memory lines, finding rows and checking them against
//! hand-computed expectations.
//!
//! Times in the tests are seconds after `B` = 2026-11-23T10:00:00Z, which is
//! aligned to every window size used here (90s, 5m, 10m, 1h).
#![allow(dead_code)]

use cxpulse::config::Config;
use cxpulse::engine::kpi::Value;
use cxpulse::record::KpiRecord;
use cxpulse::replay::{replay_lines, ReplayOutput};
use serde_json::{json, Map, Value as J};

/// Every event `type` of the contract (§1), written out independently of
/// the code under test.
pub const EVENT_TYPES: [&str; 13] = [
    "ticket.opened",
    "ticket.replied",
    "ticket.resolved",
    "ticket.reopened",
    "chat.requested",
    "chat.agent_joined",
    "chat.ended",
    "survey.submitted",
    "checkout.started",
    "checkout.completed",
    "subscription.started",
    "subscription.renewed",
    "subscription.cancelled",
];

/// 2026-11-23T10:00:00Z in epoch milliseconds.
pub const B_MS: i64 = 1_795_428_000_000;
/// The same instant in microseconds (the unit of `KpiRecord::window_start`).
pub const B_US: i64 = B_MS * 1000;

/// `B + secs` in microseconds.
pub fn us(secs: i64) -> i64 {
    B_US + secs * 1_000_000
}

/// RFC 3339 (UTC, `Z`) for `B + ms` milliseconds.
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(B_MS + ms)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// RFC 3339 (UTC, `Z`) for `B + secs` seconds.
pub fn iso(secs: i64) -> String {
    iso_ms(secs * 1000)
}

/// A configuration layered over the defaults.
pub fn config(windows: &str, grouping_sets: &str) -> Config {
    let text = format!("[engine]\nwindows = {windows}\ngrouping_sets = {grouping_sets}\n");
    Config::from_toml(&text).unwrap_or_else(|e| panic!("config {text}: {e}"))
}

pub const ALL_SETS: &str = r#"[[], ["channel"], ["region"], ["agent_id"]]"#;
pub const OVERALL: &str = "[[]]";

/// One tumbling 10-minute window with the given grouping sets.
pub fn tumbling10(grouping_sets: &str) -> Config {
    config(r#"[ { size = "10m", step = "10m" } ]"#, grouping_sets)
}

/// Builds a list of event lines with sequential event ids `e1`, `e2`, ….
#[derive(Debug, Default, Clone)]
pub struct Events {
    pub lines: Vec<String>,
    next: usize,
}

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event of `kind` at `B + secs` (RFC 3339) with extra fields.
    pub fn add(&mut self, kind: &str, secs: i64, fields: J) -> String {
        self.add_ts(kind, J::String(iso(secs)), fields)
    }

    /// Adds an event of `kind` at `B + ms` given as integer epoch millis.
    pub fn add_epoch_ms(&mut self, kind: &str, ms: i64, fields: J) -> String {
        self.add_ts(kind, json!(B_MS + ms), fields)
    }

    /// Adds an event with an explicit `ts` JSON value.
    pub fn add_ts(&mut self, kind: &str, ts: J, fields: J) -> String {
        self.next += 1;
        let id = format!("e{}", self.next);
        let line = event_line(&id, kind, ts, fields);
        self.lines.push(line.clone());
        line
    }

    /// Appends a raw line (invalid input, duplicates).
    pub fn raw(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    pub fn run(&self, cfg: &Config) -> ReplayOutput {
        run(cfg, &self.lines)
    }
}

/// One event line with the given id, type and timestamp.
pub fn event_line(id: &str, kind: &str, ts: J, fields: J) -> String {
    let mut m = Map::new();
    m.insert("event_id".into(), J::String(id.into()));
    m.insert("type".into(), J::String(kind.into()));
    m.insert("ts".into(), ts);
    if let J::Object(f) = fields {
        for (k, v) in f {
            m.insert(k, v);
        }
    } else {
        assert!(fields.is_null(), "fields must be an object");
    }
    J::Object(m).to_string()
}

/// Runs the engine over lines (one partition) with the end-of-input flush.
pub fn run<S: AsRef<str>>(cfg: &Config, lines: &[S]) -> ReplayOutput {
    replay_lines(cfg, lines.iter().map(|l| l.as_ref().as_bytes())).expect("replay")
}

/// A group as sorted `(dim, value)` pairs, for order-insensitive matching.
pub fn norm_group(g: &[(&str, std::sync::Arc<str>)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = g
        .iter()
        .map(|(d, v)| (d.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn want_group(g: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = g
        .iter()
        .map(|(d, v)| (d.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// The final rows (latest revision per row) of a replay, with lookups.
pub struct Rows<'a> {
    pub rows: Vec<&'a KpiRecord>,
}

impl<'a> Rows<'a> {
    pub fn of(out: &'a ReplayOutput) -> Self {
        Rows {
            rows: out.final_rows(),
        }
    }

    /// Every final row of `kpi`.
    pub fn kpi(&self, kpi: &str) -> Vec<&'a KpiRecord> {
        self.rows.iter().copied().filter(|r| r.kpi == kpi).collect()
    }

    fn dump(&self, kpi: &str) -> String {
        self.kpi(kpi)
            .iter()
            .map(|r| format!("  {}", r.to_json()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The row of `kpi` in the window starting at `B + start` in any window
    /// (there must be only one window configured of that start), or `None`.
    pub fn find(&self, kpi: &str, start: i64, group: &[(&str, &str)]) -> Option<&'a KpiRecord> {
        let g = want_group(group);
        let found: Vec<_> = self
            .rows
            .iter()
            .copied()
            .filter(|r| r.kpi == kpi && r.window_start == us(start) && norm_group(&r.group) == g)
            .collect();
        assert!(
            found.len() <= 1,
            "several rows match {kpi} {start} {group:?}"
        );
        found.first().copied()
    }

    /// Like [`Rows::find`] but the row must exist.
    pub fn get(&self, kpi: &str, start: i64, group: &[(&str, &str)]) -> &'a KpiRecord {
        self.find(kpi, start, group).unwrap_or_else(|| {
            panic!(
                "no {kpi} row for window start B+{start}s group {group:?}; rows of {kpi}:\n{}",
                self.dump(kpi)
            )
        })
    }

    /// The row must not exist.
    pub fn none(&self, kpi: &str, start: i64, group: &[(&str, &str)]) {
        if let Some(r) = self.find(kpi, start, group) {
            panic!("unexpected row {}", r.to_json());
        }
    }

    /// The set of groups (sorted) emitted for `kpi` in the window at `start`.
    pub fn groups(&self, kpi: &str, start: i64) -> Vec<Vec<(String, String)>> {
        let mut v: Vec<_> = self
            .kpi(kpi)
            .into_iter()
            .filter(|r| r.window_start == us(start))
            .map(|r| norm_group(&r.group))
            .collect();
        v.sort();
        v
    }
}

/// Builds the expected list of groups for [`Rows::groups`].
pub fn groups(list: &[&[(&str, &str)]]) -> Vec<Vec<(String, String)>> {
    let mut v: Vec<_> = list.iter().map(|g| want_group(g)).collect();
    v.sort();
    v
}

pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-12
}

/// A count KPI: `count == n` and `value == n` (an integer).
#[track_caller]
pub fn assert_count(r: &KpiRecord, n: u64) {
    assert_eq!(r.count, n, "count of {}", r.to_json());
    assert_eq!(r.value, Value::Int(n), "value of {}", r.to_json());
    assert_eq!(r.numerator, None, "{}", r.to_json());
    assert_eq!(r.quantiles, None, "{}", r.to_json());
}

/// A ratio KPI: numerator, denominator (count) and value.
#[track_caller]
pub fn assert_ratio(r: &KpiRecord, num: u64, den: u64) {
    assert_eq!(r.count, den, "denominator (count) of {}", r.to_json());
    assert_eq!(r.numerator, Some(num), "numerator of {}", r.to_json());
    let want = num as f64 / den as f64;
    assert!(
        close(r.value.as_f64(), want, 1e-12),
        "value of {}: want {want}",
        r.to_json()
    );
    assert_eq!(r.quantiles, None, "{}", r.to_json());
}

/// A mean / score / sum KPI: count and value.
#[track_caller]
pub fn assert_value(r: &KpiRecord, n: u64, value: f64) {
    assert_eq!(r.count, n, "count of {}", r.to_json());
    assert!(
        close(r.value.as_f64(), value, 1e-12),
        "value of {}: want {value}",
        r.to_json()
    );
    assert_eq!(r.numerator, None, "{}", r.to_json());
}

/// A distribution: count, mean and p50/p90/p99 within 1% relative error.
#[track_caller]
pub fn assert_dist(r: &KpiRecord, n: u64, mean: f64, q: [f64; 3]) {
    assert_value(r, n, mean);
    let got = r
        .quantiles
        .unwrap_or_else(|| panic!("no quantiles in {}", r.to_json()));
    for (i, name) in ["p50", "p90", "p99"].iter().enumerate() {
        assert!(
            close(got[i], q[i], 0.01),
            "{name} of {}: want {} (±1%)",
            r.to_json(),
            q[i]
        );
    }
}

/// Exact nearest-rank quantile (rank ⌈q·n⌉) of unsorted values.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A comparable form of a record: integers exact, floats (values and
/// quantiles) to 10 significant digits, because summation order may differ
/// in the last bits between runs that must agree.
pub fn canon(r: &KpiRecord) -> String {
    fn f(x: f64) -> String {
        format!("{x:.9e}")
    }
    format!(
        "{}|{}|{}|{}|{:?}|{}|{}|{:?}|{}|rev{}",
        r.kpi,
        r.window,
        r.window_start,
        r.window_end,
        norm_group(&r.group),
        match r.value {
            Value::Int(n) => format!("i{n}"),
            Value::Float(v) => f(v),
        },
        r.count,
        r.numerator,
        r.quantiles
            .map(|q| format!("{},{},{}", f(q[0]), f(q[1]), f(q[2])))
            .unwrap_or_default(),
        r.revision,
    )
}

/// Final rows in a canonical, sorted, revision-free form.
pub fn canon_final(out: &ReplayOutput) -> Vec<String> {
    let mut v: Vec<String> = out
        .final_rows()
        .into_iter()
        .map(|r| {
            let s = canon(r);
            s[..s.rfind("|rev").unwrap()].to_string()
        })
        .collect();
    v.sort();
    v
}

/// Every emitted record, in order, canonical.
pub fn canon_all(out: &ReplayOutput) -> Vec<String> {
    out.records.iter().map(canon).collect()
}

/// Asserts two lists of canonical rows are equal, showing the difference.
#[track_caller]
pub fn assert_same_rows(a: &[String], b: &[String], what: &str) {
    if a != b {
        let only_a: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
        let only_b: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
        panic!(
            "{what}: {} vs {} rows\nonly in first:\n{}\nonly in second:\n{}",
            a.len(),
            b.len(),
            only_a
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            only_b
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A tiny deterministic PRNG (xorshift64*) for shuffles in tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
