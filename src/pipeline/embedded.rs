//! The embedded demo: with no `kafka.brokers`, `cxpulse run` (and
//! `cargo run --release`) starts librdkafka's mock cluster in-process, creates
//! the topics, plays the built-in generator into it at `embedded.rate` events
//! per wall second (event time compressed by `embedded.time_scale`) and runs
//! the full pipeline on it: the same code path as against a real cluster.
//!
//! The mock cluster handle is not `Send`, so [`EmbeddedCluster`] keeps it on a
//! dedicated thread and talks to it through a command channel; clients only
//! need its bootstrap address. It is a test/demo broker: it keeps at most
//! 5 MiB or 100 000 messages per partition (older ones are deleted).

use super::feed::{self, FeedOptions, FeedStats};
use crate::config::Config;
use crate::generate::GenerateOptions;
use crate::time::{wall_clock_now, MICROS_PER_MILLI};
use anyhow::{anyhow, Context as _};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

type Reply = std_mpsc::Sender<Result<(), String>>;

enum Command {
    CreateTopic(String, i32, Reply),
    BrokerDown(i32, Reply),
    BrokerUp(i32, Reply),
    RequestErrors(RDKafkaApiKey, Vec<RDKafkaRespErr>, Reply),
    ClearRequestErrors(RDKafkaApiKey, Reply),
}

