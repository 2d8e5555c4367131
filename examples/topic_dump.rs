//! Writes every message value of a topic to stdout, one per line, from the
//! beginning to its current end (`isolation.level=read_committed`), e.g. the
//! KPI topic for a comparison with `cxpulse replay`:
//!
//! `cargo run --release --example topic_dump -- BROKERS TOPIC > kpis.jsonl`

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic] = args.as_slice() else {
        anyhow::bail!("usage: topic_dump BROKERS TOPIC");
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cxpulse-topic-dump")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let timeout = Duration::from_secs(10);
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        if high > low {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            if let Some(v) = m.payload() {
                out.write_all(v)?;
                out.write_all(b"\n")?;
            }
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
    }
    out.flush()?;
    anyhow::ensure!(ends.is_empty(), "timed out before the end of {topic}");
    Ok(())
}
