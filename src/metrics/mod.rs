//! Prometheus metrics of a running pipeline: what `/metrics` serves.
//!
//! Three groups (the full list, names and labels: docs/metrics.md):
//!
//! - **KPI gauges** in event time: the latest fired window of every KPI row,
//!   from [`kpi_store::KpiStore`], built at scrape time with the cardinality
//!   guard and series expiry;
//! - **processing-time metrics**, Prometheus-native: events by type, survey
//!   responses by score, revenue, and histograms of chat wait, first reply,
//!   resolution and handle times, so `rate()` and `histogram_quantile()`
//!   work as usual;
//! - **pipeline self-metrics** (`cxpulse_` namespace): consumed, invalid,
//!   late, duplicates, orphans, watermarks, consumer lag, records produced,
//!   produce errors, commits, open entities, processing latency, readiness.
//!
//! [`Metrics`] is shared (`Arc`) by the pipeline stages, which update it, and
//! the HTTP server, which reads it. Updates are cheap atomic operations; the
//! KPI store sits behind a mutex taken once per batch of records.

pub mod kpi_store;

use crate::engine::kpi::{Dim, Kpi};
use crate::engine::Counters;
use crate::event::{Body, Event, SurveyKind};
use crate::record::KpiRecord;
use crate::time::{Micros, MICROS_PER_SEC};
use kpi_store::{KpiQuery, KpiStore};
use prometheus::{
    Encoder as _, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Buckets of `cxpulse_chat_wait_seconds` (around common chat SLOs).
pub const CHAT_WAIT_BUCKETS: &[f64] = &[
    10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
/// Buckets of `cxpulse_first_reply_seconds` (1 min … 1 day).
pub const FIRST_REPLY_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];
/// Buckets of `cxpulse_resolution_seconds` (1 h … 7 days).
pub const RESOLUTION_BUCKETS: &[f64] = &[
    3600.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0, 604800.0,
];
/// Buckets of `cxpulse_chat_handle_seconds`.
pub const HANDLE_BUCKETS: &[f64] = &[60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];
/// Buckets of `cxpulse_processing_latency_seconds`.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Settings of the metrics (from `[http]` and `[metrics]`).
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub max_values_per_dimension: usize,
    pub series_ttl: Micros,
    pub ready_max_lag: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            max_values_per_dimension: 200,
            series_ttl: 3 * 3600 * MICROS_PER_SEC,
            ready_max_lag: 1000,
        }
    }
}

/// Every metric of a running pipeline; see the module docs.
pub struct Metrics {
    registry: Registry,
    kpis: Mutex<KpiStore>,
    ready_max_lag: u64,
    caught_up: AtomicBool,
    ready: AtomicBool,
    /// Assigned partitions and read lag, for the `/readyz` reason.
    assigned_now: AtomicU64,
    lag_now: std::sync::atomic::AtomicI64,

    // Processing time.
    events: IntCounterVec,
    survey_responses: IntCounterVec,
    revenue: prometheus::Counter,
    chat_wait: Histogram,
    first_reply: Histogram,
    resolution: Histogram,
    chat_handle: Histogram,

    // Pipeline.
    ready_gauge: IntGauge,
    pub messages_consumed: IntCounterVec,
    pub messages_redelivered: IntCounterVec,
    invalid: IntCounterVec,
    late: IntCounter,
    late_dropped: IntCounter,
    duplicates: IntCounter,
    orphans: IntCounter,
    watermark: Gauge,
    watermark_lag: Gauge,
    partition_watermark: GaugeVec,
    partition_idle: IntGaugeVec,
    consumer_lag: IntGaugeVec,
    pub records_emitted: IntCounter,
    revisions: IntCounter,
    pub records_produced: IntCounter,
    pub dead_letters_produced: IntCounterVec,
    pub produce_errors: IntCounter,
    pub commits: IntCounterVec,
    open_entities: IntGaugeVec,
    pub assigned_partitions: IntGauge,
    pub paused_partitions: IntGauge,
    pub processing_latency: Histogram,
    kpi_series: IntGauge,
    pub state_bytes: IntGauge,
    pub checkpoints: IntCounter,
    label_overflow: IntCounterVec,
    series_expired: IntCounter,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// Registers a metric built by `make` (names are static: failure is a bug).
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique and valid");
    m
}

fn hist(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid histogram"),
    )
}

