//! Plays generated traffic into Kafka: `cxpulse generate --brokers`, the
//! embedded demo's generator thread, and the tests' input.
//!
//! Each record goes to its stream's topic (tickets, chats, surveys,
//! checkouts), keyed by the record's key (the entity id), so one entity's
//! events stay in one partition. With a time scale, records are paced by
//! their arrival time: `time_scale` event-time seconds per wall second.

use crate::generate::{GeneratedRecord, Stream};
use anyhow::{anyhow, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where and how to produce.
#[derive(Clone)]
pub struct FeedOptions {
    /// Producer client configuration (bootstrap servers, security, …).
    pub client: ClientConfig,
    /// Topics for tickets, chats, surveys, checkouts.
    pub topics: [String; 4],
    /// Event-time seconds per wall second; `None`: as fast as possible.
    pub time_scale: Option<f64>,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct FeedStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct FeedContext {
    stats: Arc<FeedStats>,
}

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.stats.first_error.lock().expect("not poisoned");
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn topic_index(s: Stream) -> usize {
    match s {
        Stream::Tickets => 0,
        Stream::Chats => 1,
        Stream::Surveys => 2,
        Stream::Checkouts => 3,
    }
}

/// Produces `records` (blocking; run it on its own thread), until they end
/// or `stop` is set; then flushes explicitly. Fails if any delivery failed.
pub fn produce(
    opts: &FeedOptions,
    records: impl IntoIterator<Item = GeneratedRecord>,
    stop: &AtomicBool,
    stats: &Arc<FeedStats>,
) -> anyhow::Result<()> {
    let producer: ThreadedProducer<FeedContext> = opts
        .client
        .create_with_context(FeedContext {
            stats: stats.clone(),
        })
        .context("creating the producer")?;
    let started = Instant::now();
    let mut first_arrival: Option<i64> = None;
    let mut last_progress = Instant::now();
    let mut last_sent = 0u64;
    let mut last_ts = 0i64;
    for rec in records {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(scale) = opts.time_scale {
            let first = *first_arrival.get_or_insert(rec.arrival_ms);
            let due = Duration::from_secs_f64(((rec.arrival_ms - first) as f64 / 1000.0) / scale);
            let elapsed = started.elapsed();
            if due > elapsed + Duration::from_millis(2) {
                std::thread::sleep(due - elapsed);
            }
        }
        let mut record = BaseRecord::to(&opts.topics[topic_index(rec.stream)])
            .key(rec.key.as_bytes())
            .payload(rec.payload.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(anyhow!("producing: {e}")),
            }
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
        last_ts = rec.ts_ms;
        if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            let sent = stats.sent.load(Ordering::Relaxed);
            let rate = (sent - last_sent) as f64 / last_progress.elapsed().as_secs_f64();
            progress_line(stats, rate, last_ts, false);
            last_sent = sent;
            last_progress = Instant::now();
        }
    }
    // Explicit flush: never rely on drop to deliver.
    let flushed = producer.flush(Duration::from_secs(60));
    if opts.progress {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        progress_line(
            stats,
            stats.sent.load(Ordering::Relaxed) as f64 / secs,
            last_ts,
            true,
        );
    }
    flushed.context("flushing the producer")?;
    if stats.failed.load(Ordering::Relaxed) > 0 {
        let first = stats.first_error.lock().expect("not poisoned").clone();
        return Err(anyhow!(
            "{} records were not delivered (first error: {})",
            stats.failed.load(Ordering::Relaxed),
            first.unwrap_or_default()
        ));
    }
    Ok(())
}

fn progress_line(stats: &FeedStats, rate: f64, ts_ms: i64, last: bool) {
    let ts = crate::time::format_rfc3339(ts_ms.saturating_mul(1_000));
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\rgenerate: {} sent, {} acked, {:.0} records/s, event time {ts}   ",
        stats.sent.load(Ordering::Relaxed),
        stats.acked.load(Ordering::Relaxed),
        rate,
    );
    if last {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}
