//! Stage 1: the Kafka consumer.
//!
//! One [`StreamConsumer`] in the consumer group, subscribed to the four input
//! topics. Its task copies each message into an owned [`SourceEvent`] and
//! sends it down a bounded channel to the engine task; when the engine falls
//! behind, `send` waits and the consumer stops polling (backpressure: the
//! messages stay in Kafka, not in memory). Messages that are already
//! waiting in librdkafka's queue go in one batch ([`MAX_BATCH`]), which
//! saves a task wake-up per message. The task runs on a thread of its own
//! (see `spawn_with`), so it never takes turns with the engine task.
//!
//! Rebalances are reported by librdkafka through [`SourceContext`] callbacks
//! while the consumer is polled; the task forwards them on the same channel,
//! before any message of a newly assigned partition, so the engine always
//! knows a partition (and its committed resume watermark) before its data.

use super::commit::PartitionId;
use super::{partition_id, Stats};
use futures_util::{FutureExt, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// Most messages handed to the engine stage at once.
pub const MAX_BATCH: usize = 512;

/// The consumer type of the pipeline.
pub type Source = StreamConsumer<SourceContext>;

/// What the consumer stage tells the engine stage.
#[derive(Debug)]
pub enum SourceEvent {
    /// Input messages (owned copies) in consumption order: what the consumer
    /// had ready, up to [`MAX_BATCH`], so that the engine task is woken
    /// once per batch instead of once per message.
    Messages(Vec<InputMessage>),
    /// Partitions assigned to this member, with their committed metadata.
    Assigned(Vec<AssignedPartition>),
    /// Partitions taken away.
    Revoked(Vec<(PartitionId, String, i32)>),
}

#[derive(Debug)]
pub struct InputMessage {
    pub pid: PartitionId,
    /// Index into the input topic list.
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// Empty for a message without value (a tombstone): invalid input.
    pub payload: Vec<u8>,
    /// When the consumer stage received it (processing-latency metric).
    pub received: std::time::Instant,
}

#[derive(Debug)]
pub struct AssignedPartition {
    pub pid: PartitionId,
    pub topic: String,
    pub partition: i32,
    /// Offset metadata of the group's last commit, if any.
    pub metadata: Option<String>,
}

/// Consumer callbacks: rebalances, statistics (lag) and commit results.
pub struct SourceContext {
    topics: Vec<String>,
    pending: Mutex<Vec<SourceEvent>>,
    notify: Notify,
    stats: Arc<Stats>,
    last_error: Mutex<Option<(String, std::time::Instant)>>,
}

impl SourceContext {
    pub fn new(topics: Vec<String>, stats: Arc<Stats>) -> Self {
        SourceContext {
            topics,
            pending: Mutex::new(Vec::new()),
            notify: Notify::new(),
            stats,
            last_error: Mutex::new(None),
        }
    }

    /// Records whether any broker is reachable (see `Stats::input_reachable`).
    fn set_reachable(&self, up: bool) {
        let was = self.stats.input_reachable.swap(up, Ordering::Relaxed);
        if was != up {
            if up {
                tracing::info!("brokers reachable again: idleness is measured again");
            } else {
                tracing::warn!(
                    "all brokers down: partitions are not treated as idle until a broker is back"
                );
            }
        }
    }

    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }

    fn push(&self, event: SourceEvent) {
        self.pending.lock().expect("not poisoned").push(event);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<SourceEvent> {
        std::mem::take(&mut *self.pending.lock().expect("not poisoned"))
    }
}

impl ClientContext for SourceContext {
    /// librdkafka statistics (every `statistics.interval.ms`): the read lag
    /// (high watermark − next offset handed to us) summed over the input
    /// partitions, for the live summary. librdkafka's own `consumer_lag` is
    /// measured from the committed offset, which deliberately trails (see
    /// commit.rs), so it is not used.
    fn stats(&self, statistics: Statistics) {
        let mut lag = 0i64;
        let mut known = false;
        for (name, topic) in &statistics.topics {
            if self.topic_index(name).is_none() {
                continue;
            }
            for (p, part) in &topic.partitions {
                let position = if part.app_offset >= 0 {
                    part.app_offset
                } else {
                    part.committed_offset
                };
                if *p >= 0 && part.hi_offset >= 0 && position >= 0 {
                    let part_lag = (part.hi_offset - position).max(0);
                    lag += part_lag;
                    known = true;
                    self.stats.metrics.set_consumer_lag(name, *p, part_lag);
                }
            }
        }
        // −1 until some assigned partition has a known position, so that
        // readiness does not take "nothing measured" for "caught up".
        self.stats
            .consumer_lag
            .store(if known { lag } else { -1 }, Ordering::Relaxed);
        if statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP")
        {
            self.set_reachable(true);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.set_reachable(false);
        }
        // Broker trouble is reported here (and retried by librdkafka); the
        // same error repeats while it lasts: log it once per 10 s.
        let text = error.to_string();
        let mut last = self.last_error.lock().expect("not poisoned");
        let repeat = last
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(10));
        if !repeat {
            tracing::warn!(error = %text, reason, "kafka client error (retrying)");
            *last = Some((text, std::time::Instant::now()));
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<_> = tpl
                .elements()
                .iter()
                .filter_map(|e| {
                    let t = self.topic_index(e.topic())?;
                    Some((
                        partition_id(t, e.partition()),
                        e.topic().to_string(),
                        e.partition(),
                    ))
                })
                .collect();
            tracing::info!(partitions = revoked.len(), "partitions revoked");
            self.push(SourceEvent::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // The committed offsets' metadata carries the resume watermark
                // (see commit.rs). A blocking request, but rebalances are rare.
                let committed = consumer
                    .committed_offsets((*tpl).clone(), Duration::from_secs(10))
                    .map_err(|e| tracing::warn!(error = %e, "reading committed offsets failed"))
                    .ok();
                let metadata_of = |topic: &str, partition: i32| -> Option<String> {
                    let c = committed.as_ref()?;
                    let e = c.find_partition(topic, partition)?;
                    let m = e.metadata();
                    (!m.is_empty()).then(|| m.to_string())
                };
                let assigned: Vec<_> = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        let t = self.topic_index(e.topic())?;
                        Some(AssignedPartition {
                            pid: partition_id(t, e.partition()),
                            topic: e.topic().to_string(),
                            partition: e.partition(),
                            metadata: metadata_of(e.topic(), e.partition()),
                        })
                    })
                    .collect();
                tracing::info!(partitions = assigned.len(), "partitions assigned");
                self.push(SourceEvent::Assigned(assigned));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "offsets committed"),
            // Not fatal: a later commit covers the same offsets.
            Err(e) => tracing::warn!(error = %e, "offset commit failed"),
        }
    }
}

