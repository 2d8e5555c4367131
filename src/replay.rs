//! `cxpulse replay`: runs the engine over a JSONL file as one partition,
//! ends with the end-of-input flush (contract §6).

use crate::config::Config;
use crate::engine::lookahead::Lookahead;
use crate::engine::{Counters, Engine};
use crate::input::JsonLines;
use crate::output::{DeadLetter, JsonLinesWriter};
use crate::record::KpiRecord;
use std::path::{Path, PathBuf};

/// What to replay where.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub dead_letter: Option<PathBuf>,
}

/// Replay errors: only I/O can fail a replay; bad lines never do.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ReplayError + 'a {
    move |source| ReplayError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Runs a replay and returns the engine's counters.
pub fn replay(config: &Config, args: &ReplayArgs) -> Result<Counters, ReplayError> {
    let mut engine = Engine::new(config.engine_settings()?);
    let mut input = JsonLines::open(&args.input).map_err(io_err("reading", &args.input))?;
    let mut output =
        JsonLinesWriter::create(&args.output).map_err(io_err("writing", &args.output))?;
    let mut dead = match &args.dead_letter {
        Some(p) => Some(JsonLinesWriter::create(p).map_err(io_err("writing", p))?),
        None => None,
    };
    let source = args.input.display().to_string();
    let mut records: Vec<KpiRecord> = Vec::new();
    let out_path = args.output.as_path();
    let mut ahead = Lookahead::default();
    loop {
        let Some((line_no, line)) = input.next_line().map_err(io_err("reading", &args.input))?
        else {
            break;
        };
        if let Err(e) = ahead.ingest(&mut engine, 0, line, 0, &mut records) {
            if let Some(d) = dead.as_mut() {
                let letter = DeadLetter::invalid(&e, format!("{source}:{line_no}"), line);
                d.write_dead_letter(&letter).map_err(io_err(
                    "writing",
                    args.dead_letter.as_deref().unwrap_or(out_path),
                ))?;
            }
        }
        for r in records.drain(..) {
            output
                .write_record(&r)
                .map_err(io_err("writing", out_path))?;
        }
    }
    ahead.finish(&mut engine, &mut records);
    engine.finish(&mut records);
    for r in records.drain(..) {
        output
            .write_record(&r)
            .map_err(io_err("writing", out_path))?;
    }
    output.flush().map_err(io_err("writing", out_path))?;
    if let (Some(d), Some(p)) = (dead.as_mut(), args.dead_letter.as_deref()) {
        d.flush().map_err(io_err("writing", p))?;
    }
    Ok(engine.counters().clone())
}

/// Everything a replay of in-memory input produced (tests, examples).
#[derive(Debug, Default)]
pub struct ReplayOutput {
    /// Every emitted record, revisions included, in emission order.
    pub records: Vec<KpiRecord>,
    /// Rejected lines: 1-based line number and reason.
    pub invalid: Vec<(usize, crate::decode::DecodeError)>,
    pub counters: Counters,
}

impl ReplayOutput {
    /// The latest revision of every row, in first-emission order.
    pub fn final_rows(&self) -> Vec<&KpiRecord> {
        let mut index: std::collections::HashMap<(String, i64), usize> = Default::default();
        let mut rows: Vec<&KpiRecord> = Vec::new();
        for r in &self.records {
            match index.get(&r.row_id()) {
                Some(&i) => rows[i] = r,
                None => {
                    index.insert(r.row_id(), rows.len());
                    rows.push(r);
                }
            }
        }
        rows
    }
}

/// Replays in-memory lines as one partition, with the end-of-input flush.
pub fn replay_lines<'a>(
    config: &Config,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<ReplayOutput, ReplayError> {
    let mut engine = Engine::new(config.engine_settings()?);
    let mut out = ReplayOutput::default();
    let mut ahead = Lookahead::default();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(e) = ahead.ingest(&mut engine, 0, line, 0, &mut out.records) {
            out.invalid.push((i + 1, e));
        }
    }
    ahead.finish(&mut engine, &mut out.records);
    engine.finish(&mut out.records);
    out.counters = engine.counters().clone();
    Ok(out)
}
