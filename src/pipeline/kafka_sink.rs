//! Stages 3 and 4: the idempotent producer and its acknowledgements.
//!
//! The engine task numbers every outgoing record (KPI records and dead
//! letters share one sequence) and sends it down a bounded channel to the
//! **producer task**, which serializes it, hands it to librdkafka (waiting
//! while librdkafka's own queue is full) and passes the delivery future, in
//! order, down a second bounded channel to the **acknowledgement task**.
//!
//! The acknowledgement task awaits the futures in sequence order and
//! publishes `acked_through`: every record with a sequence number at or
//! below it is acknowledged by the broker (`acks=all`). That single number is
//! what commit safety needs (see `commit.rs`). A delivery that fails for good
//! (librdkafka has retried until `message.timeout.ms`) stops the pipeline
//! with an error; `acked_through` never passes it, so its input offsets are
//! never committed and a restart produces it again.
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), so
//! librdkafka's retries neither duplicate nor reorder records of a
//! partition: revisions of a row (same key) arrive in order.
//!
//! # Exactly-once
//!
//! With `kafka.delivery = "exactly-once"` the producer is transactional
//! (`transactional.id`, initialised before anything is read, which fences a
//! predecessor with the same id and aborts its open transaction). Records go
//! into the open transaction; a [`SinkMessage::Commit`], queued behind them by
//! the engine task every `kafka.commit_interval`, adds the checkpoint records
//! to the state topic and the consumer offsets
//! (`send_offsets_to_transaction`), commits, and begins the next
//! transaction. KPI records, dead letters, state and offsets become visible
//! to `read_committed` readers together or not at all. Retriable errors are
//! retried until `pipeline.shutdown_timeout`. An abortable one aborts the
//! transaction, and one that lasts longer (the broker went away mid-commit)
//! leaves it to the coordinator; both fail the pipeline with
//! [`TxnError::Aborted`], and the restart (whose `init_transactions`
//! settles any open transaction) resumes from the last committed
//! checkpoint. A fatal one (fenced by a newer instance) fails it with
//! [`TxnError::Fatal`].

use super::Stats;
use crate::record::KpiRecord;
use anyhow::anyhow;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A record for the producer task.
#[derive(Debug)]
pub enum SinkMessage {
    /// A KPI record, keyed `kpi|window|group`, to the KPI topic.
    Kpi { seq: u64, record: KpiRecord },
    /// The original bytes of a rejected input, to the dead-letter topic.
    DeadLetter { seq: u64, letter: DeadLetterMessage },
    /// Exactly-once: commit the open transaction (see the module docs).
    Commit(Box<TxnCommit>),
}

/// What one transaction commit carries besides the records before it.
pub struct TxnCommit {
    /// Next offset to read per assigned input partition.
    pub offsets: TopicPartitionList,
    pub group: ConsumerGroupMetadata,
    pub state_topic: String,
    /// Checkpoint records for the state topic (`None`: tombstone).
    pub state: crate::checkpoint::kafka::StateRecords,
    pub reply: oneshot::Sender<Result<(), TxnError>>,
}

impl std::fmt::Debug for TxnCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCommit")
            .field("offsets", &self.offsets.count())
            .field("state_records", &self.state.len())
            .finish_non_exhaustive()
    }
}

/// Why a transaction did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TxnError {
    /// Not committed by this instance: aborted (nothing of it is visible),
    /// or timed out with its outcome left to the coordinator, which the
    /// restart's `init_transactions` settles. Either way: restart from the
    /// last committed checkpoint.
    #[error("transaction not committed ({0}); restarting from the last committed checkpoint")]
    Aborted(String),
    /// The producer cannot continue (e.g. fenced by a newer instance).
    #[error("transactional producer failed fatally: {0}")]
    Fatal(String),
}

/// Runs one transactional call, retrying retriable errors until `deadline`.
/// Anything else that is not fatal (an abortable error, or a retriable one
/// that outlasts the deadline, as when the broker goes away mid-commit)
/// ends with [`TxnError::Aborted`]: the pipeline restarts from the last
/// committed checkpoint instead of dying.
fn txn_call(
    producer: &FutureProducer,
    what: &str,
    deadline: std::time::Instant,
    call: impl Fn() -> rdkafka::error::KafkaResult<()>,
) -> Result<(), TxnError> {
    loop {
        match call() {
            Ok(()) => return Ok(()),
            // Fenced: a newer instance owns the transactional.id now.
            Err(KafkaError::Transaction(e)) if is_fatal(&e) => {
                return Err(TxnError::Fatal(format!("{what}: {e}")));
            }
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && std::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, what, "transaction step failed, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                tracing::error!(error = %e, what, "transaction step failed: aborting the transaction");
                return abort(producer, format!("{what}: {e}"));
            }
            // Still failing at the deadline (e.g. the broker went away
            // mid-commit). librdkafka keeps a timed-out call running, so it
            // cannot be aborted from here; the restart's init_transactions
            // with the same transactional.id fences this producer and the
            // coordinator completes or aborts the transaction first, so the
            // restart resumes from whichever checkpoint is committed.
            Err(e) => {
                tracing::error!(error = %e, what, "transaction step did not complete in time: restarting");
                return Err(TxnError::Aborted(format!(
                    "{what}: {e}; its outcome is settled by the restart's init_transactions"
                )));
            }
        }
    }
}

