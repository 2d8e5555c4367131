//! The Kafka pipeline end to end, on librdkafka's in-process mock cluster:
//! generated traffic into the four input topics (several partitions each),
//! the pipeline in-process, and the KPI / dead-letter topics read back.
//!
//! Mock cluster traps: it keeps at most 5 MiB or 100 000 messages per
//! partition (test data stays far below), a consumer group's first join waits
//! ~3 s (initial rebalance delay), and the cluster handle is not `Send` (it
//! lives on its own thread inside `EmbeddedCluster`).

use cxpulse::config::Config;
use cxpulse::generate::{GenerateOptions, GeneratedRecord, Generator, Stream};
use cxpulse::pipeline::embedded::{create_topics, EmbeddedCluster};
use cxpulse::pipeline::feed::{produce, FeedOptions, FeedStats};
use cxpulse::pipeline::{self, commit::decode_metadata, PipelineHandle};
use cxpulse::replay::replay_lines;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;

/// Small windows so that minutes of event time exercise firing and commits.
const BASE: &str = r#"
[engine]
max_out_of_orderness = "30s"
allowed_lateness = "30s"
idle_timeout = "30s"
windows = [ { size = "1m" }, { size = "5m", step = "1m" } ]

[kpi]
cart_abandon_after = "5m"

[kafka]
commit_interval = "300ms"

[checkpoint]
interval = "1s"

[http]
# Tests run side by side: an ephemeral port each.
listen = "127.0.0.1:0"

[kafka.consumer_properties]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
# Small fetches interleave the partitions of a backlog, so the watermark
# (the minimum over partitions) moves while the backlog is read.
# (The mock broker returns whole record batches, so keep those small too.)
"max.partition.fetch.bytes" = 16384

[kafka.producer_properties]
"batch.num.messages" = 100

[pipeline]
tick_interval = "100ms"
summary_interval = "0s"
shutdown_timeout = "20s"
"#;

fn config(extra: &str) -> Config {
    let base = BASE;
    // Layers: the compiled-in defaults, this base, then the test's `extra`.
    let layer = |text: &str| config::File::from_str(text, config::FileFormat::Toml);
    let cfg: Config = config::Config::builder()
        .add_source(layer(cxpulse::config::DEFAULT_TOML))
        .add_source(layer(base))
        .add_source(layer(extra))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("test config parses");
    cfg.validate().expect("test config is valid");
    cfg
}

/// Logs (librdkafka's too) go to the test output: `RUST_LOG=info` to see them.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A mock cluster with the topics of `cfg`.
fn cluster(cfg: &Config) -> EmbeddedCluster {
    init_logs();
    let c = EmbeddedCluster::start(1).expect("mock cluster");
    create_topics(&c, cfg, PARTITIONS).expect("topics");
    c
}

fn generate(opts: GenerateOptions) -> Vec<GeneratedRecord> {
    Generator::try_new(opts).expect("generator").collect()
}

/// Produces `records` to the input topics and waits for every delivery.
async fn produce_all(cfg: &Config, brokers: &str, records: Vec<GeneratedRecord>) {
    let opts = FeedOptions {
        client: pipeline::producer_config(cfg, brokers),
        topics: cfg.kafka.topics.inputs().map(str::to_string),
        time_scale: None,
        progress: false,
    };
    tokio::task::spawn_blocking(move || {
        let stats = Arc::new(FeedStats::default());
        produce(&opts, records, &AtomicBool::new(false), &stats).expect("produce");
    })
    .await
    .unwrap();
}

/// Produces raw messages (e.g. bytes that are not UTF-8) to `topic`.
fn produce_raw(brokers: &str, topic: &str, messages: &[(&str, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (key, value) in messages {
        p.send(BaseRecord::to(topic).key(*key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_processed(h: &PipelineHandle, n: u64) {
    let stats = h.stats().clone();
    wait_until(
        &format!("{n} messages processed"),
        Duration::from_secs(90),
        || stats.processed.load(Ordering::Relaxed) >= n || h.is_finished(),
    )
    .await;
    assert!(!h.is_finished(), "the pipeline ended on its own");
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
struct Read {
    key: String,
    value: Vec<u8>,
    headers: HashMap<String, String>,
    partition: i32,
    offset: i64,
    at: Instant,
}

/// Reads `topic` from the beginning until `expect` messages were read (or
/// `timeout`), outside any consumer group.
async fn read_topic(brokers: &str, topic: &str, expect: usize, timeout: Duration) -> Vec<Read> {
    read_topic_until(brokers, topic, timeout, move |all| all.len() >= expect).await
}

async fn read_topic_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Read]) -> bool + Send + 'static,
) -> Vec<Read> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let start = Instant::now();
        let mut all = Vec::new();
        while !done(&all) && start.elapsed() < timeout {
            let m = match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    eprintln!("reader of {topic}: {e}");
                    continue;
                }
                None => continue,
            };
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            all.push(Read {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
                partition: m.partition(),
                offset: m.offset(),
                at: Instant::now(),
            });
        }
        all
    })
    .await
    .unwrap()
}

/// Committed offsets (and metadata) of `group` on the input topics.
fn committed(cfg: &Config, brokers: &str) -> BTreeMap<(String, i32), (i64, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &cfg.kafka.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in cfg.kafka.topics.inputs() {
        for p in 0..PARTITIONS {
            tpl.add_partition(t, p);
        }
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((
                (e.topic().to_string(), e.partition()),
                (o, e.metadata().to_string()),
            )),
            _ => None,
        })
        .collect()
}

