//! Checkpoint size and restore time with many open entities.
//!
//! `cargo bench --bench restore` (env: `ENTITIES`, default 1,000,000;
//! `REPS`, default 3; `CKPT_DIR`, default cargo's target tmp dir). Builds an
//! engine (default configuration) holding `ENTITIES` open entities by
//! ingesting one opening event per entity, a quarter each of
//! `ticket.opened`, `chat.requested`, `checkout.started` and
//! `subscription.started`, with distinct ids, spread over 20 minutes of
//! event time: within the entity TTL and before any cart-abandonment timer
//! (30 minutes) can fire, so nothing closes; one last event 31 s later
//! moves the watermark past them all. Then it times, `REPS` times
//! each (min and max printed):
//!
//! 1. `Engine::snapshot` (taken on the engine task: a processing stall);
//! 2. `Checkpoint::encode` of that snapshot (magic, postcard, xxh3);
//! 3. `Checkpoint::decode` (checksum, postcard) and `Engine::restore`
//!    (postcard, interner index): the restore the issue targets (< 10 s
//!    for 1,000,000 open entities);
//! 4. the file store: `FileStore::save` (write, fsync, rename, fsync dir)
//!    and `FileStore::load` + `Engine::restore`.
//!
//! The restored engine is checked against the original: entity counts,
//! counters, watermark, buffered events, and the records of the
//! end-of-input flush of both. A bench binary (not criterion): one pass over
//! a million entities is the unit of interest.

use cxpulse::checkpoint::file::FileStore;
use cxpulse::checkpoint::{Checkpoint, CheckpointStore};
use cxpulse::config::Config;
use cxpulse::engine::Engine;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// First line of `/proc/…` matching `key`, value part trimmed.
fn proc_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let mem = proc_field("/proc/meminfo", "MemTotal").unwrap_or_else(|| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    format!("{cpus} CPUs (nproc), {model}, MemTotal {mem}, loadavg {load}")
}

fn rss() -> String {
    let cur = proc_field("/proc/self/status", "VmRSS").unwrap_or_else(|| "?".into());
    let peak = proc_field("/proc/self/status", "VmHWM").unwrap_or_else(|| "?".into());
    format!("RSS {cur}, peak {peak}")
}

/// Groups digits by thousands.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

/// Runs `f` `reps` times; returns the last result and the min and max time.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, Duration, Duration) {
    let mut min = Duration::MAX;
    let mut max = Duration::ZERO;
    let mut last = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let v = f();
        let d = t.elapsed();
        min = min.min(d);
        max = max.max(d);
        drop(last.replace(v));
    }
    (last.expect("at least one rep"), min, max)
}

fn line(name: &str, min: Duration, max: Duration) {
    println!(
        "  {name:<44} {:>9.3} s   (max {:.3} s)",
        min.as_secs_f64(),
        max.as_secs_f64()
    );
}

/// The opening event of entity `i`: `i % 4` picks the kind.
fn opening_event(i: u64, ts_ms: i64, buf: &mut String) {
    use std::fmt::Write as _;
    const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
    const CHANNELS: [&str; 4] = ["email", "web", "phone", "social"];
    let region = REGIONS[(i / 4 % 4) as usize];
    let channel = CHANNELS[(i / 16 % 4) as usize];
    buf.clear();
    let _ = match i % 4 {
        0 => write!(
            buf,
            r#"{{"event_id":"e-{i}","type":"ticket.opened","ts":{ts_ms},"ticket_id":"t-{i}","customer_id":"c-{i}","channel":"{channel}","region":"{region}"}}"#
        ),
        1 => write!(
            buf,
            r#"{{"event_id":"e-{i}","type":"chat.requested","ts":{ts_ms},"chat_id":"chat-{i}","customer_id":"c-{i}","region":"{region}"}}"#
        ),
        2 => write!(
            buf,
            r#"{{"event_id":"e-{i}","type":"checkout.started","ts":{ts_ms},"checkout_id":"co-{i}","customer_id":"c-{i}","channel":"{}","region":"{region}"}}"#,
            if i % 8 == 2 { "web" } else { "app" }
        ),
        _ => write!(
            buf,
            r#"{{"event_id":"e-{i}","type":"subscription.started","ts":{ts_ms},"subscription_id":"sub-{i}","customer_id":"c-{i}","region":"{region}"}}"#
        ),
    };
}

