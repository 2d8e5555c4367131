//! Checkpoint-driven commits: what replaces the conservative release-time
//! commits of [`super::commit`] when `checkpoint.store` is `kafka` or `file`.
//!
//! # At-least-once with checkpoints
//!
//! Every `checkpoint.interval` the engine task takes a checkpoint: the engine
//! snapshot, the next offset of every partition whose messages it holds, and
//! `seq`, the sequence number of the last record handed to the producer.
//! It is **stored only once every record up to `seq` is acknowledged**:
//! restoring it must not lose a KPI record that was emitted before it (the
//! windows that emitted it have moved on in the snapshot). Once stored, its
//! offsets are committed (metadata `cxpulse1 ckpt=<epoch>`).
//!
//! After a crash the next run restores the latest stored checkpoint on its
//! first partition assignment and seeks to its offsets. Committed offsets are
//! never ahead of it (they are only ever a stored checkpoint's offsets), so at
//! worst the consumer starts earlier and the messages below the checkpoint's
//! offsets are skipped. Whatever was emitted after the checkpoint is emitted
//! again by the same deterministic engine from the same state and input:
//! repeats, with identical content for the same key and revision.
//!
//! # Exactly-once
//!
//! The checkpoint travels in the producer's transaction instead (see
//! `kafka_sink`): KPI records, dead letters, the checkpoint records and the
//! consumer offsets commit or abort together, every `kafka.commit_interval`.

use super::commit::Positions;
use crate::checkpoint::kafka::{records, tombstones, Manifest, StateRecords};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::engine::Engine;
use crate::time::Micros;

/// A checkpoint waiting for its records' acknowledgements.
#[derive(Debug)]
struct Pending {
    seq: u64,
    checkpoint: Checkpoint,
}

/// Owns the store and the checkpoint cycle; see the module docs.
pub struct Checkpointer {
    /// `None` only while a blocking load/save has it.
    store: Option<Box<dyn CheckpointStore>>,
    group: String,
    /// Epoch of the last checkpoint taken (restored or new).
    epoch: u64,
    pending: Option<Pending>,
    restore_attempted: bool,
    /// `(offsets, seq)` of the last checkpoint taken: an idle pipeline does
    /// not write the same state again.
    last_taken: Option<(Positions, u64)>,
    /// Exactly-once: `(epoch, chunks)` of the checkpoint in force on the
    /// state topic, whose chunks the next transaction tombstones.
    in_force: Option<Manifest>,
    /// Checkpoints stored in this run.
    pub stored: u64,
    /// Size of the last stored checkpoint, bytes.
    pub last_size: usize,
}

/// A stored checkpoint's offsets, to commit.
#[derive(Debug, Clone)]
pub struct Stored {
    pub epoch: u64,
    pub offsets: Vec<(String, i32, i64)>,
    pub watermark: Micros,
}

impl Checkpointer {
    pub fn new(store: Box<dyn CheckpointStore>, group: &str) -> Self {
        Checkpointer {
            store: Some(store),
            group: group.to_string(),
            epoch: 0,
            pending: None,
            restore_attempted: false,
            last_taken: None,
            in_force: None,
            stored: 0,
            last_size: 0,
        }
    }

    pub fn describe(&self) -> String {
        self.store
            .as_ref()
            .map_or_else(|| "(busy)".into(), |s| s.describe())
    }