/// The high watermark (message count) of every input partition.
fn high_watermarks(cfg: &Config, brokers: &str) -> BTreeMap<(String, i32), i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-watermarks")
        .create()
        .unwrap();
    let mut out = BTreeMap::new();
    for t in cfg.kafka.topics.inputs() {
        for p in 0..PARTITIONS {
            let (_, hi) = c.fetch_watermarks(t, p, Duration::from_secs(10)).unwrap();
            out.insert((t.to_string(), p), hi);
        }
    }
    out
}

/// Row identity: key plus window start.
type RowId = (String, String);

fn row_id(key: &str, v: &Value) -> RowId {
    (
        key.to_string(),
        v["window_start"].as_str().unwrap().to_string(),
    )
}

/// The final revision of every row `cxpulse replay` computes on `records`.
fn replay_final(cfg: &Config, records: &[GeneratedRecord]) -> HashMap<RowId, Value> {
    let out = replay_lines(cfg, records.iter().map(|r| r.payload.as_bytes())).unwrap();
    out.final_rows()
        .into_iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.to_json()).unwrap();
            (row_id(&r.key(), &v), v)
        })
        .collect()
}

/// JSON equality with a relative tolerance on numbers (floating-point sums
/// depend on the order of equal-time events across partitions).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

/// The first `sent` records of the KPI topic (30 s at most).
async fn read_kpis(cfg: &Config, brokers: &str, sent: usize) -> Vec<Read> {
    read_topic(
        brokers,
        &cfg.kafka.topics.kpis,
        sent,
        Duration::from_secs(30),
    )
    .await
}

/// Checks KPI records read back against the replay. With `every_record`,
/// every record (not only the last of each row) must equal the final row:
/// no partial or stale row was ever published.
fn check_against_replay(reads: &[Read], expected: &HashMap<RowId, Value>, every_record: bool) {
    let mut last: HashMap<RowId, Value> = HashMap::new();
    for r in reads {
        let v: Value = serde_json::from_slice(&r.value).expect("KPI record is JSON");
        let id = row_id(&r.key, &v);
        if every_record {
            let want = expected
                .get(&id)
                .unwrap_or_else(|| panic!("row {id:?} is not in the replay"));
            assert!(same(&v, want), "row {id:?}:\n got  {v}\n want {want}");
        }
        last.insert(id, v);
    }
    let missing: Vec<_> = expected.keys().filter(|k| !last.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} rows missing, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<_> = last.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "rows not in the replay: {:?}",
        &extra[..extra.len().min(5)]
    );
    let mut differ = 0;
    for (id, v) in &last {
        if !same(v, &expected[id]) {
            if differ < 5 {
                eprintln!("row {id:?}:\n got  {v}\n want {}", expected[id]);
            }
            differ += 1;
        }
    }
    assert_eq!(
        differ,
        0,
        "{differ} of {} rows differ from the replay",
        last.len()
    );
}

/// Traffic with disorder within the bound and no late events.
fn in_order_traffic(rate: f64, minutes: i64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        seed,
        rate,
        duration_ms: minutes * 60_000,
        disorder_ms: 10_000,
        late_fraction: 0.0,
        duplicate_fraction: 0.01,
        malformed_fraction: 0.0,
        ..GenerateOptions::default()
    }
}

/// (a) Generated events → pipeline → KPI topic: the final revision of every
/// row equals what `cxpulse replay` computes on the same events. A small
/// `max_partition_skew` makes the backlog read pause partitions that run
/// ahead, which must not change any result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_matches_replay() {
    let cfg = config(
        r#"[kafka]
group_id = "e2e"
[pipeline]
max_partition_skew = "1m""#,
    );
    let Loaded {
        cluster: _cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(20.0, 20, 7)).await;

    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n).await;
    let stats = h.stats().clone();
    h.finish();
    h.join().await.unwrap();
    assert_eq!(stats.invalid.load(Ordering::Relaxed), 0);
    assert_eq!(
        stats.late.load(Ordering::Relaxed),
        0,
        "no late events expected"
    );
    eprintln!("pauses: {}", stats.pauses.load(Ordering::Relaxed));
    let sent = stats.records_sent.load(Ordering::Relaxed) as usize;
    // The Prometheus view of the same run.
    let text = stats.metrics.encode(cxpulse::time::wall_clock_now());
    let metric = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    // A paused partition can be fetched again from before what was already
    // delivered: those re-deliveries are received, counted and skipped.
    let skipped = stats.skipped.load(Ordering::Relaxed);
    assert_eq!(
        metric("cxpulse_messages_consumed_total"),
        (n + skipped) as f64
    );
    assert_eq!(metric("cxpulse_messages_redelivered_total"), skipped as f64);
    let duplicates = stats.duplicates.load(Ordering::Relaxed);
    assert_eq!(metric("cxpulse_events_total"), (n - duplicates) as f64);
    assert_eq!(metric("cxpulse_events_duplicate_total"), duplicates as f64);
    assert_eq!(metric("cxpulse_kpi_records_produced_total"), sent as f64);
    assert_eq!(metric("cxpulse_kpi_records_emitted_total"), sent as f64);
    assert_eq!(metric("cxpulse_events_invalid_total"), 0.0);
    assert!(metric("cxpulse_chat_wait_seconds_count") > 0.0);
    assert!(metric("cxpulse_kpi_csat_rate_count") > 0.0);
    assert_eq!(
        stats.acked_through.load(Ordering::Relaxed),
        stats.emitted.load(Ordering::Relaxed)
    );
    let reads = read_kpis(&cfg, &brokers, sent).await;
    assert_eq!(
        reads.len(),
        sent,
        "every produced KPI record is on the topic"
    );
    check_against_replay(&reads, &expected, true);
    // Keys route rows: every record of one key is in one partition.
    let mut parts: HashMap<&str, i32> = HashMap::new();
    for r in &reads {
        assert_eq!(*parts.entry(&r.key).or_insert(r.partition), r.partition);
    }
}

