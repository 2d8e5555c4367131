//! Typed configuration: the compiled-in `config/default.toml`, an optional
//! file, then `CXPULSE__SECTION__KEY` environment variables (config crate),
//! deserialized into [`Config`] and validated once at start-up.
//!
//! Raw durations stay strings in [`Config`]; [`Config::engine_settings`]
//! parses and checks them and names the key in every error.

use crate::engine::entities::KpiRules;
use crate::engine::kpi::Dim;
use crate::engine::windows::WindowSpec;
use crate::engine::EngineSettings;
use crate::time::{parse_duration, Micros, MICROS_PER_SEC};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The compiled-in defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration error, reported at start-up (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub engine: EngineConfig,
    pub kpi: KpiConfig,
    pub kafka: KafkaConfig,
    pub pipeline: PipelineConfig,
    pub embedded: EmbeddedConfig,
    pub checkpoint: CheckpointConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub max_out_of_orderness: String,
    pub allowed_lateness: String,
    pub idle_timeout: String,
    pub dedup_horizon: String,
    pub entity_ttl: String,
    pub grouping_sets: Vec<Vec<String>>,
    pub windows: Vec<WindowConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub size: String,
    /// Defaults to `size` (a tumbling window).
    #[serde(default)]
    pub step: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiConfig {
    pub service_level_threshold: String,
    pub short_abandon_threshold: String,
    pub cart_abandon_after: String,
}

/// `[kafka]`: where events come from and KPIs go (see `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty starts the embedded demo cluster.
    pub brokers: String,
    pub group_id: String,
    pub client_id: String,
    /// `earliest` or `latest`: where a group without committed offsets starts.
    pub auto_offset_reset: String,
    pub topics: TopicsConfig,
    /// Send late events dropped beyond `allowed_lateness` to the dead-letter topic.
    pub late_to_dead_letter: bool,
    /// How often safe input offsets are committed.
    pub commit_interval: String,
    /// Extra event time for which offsets of entity events stay uncommitted,
    /// so that a restart re-reads (and rebuilds) entities younger than this.
    pub restart_entity_lookback: String,
    /// `at-least-once` or `exactly-once` (Kafka transactions).
    pub delivery: String,
    /// The producer's `transactional.id` in exactly-once mode; empty:
    /// `cxpulse-<group_id>`.
    pub transactional_id: String,
    /// Any librdkafka property, applied to consumer and producer.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// librdkafka properties for the consumer only (override `properties`).
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, PropertyValue>,
    /// librdkafka properties for the producer only (override `properties`).
    #[serde(default)]
    pub producer_properties: BTreeMap<String, PropertyValue>,
}

/// A librdkafka property value: written as a TOML string, integer, float or
/// boolean, always passed on as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Bool(b) => write!(f, "{b}"),
            PropertyValue::Int(n) => write!(f, "{n}"),
            PropertyValue::Float(x) => write!(f, "{x}"),
            PropertyValue::Str(s) => f.write_str(s),
        }
    }
}

/// `[kafka.topics]`: topic names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub tickets: String,
    pub chats: String,
    pub surveys: String,
    pub checkouts: String,
    pub kpis: String,
    pub dead_letter: String,
}

impl TopicsConfig {
    /// The four input topics, in the generator's stream order
    /// (tickets, chats, surveys, checkouts).
    pub fn inputs(&self) -> [&str; 4] {
        [&self.tickets, &self.chats, &self.surveys, &self.checkouts]
    }
}

/// `[pipeline]`: the running service's stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// How often idleness is re-evaluated (engine tick).
    pub tick_interval: String,
    /// Capacity of each bounded channel between stages (messages).
    pub channel_capacity: usize,
    /// How often the live summary is printed; "0s" turns it off.
    pub summary_interval: String,
    /// How long shutdown waits for the producer to deliver what is queued.
    pub shutdown_timeout: String,
    /// Event time a partition may run ahead of the slowest one before it is
    /// paused; "0s" turns pausing off.
    pub max_partition_skew: String,
    /// Events whose time is further ahead of the wall clock are rejected
    /// (dead letter, reason `future_ts`); "0s" accepts any time.
    pub max_future: String,
}