impl Metrics {
    pub fn new(settings: &MetricsSettings) -> Self {
        let r = Registry::new();
        let counter =
            |name: &str, help: &str| reg(&r, IntCounter::with_opts(opts(name, help)).unwrap());
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntCounterVec::new(opts(name, help), labels).unwrap())
        };
        let gauge = |name: &str, help: &str| reg(&r, Gauge::with_opts(opts(name, help)).unwrap());
        let int_gauge =
            |name: &str, help: &str| reg(&r, IntGauge::with_opts(opts(name, help)).unwrap());
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntGaugeVec::new(opts(name, help), labels).unwrap())
        };
        let build_info = reg(
            &r,
            IntGaugeVec::new(
                opts(
                    "cxpulse_build_info",
                    "cxpulse build information (always 1).",
                ),
                &["version"],
            )
            .unwrap(),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let m = Metrics {
            kpis: Mutex::new(KpiStore::new(
                settings.max_values_per_dimension,
                settings.series_ttl,
            )),
            ready_max_lag: settings.ready_max_lag,
            caught_up: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            assigned_now: AtomicU64::new(0),
            lag_now: std::sync::atomic::AtomicI64::new(-1),
            events: counter_vec(
                "cxpulse_events_total",
                "Valid events consumed, by input topic and event type.",
                &["topic", "type"],
            ),
            survey_responses: counter_vec(
                "cxpulse_survey_responses_total",
                "Survey responses by survey (csat, nps, ces) and score.",
                &["survey", "score"],
            ),
            revenue: reg(
                &r,
                prometheus::Counter::with_opts(opts(
                    "cxpulse_revenue_total",
                    "Sum of the value of completed checkouts.",
                ))
                .unwrap(),
            ),
            chat_wait: hist(
                &r,
                "cxpulse_chat_wait_seconds",
                "Chat wait: request to first agent join, seconds (observed in processing time).",
                CHAT_WAIT_BUCKETS,
            ),
            first_reply: hist(
                &r,
                "cxpulse_first_reply_seconds",
                "Ticket opened to first public agent reply, seconds (observed in processing time).",
                FIRST_REPLY_BUCKETS,
            ),
            resolution: hist(
                &r,
                "cxpulse_resolution_seconds",
                "Ticket opened to first resolve, seconds (observed in processing time).",
                RESOLUTION_BUCKETS,
            ),
            chat_handle: hist(
                &r,
                "cxpulse_chat_handle_seconds",
                "Chat first agent join to end, seconds (observed in processing time).",
                HANDLE_BUCKETS,
            ),
            ready_gauge: int_gauge("cxpulse_ready", "1 when /readyz answers 200."),
            messages_consumed: counter_vec(
                "cxpulse_messages_consumed_total",
                "Messages received from the input topics (re-deliveries included).",
                &["topic"],
            ),
            messages_redelivered: counter_vec(
                "cxpulse_messages_redelivered_total",
                "Messages received again after a rebalance or a resumed partition and skipped: already in the engine.",
                &["topic"],
            ),
            invalid: counter_vec(
                "cxpulse_events_invalid_total",
                "Invalid messages sent to the dead-letter output, by topic and reason.",
                &["topic", "reason"],
            ),
            late: counter("cxpulse_events_late_total", "Events that arrived below the watermark."),
            late_dropped: counter(
                "cxpulse_events_late_dropped_total",
                "Late events dropped from a window beyond allowed_lateness.",
            ),
            duplicates: counter(
                "cxpulse_events_duplicate_total",
                "Events ignored as a repeated event_id.",
            ),
            orphans: counter(
                "cxpulse_events_orphan_total",
                "Entity events for an entity with no state (never opened, or expired).",
            ),
            watermark: gauge(
                "cxpulse_watermark_timestamp_seconds",
                "The engine's event-time watermark (Unix seconds).",
            ),
            watermark_lag: gauge(
                "cxpulse_watermark_lag_seconds",
                "Wall clock minus the watermark, seconds.",
            ),
            partition_watermark: reg(
                &r,
                GaugeVec::new(
                    opts(
                        "cxpulse_partition_watermark_timestamp_seconds",
                        "Watermark of one input partition (Unix seconds).",
                    ),
                    &["topic", "partition"],
                )
                .unwrap(),
            ),
            partition_idle: int_gauge_vec(
                "cxpulse_partition_idle",
                "1 when the input partition is idle and does not hold the watermark back.",
                &["topic", "partition"],
            ),
            consumer_lag: int_gauge_vec(
                "cxpulse_consumer_lag_messages",
                "Messages not yet read: high watermark minus next offset (librdkafka statistics).",
                &["topic", "partition"],
            ),
            records_emitted: counter(
                "cxpulse_kpi_records_emitted_total",
                "KPI records handed to the producer (revisions included).",
            ),
            revisions: counter(
                "cxpulse_kpi_revisions_total",
                "KPI records with revision > 0 (late data corrected a window).",
            ),
            records_produced: counter(
                "cxpulse_kpi_records_produced_total",
                "KPI records acknowledged by the broker.",
            ),
            dead_letters_produced: counter_vec(
                "cxpulse_dead_letters_produced_total",
                "Dead letters acknowledged by the broker, by kind (invalid, late).",
                &["kind"],
            ),
            produce_errors: counter(
                "cxpulse_produce_errors_total",
                "Delivery errors reported by the producer.",
            ),
            commits: counter_vec(
                "cxpulse_offset_commits_total",
                "Input offset commits, by result.",
                &["result"],
            ),
            open_entities: int_gauge_vec(
                "cxpulse_open_entities",
                "Entity states held, by kind.",
                &["kind"],
            ),
            assigned_partitions: int_gauge(
                "cxpulse_assigned_partitions",
                "Input partitions assigned to this instance.",
            ),
            paused_partitions: int_gauge(
                "cxpulse_paused_partitions",
                "Input partitions paused for running ahead in event time.",
            ),
            processing_latency: hist(
                &r,
                "cxpulse_processing_latency_seconds",
                "A message's arrival from the consumer to the KPI records it caused handed to the producer.",
                LATENCY_BUCKETS,
            ),
            kpi_series: int_gauge(
                "cxpulse_kpi_series",
                "KPI rows held for /metrics and /api/kpis.",
            ),
            state_bytes: int_gauge(
                "cxpulse_state_bytes",
                "Size of the last engine state checkpoint (serialized), bytes.",
            ),
            checkpoints: counter(
                "cxpulse_checkpoints_total",
                "Engine state checkpoints stored.",
            ),
            label_overflow: counter_vec(
                "cxpulse_kpi_label_overflow_total",
                "KPI records exported under the label value `other` (cardinality guard), by dimension.",
                &["dimension"],
            ),
            series_expired: counter(
                "cxpulse_kpi_series_expired_total",
                "KPI rows removed after metrics.series_ttl without a record.",
            ),
            registry: r,
        };
        for kind in ENTITY_KINDS {
            m.open_entities.with_label_values(&[kind]).set(0);
        }
        for d in Dim::ALL {
            m.label_overflow.with_label_values(&[d.name()]);
        }
        for result in ["ok", "error"] {
            m.commits.with_label_values(&[result]);
        }
        for kind in ["invalid", "late"] {
            m.dead_letters_produced.with_label_values(&[kind]);
        }
        m
    }

    /// A valid, non-duplicate event consumed from `topic`.
    pub fn observe_event(&self, topic: &str, ev: &Event) {
        self.events
            .with_label_values(&[topic, ev.body.type_name()])
            .inc();
        match ev.body {
            Body::SurveySubmitted { survey, score, .. } => {
                let name = match survey {
                    SurveyKind::Csat => "csat",
                    SurveyKind::Nps => "nps",
                    SurveyKind::Ces => "ces",
                };
                self.survey_responses
                    .with_label_values(&[name, SCORES[score.min(10) as usize]])
                    .inc();
            }
            Body::CheckoutCompleted { value, .. } if value.is_finite() && value >= 0.0 => {
                self.revenue.inc_by(value);
            }
            _ => {}
        }
    }

    /// Distribution samples tapped from the engine ([`crate::engine::Engine::take_samples`]).
    pub fn observe_samples(&self, samples: &[(Kpi, f64)]) {
        for (kpi, v) in samples {
            let h = match kpi {
                Kpi::ChatWaitTime => &self.chat_wait,
                Kpi::FirstReplyTime => &self.first_reply,
                Kpi::FirstResolutionTime => &self.resolution,
                Kpi::ChatHandleTime => &self.chat_handle,
                _ => continue,
            };
            h.observe(*v);
        }
    }

    /// An invalid message from `topic`.
    pub fn observe_invalid(&self, topic: &str, reason: &str) {
        self.invalid.with_label_values(&[topic, reason]).inc();
    }

    /// Publishes the engine's cumulative counters; `last` is what was
    /// published before (counters only ever move forward).
    pub fn publish_engine(&self, now: &Counters, last: &mut Counters) {
        let delta = |c: &IntCounter, new: u64, old: &mut u64| {
            c.inc_by(new.saturating_sub(*old));
            *old = (*old).max(new);
        };
        delta(&self.late, now.late, &mut last.late);
        delta(&self.late_dropped, now.late_dropped, &mut last.late_dropped);
        delta(&self.duplicates, now.duplicates, &mut last.duplicates);
        delta(&self.orphans, now.orphans, &mut last.orphans);
    }

    /// Open entity states: tickets, chats, carts, subscriptions.
    pub fn set_open_entities(&self, counts: [usize; 4]) {
        for (kind, n) in ENTITY_KINDS.iter().zip(counts) {
            self.open_entities.with_label_values(&[kind]).set(n as i64);
        }
    }

    /// The engine watermark (µs, `Micros::MIN` before the first) at wall time `wall`.
    pub fn set_watermark(&self, watermark: Micros, wall: Micros) {
        if watermark > Micros::MIN && watermark < Micros::MAX {
            self.watermark.set(secs(watermark));
            self.watermark_lag.set(secs(wall.saturating_sub(watermark)));
        }
    }

    /// One input partition's watermark and idleness.
    pub fn set_partition(
        &self,
        topic: &str,
        partition: i32,
        watermark: Option<Micros>,
        idle: bool,
    ) {
        let p = partition.to_string();
        if let Some(w) = watermark {
            self.partition_watermark
                .with_label_values(&[topic, &p])
                .set(secs(w));
        }
        self.partition_idle
            .with_label_values(&[topic, &p])
            .set(idle as i64);
    }

    /// Removes a revoked partition's series.
    pub fn remove_partition(&self, topic: &str, partition: i32) {
        let p = partition.to_string();
        let _ = self.partition_watermark.remove_label_values(&[topic, &p]);
        let _ = self.partition_idle.remove_label_values(&[topic, &p]);
        let _ = self.consumer_lag.remove_label_values(&[topic, &p]);
    }

    /// One partition's read lag (librdkafka statistics).
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// KPI records handed to the producer at wall time `wall`.
    pub fn observe_records<'a>(
        &self,
        records: impl IntoIterator<Item = &'a KpiRecord>,
        wall: Micros,
    ) {
        let mut store = self.kpis.lock().expect("not poisoned");
        let mut overflow = [0u64; 3];
        let mut n = 0;
        let mut revisions = 0;
        for r in records {
            n += 1;
            revisions += (r.revision > 0) as u64;
            let u = store.update(r, wall);
            for (o, hit) in overflow.iter_mut().zip(u.overflow) {
                *o += hit as u64;
            }
        }
        drop(store);
        self.records_emitted.inc_by(n);
        self.revisions.inc_by(revisions);
        for (d, o) in Dim::ALL.iter().zip(overflow) {
            if o > 0 {
                self.label_overflow.with_label_values(&[d.name()]).inc_by(o);
            }
        }
    }

    /// Re-evaluates readiness from the assigned partitions and the read lag
    /// (−1: not known yet). Ready = partitions assigned and the first
    /// catch-up done (lag at most `http.ready_max_lag` once).
    pub fn update_readiness(&self, assigned: u64, lag: i64) {
        self.assigned_now.store(assigned, Ordering::Relaxed);
        self.lag_now.store(lag, Ordering::Relaxed);
        if assigned > 0 && lag >= 0 && lag as u64 <= self.ready_max_lag {
            self.caught_up.store(true, Ordering::Relaxed);
        }
        let ready = assigned > 0 && self.caught_up.load(Ordering::Relaxed);
        self.ready.store(ready, Ordering::Relaxed);
        self.ready_gauge.set(ready as i64);
    }

    /// `Ok` when ready, else why not (for `/readyz`).
    pub fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let assigned = self.assigned_now.load(Ordering::Relaxed);
        let lag = self.lag_now.load(Ordering::Relaxed);
        Err(if assigned == 0 {
            "no input partitions assigned yet".into()
        } else if lag < 0 {
            "catching up: consumer lag not known yet".into()
        } else {
            format!(
                "catching up: consumer lag {lag} messages (ready at {} or less)",
                self.ready_max_lag
            )
        })
    }

    /// Rows of `/api/kpis`, expired rows removed first.
    pub fn query_kpis(&self, q: &KpiQuery, wall: Micros) -> Vec<serde_json::Value> {
        let mut store = self.kpis.lock().expect("not poisoned");
        self.expire(&mut store, wall);
        store.query(q)
    }

    fn expire(&self, store: &mut KpiStore, wall: Micros) {
        let n = store.expire(wall);
        self.series_expired.inc_by(n as u64);
        self.kpi_series.set(store.len() as i64);
    }

    /// The Prometheus text exposition of everything, at wall time `wall`.
    pub fn encode(&self, wall: Micros) -> String {
        let kpi_families = {
            let mut store = self.kpis.lock().expect("not poisoned");
            self.expire(&mut store, wall);
            store.families()
        };
        let mut families = self.registry.gather();
        families.extend(kpi_families);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("metric families encode");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

const ENTITY_KINDS: [&str; 4] = ["ticket", "chat", "cart", "subscription"];

const SCORES: [&str; 11] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];

fn secs(t: Micros) -> f64 {
    t as f64 / MICROS_PER_SEC as f64
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&MetricsSettings::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