/// (b) Malformed messages land on the dead-letter topic with their reason;
/// good events around them are all counted; late events dropped beyond
/// allowed_lateness are dead-lettered with reason `late`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_late_events_go_to_the_dead_letter_topic() {
    let cfg = config(
        r#"[kafka]
group_id = "dead-letters""#,
    );
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let records = generate(GenerateOptions {
        seed: 11,
        rate: 10.0,
        duration_ms: 10 * 60_000,
        disorder_ms: 10_000,
        late_fraction: 0.02,
        late_by_ms: 240_000,
        duplicate_fraction: 0.01,
        malformed_fraction: 0.03,
        ..GenerateOptions::default()
    });
    let malformed: HashSet<Vec<u8>> = records
        .iter()
        .filter(|r| r.malformed.is_some())
        .map(|r| r.payload.as_bytes().to_vec())
        .collect();
    let n_malformed = records.iter().filter(|r| r.malformed.is_some()).count();
    assert!(
        n_malformed > 20,
        "the generator made {n_malformed} malformed lines"
    );
    let replay = replay_lines(&cfg, records.iter().map(|r| r.payload.as_bytes())).unwrap();
    let n = records.len();
    produce_all(&cfg, &brokers, records).await;
    // Bytes that are not UTF-8, and an empty value, on two input topics;
    // and a valid survey dated far ahead of the wall clock
    // (`pipeline.max_future`), which would otherwise stall its partition.
    let crafted: Vec<(&str, Vec<u8>)> = vec![
        ("bin", vec![0xff, 0xfe, 0x00, 0x81]),
        ("empty", Vec::new()),
        (
            "future",
            br#"{"event_id":"fut-1","type":"survey.submitted","survey":"csat","score":5,"customer_id":"c-fut","ts":"9000-01-01T00:00:00Z"}"#.to_vec(),
        ),
    ];
    produce_raw(&brokers, &cfg.kafka.topics.tickets, &crafted[..1]);
    produce_raw(&brokers, &cfg.kafka.topics.surveys, &crafted[1..]);

    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, (n + crafted.len()) as u64).await;
    let stats = h.stats().clone();
    h.finish();
    h.join().await.unwrap();

    let invalid = stats.invalid.load(Ordering::Relaxed) as usize;
    let late_dropped = stats.late_dropped.load(Ordering::Relaxed) as usize;
    assert_eq!(
        invalid,
        n_malformed + crafted.len(),
        "every malformed message counted"
    );
    assert_eq!(
        stats.accepted.load(Ordering::Relaxed),
        replay.counters.accepted,
        "every good event counted (duplicates once)"
    );
    assert!(
        late_dropped > 0,
        "the traffic has events late beyond allowed_lateness"
    );
    let dead = read_topic(
        &brokers,
        &cfg.kafka.topics.dead_letter,
        invalid + late_dropped,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dead.len(), invalid + late_dropped);
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for d in &dead {
        for h in [
            "reason",
            "reason_code",
            "kind",
            "source_topic",
            "source_partition",
            "source_offset",
        ] {
            assert!(
                d.headers.contains_key(h),
                "dead letter without header {h}: {:?}",
                d.headers
            );
        }
        let kind = d.headers["kind"].clone();
        if kind == "invalid" {
            assert!(
                malformed.contains(&d.value) || crafted.iter().any(|(_, v)| *v == d.value),
                "dead letter carries the original bytes"
            );
            assert!(!d.headers["reason"].is_empty());
        } else {
            assert_eq!(kind, "late");
            assert_eq!(d.headers["reason_code"], "late");
            assert_eq!(d.headers["field"], "ts");
        }
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(kinds.get("invalid").copied().unwrap_or(0), invalid);
    assert_eq!(kinds.get("late").copied().unwrap_or(0), late_dropped);
    // Reasons name the field where there is one.
    assert!(dead
        .iter()
        .any(|d| d.headers.get("field").is_some_and(|f| f != "ts")));
    assert!(dead
        .iter()
        .any(|d| d.headers["reason_code"] == "not_json" && d.value == crafted[0].1));
    assert!(dead.iter().any(|d| d.headers["reason_code"] == "future_ts"
        && d.headers["field"] == "ts"
        && d.value == crafted[2].1));
}

/// Keeps only entities whose events all lie within `span_ms` of each other
/// (and every survey, which holds no entity state). Subscriptions are left
/// out: an active subscription is long-lived state by nature (the churn
/// denominator), which only checkpoints (a later issue) restore.
fn short_lived_entities(records: Vec<GeneratedRecord>, span_ms: i64) -> Vec<GeneratedRecord> {
    let records: Vec<GeneratedRecord> = records
        .into_iter()
        .filter(|r| !r.key.starts_with("sub-"))
        .collect();
    let mut range: HashMap<(Stream, String), (i64, i64)> = HashMap::new();
    for r in &records {
        let e = range
            .entry((r.stream, r.key.clone()))
            .or_insert((r.ts_ms, r.ts_ms));
        e.0 = e.0.min(r.ts_ms);
        e.1 = e.1.max(r.ts_ms);
    }
    records
        .into_iter()
        .filter(|r| {
            r.stream == Stream::Surveys || {
                let (lo, hi) = range[&(r.stream, r.key.clone())];
                hi - lo <= span_ms
            }
        })
        .collect()
}