    /// Runs `f` on the store on a blocking thread.
    async fn with_store<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn CheckpointStore) -> T + Send + 'static,
    ) -> T {
        let mut store = self.store.take().expect("one store operation at a time");
        let (store, out) = tokio::task::spawn_blocking(move || {
            let out = f(store.as_mut());
            (store, out)
        })
        .await
        .expect("checkpoint store task");
        self.store = Some(store);
        out
    }

    /// The latest stored checkpoint, the first time it is asked for (the
    /// first partition assignment); `None` afterwards or when there is none.
    pub async fn restore_once(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        if self.restore_attempted {
            return Ok(None);
        }
        self.restore_attempted = true;
        let loaded = self.with_store(|s| s.load()).await?;
        match loaded {
            Some(c) if c.group != self.group => {
                tracing::warn!(
                    found = %c.group,
                    group = %self.group,
                    "the stored checkpoint belongs to another consumer group: ignored"
                );
                Ok(None)
            }
            Some(c) => {
                self.epoch = c.epoch;
                self.in_force = Some(records(&c).1);
                Ok(Some(c))
            }
            None => Ok(None),
        }
    }

    /// Takes a checkpoint of `engine` covering `offsets`, after the record
    /// with sequence number `seq` was handed to the producer. Replaces a
    /// pending one (the newer covers more). Returns the snapshot's size, or
    /// `None` when nothing was taken: before the first assignment (the
    /// stored checkpoint must be restored before it may be replaced) or when
    /// nothing changed since the last one.
    pub fn take(
        &mut self,
        engine: &Engine,
        offsets: Positions,
        seq: u64,
        wall: Micros,
    ) -> Option<usize> {
        if !self.restore_attempted {
            return None;
        }
        let mut offsets = offsets;
        offsets.sort();
        if self
            .last_taken
            .as_ref()
            .is_some_and(|(o, s)| *o == offsets && *s == seq)
        {
            return None;
        }
        self.last_taken = Some((offsets.clone(), seq));
        self.epoch += 1;
        let checkpoint = Checkpoint {
            group: self.group.clone(),
            epoch: self.epoch,
            created_at: wall,
            watermark: engine.watermark(),
            offsets: offsets
                .into_iter()
                .map(|(t, p, o)| (t.to_string(), p, o))
                .collect(),
            engine: engine.snapshot(),
        };
        let size = checkpoint.engine.len();
        self.pending = Some(Pending { seq, checkpoint });
        Some(size)
    }

    /// Exactly-once: the pending checkpoint as state-topic records (chunks,
    /// manifest, then tombstones of the checkpoint in force), for the
    /// transaction; and its manifest.
    pub fn transaction_records(&mut self) -> (StateRecords, Manifest) {
        let Pending { checkpoint, .. } = self.pending.take().expect("a checkpoint was taken");
        let (recs, manifest) = records(&checkpoint);
        let mut out: StateRecords = recs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        if let Some(prev) = self.in_force.filter(|m| m.epoch != manifest.epoch) {
            out.extend(
                tombstones(&self.group, &prev)
                    .into_iter()
                    .map(|k| (k, None)),
            );
        }
        (out, manifest)
    }

    /// Exactly-once: the transaction carrying `manifest` committed.
    pub fn transaction_committed(&mut self, manifest: Manifest) {
        self.in_force = Some(manifest);
        self.stored += 1;
    }

    /// Whether a checkpoint is waiting to be stored.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Stores the pending checkpoint if every record up to its `seq` is
    /// acknowledged (`acked_through`). Returns what to commit once stored.
    pub async fn store_if_acked(&mut self, acked_through: u64) -> Option<Stored> {
        if self.pending.as_ref().is_none_or(|p| p.seq > acked_through) {
            return None;
        }
        let Pending { checkpoint, .. } = self.pending.take().expect("checked above");
        let size = checkpoint.engine.len();
        let started = std::time::Instant::now();
        let (checkpoint, result) = self
            .with_store(move |s| {
                let r = s.save(&checkpoint);
                (checkpoint, r)
            })
            .await;
        match result {
            Ok(()) => {
                self.stored += 1;
                self.last_size = size;
                tracing::info!(
                    epoch = checkpoint.epoch,
                    bytes = size,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint stored"
                );
                Some(Stored {
                    epoch: checkpoint.epoch,
                    offsets: checkpoint.offsets,
                    watermark: checkpoint.watermark,
                })
            }
            Err(e) => {
                // Not fatal: the next checkpoint covers more; offsets stay
                // at the previous stored checkpoint until then.
                tracing::warn!(error = %e, epoch = checkpoint.epoch, "storing a checkpoint failed; retrying with the next one");
                None
            }
        }
    }
}

/// Commit metadata of a checkpoint's offsets.
pub fn metadata(epoch: u64) -> String {
    format!("cxpulse1 ckpt={epoch}")
}
