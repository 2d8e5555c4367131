//! Replay throughput: decode + engine on generated traffic, one core.
//!
//! `cargo bench --bench throughput` (env: `EVENTS`, default 1,000,000;
//! `RATE`, events/s of event time, default 2,000; `SEED`; `RUNS`; `CONFIG`, a config
//! file layered on the defaults, e.g. other windows). Generates the
//! events in memory first, then times, in one run and on the same bytes:
//!
//! 1. `scan`   – splitting the input into lines with memchr, as `replay`'s
//!    reader does (the floor of any reader);
//! 2. `decode` – parsing and validating every line into an `Event`;
//! 3. `engine only` – the engine on events decoded beforehand (each next
//!    event's dedup slot prefetched one event ahead; `replay` prefetches
//!    in batches, see `engine::lookahead`);
//! 4. `decode + engine` – decode + the full engine, fed as `replay` feeds
//!    it (decoding ahead in batches, `engine::lookahead`), with the default
//!    configuration (windows 5m/1m, 1h/5m, 24h/1h; grouping sets [],
//!    channel, region, agent_id), including the end-of-input flush and
//!    record building: the figure the target is about.
//!
//! `PHASES` (comma-separated, default `scan,decode,engine,full`) picks
//! phases, e.g. `PHASES=full` to profile one phase alone. One more,
//! `steady`, runs only when asked for (about a minute and 1.7 GiB with
//! the defaults): decode + engine after the engine's state has grown to a
//! running service's size (see [`steady`]).
//!
//! Each phase runs `RUNS` times (default 3) on the same input; prints the
//! best run's events/s (and the worst run's time) and the ratios. A bench binary
//! (not criterion) because one pass over a million events is the unit of
//! interest and criterion's sampling would repeat it dozens of times.

use cxpulse::config::Config;
use cxpulse::engine::lookahead::Lookahead;
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

/// Minor page faults of this process so far (Linux; 0 elsewhere): the
/// first touch of fresh memory, which on VMs can cost more than the work.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split(' ').nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Memory of this process in transparent huge pages, MiB (Linux; 0
/// elsewhere or when the kernel gives none): the engine's big tables ask
/// for them (`engine::table`).
fn huge_page_mib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("AnonHugePages:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// The non-empty lines of `input`, found with memchr as `replay`'s reader
/// (input::JsonLines) does.
fn lines_of(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = input;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
        if !line.is_empty() {
            return Some(line);
        }
    })
}

/// Smallest and largest of `v`.
fn span(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, 0.0), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

/// The engine phase's timed part: every event, its next one's dedup slot
/// prefetched (`replay` prefetches batches of 16, engine::lookahead; this
/// phase keeps the simpler feed its earlier figures were measured with),
/// then the end-of-input flush; returns
/// when the flush began. Never inlined, so a profiler can count it alone:
/// `valgrind --tool=callgrind --toggle-collect='throughput::engine_pass'`
/// (with `PHASES=engine`).
#[inline(never)]
fn engine_pass(
    engine: &mut Engine,
    decoded: &[cxpulse::event::Event],
    out: &mut Vec<cxpulse::record::KpiRecord>,
) -> Instant {
    for (i, event) in decoded.iter().enumerate() {
        if let Some(next) = decoded.get(i + 1) {
            engine.prefetch(next);
        }
        engine.process(0, *event, 0, out);
        out.clear();
    }
    let flush = Instant::now();
    flush_pass(engine, out);
    flush
}

/// The end-of-input flush of [`engine_pass`], never inlined so that a
/// profiler can count it alone (`--toggle-collect='throughput::flush_pass'`).
#[inline(never)]
fn flush_pass(engine: &mut Engine, out: &mut Vec<cxpulse::record::KpiRecord>) {
    engine.finish(out);
}