/// (c) Stop mid-stream and start again in the same group: no KPI row is
/// lost, and every record ever published equals the replay's final row
/// (repeats are identical; windows already final are not re-published
/// partially).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream_loses_no_row() {
    // Entities live at most 10 minutes of event time in this data, and the
    // commit hold covers that (restart_entity_lookback): a restart rebuilds
    // them. Longer-lived entity state needs checkpoints (see commit.rs).
    // This is the mode without checkpoints (checkpoint.store = "none"):
    // restarts re-read; see restart_restores_the_checkpoint for the default.
    let cfg = config(
        r#"[kafka]
group_id = "restart"
restart_entity_lookback = "10m"
[checkpoint]
store = "none""#,
    );
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let records = short_lived_entities(generate(in_order_traffic(10.0, 60, 23)), 10 * 60_000);
    let n = records.len() as u64;
    let expected = replay_final(&cfg, &records);
    produce_all(&cfg, &brokers, records).await;

    // Run 1: stop after ~60% of the input.
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n * 6 / 10).await;
    let s1 = h.stats().clone();
    h.stop();
    h.join().await.unwrap();
    let sent1 = s1.records_sent.load(Ordering::Relaxed) as usize;
    eprintln!(
        "run 1: processed {} of {n}, watermark {}, records {sent1}, commits {}",
        s1.processed.load(Ordering::Relaxed),
        cxpulse::time::format_rfc3339(s1.watermark.load(Ordering::Relaxed)),
        s1.commits.load(Ordering::Relaxed)
    );
    assert!(sent1 > 0);

    // The commit moved mid-stream and carries the resume watermark.
    let committed = committed(&cfg, &brokers);
    let hi = high_watermarks(&cfg, &brokers);
    let done: i64 = committed.values().map(|(o, _)| o).sum();
    let total: i64 = hi.values().sum();
    assert!(done > 0, "offsets were committed mid-stream");
    assert!(
        done < total,
        "not everything was committed ({done} of {total})"
    );
    assert!(committed
        .values()
        .all(|(_, m)| decode_metadata(m).is_some()));
    let remaining: i64 = hi
        .iter()
        .map(|(k, hi)| hi - committed.get(k).map_or(0, |(o, _)| *o))
        .sum();

    // Run 2: the same group picks up from the committed offsets.
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, remaining as u64).await;
    let s2 = h.stats().clone();
    h.finish();
    h.join().await.unwrap();
    assert!(
        s2.suppressed.load(Ordering::Relaxed) > 0,
        "rebuilt final windows were suppressed"
    );
    let sent2 = s2.records_sent.load(Ordering::Relaxed) as usize;

    let reads = read_topic(
        &brokers,
        &cfg.kafka.topics.kpis,
        sent1 + sent2,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(reads.len(), sent1 + sent2);
    check_against_replay(&reads, &expected, true);
}

/// (d) Quiet stream: after the last event, the last windows arrive on the
/// KPI topic within a few seconds of wall time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_stream_still_closes_the_last_windows() {
    let cfg = config(
        r#"[engine]
max_out_of_orderness = "1s"
allowed_lateness = "0s"
idle_timeout = "1s"
windows = [ { size = "2s" } ]
[kafka]
group_id = "quiet""#,
    );
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    let stats = h.stats().clone();
    wait_until("partition assignment", Duration::from_secs(30), || {
        stats.assigned_partitions.load(Ordering::Relaxed) >= 4 * PARTITIONS as u64
    })
    .await;

    // Two seconds of live surveys stamped with the wall clock, then silence.
    let p: BaseProducer = pipeline::producer_config(&cfg, &brokers).create().unwrap();
    let mut last_ts = 0;
    for i in 0..20 {
        let ts = cxpulse::time::wall_clock_now() / 1000;
        let v = format!(
            r#"{{"event_id":"q-{i}","type":"survey.submitted","ts":{ts},"survey":"csat","score":5,"customer_id":"c-{i}"}}"#
        );
        p.send(
            BaseRecord::to(&cfg.kafka.topics.surveys)
                .key(&format!("c-{i}"))
                .payload(&v),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        p.poll(Duration::ZERO);
        last_ts = ts;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let last_sent = Instant::now();
    // The window holding the last event, and its end in wall time.
    let start_ms = last_ts.div_euclid(2_000) * 2_000;
    let end_in = Duration::from_millis((start_ms + 2_000 - last_ts).max(0) as u64);
    let want_start = cxpulse::time::format_rfc3339(start_ms * 1000);
    let reads = read_topic_until(
        &brokers,
        &cfg.kafka.topics.kpis,
        Duration::from_secs(20),
        move |all| {
            all.iter().any(|r| {
                r.key == "csat_rate|2s|"
                    && serde_json::from_slice::<Value>(&r.value).unwrap()["window_start"]
                        == want_start.as_str()
            })
        },
    )
    .await;
    let last = reads
        .iter()
        .filter(|r| r.key == "csat_rate|2s|")
        .max_by_key(|r| r.at)
        .unwrap();
    let v: Value = serde_json::from_slice(&last.value).unwrap();
    assert_eq!(
        v["window_start"],
        cxpulse::time::format_rfc3339(start_ms * 1000).as_str(),
        "the last window arrived"
    );
    let delay = last.at.saturating_duration_since(last_sent);
    eprintln!("last window arrived {delay:?} after the last event (its end was {end_in:?} away)");
    // Window end + out-of-orderness (1s) + a tick, plus slack for a busy CI.
    assert!(
        delay <= end_in + Duration::from_secs(4),
        "the last window took {delay:?} after the last event (window end was {end_in:?} away)"
    );
    let total: u64 = reads
        .iter()
        .filter(|r| r.key == "csat_rate|2s|")
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 20, "every survey counted in some 2s window");
    h.stop();
    h.join().await.unwrap();
}

