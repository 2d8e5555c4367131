//! The Kafka pipeline: `cxpulse run`.
//!
//! ```text
//!   Kafka input topics                                   Kafka output topics
//!  ┌──────────────────┐   bounded    ┌──────────────┐  bounded   ┌──────────┐  bounded  ┌──────┐
//!  │ consumer (group) │ ──────────▶ │ engine task  │ ─────────▶ │ producer │ ────────▶ │ acks │
//!  │ kafka_source.rs  │  messages,  │ processor.rs │  records,  │ (idempo- │ delivery  │      │
//!  └──────────────────┘  rebalances │  + tick      │  dead      │  tent)   │ futures   └──┬───┘
//!           ▲                       │  + commit.rs │  letters   └──────────┘              │
//!           └── commit safe offsets ┴──────────────┘ ◀──── acked_through ────────────────┘
//! ```
//!
//! - **Consumer** ([`kafka_source`]): one `StreamConsumer` in the group,
//!   subscribed to the four input topics; `enable.auto.commit=false` and
//!   `enable.auto.offset.store=false`: only [`commit`] decides what is
//!   committed.
//! - **Engine task** ([`processor`]): the only owner of the
//!   [`Engine`](crate::engine::Engine). Each `(topic, partition)` is an engine
//!   partition ([`partition_id`]) with its own watermark; a tick every
//!   `pipeline.tick_interval` re-evaluates idleness so windows close on a quiet
//!   stream. Invalid messages (and, with `kafka.late_to_dead_letter`, late
//!   events dropped beyond `allowed_lateness`) become dead letters.
//! - **Producer** and **acks** ([`kafka_sink`]): KPI records to
//!   `kafka.topics.kpis` keyed `kpi|window|group`, dead letters (original
//!   bytes plus reason headers) to `kafka.topics.dead_letter`;
//!   acknowledgements tracked in order.
//! - **Commit safety** ([`commit`]): at-least-once end to end; read that
//!   module's docs for what is committed when and what a restart recovers.
//!
//! Every channel is bounded (`pipeline.channel_capacity`), so a slow stage
//! backs up the ones before it, down to the consumer, which then stops
//! polling: memory stays bounded and the backlog stays in Kafka.
//!
//! Shutdown ([`PipelineHandle::stop`], SIGINT/SIGTERM in the binary): the
//! consumer stops, the engine processes what it already received and ticks
//! once, the producer is flushed explicitly, the last safe offsets are
//! committed synchronously, and the group is left.
//!
//! With no `kafka.brokers`, [`embedded`] starts librdkafka's mock cluster
//! in-process and [`feed`] plays the generator into it: the zero-setup demo.

pub mod checkpoints;
pub mod commit;
pub mod embedded;
pub mod feed;
pub mod kafka_sink;
pub mod kafka_source;
pub mod processor;
pub mod summary;

use crate::config::{CheckpointStoreKind, Config};
use crate::engine::Engine;
use crate::metrics::{Metrics, MetricsSettings};
use anyhow::Context as _;
use kafka_sink::SinkTopics;
use kafka_source::{Source, SourceContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, Producer as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Live counters of a running pipeline (for the summary, tests, metrics).
#[derive(Debug)]
pub struct Stats {
    /// Messages received from Kafka.
    pub consumed: AtomicU64,
    /// Messages the engine task has handled.
    pub processed: AtomicU64,
    /// Engine counters, published on every commit interval and at the summary.
    pub accepted: AtomicU64,
    pub invalid: AtomicU64,
    pub duplicates: AtomicU64,
    pub late: AtomicU64,
    pub late_dropped: AtomicU64,
    /// Records (KPI records and dead letters) handed to the producer stage.
    pub emitted: AtomicU64,
    /// KPI records enqueued in librdkafka.
    pub records_sent: AtomicU64,
    /// Dead letters enqueued in librdkafka.
    pub dead_letters_sent: AtomicU64,
    /// Every record with a sequence number up to this one is acknowledged.
    pub acked_through: AtomicU64,
    /// KPI records not sent because their window was final before a restart.
    pub suppressed: AtomicU64,
    /// Successful offset commits.
    pub commits: AtomicU64,
    /// Input partitions currently assigned.
    pub assigned_partitions: AtomicU64,
    /// Input partitions paused because they ran ahead in event time.
    pub paused_partitions: AtomicU64,
    /// How many times a partition was paused for running ahead.
    pub pauses: AtomicU64,
    /// Partition assignments received (1 without rebalances).
    pub assignments: AtomicU64,
    /// Messages re-delivered after a rebalance and skipped (already processed).
    pub skipped: AtomicU64,
    /// The engine's watermark (µs), `i64::MIN` before the first.
    pub watermark: AtomicI64,
    /// Consumer lag over the input partitions (librdkafka statistics), −1
    /// until known.
    pub consumer_lag: AtomicI64,
    /// False while the consumer cannot reach any broker (librdkafka reported
    /// all brokers down and neither a message nor statistics showing a
    /// broker up came since). Idleness is not measured meanwhile: an outage
    /// is not a quiet stream (see `Processor::tick`).
    pub input_reachable: std::sync::atomic::AtomicBool,
    /// The Prometheus metrics every stage updates (served by [`crate::http`]).
    pub metrics: Arc<Metrics>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(Arc::default())
    }
}