fn main() {
    let entities: u64 = env("ENTITIES", 1_000_000);
    let reps: usize = env("REPS", 3);
    let dir: PathBuf = std::env::var_os("CKPT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join(format!("restore-bench-{}", std::process::id()));
    // 2026-11-02T00:00:00Z; entities spread over 20 minutes of event time.
    const BASE_MS: i64 = 1_793_577_600_000;
    const SPAN_MS: i64 = 20 * 60 * 1000;

    println!(
        "cxpulse checkpoint/restore bench: {} open entities",
        thousands(entities)
    );
    println!("machine: {}", machine());
    println!(
        "config: default (windows 5m/1m, 1h/5m, 24h/1h; grouping sets [], channel, region, agent_id; entity_ttl 7d, cart_abandon_after 30m); reps {reps}"
    );

    let settings = Config::default().engine_settings().expect("default config");
    let mut engine = Engine::new(settings.clone());
    let mut out = Vec::new();
    let mut buf = String::with_capacity(256);
    let t = Instant::now();
    for i in 0..entities {
        let ts = BASE_MS + (i as i128 * SPAN_MS as i128 / entities.max(1) as i128) as i64;
        opening_event(i, ts, &mut buf);
        engine
            .ingest(0, buf.as_bytes(), 0, &mut out)
            .expect("valid opening event");
        out.clear();
    }
    // One survey 31 s after the last opening event moves the watermark past
    // all of them, so every entity event is applied (not left in the
    // out-of-orderness buffer). Surveys create no entity.
    let closer = format!(
        r#"{{"event_id":"survey-0","type":"survey.submitted","ts":{},"survey":"csat","score":5,"customer_id":"c-0"}}"#,
        BASE_MS + SPAN_MS + 31_000
    );
    engine
        .ingest(0, closer.as_bytes(), 0, &mut out)
        .expect("valid survey");
    out.clear();
    let build = t.elapsed();
    let [tickets, chats, carts, subs] = engine.entity_counts();
    let open = (tickets + chats + carts + subs) as u64;
    println!(
        "build: ingested {} events in {:.2} s ({:.0} events/s); {}",
        thousands(entities),
        build.as_secs_f64(),
        entities as f64 / build.as_secs_f64(),
        rss()
    );
    println!(
        "open entities: {} (tickets {}, chats {}, carts {}, subscriptions {}); buffered events {}; evicted {}",
        thousands(open),
        thousands(tickets as u64),
        thousands(chats as u64),
        thousands(carts as u64),
        thousands(subs as u64),
        thousands(engine.buffered() as u64),
        engine.counters().evicted_entities
    );
    assert_eq!(open, entities, "every entity stays open");

    println!("timings (min of {reps}):");
    let (snapshot, min, max) = timed(reps, || engine.snapshot());
    line("engine snapshot (Engine::snapshot)", min, max);
    let snap_min = min;
    let checkpoint = Checkpoint {
        group: "cxpulse".into(),
        epoch: 1,
        created_at: 0,
        watermark: engine.watermark(),
        offsets: vec![("cx.tickets".into(), 0, entities as i64)],
        engine: snapshot,
    };
    let (encoded, min, max) = timed(reps, || checkpoint.encode());
    line("checkpoint encode (Checkpoint::encode)", min, max);
    let encode_min = min;
    line(
        "  snapshot + encode",
        snap_min + encode_min,
        snap_min + encode_min,
    );

    let (decoded, min, max) = timed(reps, || Checkpoint::decode(&encoded).expect("decode"));
    line("checkpoint decode (checksum + postcard)", min, max);
    drop(decoded);
    let (restored, min, max) = timed(reps, || {
        Engine::restore(&checkpoint.engine, &settings).expect("restore")
    });
    line("engine rebuild (Engine::restore)", min, max);
    drop(restored);
    let (restored, min, max) = timed(reps, || {
        let c = Checkpoint::decode(&encoded).expect("decode");
        Engine::restore(&c.engine, &settings).expect("restore")
    });
    line("restore: decode + rebuild (in memory)", min, max);
    let restore_min = min;

    let mut store = FileStore::new(&dir, "cxpulse");
    let ((), min, max) = timed(reps, || store.save(&checkpoint).expect("save"));
    line("file store save (write, fsync, rename)", min, max);
    let (loaded, min, max) = timed(reps, || store.load().expect("load").expect("a checkpoint"));
    line("file store load (read + decode)", min, max);
    assert!(loaded == checkpoint, "the file store round-trips");
    drop(loaded);
    let (from_file, min, max) = timed(reps, || {
        let c = store.load().expect("load").expect("a checkpoint");
        Engine::restore(&c.engine, &settings).expect("restore")
    });
    line("restore from file: load + rebuild", min, max);
    let file_restore_min = min;
    let file_size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&dir);

    // The restored engines are the same engine.
    for other in [&restored, &from_file] {
        assert_eq!(other.entity_counts(), engine.entity_counts());
        assert_eq!(other.counters(), engine.counters());
        assert_eq!(other.watermark(), engine.watermark());
        assert_eq!(other.buffered(), engine.buffered());
    }
    let t = Instant::now();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    engine.finish(&mut a);
    let mut restored = restored;
    restored.finish(&mut b);
    assert!(a == b, "the restored engine flushes the same records");
    let mut from_file = from_file;
    b.clear();
    from_file.finish(&mut b);
    assert!(
        a == b,
        "the engine restored from file flushes the same records"
    );
    let flush = t.elapsed();

    let size = encoded.len() as u64;
    println!("size:");
    println!(
        "  engine snapshot                              {:>13} bytes ({:.1} MiB)",
        thousands(checkpoint.engine.len() as u64),
        checkpoint.engine.len() as f64 / (1 << 20) as f64
    );
    println!(
        "  encoded checkpoint                           {:>13} bytes ({:.1} MiB), {:.1} bytes per open entity",
        thousands(size),
        size as f64 / (1 << 20) as f64,
        size as f64 / open.max(1) as f64
    );
    println!(
        "  checkpoint file                              {:>13} bytes ({})",
        thousands(file_size),
        dir.parent()
            .map_or(String::new(), |p| p.display().to_string())
    );
    println!(
        "verified: restored engines (memory and file) match the original (counts, counters, watermark, buffer; {} records of the end-of-input flush identical, {:.2} s)",
        thousands(a.len() as u64),
        flush.as_secs_f64()
    );
    println!("{}", rss());
    let verdict = |d: Duration| {
        if d.as_secs_f64() < 10.0 {
            "PASS"
        } else {
            "FAIL"
        }
    };
    println!(
        "summary: {} open entities, checkpoint {:.1} MiB ({:.1} B/entity), snapshot+encode {:.2} s, restore {:.2} s in memory / {:.2} s from file; target restore < 10 s: {}",
        thousands(open),
        size as f64 / (1 << 20) as f64,
        size as f64 / open.max(1) as f64,
        (snap_min + encode_min).as_secs_f64(),
        restore_min.as_secs_f64(),
        file_restore_min.as_secs_f64(),
        verdict(restore_min.max(file_restore_min))
    );
}