/// An in-process mock Kafka cluster on its own thread.
pub struct EmbeddedCluster {
    bootstrap: String,
    commands: Option<std_mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedCluster {
    /// Starts a mock cluster with `brokers` brokers (ids 1..=brokers).
    pub fn start(brokers: i32) -> anyhow::Result<Self> {
        let (boot_tx, boot_rx) = std_mpsc::channel();
        let (cmd_tx, cmd_rx) = std_mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = boot_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = boot_tx.send(Ok(cluster.bootstrap_servers()));
                // Serve commands until every sender is gone, then drop the
                // cluster on this thread.
                for cmd in cmd_rx {
                    let s = |r: rdkafka::error::KafkaResult<()>| r.map_err(|e| e.to_string());
                    match cmd {
                        Command::CreateTopic(name, partitions, reply) => {
                            let _ = reply.send(s(cluster.create_topic(&name, partitions, 1)));
                        }
                        Command::BrokerDown(id, reply) => {
                            let _ = reply.send(s(cluster.broker_down(id)));
                        }
                        Command::BrokerUp(id, reply) => {
                            let _ = reply.send(s(cluster.broker_up(id)));
                        }
                        Command::RequestErrors(api, errors, reply) => {
                            cluster.request_errors(api, &errors);
                            let _ = reply.send(Ok(()));
                        }
                        Command::ClearRequestErrors(api, reply) => {
                            cluster.clear_request_errors(api);
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            })
            .context("starting the mock cluster thread")?;
        let bootstrap = boot_rx
            .recv()
            .map_err(|_| anyhow!("mock cluster thread died"))?
            .map_err(|e| anyhow!("starting the mock cluster: {e}"))?;
        Ok(EmbeddedCluster {
            bootstrap,
            commands: Some(cmd_tx),
            thread: Some(thread),
        })
    }

    /// The `bootstrap.servers` of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn call(&self, make: impl FnOnce(Reply) -> Command) -> anyhow::Result<()> {
        let (tx, rx) = std_mpsc::channel();
        self.commands
            .as_ref()
            .expect("running")
            .send(make(tx))
            .map_err(|_| anyhow!("mock cluster thread is gone"))?;
        rx.recv()
            .map_err(|_| anyhow!("mock cluster thread is gone"))?
            .map_err(|e| anyhow!(e))
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let name = name.to_string();
        self.call(|r| Command::CreateTopic(name, partitions, r))
            .context("creating a topic on the mock cluster")
    }

    /// Takes broker `id` down (connections fail until [`Self::broker_up`]).
    pub fn broker_down(&self, id: i32) -> anyhow::Result<()> {
        self.call(|r| Command::BrokerDown(id, r))
    }

    pub fn broker_up(&self, id: i32) -> anyhow::Result<()> {
        self.call(|r| Command::BrokerUp(id, r))
    }

    /// The next requests of type `api` fail with `errors`, one each, in order.
    pub fn request_errors(
        &self,
        api: RDKafkaApiKey,
        errors: &[RDKafkaRespErr],
    ) -> anyhow::Result<()> {
        let errors = errors.to_vec();
        self.call(|r| Command::RequestErrors(api, errors, r))
    }

    pub fn clear_request_errors(&self, api: RDKafkaApiKey) -> anyhow::Result<()> {
        self.call(|r| Command::ClearRequestErrors(api, r))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.commands = None; // ends the command loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates the input, KPI and dead-letter topics of `cfg` with `partitions`
/// partitions each.
pub fn create_topics(
    cluster: &EmbeddedCluster,
    cfg: &Config,
    partitions: i32,
) -> anyhow::Result<()> {
    let t = &cfg.kafka.topics;
    let mut names: Vec<&str> = t.inputs().to_vec();
    names.push(&t.kpis);
    names.push(&t.dead_letter);
    names.sort_unstable();
    names.dedup();
    for name in names {
        cluster.create_topic(name, partitions)?;
    }
    // The state topic: one partition (see checkpoint::kafka).
    if !cfg.checkpoint.topic.is_empty() && !t.inputs().contains(&cfg.checkpoint.topic.as_str()) {
        cluster.create_topic(&cfg.checkpoint.topic, 1)?;
    }
    Ok(())
}

/// The demo: mock cluster + generator + pipeline, until SIGINT/SIGTERM.
pub async fn run_demo(mut cfg: Config) -> anyhow::Result<()> {
    let e = cfg.embedded_settings()?;
    let cluster = EmbeddedCluster::start(1)?;
    create_topics(&cluster, &cfg, e.partitions)?;
    let brokers = cluster.bootstrap_servers().to_string();
    cfg.kafka.brokers = brokers.clone();
    // The generator writes event time ending now, `duration` long; at
    // `time_scale` event-time seconds per wall second.
    let duration_ms = e.duration / MICROS_PER_MILLI;
    let now_ms = wall_clock_now() / MICROS_PER_MILLI;
    let generate = GenerateOptions {
        seed: e.seed,
        rate: e.rate / e.time_scale,
        duration_ms,
        start_ms: (now_ms - duration_ms).max(0) / 1000 * 1000,
        ..GenerateOptions::default()
    };
    tracing::info!(
        bootstrap = %brokers,
        partitions = e.partitions,
        rate = e.rate,
        time_scale = e.time_scale,
        scenario = %e.scenario,
        "embedded demo: mock Kafka cluster in-process (set CXPULSE__KAFKA__BROKERS to use a real cluster)"
    );
    let stop_feed = Arc::new(AtomicBool::new(false));
    let feed_stats = Arc::new(FeedStats::default());
    let feeder = {
        let opts = FeedOptions {
            client: crate::pipeline::producer_config(&cfg, &brokers),
            topics: cfg.kafka.topics.inputs().map(str::to_string),
            time_scale: Some(e.time_scale),
            progress: false,
        };
        let generate = GenerateOptions {
            scenario: e.scenario,
            ..generate
        };
        let stop = stop_feed.clone();
        let stats = feed_stats.clone();
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || {
                let records = crate::generate::Generator::try_new(generate)
                    .map_err(|e| anyhow!("generator: {e}"))?;
                let r = feed::produce(&opts, records, &stop, &stats);
                match &r {
                    Ok(()) if stop.load(Ordering::Relaxed) => {}
                    Ok(()) => tracing::info!(
                        produced = stats.acked.load(Ordering::Relaxed),
                        "generator finished: the stream is quiet now; windows still close with wall time"
                    ),
                    Err(e) => tracing::error!(error = %e, "generator failed"),
                }
                r
            })
            .context("starting the generator thread")?
    };
    let metrics = Arc::new(super::new_metrics(&cfg)?);
    let http = super::start_http(&cfg, metrics.clone()).await?;
    let result = super::run_restarting(&cfg, &brokers, metrics, None).await;
    http.stop().await;
    stop_feed.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || feeder.join()).await;
    drop(cluster);
    result
}