/// (e) Broker trouble: the broker goes down for a while and produce
/// requests fail transiently: the pipeline keeps running and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_trouble_loses_nothing() {
    let cfg = config(
        r#"[kafka]
group_id = "trouble"
[engine]
dedup_horizon = "1m""#,
    );
    let Loaded {
        cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 15, 31)).await;

    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n / 4).await;
    // Retriable produce and commit errors, then the broker is unreachable
    // for longer than the session timeout (6 s): the member is dropped from
    // the group and rejoins, and the partitions it gets back are re-delivered
    // from the committed offsets. A small dedup_horizon makes any re-read
    // event count twice if the pipeline fed it to the engine again.
    cluster
        .request_errors(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            ],
        )
        .unwrap();
    cluster
        .request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT],
        )
        .unwrap();
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        !h.is_finished(),
        "the pipeline keeps running while the broker is down"
    );
    cluster.broker_up(1).unwrap();
    wait_processed(&h, n).await;
    let stats = h.stats().clone();
    h.finish();
    h.join().await.unwrap();
    eprintln!(
        "assignments {}, skipped re-deliveries {}, accepted {}, duplicates {}, late {}, processed {} of {n}",
        stats.assignments.load(Ordering::Relaxed),
        stats.skipped.load(Ordering::Relaxed),
        stats.accepted.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
        stats.late.load(Ordering::Relaxed),
        stats.processed.load(Ordering::Relaxed),
    );
    assert_eq!(
        stats.acked_through.load(Ordering::Relaxed),
        stats.emitted.load(Ordering::Relaxed)
    );
    let sent = stats.records_sent.load(Ordering::Relaxed) as usize;
    kpi_topic_matches_replay(&cfg, &brokers, sent, &expected).await;
}

/// `cxpulse generate --brokers` produces the generator's traffic to the four
/// input topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_cli_produces_to_kafka() {
    let cfg = config("");
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let b = brokers.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cxpulse"))
            .args([
                "generate",
                "--brokers",
                &b,
                "--rate",
                "20",
                "--duration",
                "2m",
            ])
            .args(["--seed", "5"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = generate(GenerateOptions {
        seed: 5,
        rate: 20.0,
        duration_ms: 120_000,
        ..GenerateOptions::default()
    });
    let mut total = 0;
    for (i, topic) in cfg.kafka.topics.inputs().iter().enumerate() {
        let stream = Stream::all()[i];
        let n = want.iter().filter(|r| r.stream == stream).count();
        let got = read_topic(&brokers, topic, n, Duration::from_secs(20)).await;
        assert_eq!(got.len(), n, "{topic}");
        total += got.len();
    }
    assert_eq!(total, want.len());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sent"),
        "progress line"
    );
}

/// The binary: `cxpulse run` against a cluster from the environment, then
/// SIGTERM: it flushes, commits and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_cli_stops_gracefully_on_sigterm() {
    let cfg = config(
        r#"[kafka]
group_id = "cli""#,
    );
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    produce_all(&cfg, &brokers, generate(in_order_traffic(10.0, 10, 3))).await;
    let path = std::env::temp_dir().join(format!("cxpulse-test-{}.toml", std::process::id()));
    std::fs::write(&path, BASE).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cxpulse"))
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("CXPULSE__KAFKA__BROKERS", &brokers)
        .env("CXPULSE__KAFKA__GROUP_ID", "cli")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for KPI records (windows fired), then SIGTERM.
    let reads = read_topic(
        &brokers,
        &cfg.kafka.topics.kpis,
        50,
        Duration::from_secs(30),
    )
    .await;
    assert!(reads.len() >= 50, "the binary produced KPI records");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("exits after SIGTERM")
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_file(&path);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}\n{logs}", out.status);
    assert!(logs.contains("signal received"), "{logs}");
    // JSON log lines.
    let stopped = logs
        .lines()
        .find(|l| l.contains("pipeline stopped"))
        .expect("a pipeline stopped line");
    let v: Value = serde_json::from_str(stopped).expect("JSON logs");
    assert!(v["fields"]["accepted"].as_u64().unwrap() > 0);
    // The final commit is the final checkpoint's offsets.
    let committed = committed(&cfg, &brokers);
    assert!(!committed.is_empty());
    assert!(committed
        .values()
        .all(|(_, m)| m.starts_with("cxpulse1 ckpt=")));
    assert!(logs.contains("checkpoint stored"), "{logs}");
}

/// Reads the `sent` KPI records back: all there, every one equal to the
/// replay's final row, no row missing.
async fn kpi_topic_matches_replay(
    cfg: &Config,
    brokers: &str,
    sent: usize,
    expected: &HashMap<RowId, Value>,
) {
    let reads = read_kpis(cfg, brokers, sent).await;
    if reads.len() != sent {
        let log = topic_log(brokers, &cfg.kafka.topics.kpis, &reads).await;
        panic!("read {} of {sent} KPI records; {log}", reads.len());
    }
    check_against_replay(&reads, expected, true);
}

/// What a topic holds against what was read from it, per partition: low
/// and high watermarks, records read, and offsets missing between them.
/// Tells a reader that gave up early from records that never reached the
/// log.
async fn topic_log(brokers: &str, topic: &str, reads: &[Read]) -> String {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    let reads: Vec<(i32, i64)> = reads.iter().map(|r| (r.partition, r.offset)).collect();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let mut out = String::new();
        for p in 0..PARTITIONS {
            let (lo, hi) = c
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .unwrap_or((-1, -1));
            let mut got: Vec<i64> = reads
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, o)| *o)
                .collect();
            got.sort_unstable();
            let missing: Vec<i64> = (lo.max(0)..hi)
                .filter(|o| got.binary_search(o).is_err())
                .take(10)
                .collect();
            out += &format!(
                "partition {p}: log [{lo}, {hi}), read {}, missing offsets {missing:?}; ",
                got.len()
            );
        }
        out
    })
    .await
    .unwrap()
}

