//! Replay throughput: decode + engine on generated traffic, one core.
//!
//! `cargo bench --bench throughput` (env: `EVENTS`, default 1,000,000;
//! `RATE`, events/s of event time, default 2,000; `SEED`; `CONFIG`, a config
//! file layered on the defaults, e.g. other windows). Generates the
//! events in memory first, then times, in one run and on the same bytes:
//!
//! 1. `scan`   – splitting the input into lines (the floor of any reader);
//! 2. `decode` – parsing and validating every line into an `Event`;
//! 3. `engine only` – the engine on events decoded beforehand;
//! 4. `decode + engine` – decode + the full engine with the default
//!    configuration (windows 5m/1m, 1h/5m, 24h/1h; grouping sets [],
//!    channel, region, agent_id), including the end-of-input flush and
//!    record building: the figure the target is about.
//!
//! Prints events/s for each and the engine/decode ratio. A bench binary
//! (not criterion) because one pass over a million events is the unit of
//! interest and criterion's sampling would repeat it dozens of times.

use cxpulse::config::Config;
use cxpulse::engine::Engine;
use cxpulse::generate::{GenerateOptions, Generator};
use cxpulse::intern::Interner;
use std::time::Instant;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events: usize = env("EVENTS", 1_000_000);
    let rate: f64 = env("RATE", 2_000.0);
    let seed: u64 = env("SEED", 42);
    let duration_ms = ((events as f64 / rate) * 1000.0) as i64 + 1;
    let opts = GenerateOptions {
        seed,
        rate,
        duration_ms,
        ..GenerateOptions::default()
    };
    let mut input = Vec::with_capacity(events * 160);
    let mut n = 0usize;
    for rec in Generator::new(opts).take(events) {
        input.extend_from_slice(rec.payload.as_bytes());
        input.push(b'\n');
        n += 1;
    }
    println!(
        "input: {n} lines, {:.1} MiB, {rate} events/s of event time, seed {seed}",
        input.len() as f64 / (1 << 20) as f64
    );

    let report = |name: &str, secs: f64| {
        println!(
            "{name:>15}: {:>10.0} events/s  ({secs:.3} s)",
            n as f64 / secs
        );
        secs
    };

    let t = Instant::now();
    let lines = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let scan = report("scan", t.elapsed().as_secs_f64());
    assert_eq!(lines, n);

    let t = Instant::now();
    let mut interner = Interner::default();
    let mut valid = 0usize;
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        valid += usize::from(cxpulse::decode::decode(line, &mut interner).is_ok());
    }
    let decode = report("decode", t.elapsed().as_secs_f64());

    let config = match std::env::var("CONFIG") {
        Ok(path) => Config::load(Some(std::path::Path::new(&path))).expect("CONFIG file"),
        Err(_) => Config::default(),
    };
    let settings = config.engine_settings().expect("engine config");
    println!(
        "windows {:?}, grouping sets {:?}",
        settings
            .windows
            .iter()
            .map(|w| (&*w.name, cxpulse::time::duration_name(w.step)))
            .collect::<Vec<_>>(),
        settings.grouping_sets
    );
    // The engine alone, on events decoded beforehand (same interner).
    let mut engine = Engine::new(settings.clone());
    let decoded: Vec<_> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| engine.decode(l).ok())
        .collect();
    let mut out = Vec::new();
    let t = Instant::now();
    for event in decoded {
        engine.process(0, event, 0, &mut out);
        out.clear();
    }
    let flush = Instant::now();
    engine.finish(&mut out);
    out.clear();
    let alone = t.elapsed().as_secs_f64();
    println!(
        "{:>15}: {:>10.0} events/s  ({alone:.3} s, of which {:.3} s the end-of-input flush)",
        "engine only",
        valid as f64 / alone,
        flush.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut engine = Engine::new(settings);
    let mut records = 0usize;
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let _ = engine.ingest(0, line, 0, &mut out);
        records += out.len();
        out.clear();
    }
    engine.finish(&mut out);
    records += out.len();
    let full = report("decode + engine", t.elapsed().as_secs_f64());
    let c = engine.counters();
    println!(
        "valid {valid}, accepted {}, late {}, duplicates {}, invalid {}, records {records}",
        c.accepted, c.late, c.duplicates, c.invalid
    );
    println!(
        "ratios: decode/scan {:.1}x slower, (decode + engine)/decode {:.2}x slower",
        decode / scan,
        full / decode
    );
}
