//! The live summary: every `pipeline.summary_interval`, one structured
//! progress log line (throughput, lag, watermark, counters) and a compact
//! block of headline KPIs on stdout, taken from the latest overall records
//! the pipeline produced.

use super::processor::fmt_time;
use super::Stats;
use crate::engine::kpi::Value;
use crate::engine::Engine;
use crate::record::KpiRecord;
use crate::time::{format_rfc3339, Micros, MICROS_PER_HOUR};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The KPIs shown, in display order.
const HEADLINE: &[&str] = &[
    "tickets_opened",
    "first_reply_time_seconds",
    "fcr_rate",
    "reopen_rate",
    "chats_requested",
    "chat_wait_time_seconds",
    "chat_service_level",
    "chat_abandonment_rate",
    "csat_rate",
    "nps",
    "ces_mean",
    "checkouts_started",
    "checkout_conversion_rate",
    "cart_abandonment_rate",
    "revenue",
    "average_order_value",
    "churn_rate",
    "renewal_rate",
];

pub struct Summary {
    /// The window shown: the largest configured window up to 1h, else the
    /// smallest.
    window: Arc<str>,
    latest: HashMap<&'static str, KpiRecord>,
    /// Print the KPI block on stdout (the progress line is always logged).
    print: bool,
    /// When, and at which counts, the last report was made.
    last: (Instant, u64, u64),
}

impl Summary {
    pub fn new(windows: &[crate::engine::windows::WindowSpec], print: bool) -> Self {
        let window = windows
            .iter()
            .filter(|w| w.size <= MICROS_PER_HOUR)
            .max_by_key(|w| w.size)
            .or_else(|| windows.iter().min_by_key(|w| w.size))
            .map(|w| w.name.clone())
            .unwrap_or_else(|| "".into());
        Summary {
            window,
            latest: HashMap::new(),
            print,
            last: (Instant::now(), 0, 0),
        }
    }

    /// Remembers `r` if it is a newer overall headline record.
    pub fn observe(&mut self, r: &KpiRecord) {
        if !r.group.is_empty() || r.window != self.window || !HEADLINE.contains(&r.kpi) {
            return;
        }
        match self.latest.get(r.kpi) {
            Some(old) if (old.window_start, old.revision) > (r.window_start, r.revision) => {}
            _ => {
                self.latest.insert(r.kpi, r.clone());
            }
        }
    }

    /// Logs the progress line and prints the KPI block.
    pub fn report(&mut self, engine: &Engine, stats: &Stats) {
        let now = Instant::now();
        let processed = stats.processed.load(Ordering::Relaxed);
        let records = stats.records_sent.load(Ordering::Relaxed);
        let (t, p, r) = self.last;
        let secs = now.duration_since(t).as_secs_f64().max(1e-3);
        let eps = processed.saturating_sub(p) as f64 / secs;
        let rps = records.saturating_sub(r) as f64 / secs;
        self.last = (now, processed, records);
        let c = engine.counters();
        let lag = stats.consumer_lag.load(Ordering::Relaxed);
        tracing::info!(
            events_per_sec = format!("{eps:.0}"),
            records_per_sec = format!("{rps:.0}"),
            consumer_lag = lag,
            watermark = %fmt_time(engine.watermark()),
            processed,
            accepted = c.accepted,
            invalid = c.invalid,
            duplicates = c.duplicates,
            late = c.late,
            late_dropped = c.late_dropped,
            buffered = engine.buffered(),
            paused_partitions = stats.paused_partitions.load(Ordering::Relaxed),
            records_sent = records,
            acked_through = stats.acked_through.load(Ordering::Relaxed),
            commits = stats.commits.load(Ordering::Relaxed),
            "pipeline progress"
        );
        if self.print {
            let block = self.render(eps, rps, lag, engine.watermark());
            println!("{block}");
        }
    }

    /// The KPI block (also used by tests).
    pub fn render(&self, eps: f64, rps: f64, lag: i64, watermark: Micros) -> String {
        let mut s = String::new();
        let lag = if lag < 0 { "?".into() } else { lag.to_string() };
        let _ = writeln!(
            s,
            "── cxpulse │ {eps:.0} ev/s in │ {rps:.0} rec/s out │ lag {lag} │ watermark {}",
            fmt_time(watermark)
        );
        let newest = self.latest.values().max_by_key(|r| r.window_start);
        match newest {
            None => {
                let _ = write!(s, "   (no {} window has closed yet)", self.window);
                return s;
            }
            Some(r) => {
                let _ = writeln!(
                    s,
                    "   {} window {} → {}, overall",
                    self.window,
                    format_rfc3339(r.window_start),
                    format_rfc3339(r.window_end)
                );
            }
        }
        let line = |label: &str, parts: Vec<String>| -> String {
            let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!("   {label:<9} {}\n", parts.join(" · "))
            }
        };
        s.push_str(&line(
            "tickets",
            vec![
                self.count("tickets_opened", "opened"),
                self.dist("first_reply_time_seconds", "first reply"),
                self.pct("fcr_rate", "FCR"),
                self.pct("reopen_rate", "reopen"),
            ],
        ));
        s.push_str(&line(
            "chats",
            vec![
                self.count("chats_requested", "requested"),
                self.dist("chat_wait_time_seconds", "wait"),
                self.pct("chat_service_level", "service level"),
                self.pct("chat_abandonment_rate", "abandoned"),
            ],
        ));
        s.push_str(&line(
            "surveys",
            vec![
                self.pct("csat_rate", "CSAT"),
                self.value("nps")
                    .map(|(v, _)| format!("NPS {v:+.0}"))
                    .unwrap_or_default(),
                self.num("ces_mean", "CES", 1),
            ],
        ));
        s.push_str(&line(
            "commerce",
            vec![
                self.count("checkouts_started", "checkouts"),
                self.pct("checkout_conversion_rate", "conversion"),
                self.pct("cart_abandonment_rate", "carts abandoned"),
                self.num("revenue", "revenue", 2),
                self.num("average_order_value", "AOV", 2),
            ],
        ));
        s.push_str(&line(
            "subs",
            vec![
                self.pct("churn_rate", "churn"),
                self.pct("renewal_rate", "renewal"),
            ],
        ));
        s.trim_end().to_string()
    }

    fn value(&self, kpi: &str) -> Option<(f64, &KpiRecord)> {
        let r = self.latest.get(kpi)?;
        let v = match r.value {
            Value::Int(n) => n as f64,
            Value::Float(x) => x,
        };
        Some((v, r))
    }

    fn count(&self, kpi: &str, label: &str) -> String {
        self.value(kpi)
            .map(|(v, _)| format!("{label} {v:.0}"))
            .unwrap_or_default()
    }

    fn pct(&self, kpi: &str, label: &str) -> String {
        self.value(kpi)
            .map(|(v, _)| format!("{label} {:.1}%", v * 100.0))
            .unwrap_or_default()
    }

    fn num(&self, kpi: &str, label: &str, decimals: usize) -> String {
        self.value(kpi)
            .map(|(v, _)| format!("{label} {v:.decimals$}"))
            .unwrap_or_default()
    }

    fn dist(&self, kpi: &str, label: &str) -> String {
        self.value(kpi)
            .and_then(|(_, r)| r.quantiles)
            .map(|q| format!("{label} p50 {} p90 {}", secs(q[0]), secs(q[1])))
            .unwrap_or_default()
    }
}

/// `38s`, `4m12s`, `1h02m`.
fn secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}