fn is_fatal(e: &rdkafka::error::RDKafkaError) -> bool {
    e.is_fatal()
        || matches!(
            e.code(),
            RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced
        )
}

/// Aborts the open transaction after `why`. Retriable failures of the abort
/// itself are retried for up to 30 s; if it still cannot complete (broker
/// unreachable), the restart's `init_transactions` with the same
/// transactional.id aborts it on the coordinator, so the result is
/// [`TxnError::Aborted`] either way unless the producer is fenced or failed.
fn abort(producer: &FutureProducer, why: String) -> Result<(), TxnError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match producer.abort_transaction(Duration::from_secs(10)) {
            Ok(()) => return Err(TxnError::Aborted(why)),
            Err(KafkaError::Transaction(a)) if is_fatal(&a) => {
                return Err(TxnError::Fatal(format!("{why}; abort failed: {a}")));
            }
            Err(KafkaError::Transaction(a))
                if a.is_retriable() && std::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %a, "aborting the transaction failed, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(a) => {
                tracing::warn!(error = %a, "the transaction could not be aborted here; the restart's init_transactions aborts it");
                return Err(TxnError::Aborted(format!("{why}; abort pending: {a}")));
            }
        }
    }
}

/// Commits the open transaction with `c`'s state and offsets, then begins
/// the next one.
async fn commit_transaction(
    producer: &FutureProducer,
    c: &TxnCommit,
    timeout: Duration,
) -> Result<(), TxnError> {
    for (key, value) in &c.state {
        let mut r = FutureRecord::<String, Vec<u8>>::to(&c.state_topic)
            .key(key)
            .partition(crate::checkpoint::kafka::PARTITION);
        if let Some(v) = value {
            r = r.payload(v);
        }
        // The delivery outcome is the transaction's: commit fails if it did.
        enqueue(producer, r)
            .await
            .map_err(|e| TxnError::Aborted(format!("producing the checkpoint: {e}")))?;
    }
    let deadline = std::time::Instant::now() + timeout;
    tokio::task::block_in_place(|| {
        txn_call(producer, "send_offsets_to_transaction", deadline, || {
            producer.send_offsets_to_transaction(&c.offsets, &c.group, timeout)
        })?;
        txn_call(producer, "commit_transaction", deadline, || {
            producer.commit_transaction(timeout)
        })?;
        producer
            .begin_transaction()
            .map_err(|e| TxnError::Fatal(format!("begin_transaction: {e}")))
    })
}

/// A dead letter: the original message value and key, plus headers that say
/// why and where from.
#[derive(Debug)]
pub struct DeadLetterMessage {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// `invalid` or `late`.
    pub kind: &'static str,
    /// Short machine label (`missing_field`, `not_json`, `late`, …).
    pub reason_code: &'static str,
    /// Human reason, naming the field.
    pub reason: String,
    pub field: Option<String>,
    pub source_topic: Arc<str>,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl DeadLetterMessage {
    fn headers(&self) -> OwnedHeaders {
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        let mut h = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: "reason",
                value: Some(&self.reason),
            })
            .insert(Header {
                key: "reason_code",
                value: Some(self.reason_code),
            })
            .insert(Header {
                key: "kind",
                value: Some(self.kind),
            });
        if let Some(f) = &self.field {
            h = h.insert(Header {
                key: "field",
                value: Some(f),
            });
        }
        h.insert(Header {
            key: "source_topic",
            value: Some(&*self.source_topic),
        })
        .insert(Header {
            key: "source_partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "source_offset",
            value: Some(&offset),
        })
    }
}

/// Topic names the producer task writes to.
#[derive(Debug, Clone)]
pub struct SinkTopics {
    pub kpis: String,
    pub dead_letter: String,
}