/// `[embedded]`: the demo that runs when `kafka.brokers` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Generated events per second of wall time.
    pub rate: f64,
    /// Event-time seconds per wall-clock second (time compression).
    pub time_scale: f64,
    /// Event time to generate; then the stream goes quiet.
    pub duration: String,
    /// Partitions per topic on the mock cluster.
    pub partitions: i32,
    /// steady, wait-spike or churn-wave.
    pub scenario: String,
    pub seed: u64,
}

/// `[checkpoint]`: engine state checkpoints (see [`crate::checkpoint`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// `kafka`, `file` or `none`.
    pub store: String,
    /// The compacted state topic (`store = "kafka"`).
    pub topic: String,
    /// Directory of checkpoint files (`store = "file"`).
    pub dir: String,
    /// How often a checkpoint is taken (at-least-once mode).
    pub interval: String,
}

/// Where checkpoints go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStoreKind {
    Kafka { topic: String },
    File { dir: std::path::PathBuf },
    None,
}

/// The delivery guarantee of `cxpulse run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    AtLeastOnce,
    ExactlyOnce,
}

/// Validated `[checkpoint]` and delivery settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSettings {
    pub store: CheckpointStoreKind,
    pub interval: Micros,
    pub delivery: Delivery,
    pub transactional_id: String,
}

/// `[http]`: the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/api/kpis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on; empty turns the server off.
    pub listen: String,
    /// `/readyz` turns ready once partitions are assigned and the consumer's
    /// read lag is at most this many messages (the first catch-up).
    pub ready_max_lag: u64,
}

/// `[metrics]`: the Prometheus KPI gauges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Distinct values per dimension in KPI labels; more go to `other`.
    pub max_values_per_dimension: usize,
    /// A KPI row with no record for this long (wall time) is removed.
    pub series_ttl: String,
}

/// Validated `[http]` and `[metrics]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// `None` when the server is off.
    pub listen: Option<std::net::SocketAddr>,
    pub ready_max_lag: u64,
    pub max_values_per_dimension: usize,
    pub series_ttl: Micros,
}

/// `[log]`: structured logs (tracing) on stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `cxpulse=debug,rdkafka=warn`); `RUST_LOG` wins.
    pub level: String,
}

/// Validated `[kafka]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    pub commit_interval: Micros,
    pub restart_entity_lookback: Micros,
}

/// Validated `[pipeline]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub tick_interval: Micros,
    pub channel_capacity: usize,
    /// `None` when off.
    pub summary_interval: Option<Micros>,
    pub shutdown_timeout: Micros,
    /// `None` when off.
    pub max_partition_skew: Option<Micros>,
    /// `None` when off.
    pub max_future: Option<Micros>,
}

/// Validated `[embedded]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedSettings {
    pub rate: f64,
    pub time_scale: f64,
    pub duration: Micros,
    pub partitions: i32,
    pub scenario: crate::generate::Scenario,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::load_layers(None, false).expect("the compiled-in default config is valid")
    }
}

fn duration(key: &str, value: &str) -> Result<Micros, ConfigError> {
    parse_duration(value).map_err(|e| invalid(key, e))
}