/// A mock cluster with `opts`' traffic on its input topics, and what the
/// replay computes from the same traffic.
struct Loaded {
    cluster: EmbeddedCluster,
    brokers: String,
    n: u64,
    expected: HashMap<RowId, Value>,
}

async fn load(cfg: &Config, opts: GenerateOptions) -> Loaded {
    let cluster = cluster(cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let records = generate(opts);
    let n = records.len() as u64;
    let expected = replay_final(cfg, &records);
    produce_all(cfg, &brokers, records).await;
    Loaded {
        cluster,
        brokers,
        n,
        expected,
    }
}

/// Runs a pipeline until `n` messages were processed, then stops it
/// gracefully (final tick, flush, checkpoint, commit).
async fn run_then_stop(cfg: &Config, brokers: &str, n: u64) -> Arc<pipeline::Stats> {
    let h = pipeline::spawn(cfg, brokers).await.unwrap();
    wait_processed(&h, n).await;
    let stats = h.stats().clone();
    h.stop();
    h.join().await.unwrap();
    stats
}

/// KPI records the runs handed to the producer.
fn records_sent(runs: &[&pipeline::Stats]) -> usize {
    runs.iter()
        .map(|s| s.records_sent.load(Ordering::Relaxed) as usize)
        .sum()
}

/// Sum of the committed offsets of the test group.
fn committed_total(cfg: &Config, brokers: &str) -> i64 {
    committed(cfg, brokers).values().map(|(o, _)| *o).sum()
}

/// Runs until every message past the committed offsets has been consumed
/// (processed, or skipped as already in the restored state).
async fn run_to_end(cfg: &Config, brokers: &str, total: i64) -> Arc<pipeline::Stats> {
    let remaining = (total - committed_total(cfg, brokers)).max(0) as u64;
    let h = pipeline::spawn(cfg, brokers).await.unwrap();
    let stats = h.stats().clone();
    wait_until(
        &format!("{remaining} messages consumed"),
        Duration::from_secs(120),
        || {
            // Assigned first: the checkpoint is restored on assignment, and
            // with nothing left to read (remaining 0) the end-of-input flush
            // must still see the restored state.
            stats.assignments.load(Ordering::Relaxed) >= 1
                && stats.processed.load(Ordering::Relaxed) + stats.skipped.load(Ordering::Relaxed)
                    >= remaining
        },
    )
    .await;
    h.finish();
    h.join().await.unwrap();
    stats
}

/// (c') With checkpoints (the default), a restart restores the engine state
/// and continues at the checkpoint's offsets: entities that live across the
/// restart (long-lived tickets, carts, the subscription base) are as if it
/// never happened, and every record ever published equals the replay's
/// final row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_the_checkpoint() {
    let cfg = config(
        r#"[kafka]
group_id = "checkpointed""#,
    );
    let Loaded {
        cluster: _cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 60, 29)).await;

    let s1 = run_then_stop(&cfg, &brokers, n / 2).await;
    let text = s1.metrics.encode(cxpulse::time::wall_clock_now());
    assert!(
        text.contains("cxpulse_checkpoints_total ")
            && !text.contains("cxpulse_checkpoints_total 0"),
        "checkpoints were stored"
    );
    // The graceful stop stored a last checkpoint and committed its offsets.
    assert!(committed(&cfg, &brokers)
        .values()
        .all(|(_, m)| m.starts_with("cxpulse1 ckpt=")));

    let total: i64 = high_watermarks(&cfg, &brokers).values().sum();
    let s2 = run_to_end(&cfg, &brokers, total).await;
    // Nothing was read twice into the state: the second run started at the
    // checkpoint's offsets.
    assert_eq!(
        s1.processed.load(Ordering::Relaxed) + s2.processed.load(Ordering::Relaxed),
        n
    );
    let sent = records_sent(&[&s1, &s2]);
    kpi_topic_matches_replay(&cfg, &brokers, sent, &expected).await;
}

/// Crash test: the pipeline is killed (no flush, no commit, no final
/// checkpoint) at several random points and restarted each time; the final
/// KPI rows equal an uninterrupted replay exactly, no row is missing, and
/// every repeated record is identical to the final row (at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_random_points_lose_nothing() {
    let cfg = config(
        r#"[kafka]
group_id = "crashy"
[checkpoint]
interval = "500ms""#,
    );
    let Loaded {
        cluster: _cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 60, 31)).await;
    let total: i64 = high_watermarks(&cfg, &brokers).values().sum();

    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut sent = 0usize;
    let kills = 6;
    for k in 0..kills {
        let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
        // Kill after a random share of a sixth of the input.
        let at = 200 + rand(n / 6);
        let stats = h.stats().clone();
        wait_until("progress before the kill", Duration::from_secs(90), || {
            stats.processed.load(Ordering::Relaxed) >= at
        })
        .await;
        h.kill();
        // The producer stage delivers what it had; then count it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sent += stats.records_sent.load(Ordering::Relaxed) as usize;
        eprintln!(
            "kill {k}: processed {} skipped {} records {}",
            stats.processed.load(Ordering::Relaxed),
            stats.skipped.load(Ordering::Relaxed),
            stats.records_sent.load(Ordering::Relaxed)
        );
    }
    let last = run_to_end(&cfg, &brokers, total).await;
    sent += last.records_sent.load(Ordering::Relaxed) as usize;
    let reads = read_kpis(&cfg, &brokers, sent).await;
    assert!(
        reads.len() >= sent,
        "{} of {sent} records read",
        reads.len()
    );
    eprintln!(
        "{kills} kills, {} records read, {} rows compared",
        reads.len(),
        expected.len()
    );
    check_against_replay(&reads, &expected, true);
}

