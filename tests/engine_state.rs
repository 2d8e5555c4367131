//! Engine state survives serialization: stopping mid-stream, snapshotting,
//! restoring and continuing gives exactly the records of an uninterrupted run.

use cxpulse::config::Config;
use cxpulse::engine::Engine;
use cxpulse::generate::{GenerateOptions, Generator};
use cxpulse::record::KpiRecord;

fn run(lines: &[String], cut: Option<usize>) -> Vec<KpiRecord> {
    let settings = Config::default().engine_settings().unwrap();
    let mut engine = Engine::new(settings.clone());
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if Some(i) == cut {
            let bytes = engine.snapshot();
            drop(engine);
            engine = Engine::restore(&bytes, &settings).expect("restore");
        }
        let _ = engine.ingest(0, line.as_bytes(), 0, &mut out);
    }
    engine.finish(&mut out);
    out
}

#[test]
fn snapshot_restore_mid_stream_changes_nothing() {
    let opts = GenerateOptions {
        rate: 10.0,
        duration_ms: 40 * 60 * 1000,
        late_fraction: 0.02,
        duplicate_fraction: 0.02,
        malformed_fraction: 0.01,
        ..GenerateOptions::default()
    };
    let lines: Vec<String> = Generator::new(opts).map(|r| r.payload).collect();
    let whole = run(&lines, None);
    assert!(whole.len() > 1000);
    for cut in [1, lines.len() / 3, lines.len() / 2, lines.len() - 1] {
        assert_eq!(run(&lines, Some(cut)), whole, "cut at line {cut}");
    }
}

#[test]
fn restore_refuses_other_settings() {
    let settings = Config::default().engine_settings().unwrap();
    let bytes = Engine::new(settings).snapshot();
    let other = Config::from_toml("[engine]\nallowed_lateness = \"1m\"")
        .unwrap()
        .engine_settings()
        .unwrap();
    assert!(Engine::restore(&bytes, &other).is_err());
    assert!(Engine::restore(b"garbage", &other).is_err());
}