impl Stats {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Stats {
            metrics,
            consumed: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            late: AtomicU64::new(0),
            late_dropped: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            records_sent: AtomicU64::new(0),
            dead_letters_sent: AtomicU64::new(0),
            acked_through: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            assigned_partitions: AtomicU64::new(0),
            paused_partitions: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            consumer_lag: AtomicI64::new(-1),
            input_reachable: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

/// How the pipeline should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Running,
    /// Live shutdown: stop consuming, tick once, flush, commit.
    Graceful,
    /// End of a bounded input (tests, backfills): like `Graceful`, but the
    /// engine runs its end-of-input flush (every window fires) instead of a
    /// tick. Not for live streams: windows would fire before their data.
    Finish,
}

/// The engine partition id of `partition` of input topic number `topic`.
pub fn partition_id(topic: usize, partition: i32) -> commit::PartitionId {
    ((topic as u32) << 20) | (partition as u32 & 0xF_FFFF)
}

/// A running pipeline.
pub struct PipelineHandle {
    stop_tx: watch::Sender<StopMode>,
    consumer_stop: watch::Sender<bool>,
    stats: Arc<Stats>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl PipelineHandle {
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The pipeline's Prometheus metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.stats.metrics
    }

    /// Starts a graceful shutdown; [`PipelineHandle::join`] waits for it.
    pub fn stop(&self) {
        self.stop_with(StopMode::Graceful);
    }

    /// Ends a bounded input: see [`StopMode::Finish`].
    pub fn finish(&self) {
        self.stop_with(StopMode::Finish);
    }

    fn stop_with(&self, mode: StopMode) {
        self.stop_tx.send_replace(mode);
        self.consumer_stop.send_replace(true);
    }

    /// Simulates a crash (tests): the engine task is aborted at once, with no
    /// final tick, no checkpoint and no commit. (The producer stage still
    /// delivers what it already had, as librdkafka would have by then.)
    pub fn kill(self) {
        self.consumer_stop.send_replace(true);
        self.task.abort();
    }

    /// Waits for the pipeline to end (after a stop, or a fatal error).
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await.context("pipeline task")?
    }

    /// Whether the pipeline has ended (e.g. a fatal delivery error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

fn base_client_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", &cfg.kafka.client_id);
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v.to_string());
    }
    c
}

/// The consumer's client configuration: passthrough properties, then the
/// settings commit safety depends on (not overridable).
pub fn consumer_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = base_client_config(cfg, brokers);
    c.set("group.id", &cfg.kafka.group_id)
        .set("auto.offset.reset", &cfg.kafka.auto_offset_reset)
        .set("enable.partition.eof", "false");
    // Statistics feed the consumer-lag metric, readiness and the summary.
    let every = cfg
        .pipeline_settings()
        .ok()
        .and_then(|p| p.summary_interval)
        .map_or(5_000, |every| (every / 1_000).clamp(1_000, 5_000));
    c.set("statistics.interval.ms", every.to_string());
    // librdkafka stops fetching a partition whose local queue is over its
    // thresholds and, by default, waits 1 s before trying again; the engine
    // drains the queue in far less, so that wait stalled a backlog read
    // about a second at a time (measured: 170k → 270k+ events/s with 20 ms).
    c.set("fetch.queue.backoff.ms", "20");
    for (k, v) in &cfg.kafka.consumer_properties {
        c.set(k, v.to_string());
    }
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

/// The producer's client configuration: passthrough properties, then
/// idempotence and `acks=all` (not overridable).
pub fn producer_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = base_client_config(cfg, brokers);
    c.set("linger.ms", "5");
    for (k, v) in &cfg.kafka.producer_properties {
        c.set(k, v.to_string());
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c
}