/// Exactly-once config of the tests.
fn exactly_once(group: &str) -> Config {
    config(&format!(
        r#"[kafka]
group_id = "{group}"
delivery = "exactly-once"
commit_interval = "500ms""#
    ))
}

/// Rows published more than once (same key and window start).
fn repeated_rows(reads: &[Read]) -> usize {
    let mut seen = HashSet::new();
    reads
        .iter()
        .filter(|r| {
            let v: Value = serde_json::from_slice(&r.value).unwrap();
            !seen.insert(row_id(&r.key, &v))
        })
        .count()
}

/// Exactly-once: KPI records, checkpoints and offsets commit together; a
/// graceful restart restores the committed checkpoint, so every row is
/// published exactly once and equals the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_restart_publishes_every_row_once() {
    let cfg = exactly_once("eos");
    let Loaded {
        cluster: _cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 60, 37)).await;
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n / 2).await;
    let s1 = h.stats().clone();
    // At least one transaction commits while running (how fast the first
    // half is read depends on the machine).
    wait_until("a transaction committed", Duration::from_secs(30), || {
        s1.commits.load(Ordering::Relaxed) >= 1
    })
    .await;
    h.stop();
    h.join().await.unwrap();
    // The stop commits a last transaction if anything was consumed since
    // the one before; if the first run had already read everything by its
    // last periodic commit, there is nothing left to commit. Either way
    // the second run must process exactly what the first did not (checked
    // below): a stop that left work uncommitted makes it process that work
    // again. (Counting commits here failed whenever the mock cluster was
    // read to the end within the first commit interval.)
    // The mock cluster drops TxnOffsetCommit, so the group has no committed
    // offsets: the second run starts at the beginning and skips what the
    // restored checkpoint covers (on a real broker it starts at them).
    let total: i64 = high_watermarks(&cfg, &brokers).values().sum();
    let s2 = run_to_end(&cfg, &brokers, total).await;
    assert_eq!(
        s1.processed.load(Ordering::Relaxed) + s2.processed.load(Ordering::Relaxed),
        n
    );
    let sent = records_sent(&[&s1, &s2]);
    let reads = read_kpis(&cfg, &brokers, sent).await;
    assert_eq!(reads.len(), sent);
    check_against_replay(&reads, &expected, true);
    assert_eq!(repeated_rows(&reads), 0, "no row published twice");
}

/// Exactly-once under crashes: killed at random points (the open
/// transaction is never committed) and restarted; the final rows equal the
/// replay. (The mock cluster only simulates read_committed, so records of
/// aborted transactions stay visible to its readers: repeats are not
/// counted here, but every record must still equal its final row.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_crashes_lose_nothing() {
    let cfg = exactly_once("eos-crashy");
    let Loaded {
        cluster: _cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 40, 41)).await;
    let total: i64 = high_watermarks(&cfg, &brokers).values().sum();
    let mut sent = 0usize;
    for k in 0..4u64 {
        let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
        let stats = h.stats().clone();
        let at = 300 + (k * 7919) % (n / 5);
        wait_until("progress before the kill", Duration::from_secs(90), || {
            stats.processed.load(Ordering::Relaxed) + stats.skipped.load(Ordering::Relaxed) >= at
        })
        .await;
        h.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        sent += stats.records_sent.load(Ordering::Relaxed) as usize;
    }
    let last = run_to_end(&cfg, &brokers, total).await;
    sent += last.records_sent.load(Ordering::Relaxed) as usize;
    let reads = read_kpis(&cfg, &brokers, sent).await;
    check_against_replay(&reads, &expected, true);
}

/// Fencing: when a newer instance with the same transactional.id has
/// bumped the producer epoch, the broker answers the old one with
/// PRODUCER_FENCED; it then stops with a fatal error instead of committing
/// anything more. (librdkafka's mock cluster does not fence a second
/// `init_transactions` by itself, so the broker's answer is injected.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_fenced_instance_stops() {
    let cfg = exactly_once("eos-fence");
    let Loaded {
        cluster,
        brokers,
        n,
        ..
    } = load(&cfg, in_order_traffic(10.0, 30, 43)).await;
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n / 4).await;
    cluster
        .request_errors(
            RDKafkaApiKey::AddOffsetsToTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 8],
        )
        .unwrap();
    // More input, so that the instance has something to commit.
    produce_all(&cfg, &brokers, generate(in_order_traffic(10.0, 5, 44))).await;
    let err = tokio::time::timeout(Duration::from_secs(60), h.join())
        .await
        .expect("the fenced pipeline stops on its own")
        .expect_err("fenced");
    assert!(
        matches!(
            err.downcast_ref::<cxpulse::pipeline::kafka_sink::TxnError>(),
            Some(cxpulse::pipeline::kafka_sink::TxnError::Fatal(_))
        ),
        "{err:#}"
    );
}

/// Runs an exactly-once pipeline on generated traffic, injects `errors` on
/// `api` once a third of the input is processed, expects the pipeline to
/// stop with `TxnError::Aborted`, clears the errors, and checks that a
/// restart from the last committed checkpoint (what `cxpulse run` does
/// in-process) ends with every row equal to the replay.
async fn aborted_then_redone(
    cfg: Config,
    seed: u64,
    api: RDKafkaApiKey,
    errors: &[RDKafkaRespErr],
) {
    let Loaded {
        cluster,
        brokers,
        n,
        expected,
    } = load(&cfg, in_order_traffic(10.0, 30, seed)).await;
    let total: i64 = high_watermarks(&cfg, &brokers).values().sum();
    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n / 3).await;
    let s1 = h.stats().clone();
    cluster.request_errors(api, errors).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(90), h.join())
        .await
        .expect("the pipeline stops after the abort")
        .expect_err("aborted");
    assert!(
        matches!(
            err.downcast_ref::<cxpulse::pipeline::kafka_sink::TxnError>(),
            Some(cxpulse::pipeline::kafka_sink::TxnError::Aborted(_))
        ),
        "{err:#}"
    );
    cluster.clear_request_errors(api).unwrap();
    let s2 = run_to_end(&cfg, &brokers, total).await;
    let sent = records_sent(&[&s1, &s2]);
    let reads = read_kpis(&cfg, &brokers, sent).await;
    check_against_replay(&reads, &expected, true);
}

