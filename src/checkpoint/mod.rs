//! Checkpoints: the engine state together with the input offsets it covers.
//!
//! A [`Checkpoint`] is everything a restart needs to continue exactly where a
//! run stopped: the serialized [`Engine`](crate::engine::Engine) (open
//! windows and panes, entity state, the subscription base, the event-time
//! buffer, timers, dedup ids, watermarks) and, per input partition, the next
//! offset to read. Restoring one and seeking to its offsets gives the same
//! state as never having stopped.
//!
//! Stores ([`CheckpointStore`]):
//! - [`kafka::KafkaStore`]: a compacted topic (default `cx.cxpulse-state`),
//!   where Kafka deployments expect state (like Kafka Streams' changelogs);
//!   written inside the transaction in exactly-once mode;
//! - [`file::FileStore`]: one file per consumer group, replaced atomically
//!   (write, fsync, rename), for single-machine runs.
//!
//! The engine aggregates across every input partition (a KPI's window sums
//! all of them), so its state is one unit: a checkpoint is keyed by the
//! consumer group, and restored by whichever instance owns the group's
//! partitions (one member per group, see `config/default.toml`).
//!
//! Encoding: `CXCKPT2\n`, then the postcard body, then an xxh3-64 checksum of
//! the body (little endian): a torn or foreign file is rejected, not half
//! restored. The digit is the state format: it changes whenever the engine
//! state's layout does (2: windows rolled up from other windows' panes),
//! and a checkpoint of another format is refused with a message that says
//! so.

pub mod file;
pub mod kafka;

use crate::time::Micros;
use serde::{Deserialize, Serialize};

/// One checkpoint; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The consumer group it belongs to.
    pub group: String,
    /// Increases by one with every checkpoint of the group.
    pub epoch: u64,
    /// Wall time it was taken (µs).
    pub created_at: Micros,
    /// The engine watermark at that moment (µs).
    pub watermark: Micros,
    /// `(topic, partition, next offset to read)` for every input partition
    /// whose messages the engine state includes.
    pub offsets: Vec<(String, i32, i64)>,
    /// [`Engine::snapshot`](crate::engine::Engine::snapshot).
    pub engine: Vec<u8>,
}

const MAGIC: &[u8] = b"CXCKPT2\n";

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
    #[error("checkpoint store (Kafka): {0}")]
    Kafka(String),
}

impl Checkpoint {
    /// The encoded checkpoint (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("checkpoints always serialize");
        let mut out = Vec::with_capacity(MAGIC.len() + body.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        out
    }

    /// Decodes [`Checkpoint::encode`]'s output, verifying the checksum.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| {
            CheckpointError::Corrupt(match bytes.strip_prefix(b"CXCKPT") {
                Some(v) => format!(
                    "state format {} written by another cxpulse version (this one reads {})",
                    String::from_utf8_lossy(&v[..v.len().min(1)]),
                    MAGIC[6] as char
                ),
                None => "not a cxpulse checkpoint".into(),
            })
        })?;
        if rest.len() < 8 {
            return Err(CheckpointError::Corrupt("truncated".into()));
        }
        let (body, sum) = rest.split_at(rest.len() - 8);
        let want = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
        if xxhash_rust::xxh3::xxh3_64(body) != want {
            return Err(CheckpointError::Corrupt(
                "checksum mismatch (torn write?)".into(),
            ));
        }
        postcard::from_bytes(body).map_err(|e| CheckpointError::Corrupt(e.to_string()))
    }

    /// The next offset of `(topic, partition)`, if the checkpoint has one.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, o)| *o)
    }
}

/// Where checkpoints are kept. Blocking calls: the pipeline runs them on a
/// blocking thread.
pub trait CheckpointStore: Send {
    /// The group's latest complete checkpoint, if any.
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError>;
    /// Stores `checkpoint` durably; it replaces the previous one only once
    /// complete (a crash mid-save leaves the previous one in force).
    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
    /// Where it stores, for logs.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(epoch: u64, size: usize) -> Checkpoint {
        Checkpoint {
            group: "g".into(),
            epoch,
            created_at: 1,
            watermark: 2,
            offsets: vec![("cx.chats".into(), 0, 17), ("cx.tickets".into(), 3, 5)],
            engine: (0..size).map(|i| (i * 7 % 251) as u8).collect(),
        }
    }

    #[test]
    fn encode_round_trips_and_rejects_damage() {
        let c = sample(3, 1000);
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), c);
        assert_eq!(c.offset("cx.tickets", 3), Some(5));
        assert_eq!(c.offset("cx.tickets", 0), None);
        let mut torn = bytes.clone();
        torn.truncate(bytes.len() - 100);
        assert!(Checkpoint::decode(&torn).is_err());
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 20] ^= 1;
        assert!(matches!(
            Checkpoint::decode(&flipped),
            Err(CheckpointError::Corrupt(_))
        ));
        assert!(Checkpoint::decode(b"hello").is_err());
    }

    #[test]
    fn another_state_format_is_named() {
        let mut old = sample(1, 10).encode();
        old[6] = b'1';
        let err = Checkpoint::decode(&old).unwrap_err().to_string();
        assert!(
            err.contains("state format 1 written by another cxpulse version (this one reads 2)"),
            "{err}"
        );
    }
}