/// Starts the pipeline against `brokers` on the current tokio runtime
/// (multi-threaded). Returns once the clients exist and the subscription is
/// made; partitions are assigned asynchronously.
pub async fn spawn(cfg: &Config, brokers: &str) -> anyhow::Result<PipelineHandle> {
    spawn_with(cfg, brokers, Arc::new(new_metrics(cfg)?)).await
}

/// The metrics of `cfg` (`[http]`, `[metrics]`).
pub fn new_metrics(cfg: &Config) -> anyhow::Result<Metrics> {
    let http = cfg.http_settings()?;
    Ok(Metrics::new(&MetricsSettings {
        max_values_per_dimension: http.max_values_per_dimension,
        series_ttl: http.series_ttl,
        ready_max_lag: http.ready_max_lag,
    }))
}

/// [`spawn`] with existing metrics (kept across in-process restarts).
pub async fn spawn_with(
    cfg: &Config,
    brokers: &str,
    metrics: Arc<Metrics>,
) -> anyhow::Result<PipelineHandle> {
    let settings = cfg.engine_settings()?;
    let kafka = cfg.kafka_settings()?;
    let pipeline = cfg.pipeline_settings()?;
    let stats = Arc::new(Stats::new(metrics));
    let ckpt = cfg.checkpoint_settings()?;
    let checkpoints = match &ckpt.store {
        CheckpointStoreKind::None => None,
        CheckpointStoreKind::File { dir } => Some(checkpoints::Checkpointer::new(
            Box::new(crate::checkpoint::file::FileStore::new(
                dir,
                &cfg.kafka.group_id,
            )),
            &cfg.kafka.group_id,
        )),
        CheckpointStoreKind::Kafka { topic } => {
            let client = base_client_config(cfg, brokers);
            crate::checkpoint::kafka::ensure_topic(&client, topic, Duration::from_secs(10)).await;
            Some(checkpoints::Checkpointer::new(
                Box::new(crate::checkpoint::kafka::KafkaStore::new(
                    client,
                    topic,
                    &cfg.kafka.group_id,
                    Duration::from_secs(30),
                )),
                &cfg.kafka.group_id,
            ))
        }
    };
    if let Some(c) = &checkpoints {
        tracing::info!(store = %c.describe(), interval = %crate::time::duration_name(ckpt.interval), "checkpoints");
    }

    let mut topics: Vec<String> = Vec::new();
    for t in cfg.kafka.topics.inputs() {
        if !topics.iter().any(|x| x == t) {
            topics.push(t.to_string());
        }
    }
    let context = SourceContext::new(topics.clone(), stats.clone());
    let consumer: Source = consumer_config(cfg, brokers)
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .context("subscribing to the input topics")?;
    let consumer = Arc::new(consumer);
    let exactly_once = ckpt.delivery == crate::config::Delivery::ExactlyOnce;
    let mut pc = producer_config(cfg, brokers);
    if exactly_once {
        pc.set("transactional.id", &ckpt.transactional_id);
    }
    let producer: FutureProducer = pc.create().context("creating the Kafka producer")?;
    let producer = Arc::new(producer);
    if exactly_once {
        // Before anything is read: fences a predecessor with the same
        // transactional.id and aborts its open transaction, so the state
        // topic read at restore holds only committed checkpoints.
        let p = producer.clone();
        tokio::task::spawn_blocking(move || {
            p.init_transactions(Duration::from_secs(60))?;
            p.begin_transaction()
        })
        .await
        .context("transaction init task")?
        .context("initialising Kafka transactions (transactional.id)")?;
        tracing::info!(transactional_id = %ckpt.transactional_id, "exactly-once: transactional producer ready");
    }

    let cap = pipeline.channel_capacity;
    let (in_tx, in_rx) = mpsc::channel(cap);
    let (out_tx, out_rx) = mpsc::channel(cap);
    let (ack_tx, ack_rx) = mpsc::channel(cap);
    let (stop_tx, stop_rx) = watch::channel(StopMode::Running);
    let (consumer_stop, consumer_stop_rx) = watch::channel(false);
    let shutdown_timeout = Duration::from_micros(pipeline.shutdown_timeout.max(0) as u64);

    // The consumer stage runs on a thread of its own. On the shared runtime,
    // tokio's LIFO slot runs a task woken by a channel send on the sender's
    // worker, so the consumer and the engine task took turns on one core
    // while the other idled (the engine task's input queue stayed full).
    let source = kafka_source::run(consumer.clone(), in_tx, consumer_stop_rx, stats.clone());
    let source_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the consumer thread's runtime")?;
    std::thread::Builder::new()
        .name("cxpulse-consumer".into())
        .spawn(move || source_runtime.block_on(source))
        .context("starting the consumer thread")?;
    let sink = tokio::spawn(kafka_sink::run_producer(
        producer,
        SinkTopics {
            kpis: cfg.kafka.topics.kpis.clone(),
            dead_letter: cfg.kafka.topics.dead_letter.clone(),
        },
        out_rx,
        ack_tx,
        stats.clone(),
        shutdown_timeout,
        exactly_once,
    ));
    let acks = tokio::spawn(kafka_sink::run_acks(ack_rx, stats.clone(), exactly_once));

    let micros = |m: i64| Duration::from_micros(m.max(1) as u64);
    let processor = processor::Processor {
        tracker: commit::CommitTracker::new(
            processor::horizon(&settings, &kafka),
            settings.allowed_lateness,
        ),
        summary: summary::Summary::new(&settings.windows, true),
        engine: {
            let mut engine = Engine::new(settings);
            engine.tap_samples(true);
            engine
        },
        consumer,
        out: Some(out_tx),
        stats: stats.clone(),
        input_topics: topics.iter().map(|t| Arc::from(t.as_str())).collect(),
        late_to_dead_letter: cfg.kafka.late_to_dead_letter,
        tick_interval: micros(pipeline.tick_interval),
        commit_interval: micros(kafka.commit_interval),
        summary_interval: pipeline.summary_interval.map(micros),
        shutdown_timeout,
        seq: 0,
        records: Vec::new(),
        max_skew: pipeline.max_partition_skew,
        max_future: pipeline.max_future,
        partitions: Default::default(),
        paused: Default::default(),
        since_align: 0,
        published: Default::default(),
        samples: Vec::new(),
        checkpoints,
        checkpoint_interval: micros(ckpt.interval),
        exactly_once: exactly_once.then(|| match &ckpt.store {
            CheckpointStoreKind::Kafka { topic } => topic.clone(),
            _ => unreachable!("validated: exactly-once needs the Kafka store"),
        }),
        failure: None,
        input_down: false,
    };
    // The stop watch is also triggered when a later stage fails: the engine
    // task notices its closed channel and shuts down on its own.
    let task = tokio::spawn(processor.run(in_rx, stop_rx, sink, acks));
    Ok(PipelineHandle {
        stop_tx,
        consumer_stop,
        stats,
        task,
    })
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `cxpulse run`: the pipeline against `kafka.brokers`, or the embedded demo
/// when it is empty; until SIGINT/SIGTERM (or a fatal error).
pub async fn run(cfg: Config, drain: Option<Duration>) -> anyhow::Result<()> {
    if cfg.embedded() {
        return embedded::run_demo(cfg).await;
    }
    let brokers = cfg.kafka.brokers.clone();
    tracing::info!(
        brokers = %brokers,
        group = %cfg.kafka.group_id,
        topics = ?cfg.kafka.topics.inputs(),
        kpis = %cfg.kafka.topics.kpis,
        dead_letter = %cfg.kafka.topics.dead_letter,
        "starting pipeline"
    );
    let metrics = Arc::new(new_metrics(&cfg)?);
    let http = start_http(&cfg, metrics.clone()).await?;
    let r = run_restarting(&cfg, &brokers, metrics, drain).await;
    http.stop().await;
    r
}

/// Runs the pipeline until a signal. An exactly-once transaction that had
/// to be aborted ends a pipeline with [`kafka_sink::TxnError::Aborted`]: the
/// state after it is not committed, so a new pipeline starts in-process and
/// resumes from the last committed checkpoint (up to 10 times in a row,
/// counting restarts that fail because the brokers are still unreachable).
pub async fn run_restarting(
    cfg: &Config,
    brokers: &str,
    metrics: Arc<Metrics>,
    drain: Option<Duration>,
) -> anyhow::Result<()> {
    let mut restarts = 0;
    loop {
        let handle = match spawn_with(cfg, brokers, metrics.clone()).await {
            Ok(h) => h,
            // A restart while the brokers are still away (init_transactions
            // times out): wait and try again rather than exit.
            Err(e) if restarts > 0 && restarts < 10 => {
                restarts += 1;
                tracing::warn!(error = %format!("{e:#}"), restarts, "restart failed, retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let started = std::time::Instant::now();
        match run_until_signal(handle, drain).await {
            Err(e)
                if restarts < 10
                    && matches!(
                        e.downcast_ref::<kafka_sink::TxnError>(),
                        Some(kafka_sink::TxnError::Aborted(_))
                    ) =>
            {
                restarts = if started.elapsed() > Duration::from_secs(300) {
                    1
                } else {
                    restarts + 1
                };
                tracing::warn!(error = %e, restarts, "restarting the pipeline from the last committed checkpoint");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            r => return r,
        }
    }
}

/// The HTTP server of a running pipeline (see [`crate::http`]), if configured.
pub struct HttpServer(
    Option<(
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<std::io::Result<()>>,
    )>,
);

/// Starts the HTTP server on `http.listen` (none when it is empty). A port
/// that cannot be bound fails start-up.
pub async fn start_http(cfg: &Config, metrics: Arc<Metrics>) -> anyhow::Result<HttpServer> {
    let Some(addr) = cfg.http_settings()?.listen else {
        return Ok(HttpServer(None));
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = crate::http::serve(addr, metrics, async {
        let _ = rx.await;
    })
    .await
    .with_context(|| format!("binding the HTTP server to {addr} (http.listen)"))?;
    Ok(HttpServer(Some((tx, task))))
}

impl HttpServer {
    /// Stops serving (after the pipeline ended: scrapes see the final state
    /// until then).
    pub async fn stop(self) {
        if let Some((tx, task)) = self.0 {
            let _ = tx.send(());
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server"),
                Err(_) => tracing::warn!("HTTP server did not stop in time"),
                _ => {}
            }
        }
    }
}

/// Runs until a signal (then stops gracefully) or until the pipeline ends
/// on its own (an error).
///
/// `drain`: bounded mode (`cxpulse run --drain`): once partitions are
/// assigned, every one is read to its end (consumer lag 0) and nothing new
/// arrived for this long, the pipeline ends like a replay: end-of-input
/// flush (every window fires), final checkpoint and commit, exit 0.
pub async fn run_until_signal(
    handle: PipelineHandle,
    drain: Option<Duration>,
) -> anyhow::Result<()> {
    let stats = handle.stats().clone();
    let mut watch_task = tokio::time::interval(Duration::from_millis(200));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let (mut seen, mut quiet_since) = (u64::MAX, std::time::Instant::now());
    loop {
        tokio::select! {
            _ = &mut signal => {
                tracing::info!("signal received: stopping (flush, commit)");
                handle.stop();
                break;
            }
            _ = watch_task.tick() => {
                if handle.is_finished() {
                    break;
                }
                let consumed = stats.consumed.load(Ordering::Relaxed);
                if consumed != seen {
                    (seen, quiet_since) = (consumed, std::time::Instant::now());
                }
                let drained = drain.is_some_and(|d| quiet_since.elapsed() >= d)
                    && stats.assigned_partitions.load(Ordering::Relaxed) > 0
                    && stats.consumer_lag.load(Ordering::Relaxed) == 0;
                if drained {
                    tracing::info!("input drained: end-of-input flush, then exit");
                    handle.finish();
                    break;
                }
            }
        }
    }
    let r = handle.join().await;
    tracing::info!(
        consumed = stats.consumed.load(Ordering::Relaxed),
        records = stats.records_sent.load(Ordering::Relaxed),
        dead_letters = stats.dead_letters_sent.load(Ordering::Relaxed),
        commits = stats.commits.load(Ordering::Relaxed),
        "pipeline ended"
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_properties_pass_through_but_safety_settings_win() {
        let cfg = Config::from_toml(
            r#"
[kafka]
brokers = "kafka:9093"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "SCRAM-SHA-512"
"ssl.ca.location" = "/etc/ca.pem"
"enable.auto.commit" = true
[kafka.consumer_properties]
"session.timeout.ms" = 6000
[kafka.producer_properties]
"acks" = "1"
"linger.ms" = 20
"#,
        )
        .unwrap();
        let c = consumer_config(&cfg, "kafka:9093");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("group.id"), Some("cxpulse"));
        let p = producer_config(&cfg, "kafka:9093");
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(p.get("linger.ms"), Some("20"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("session.timeout.ms"), None);
        assert!(!cfg.embedded());
        assert!(Config::default().embedded());
    }

    #[test]
    fn partition_ids_are_distinct_per_topic_and_partition() {
        assert_ne!(partition_id(0, 1), partition_id(1, 0));
        assert_eq!(partition_id(3, 5), (3 << 20) | 5);
    }
}