/// Abort path: a produce error that cannot be retried makes the open
/// transaction abortable; it is aborted and redone from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_aborted_transaction_is_redone() {
    aborted_then_redone(
        exactly_once("eos-abort"),
        47,
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 4],
    )
    .await;
}

/// A commit that cannot finish in time (the coordinator keeps answering
/// with retriable errors past `pipeline.shutdown_timeout`, as in a broker
/// outage that begins mid-commit) is not fatal: the pipeline stops with
/// `TxnError::Aborted` and is redone from the checkpoint (the restart's
/// init_transactions settles the stuck transaction). Before this was
/// handled, it stopped with `TxnError::Fatal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_commit_stuck_past_its_deadline_restarts_from_the_checkpoint() {
    let cfg = config(
        r#"[kafka]
group_id = "eos-stuck"
delivery = "exactly-once"
commit_interval = "500ms"
[pipeline]
shutdown_timeout = "2s""#,
    );
    // librdkafka retries these itself every retry.backoff.ms (100 ms):
    // about 6 s of refusals, longer than the 2 s deadline.
    aborted_then_redone(
        cfg,
        59,
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 60],
    )
    .await;
}

/// Exactly-once under broker trouble: transaction coordinator errors on
/// AddOffsetsToTxn and EndTxn, produce errors, then the broker unreachable
/// for 30 s, with input still arriving afterwards. Retriable errors are
/// retried inside the transaction; a transaction that cannot commit is
/// aborted and redone from the last committed checkpoint (what `cxpulse run`
/// does in-process). Every row ends equal to the replay, and when no
/// transaction had to be aborted, no row was published twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_coordinator_errors_and_a_30s_broker_outage() {
    let cfg = exactly_once("eos-trouble");
    let cluster = cluster(&cfg);
    let brokers = cluster.bootstrap_servers().to_string();
    let records = generate(in_order_traffic(10.0, 40, 53));
    let n = records.len() as u64;
    let expected = replay_final(&cfg, &records);
    let (first, rest) = records.split_at(records.len() / 2);
    let (second, third) = rest.split_at(rest.len() / 2);
    let n_first = first.len() as u64;
    let (second, third) = (second.to_vec(), third.to_vec());
    produce_all(&cfg, &brokers, first.to_vec()).await;

    let h = pipeline::spawn(&cfg, &brokers).await.unwrap();
    wait_processed(&h, n_first).await;
    let s1 = h.stats().clone();
    let commits_before = s1.commits.load(Ordering::Relaxed);
    for (api, errors) in [
        (
            RDKafkaApiKey::AddOffsetsToTxn,
            vec![
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            ],
        ),
        (
            RDKafkaApiKey::EndTxn,
            vec![
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            ],
        ),
        (
            RDKafkaApiKey::Produce,
            vec![
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            ],
        ),
    ] {
        cluster.request_errors(api, &errors).unwrap();
    }
    // More input: transactions go on through the injected errors.
    let n_second = n_first + second.len() as u64;
    produce_all(&cfg, &brokers, second).await;
    wait_until(
        "input processed and committed through coordinator errors",
        Duration::from_secs(60),
        || {
            s1.processed.load(Ordering::Relaxed) >= n_second
                && s1.commits.load(Ordering::Relaxed) >= commits_before + 2
        },
    )
    .await;
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    cluster.broker_up(1).unwrap();
    produce_all(&cfg, &brokers, third).await;

    // The first run either rides the outage out or stops with an aborted
    // transaction; then a restart from the committed checkpoint goes on.
    let progress = s1.clone();
    let done = move || progress.processed.load(Ordering::Relaxed) >= n;
    let stats_runs: Vec<Arc<pipeline::Stats>>;
    let mut aborted = false;
    tokio::select! {
        _ = wait_until("all input processed", Duration::from_secs(120), done) => {
            h.finish();
            h.join().await.unwrap();
            stats_runs = vec![s1];
        }
        _ = async { while !h.is_finished() { tokio::time::sleep(Duration::from_millis(100)).await } } => {
            let err = h.join().await.expect_err("stopped on its own");
            assert!(
                matches!(
                    err.downcast_ref::<cxpulse::pipeline::kafka_sink::TxnError>(),
                    Some(cxpulse::pipeline::kafka_sink::TxnError::Aborted(_))
                ),
                "{err:#}"
            );
            aborted = true;
            let total: i64 = high_watermarks(&cfg, &brokers).values().sum();
            let s2 = run_to_end(&cfg, &brokers, total).await;
            stats_runs = vec![s1, s2];
        }
    }
    let sent = records_sent(&stats_runs.iter().map(|s| &**s).collect::<Vec<_>>());
    let reads = read_kpis(&cfg, &brokers, sent).await;
    check_against_replay(&reads, &expected, true);
    eprintln!(
        "eos outage: aborted and redone: {aborted}; {} records read, {} repeated",
        reads.len(),
        repeated_rows(&reads)
    );
    if !aborted {
        assert_eq!(repeated_rows(&reads), 0, "no row published twice");
    }
}