fn main() {
    let events: usize = env("EVENTS", 1_000_000);
    let rate: f64 = env("RATE", 2_000.0);
    let seed: u64 = env("SEED", 42);
    // 1% more event time than `EVENTS` lines need (the generator's volume
    // is calibrated, not exact), then exactly `EVENTS` lines are taken.
    let duration_ms = ((events as f64 / rate) * 1010.0) as i64 + 1;
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

    // This VM's wall clock varies run to run (noisy neighbours, memory
    // paged in by the host on first touch), so every phase runs `RUNS`
    // times on the same input and the best run is reported with the worst.
    let runs: usize = env("RUNS", 3).max(1);
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "scan,decode,engine,full".into());
    let phase_runs = |name: &str| {
        if phases.split(',').any(|p| p.trim() == name) {
            runs
        } else {
            0
        }
    };
    let report = |name: &str, times: &[f64], events: usize, extra: String| {
        if times.is_empty() {
            return f64::NAN;
        }
        let (best, worst) = span(times);
        println!(
            "{name:>15}: {:>10.0} events/s  (best of {} runs: {best:.3} s, worst {worst:.3} s{extra})",
            events as f64 / best,
            times.len()
        );
        best
    };
    let lines = || lines_of(&input);

    let mut times = Vec::new();
    for _ in 0..phase_runs("scan") {
        let t = Instant::now();
        let count = lines().count();
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(count, n);
    }
    let scan = report("scan", &times, n, String::new());

    let mut times = Vec::new();
    let mut valid = 0usize;
    for _ in 0..phase_runs("decode") {
        let t = Instant::now();
        let mut interner = Interner::default();
        valid = 0;
        for line in lines() {
            valid += usize::from(cxpulse::decode::decode(line, &mut interner).is_ok());
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let decode = report("decode", &times, n, String::new());

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
    let mut times = Vec::new();
    let (mut flushes, mut faults, mut huge) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..phase_runs("engine") {
        let mut engine = Engine::new(settings.clone());
        let decoded: Vec<_> = lines().filter_map(|l| engine.decode(l).ok()).collect();
        valid = decoded.len();
        let mut out = Vec::new();
        let before = minor_faults();
        let t = Instant::now();
        let flush = engine_pass(&mut engine, &decoded, &mut out);
        times.push(t.elapsed().as_secs_f64());
        flushes.push(flush.elapsed().as_secs_f64());
        faults.push(minor_faults() - before);
        huge.push(huge_page_mib());
    }
    report("engine only", &times, valid, {
        let (lo, hi) = span(&flushes);
        format!(
            "; end-of-input flush {lo:.3}-{hi:.3} s; page faults {faults:?}; \
             in huge pages at the end {huge:?} MiB"
        )
    });

    let mut times = Vec::new();
    let mut out = Vec::new();
    let mut last = None;
    for _ in 0..phase_runs("full") {
        let t = Instant::now();
        let mut engine = Engine::new(settings.clone());
        let mut records = 0usize;
        let mut ahead = Lookahead::default();
        for line in lines() {
            let _ = ahead.ingest(&mut engine, 0, line, 0, &mut out);
            records += out.len();
            out.clear();
        }
        ahead.finish(&mut engine, &mut out);
        engine.finish(&mut out);
        records += out.len();
        out.clear();
        times.push(t.elapsed().as_secs_f64());
        last = Some((engine, records));
    }
    let full = report("decode + engine", &times, n, String::new());
    if let Some((engine, records)) = last {
        let c = engine.counters();
        println!(
            "valid {valid}, accepted {}, late {}, duplicates {}, invalid {}, records {records}",
            c.accepted, c.late, c.duplicates, c.invalid
        );
    }
    println!(
        "ratios: decode/scan {:.1}x slower, (decode + engine)/decode {:.2}x slower",
        decode / scan,
        full / decode
    );

    if phases.split(',').any(|p| p.trim() == "steady") {
        steady(events, rate, seed, runs, &settings);
    }
}

/// The `steady` phase: decode + engine once the engine's state has
/// reached the size a running service keeps. The phases above start from
/// an empty engine, and 1M events at 2,000 events/s are 500 s of event
/// time, a seventh of the default dedup horizon: the tables are small and
/// still growing. Here the engine first takes `WARMUP` seconds of event
/// time (default: the dedup horizon plus the allowed lateness, so the
/// dedup table is full and evicting), untimed; then `RUNS` consecutive
/// slices of `EVENTS` events of the same stream are each read into memory
/// (untimed) and decoded and processed (timed), with no end-of-input
/// flush (a running service has none).
fn steady(
    events: usize,
    rate: f64,
    seed: u64,
    runs: usize,
    settings: &cxpulse::engine::EngineSettings,
) {
    let warmup_s: f64 = env(
        "WARMUP",
        ((settings.dedup_horizon + settings.allowed_lateness) / 1_000_000) as f64,
    );
    let warmup = (warmup_s * rate) as usize;
    let total = warmup + events * runs;
    let opts = GenerateOptions {
        seed,
        rate,
        duration_ms: ((total as f64 / rate) * 1010.0) as i64 + 1,
        ..GenerateOptions::default()
    };
    let mut stream = Generator::new(opts);
    let mut engine = Engine::new(settings.clone());
    let mut ahead = Lookahead::default();
    let mut out = Vec::new();
    let t = Instant::now();
    for rec in stream.by_ref().take(warmup) {
        let _ = ahead.ingest(&mut engine, 0, rec.payload.as_bytes(), 0, &mut out);
        out.clear();
    }
    println!(
        "steady: warmed up on {warmup} events ({warmup_s} s of event time, {:.1} s incl. generating)",
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut slice: Vec<u8> = Vec::with_capacity(events * 160);
    for _ in 0..runs {
        slice.clear();
        let mut n = 0usize;
        for rec in stream.by_ref().take(events) {
            slice.extend_from_slice(rec.payload.as_bytes());
            slice.push(b'\n');
            n += 1;
        }
        let before = minor_faults();
        let t = Instant::now();
        for line in lines_of(&slice) {
            let _ = ahead.ingest(&mut engine, 0, line, 0, &mut out);
            out.clear();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  slice of {n} events: {:.0} events/s ({secs:.3} s, page faults {})",
            n as f64 / secs,
            minor_faults() - before
        );
        times.push((n, secs));
    }
    let rates: Vec<f64> = times.iter().map(|(n, s)| *n as f64 / s).collect();
    let (worst, best) = span(&rates);
    let c = engine.counters();
    println!(
        "decode + engine, steady: {best:.0} events/s best of {runs} slices, worst {worst:.0} \
         (accepted {}, duplicates {}, late {}, invalid {} in all)",
        c.accepted, c.duplicates, c.late, c.invalid
    );
}
