//! The KPI record: what leaves cxpulse, on the KPI topic and in replay
//! output (contract §5).

use crate::engine::kpi::Value;
use crate::engine::windows::{GroupingSets, Row, WindowSpec};
use crate::intern::Interner;
use crate::time::{format_rfc3339, Micros};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::sync::Arc;

/// One KPI value for one window and group, at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiRecord {
    pub kpi: &'static str,
    pub window: Arc<str>,
    pub window_start: Micros,
    pub window_end: Micros,
    /// The grouping set's dimensions and values; empty for the overall row.
    pub group: Vec<(&'static str, Arc<str>)>,
    pub value: Value,
    pub count: u64,
    pub numerator: Option<u64>,
    /// p50, p90, p99 for distributions.
    pub quantiles: Option<[f64; 3]>,
    pub revision: u32,
}

impl KpiRecord {
    pub(crate) fn from_row(
        row: Row,
        windows: &[WindowSpec],
        sets: &GroupingSets,
        interner: &Interner,
    ) -> Self {
        let group = sets
            .dims(row.group.set)
            .iter()
            .zip(row.group.values)
            .map(|(d, v)| (d.name(), interner.resolve(v).clone()))
            .collect();
        KpiRecord {
            kpi: row.kpi.name(),
            window: windows[row.window].name.clone(),
            window_start: row.start,
            window_end: row.end,
            group,
            value: row.reading.value,
            count: row.reading.count,
            numerator: row.reading.numerator,
            quantiles: row.reading.quantiles,
            revision: row.revision,
        }
    }

    /// The message key: `kpi|window|group`, the group as `dim=value` pairs
    /// joined by `,` (empty for the overall row). Records of the same key
    /// replace each other in a compacted topic.
    pub fn key(&self) -> String {
        let mut key = format!("{}|{}|", self.kpi, self.window);
        for (i, (d, v)) in self.group.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(d);
            key.push('=');
            key.push_str(v);
        }
        key
    }

    /// The identity of the row across revisions: key plus window start.
    pub fn row_id(&self) -> (String, Micros) {
        (self.key(), self.window_start)
    }

    /// One line of JSON, no trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialize")
    }

    pub fn write_json(&self, buf: &mut Vec<u8>) {
        serde_json::to_writer(buf, self).expect("records always serialize");
    }
}

struct Group<'a>(&'a [(&'static str, Arc<str>)]);

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &**v)?;
        }
        m.end()
    }
}

struct Quantiles([f64; 3]);

impl Serialize for Quantiles {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("p50", &self.0[0])?;
        m.serialize_entry("p90", &self.0[1])?;
        m.serialize_entry("p99", &self.0[2])?;
        m.end()
    }
}

impl Serialize for KpiRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kpi", self.kpi)?;
        m.serialize_entry("window", &*self.window)?;
        m.serialize_entry("window_start", &format_rfc3339(self.window_start))?;
        m.serialize_entry("window_end", &format_rfc3339(self.window_end))?;
        m.serialize_entry("group", &Group(&self.group))?;
        match self.value {
            Value::Int(n) => m.serialize_entry("value", &n)?,
            Value::Float(v) => m.serialize_entry("value", &v)?,
        }
        m.serialize_entry("count", &self.count)?;
        if let Some(n) = self.numerator {
            m.serialize_entry("numerator", &n)?;
        }
        if let Some(q) = self.quantiles {
            m.serialize_entry("quantiles", &Quantiles(q))?;
        }
        m.serialize_entry("revision", &self.revision)?;
        m.end()
    }
}
