//! The checkpoint stores: the compacted-topic store on librdkafka's mock
//! cluster (chunking, manifest-last, torn writes) and the file store.

use cxpulse::checkpoint::kafka::{records, KafkaStore};
use cxpulse::checkpoint::{Checkpoint, CheckpointStore};
use cxpulse::pipeline::embedded::EmbeddedCluster;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

fn checkpoint(epoch: u64, size: usize) -> Checkpoint {
    Checkpoint {
        group: "g1".into(),
        epoch,
        created_at: 10,
        watermark: 20,
        offsets: vec![("cx.chats".into(), 1, 42)],
        // Pseudo-random bytes: no accidental equality between epochs.
        engine: (0..size)
            .map(|i| ((i as u64 * 2654435761 + epoch) >> 7) as u8)
            .collect(),
    }
}

#[test]
fn kafka_store_round_trips_chunks_and_ignores_torn_writes() {
    let cluster = EmbeddedCluster::start(1).unwrap();
    cluster.create_topic("state", 1).unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cluster.bootstrap_servers());
    let mut store = KafkaStore::new(client.clone(), "state", "g1", Duration::from_secs(10));
    assert!(
        store.load().unwrap().is_none(),
        "empty topic: no checkpoint"
    );

    // 1.3 MB: three chunks.
    store.save(&checkpoint(1, 1_300_000)).unwrap();
    store.save(&checkpoint(2, 700_000)).unwrap();
    let mut fresh = KafkaStore::new(client.clone(), "state", "g1", Duration::from_secs(10));
    assert_eq!(fresh.load().unwrap().unwrap(), checkpoint(2, 700_000));

    // A crash after epoch 3's chunks but before its manifest: epoch 2 stays.
    let (recs, _) = records(&checkpoint(3, 900_000));
    let p: BaseProducer = client.create().unwrap();
    for (k, v) in &recs[..recs.len() - 1] {
        p.send(BaseRecord::to("state").key(k).payload(v).partition(0))
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let mut fresh = KafkaStore::new(client.clone(), "state", "g1", Duration::from_secs(10));
    assert_eq!(fresh.load().unwrap().unwrap(), checkpoint(2, 700_000));

    // Another group's checkpoints do not interfere.
    let mut other = KafkaStore::new(client.clone(), "state", "g2", Duration::from_secs(10));
    assert!(other.load().unwrap().is_none());
    let mut c = checkpoint(7, 100);
    c.group = "g2".into();
    other.save(&c).unwrap();
    let mut fresh = KafkaStore::new(client, "state", "g1", Duration::from_secs(10));
    assert_eq!(fresh.load().unwrap().unwrap().epoch, 2);
}
