//! A checkpoint store on a compacted Kafka topic (default `cx.cxpulse-state`).
//!
//! Layout, all on partition 0 of the topic, keyed so that compaction keeps
//! exactly the latest checkpoint of every group:
//!
//! ```text
//!   <group>/<epoch>/<i>   chunk i of the encoded checkpoint (≤ 512 KiB each,
//!                         under every broker's default message.max.bytes)
//!   <group>/manifest      {epoch, chunks, len, checksum}: written last, so a
//!                         checkpoint exists only once all its chunks do
//! ```
//!
//! After a new manifest is acknowledged, the previous epoch's chunks get
//! tombstones, so compaction reclaims them. Loading reads the partition from
//! the beginning to its end (`isolation.level=read_committed`: chunks of an
//! aborted exactly-once transaction are never seen), keeps the last
//! manifest of the group and assembles its chunks, verifying length and
//! checksum. A crash between chunks and manifest leaves the previous
//! manifest in force; its chunks are still there (tombstoned only later).
//!
//! In exactly-once mode the pipeline's transactional producer writes the
//! same records ([`records`]) inside the transaction that also carries the
//! KPI records and the consumer offsets.

use super::{Checkpoint, CheckpointError, CheckpointStore};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Chunk size of a checkpoint on the topic.
pub const CHUNK: usize = 512 * 1024;
/// The partition of the state topic cxpulse writes.
pub const PARTITION: i32 = 0;

/// State-topic records: `(key, value)`, `None` for a tombstone.
pub type StateRecords = Vec<(String, Option<Vec<u8>>)>;

/// The record saying which chunks make the group's latest checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub epoch: u64,
    pub chunks: u32,
    pub len: u64,
    pub checksum: u64,
}

pub fn manifest_key(group: &str) -> String {
    format!("{group}/manifest")
}

fn chunk_key(group: &str, epoch: u64, i: u32) -> String {
    format!("{group}/{epoch}/{i}")
}

/// The records of `checkpoint`, chunks first and the manifest last.
pub fn records(checkpoint: &Checkpoint) -> (Vec<(String, Vec<u8>)>, Manifest) {
    let bytes = checkpoint.encode();
    let group = &checkpoint.group;
    let mut out: Vec<(String, Vec<u8>)> = bytes
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (chunk_key(group, checkpoint.epoch, i as u32), c.to_vec()))
        .collect();
    let manifest = Manifest {
        epoch: checkpoint.epoch,
        chunks: out.len() as u32,
        len: bytes.len() as u64,
        checksum: xxhash_rust::xxh3::xxh3_64(&bytes),
    };
    out.push((
        manifest_key(group),
        postcard::to_stdvec(&manifest).expect("manifests serialize"),
    ));
    (out, manifest)
}

/// Keys to tombstone once a newer manifest than `previous` is durable.
pub fn tombstones(group: &str, previous: &Manifest) -> Vec<String> {
    (0..previous.chunks)
        .map(|i| chunk_key(group, previous.epoch, i))
        .collect()
}

/// Counts failed deliveries of the store's producer.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("not poisoned") = Some(e.to_string());
        }
    }
}

/// The store; see the module docs.
pub struct KafkaStore {
    client: ClientConfig,
    topic: String,
    group: String,
    producer: Option<ThreadedProducer<Deliveries>>,
    /// The manifest in force (loaded or last saved), for tombstones.
    current: Option<Manifest>,
    timeout: Duration,
}

impl KafkaStore {
    /// `client`: bootstrap servers and security settings (no group needed).
    pub fn new(client: ClientConfig, topic: &str, group: &str, timeout: Duration) -> Self {
        KafkaStore {
            client,
            topic: topic.to_string(),
            group: group.to_string(),
            producer: None,
            current: None,
            timeout,
        }
    }

    fn err(e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Kafka(e.to_string())
    }

    /// Records that a manifest written elsewhere (the exactly-once
    /// transaction) is now in force.
    pub fn set_current(&mut self, manifest: Manifest) {
        self.current = Some(manifest);
    }

    pub fn current(&self) -> Option<Manifest> {
        self.current
    }