/// The producer task. Ends when the engine stage drops its sender; then
/// flushes the producer explicitly (never relying on drop) for up to
/// `flush_timeout`.
pub async fn run_producer(
    producer: Arc<FutureProducer>,
    topics: SinkTopics,
    mut rx: mpsc::Receiver<SinkMessage>,
    acks: mpsc::Sender<Pending>,
    stats: Arc<Stats>,
    flush_timeout: Duration,
    transactional: bool,
) -> anyhow::Result<()> {
    let mut value = Vec::with_capacity(512);
    let mut result = Ok(());
    while let Some(msg) = rx.recv().await {
        let msg = match msg {
            SinkMessage::Commit(c) => {
                let r = commit_transaction(&producer, &c, flush_timeout).await;
                let failed = r.is_err();
                let _ = c.reply.send(r);
                if failed {
                    break;
                }
                continue;
            }
            other => other,
        };
        value.clear();
        let (seq, delivery) = match &msg {
            SinkMessage::Kpi { seq, record } => {
                record.write_json(&mut value);
                let key = record.key();
                let r = FutureRecord::to(&topics.kpis).key(&key).payload(&value);
                (*seq, enqueue(&producer, r).await)
            }
            SinkMessage::DeadLetter { seq, letter } => {
                let mut r = FutureRecord::<[u8], [u8]>::to(&topics.dead_letter)
                    .payload(&letter.payload)
                    .headers(letter.headers());
                if let Some(k) = &letter.key {
                    r = r.key(k);
                }
                (*seq, enqueue(&producer, r).await)
            }
            SinkMessage::Commit(_) => unreachable!("handled above"),
        };
        match delivery {
            Ok(fut) => {
                let kind = match &msg {
                    SinkMessage::Kpi { .. } => {
                        stats.records_sent.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    SinkMessage::DeadLetter { letter, .. } => {
                        stats.dead_letters_sent.fetch_add(1, Ordering::Relaxed);
                        Some(letter.kind)
                    }
                    SinkMessage::Commit(_) => unreachable!("handled above"),
                };
                if acks.send((seq, kind, fut)).await.is_err() {
                    // The acknowledgement task failed; it reports why.
                    break;
                }
            }
            Err(e) if transactional => {
                // The open transaction cannot complete (librdkafka refuses
                // new records once it must be aborted): abort it.
                stats.metrics.produce_errors.inc();
                let p = producer.clone();
                let _ =
                    tokio::task::spawn_blocking(move || p.abort_transaction(flush_timeout)).await;
                result = Err(TxnError::Aborted(format!("producing record {seq}: {e}")).into());
                break;
            }
            Err(e) => {
                stats.metrics.produce_errors.inc();
                result = Err(anyhow!("producing record {seq}: {e}"));
                break;
            }
        }
    }
    drop(acks);
    if transactional && result.is_ok() {
        // Whatever was produced after the last commit is not committed: the
        // next run re-creates it from the last committed checkpoint.
        let p = producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.abort_transaction(flush_timeout)).await;
        return result;
    }
    // Explicit flush: wait for librdkafka to deliver what it holds. flush()
    // blocks, so it runs off the async workers.
    let p = producer.clone();
    let flushed = tokio::task::spawn_blocking(move || p.flush(flush_timeout))
        .await
        .map_err(|e| anyhow!("flush task: {e}"))?;
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "producer flush did not complete; undelivered records stay uncommitted");
    }
    result
}

/// Hands one record to librdkafka, waiting while its queue is full
/// (backpressure from the brokers to the engine). Other errors are fatal.
async fn enqueue<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(fut) => return Ok(fut),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// The acknowledgement task: awaits deliveries in sequence order and
/// publishes `acked_through` in [`Stats::acked_through`].
/// A record in flight: its sequence number, `None` for a KPI record or the
/// dead letter's kind, and its delivery future.
pub type Pending = (u64, Option<&'static str>, DeliveryFuture);

pub async fn run_acks(
    mut rx: mpsc::Receiver<Pending>,
    stats: Arc<Stats>,
    transactional: bool,
) -> anyhow::Result<()> {
    while let Some((seq, kind, fut)) = rx.recv().await {
        match fut.await {
            Ok(Ok(_)) => {
                stats.acked_through.store(seq, Ordering::Release);
                match kind {
                    None => stats.metrics.records_produced.inc(),
                    Some(k) => stats
                        .metrics
                        .dead_letters_produced
                        .with_label_values(&[k])
                        .inc(),
                }
            }
            Ok(Err((e, msg))) => {
                stats.metrics.produce_errors.inc();
                use rdkafka::message::Message;
                if transactional {
                    // The transaction holding it can only be aborted.
                    return Err(TxnError::Aborted(format!(
                        "delivery of record {seq} to {} failed: {e}",
                        msg.topic()
                    ))
                    .into());
                }
                return Err(anyhow!(
                    "delivery of record {seq} to {} failed: {e}; its input offsets stay uncommitted",
                    msg.topic()
                ));
            }
            Err(_) => return Err(anyhow!("delivery of record {seq} was cancelled")),
        }
    }
    Ok(())
}