/// An owned copy of a consumed message; `None` for a topic not subscribed.
fn copy(ctx: &SourceContext, m: &impl Message) -> Option<InputMessage> {
    let t = ctx.topic_index(m.topic())?;
    Some(InputMessage {
        pid: partition_id(t, m.partition()),
        topic: t,
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        received: std::time::Instant::now(),
    })
}

/// The consumer task: poll, copy, forward; stops when `stop` is set (or the
/// engine stage is gone). Dropping `tx` tells the engine stage input ended.
pub async fn run(
    consumer: Arc<Source>,
    tx: mpsc::Sender<SourceEvent>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let ctx = consumer.context().clone();
    // The same error repeats every poll while a broker is down: log it once
    // per 10 s (librdkafka logs the details itself).
    let mut last_error: Option<(String, std::time::Instant)> = None;
    // One message stream for the task's life (each `recv()` would register
    // and unregister a waker slot per message).
    let mut stream = consumer.stream();
    loop {
        if *stop.borrow() {
            break;
        }
        let received = tokio::select! {
            // Stop promptly even when no message arrives.
            _ = stop.changed() => break,
            // A rebalance happened while no message was returned.
            _ = ctx.notify.notified() => None,
            m = stream.next() => match m {
                Some(m) => Some(m.map(|m| copy(&ctx, &m))),
                None => break, // the consumer is closed
            },
        };
        // Rebalance events first: they happened before the message returned.
        for event in ctx.take() {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        match received {
            None => {}
            Some(Ok(Some(msg))) => {
                ctx.set_reachable(true);
                let mut batch = Vec::with_capacity(16);
                batch.push(msg);
                // Take what is ready now, without waiting.
                while batch.len() < MAX_BATCH {
                    let Some(Some(Ok(m))) = stream.next().now_or_never() else {
                        break; // nothing ready (or an error: the next poll sees it)
                    };
                    let next = copy(&ctx, &m);
                    drop(m);
                    // A rebalance during that poll comes before its message.
                    let events = ctx.take();
                    if !events.is_empty() {
                        stats
                            .consumed
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        let done = std::mem::take(&mut batch);
                        if tx.send(SourceEvent::Messages(done)).await.is_err() {
                            return;
                        }
                        for event in events {
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    batch.extend(next);
                }
                if batch.is_empty() {
                    continue;
                }
                stats
                    .consumed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if tx.send(SourceEvent::Messages(batch)).await.is_err() {
                    return;
                }
            }
            Some(Ok(None)) => {} // a topic we did not subscribe to
            Some(Err(e)) => {
                // Broker or network trouble: librdkafka reconnects and retries;
                // keep polling (briefly pause so a persistent error cannot spin).
                let text = e.to_string();
                let repeat = last_error
                    .as_ref()
                    .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(10));
                if !repeat {
                    tracing::debug!(error = %text, "kafka consume error (retrying)");
                    last_error = Some((text, std::time::Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Rebalance events that arrived while stopping still matter for commits.
    for event in ctx.take() {
        let _ = tx.send(event).await;
    }
}