impl Config {
    /// Loads defaults, then `path` (if any), then the environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let cfg = Config::load_layers(path, true)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads defaults and a TOML string (tests, embedded examples).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn load_layers(path: Option<&Path>, env: bool) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(p) = path {
            if !p.exists() {
                return Err(invalid(
                    "--config",
                    format!("file {} not found", p.display()),
                ));
            }
            builder = builder.add_source(
                config::File::from(p)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        if env {
            builder = builder.add_source(
                config::Environment::with_prefix("CXPULSE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    /// Checks every rule; the first violation names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine_settings()?;
        self.kafka_settings()?;
        self.pipeline_settings()?;
        self.embedded_settings()?;
        self.http_settings()?;
        self.checkpoint_settings()?;
        match self.log.format.as_str() {
            "text" | "json" => {}
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?} is not `text` or `json`"),
                ))
            }
        }
        Ok(())
    }

    /// Whether the embedded demo cluster is used (`kafka.brokers` is empty).
    pub fn embedded(&self) -> bool {
        self.kafka.brokers.trim().is_empty()
    }

    /// Parsed and validated `[kafka]` settings.
    pub fn kafka_settings(&self) -> Result<KafkaSettings, ConfigError> {
        let k = &self.kafka;
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        match k.auto_offset_reset.as_str() {
            "earliest" | "latest" => {}
            other => {
                return Err(invalid(
                    "kafka.auto_offset_reset",
                    format!("{other:?} is not `earliest` or `latest`"),
                ))
            }
        }
        let t = &k.topics;
        for (key, name) in [
            ("kafka.topics.tickets", &t.tickets),
            ("kafka.topics.chats", &t.chats),
            ("kafka.topics.surveys", &t.surveys),
            ("kafka.topics.checkouts", &t.checkouts),
            ("kafka.topics.kpis", &t.kpis),
            ("kafka.topics.dead_letter", &t.dead_letter),
        ] {
            if name.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        let commit_interval = duration("kafka.commit_interval", &k.commit_interval)?;
        if commit_interval == 0 {
            return Err(invalid("kafka.commit_interval", "must be above zero"));
        }
        Ok(KafkaSettings {
            commit_interval,
            restart_entity_lookback: duration(
                "kafka.restart_entity_lookback",
                &k.restart_entity_lookback,
            )?,
        })
    }

    /// Parsed and validated `[pipeline]` settings.
    pub fn pipeline_settings(&self) -> Result<PipelineSettings, ConfigError> {
        let p = &self.pipeline;
        let tick_interval = duration("pipeline.tick_interval", &p.tick_interval)?;
        if tick_interval == 0 {
            return Err(invalid("pipeline.tick_interval", "must be above zero"));
        }
        if p.channel_capacity == 0 {
            return Err(invalid("pipeline.channel_capacity", "must be above zero"));
        }
        let summary = duration("pipeline.summary_interval", &p.summary_interval)?;
        Ok(PipelineSettings {
            tick_interval,
            channel_capacity: p.channel_capacity,
            summary_interval: (summary > 0).then_some(summary),
            shutdown_timeout: duration("pipeline.shutdown_timeout", &p.shutdown_timeout)?,
            max_partition_skew: Some(duration(
                "pipeline.max_partition_skew",
                &p.max_partition_skew,
            )?)
            .filter(|d| *d > 0),
            max_future: Some(duration("pipeline.max_future", &p.max_future)?).filter(|d| *d > 0),
        })
    }

    /// Parsed and validated `[checkpoint]` settings and `kafka.delivery`.
    pub fn checkpoint_settings(&self) -> Result<CheckpointSettings, ConfigError> {
        let c = &self.checkpoint;
        let store = match c.store.as_str() {
            "kafka" if c.topic.trim().is_empty() => {
                return Err(invalid("checkpoint.topic", "must not be empty"))
            }
            "kafka" => CheckpointStoreKind::Kafka {
                topic: c.topic.clone(),
            },
            "file" if c.dir.trim().is_empty() => {
                return Err(invalid("checkpoint.dir", "must not be empty"))
            }
            "file" => CheckpointStoreKind::File {
                dir: c.dir.clone().into(),
            },
            "none" => CheckpointStoreKind::None,
            other => {
                return Err(invalid(
                    "checkpoint.store",
                    format!("`{other}`: expected kafka, file or none"),
                ))
            }
        };
        let interval = duration("checkpoint.interval", &c.interval)?;
        if interval <= 0 {
            return Err(invalid("checkpoint.interval", "must be above zero"));
        }
        let delivery = match self.kafka.delivery.as_str() {
            "at-least-once" => Delivery::AtLeastOnce,
            "exactly-once" => Delivery::ExactlyOnce,
            other => {
                return Err(invalid(
                    "kafka.delivery",
                    format!("`{other}`: expected at-least-once or exactly-once"),
                ))
            }
        };
        if delivery == Delivery::ExactlyOnce && !matches!(store, CheckpointStoreKind::Kafka { .. })
        {
            return Err(invalid(
                "kafka.delivery",
                "exactly-once needs checkpoint.store = \"kafka\" (the state is written in the transaction)",
            ));
        }
        let transactional_id = match self.kafka.transactional_id.trim() {
            "" => format!("cxpulse-{}", self.kafka.group_id),
            t => t.to_string(),
        };
        Ok(CheckpointSettings {
            store,
            interval,
            delivery,
            transactional_id,
        })
    }

    /// Parsed and validated `[http]` and `[metrics]` settings. The series TTL
    /// is at least two steps of the longest window, so that rows of long
    /// windows do not vanish between two of their windows.
    pub fn http_settings(&self) -> Result<HttpSettings, ConfigError> {
        let listen = match self.http.listen.trim() {
            "" => None,
            a => Some(a.parse().map_err(|_| {
                invalid(
                    "http.listen",
                    format!("`{a}` is not a host:port socket address"),
                )
            })?),
        };
        let m = &self.metrics;
        if m.max_values_per_dimension == 0 {
            return Err(invalid(
                "metrics.max_values_per_dimension",
                "must be above zero",
            ));
        }
        let series_ttl = duration("metrics.series_ttl", &m.series_ttl)?;
        let longest_step = self
            .engine_settings()?
            .windows
            .iter()
            .map(|w| w.step)
            .max()
            .unwrap_or(0);
        if series_ttl == 0 {
            return Err(invalid("metrics.series_ttl", "must be above zero"));
        }
        Ok(HttpSettings {
            listen,
            ready_max_lag: self.http.ready_max_lag,
            max_values_per_dimension: m.max_values_per_dimension,
            series_ttl: series_ttl.max(longest_step.saturating_mul(2)),
        })
    }

    /// Parsed and validated `[embedded]` settings.
    pub fn embedded_settings(&self) -> Result<EmbeddedSettings, ConfigError> {
        let e = &self.embedded;
        if !(e.rate.is_finite() && e.rate > 0.0) {
            return Err(invalid("embedded.rate", "must be a positive number"));
        }
        if !(e.time_scale.is_finite() && e.time_scale > 0.0) {
            return Err(invalid("embedded.time_scale", "must be a positive number"));
        }
        let d = duration("embedded.duration", &e.duration)?;
        if d == 0 {
            return Err(invalid("embedded.duration", "must be above zero"));
        }
        if !(1..=256).contains(&e.partitions) {
            return Err(invalid("embedded.partitions", "must be in 1..=256"));
        }
        let scenario = e
            .scenario
            .parse()
            .map_err(|err| invalid("embedded.scenario", format!("{err}")))?;
        Ok(EmbeddedSettings {
            rate: e.rate,
            time_scale: e.time_scale,
            duration: d,
            partitions: e.partitions,
            scenario,
            seed: e.seed,
        })
    }

    /// Parsed and validated engine settings.
    pub fn engine_settings(&self) -> Result<EngineSettings, ConfigError> {
        let e = &self.engine;
        let k = &self.kpi;
        let idle_timeout = duration("engine.idle_timeout", &e.idle_timeout)?;
        if idle_timeout == 0 {
            return Err(invalid("engine.idle_timeout", "must be above zero"));
        }
        if e.windows.is_empty() {
            return Err(invalid("engine.windows", "at least one window is required"));
        }
        let mut windows: Vec<WindowSpec> = Vec::new();
        for (i, w) in e.windows.iter().enumerate() {
            let key = format!("engine.windows[{i}]");
            let size = duration(&format!("{key}.size"), &w.size)?;
            let step = match &w.step {
                Some(s) => duration(&format!("{key}.step"), s)?,
                None => size,
            };
            if size <= 0 || step <= 0 {
                return Err(invalid(key, "size and step must be above zero"));
            }
            if size > crate::time::MAX_WINDOW {
                return Err(invalid(key, "size must be at most 365d"));
            }
            if size % MICROS_PER_SEC != 0 || step % MICROS_PER_SEC != 0 {
                return Err(invalid(key, "size and step must be whole seconds"));
            }
            if size % step != 0 {
                return Err(invalid(
                    key,
                    format!(
                        "size {} is not a multiple of step {}",
                        w.size,
                        w.step.as_deref().unwrap_or("")
                    ),
                ));
            }
            if windows.iter().any(|o| o.size == size) {
                return Err(invalid(
                    key,
                    format!("two windows have the same size {}", w.size),
                ));
            }
            windows.push(WindowSpec::new(size, step));
        }
        if e.grouping_sets.is_empty() {
            return Err(invalid(
                "engine.grouping_sets",
                "at least one grouping set is required",
            ));
        }
        let mut grouping_sets: Vec<Vec<Dim>> = Vec::new();
        for (i, set) in e.grouping_sets.iter().enumerate() {
            let key = format!("engine.grouping_sets[{i}]");
            let mut dims = Vec::new();
            for name in set {
                let d = Dim::parse(name).ok_or_else(|| {
                    invalid(
                        &key,
                        format!("unknown dimension {name:?} (use channel, region, agent_id)"),
                    )
                })?;
                if dims.contains(&d) {
                    return Err(invalid(&key, format!("dimension {name:?} appears twice")));
                }
                dims.push(d);
            }
            if grouping_sets.contains(&dims) {
                return Err(invalid(key, "the same grouping set appears twice"));
            }
            grouping_sets.push(dims);
        }
        Ok(EngineSettings {
            max_out_of_orderness: duration("engine.max_out_of_orderness", &e.max_out_of_orderness)?,
            allowed_lateness: duration("engine.allowed_lateness", &e.allowed_lateness)?,
            idle_timeout,
            dedup_horizon: duration("engine.dedup_horizon", &e.dedup_horizon)?,
            entity_ttl: duration("engine.entity_ttl", &e.entity_ttl)?,
            windows,
            grouping_sets,
            rules: KpiRules {
                service_level_threshold: duration(
                    "kpi.service_level_threshold",
                    &k.service_level_threshold,
                )?,
                short_abandon_threshold: duration(
                    "kpi.short_abandon_threshold",
                    &k.short_abandon_threshold,
                )?,
                cart_abandon_after: duration("kpi.cart_abandon_after", &k.cart_abandon_after)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Config::default().engine_settings().unwrap();
        assert_eq!(s.windows.len(), 3);
        assert_eq!(&*s.windows[2].name, "24h");
        assert_eq!(s.grouping_sets.len(), 4);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        let e = err("[engine]\nwindows = [ { size = \"5m\", step = \"2m\" } ]");
        assert!(
            e.contains("engine.windows[0]") && e.contains("not a multiple"),
            "{e}"
        );
        let e = err("[engine]\nwindows = [ { size = \"5m\", step = \"1m\" }, { size = \"5m\" } ]");
        assert!(e.contains("same size"), "{e}");
        let e = err("[engine]\nmax_out_of_orderness = \"30 seconds\"");
        assert!(e.contains("engine.max_out_of_orderness"), "{e}");
        let e = err("[engine]\nunknown_key = 1");
        assert!(e.contains("unknown_key"), "{e}");
        let e = err("[engine]\ngrouping_sets = [[\"country\"]]");
        assert!(e.contains("country"), "{e}");
    }

    #[test]
    fn file_overrides_defaults_key_by_key() {
        let c = Config::from_toml("[engine]\nallowed_lateness = \"10m\"").unwrap();
        assert_eq!(c.engine.allowed_lateness, "10m");
        assert_eq!(c.engine.max_out_of_orderness, "30s");
    }
}