    fn producer(&mut self) -> Result<&ThreadedProducer<Deliveries>, CheckpointError> {
        if self.producer.is_none() {
            let mut c = self.client.clone();
            c.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "0")
                .set("message.max.bytes", (CHUNK + 64 * 1024).to_string());
            self.producer = Some(
                c.create_with_context(Deliveries::default())
                    .map_err(Self::err)?,
            );
        }
        Ok(self.producer.as_ref().expect("just created"))
    }

    /// Produces `(key, value)` records (`None`: tombstone) and waits for all.
    fn produce_all(&mut self, recs: &[(String, Option<Vec<u8>>)]) -> Result<(), CheckpointError> {
        let topic = self.topic.clone();
        let timeout = self.timeout;
        let p = self.producer()?;
        let failed_before = p.context().failed.load(Ordering::Relaxed);
        for (key, value) in recs {
            let mut r = BaseRecord::<String, Vec<u8>>::to(&topic)
                .key(key)
                .partition(PARTITION);
            if let Some(v) = value {
                r = r.payload(v);
            }
            let mut r = r;
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        if e.rdkafka_error_code()
                            != Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        {
                            return Err(Self::err(e));
                        }
                        r = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        p.flush(timeout).map_err(Self::err)?;
        let ctx = p.context();
        if ctx.failed.load(Ordering::Relaxed) != failed_before {
            let why = ctx.last_error.lock().expect("not poisoned").clone();
            return Err(Self::err(format!(
                "delivery to {} failed: {}",
                self.topic,
                why.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl CheckpointStore for KafkaStore {
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        let mut c = self.client.clone();
        c.set("group.id", format!("{}-state-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = c.create().map_err(Self::err)?;
        let (low, high) = match consumer.fetch_watermarks(&self.topic, PARTITION, self.timeout) {
            Ok(w) => w,
            // No state topic yet: no checkpoint.
            Err(e)
                if e.rdkafka_error_code()
                    == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Self::err(format!("reading {}: {e}", self.topic))),
        };
        if high <= low {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, PARTITION, Offset::Beginning)
            .map_err(Self::err)?;
        consumer.assign(&tpl).map_err(Self::err)?;
        let manifest_key = manifest_key(&self.group);
        let prefix = format!("{}/", self.group);
        let mut manifest: Option<Manifest> = None;
        let mut chunks: HashMap<(u64, u32), Vec<u8>> = HashMap::new();
        let deadline = Instant::now() + self.timeout.max(Duration::from_secs(30));
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    if key == manifest_key {
                        manifest =
                            match m.payload() {
                                Some(v) => Some(postcard::from_bytes(v).map_err(|e| {
                                    CheckpointError::Corrupt(format!("manifest: {e}"))
                                })?),
                                None => None,
                            };
                        if let Some(mf) = manifest {
                            chunks.retain(|(e, _), _| *e >= mf.epoch);
                        }
                    } else if let Some(rest) = key.strip_prefix(&prefix) {
                        let mut parts = rest.split('/');
                        if let (Some(Ok(e)), Some(Ok(i))) = (
                            parts.next().map(str::parse::<u64>),
                            parts.next().map(str::parse::<u32>),
                        ) {
                            if manifest.is_none_or(|mf| e >= mf.epoch) {
                                match m.payload() {
                                    Some(v) => chunks.insert((e, i), v.to_vec()),
                                    None => chunks.remove(&(e, i)),
                                };
                            }
                        }
                    }
                }
                Some(Err(e)) => return Err(Self::err(format!("reading {}: {e}", self.topic))),
                None => {}
            }
            // Done once the position reaches the end (transaction markers
            // take offsets too, so compare positions, not message offsets).
            let at_end = {
                let pos = consumer.position().map_err(Self::err)?;
                let reached = pos
                    .find_partition(&self.topic, PARTITION)
                    .and_then(|e| e.offset().to_raw())
                    .is_some_and(|o| o >= high);
                drop(pos);
                reached
            };
            if at_end {
                break;
            }
            if Instant::now() > deadline {
                return Err(Self::err(format!(
                    "reading {} to its end (offset {high}) timed out",
                    self.topic
                )));
            }
        }
        drop(consumer);
        let Some(mf) = manifest else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(mf.len as usize);
        for i in 0..mf.chunks {
            let c = chunks.remove(&(mf.epoch, i)).ok_or_else(|| {
                CheckpointError::Corrupt(format!("chunk {i} of epoch {} is missing", mf.epoch))
            })?;
            bytes.extend_from_slice(&c);
        }
        if bytes.len() as u64 != mf.len || xxhash_rust::xxh3::xxh3_64(&bytes) != mf.checksum {
            return Err(CheckpointError::Corrupt(format!(
                "epoch {}: length or checksum mismatch",
                mf.epoch
            )));
        }
        let c = Checkpoint::decode(&bytes)?;
        self.current = Some(mf);
        Ok(Some(c))
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let (recs, manifest) = records(checkpoint);
        let recs: StateRecords = recs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        self.produce_all(&recs)?;
        // The new manifest is durable: the previous epoch's chunks can go.
        if let Some(prev) = self.current.replace(manifest) {
            if prev.epoch != manifest.epoch {
                let dead: StateRecords = tombstones(&self.group, &prev)
                    .into_iter()
                    .map(|k| (k, None))
                    .collect();
                if let Err(e) = self.produce_all(&dead) {
                    tracing::warn!(error = %e, "tombstoning an old checkpoint failed (only space is lost)");
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("kafka topic {} (partition {PARTITION})", self.topic)
    }
}

/// Creates the state topic if it is missing: one partition, compacted.
/// Failures are logged, not fatal (the topic may exist or be auto-created;
/// a missing one then fails the first save loudly).
pub async fn ensure_topic(client: &ClientConfig, topic: &str, timeout: Duration) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    // Listing all topics never auto-creates one (a request for this topic
    // could, uncompacted, on brokers with auto.create.topics.enable).
    let (c, t) = (client.clone(), topic.to_string());
    let exists = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = c.create().ok()?;
        let md = consumer.fetch_metadata(None, timeout).ok()?;
        Some(
            md.topics()
                .iter()
                .any(|x| x.name() == t && !x.partitions().is_empty()),
        )
    })
    .await
    .ok()
    .flatten();
    if exists == Some(true) {
        return;
    }
    let admin: AdminClient<DefaultClientContext> = match client.create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "admin client for the state topic");
            return;
        }
    };
    let t = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let Ok(result) = tokio::time::timeout(timeout, admin.create_topics([&t], &opts)).await else {
        tracing::warn!(
            topic,
            "creating the state topic timed out (create it, compacted, by hand)"
        );
        return;
    };
    match result.as_ref().map(|r| r.first()) {
        Ok(Some(Ok(_))) => tracing::info!(topic, "created the compacted state topic"),
        Ok(Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)))) | Ok(None) => {}
        Ok(Some(Err((_, code)))) => {
            tracing::warn!(topic, error = %code, "could not create the state topic (create it, compacted, by hand)")
        }
        Err(e) => {
            tracing::warn!(topic, error = %e, "could not create the state topic (create it, compacted, by hand)")
        }
    }
}
