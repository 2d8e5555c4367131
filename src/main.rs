//! The `cxpulse` binary: command-line parsing and the edges (logging, exit
//! codes). Everything else is in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use cxpulse::config::{Config, ConfigError};
use cxpulse::replay::{replay, ReplayArgs, ReplayError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "cxpulse",
    version,
    about = "Event-time customer-experience KPIs from event streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine over a JSONL file (one partition) and write KPI records.
    Replay {
        /// Configuration file (TOML), layered over the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Input events, one JSON object per line (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Output KPI records, one per line (`-` for stdout).
        #[arg(long)]
        output: PathBuf,
        /// Invalid lines with their reason, one JSON object per line.
        #[arg(long)]
        dead_letter: Option<PathBuf>,
    },
    /// Generate synthetic CX traffic as JSONL.
    Generate(GenerateCli),
}

#[derive(clap::Args, Debug)]
struct GenerateCli {
    /// Output file (`-` for stdout).
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Event-time span, e.g. "1h".
    #[arg(long, default_value = "1h")]
    duration: String,
    /// First event time (RFC 3339).
    #[arg(long, default_value = "2026-11-02T00:00:00Z")]
    start: String,
    /// Maximum arrival disorder, e.g. "20s".
    #[arg(long, default_value = "20s")]
    disorder: String,
    /// Share of events delivered late (beyond the disorder bound).
    #[arg(long, default_value_t = 0.002)]
    late: f64,
    /// How far late events are delayed beyond the disorder bound, e.g. "4m".
    #[arg(long, default_value = "4m")]
    late_by: String,
    /// Share of events delivered twice.
    #[arg(long, default_value_t = 0.002)]
    duplicates: f64,
    /// Share of extra malformed lines.
    #[arg(long, default_value_t = 0.001)]
    malformed: f64,
    /// steady, wait-spike or churn-wave.
    #[arg(long, default_value = "steady")]
    scenario: String,
    /// Number of distinct agents.
    #[arg(long, default_value_t = 40)]
    agents: usize,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e.downcast_ref::<ConfigError>().is_some()
                || matches!(
                    e.downcast_ref::<ReplayError>(),
                    Some(ReplayError::Config(_))
                );
            eprintln!("cxpulse: {e:#}");
            if config_error {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Replay {
            config,
            input,
            output,
            dead_letter,
        }) => {
            let cfg = Config::load(config.as_deref())?;
            let started = std::time::Instant::now();
            let counters = replay(
                &cfg,
                &ReplayArgs {
                    input,
                    output,
                    dead_letter,
                },
            )?;
            let secs = started.elapsed().as_secs_f64();
            let total = counters.accepted + counters.invalid + counters.duplicates;
            tracing::info!(
                events = total,
                accepted = counters.accepted,
                invalid = counters.invalid,
                duplicates = counters.duplicates,
                late = counters.late,
                late_dropped = counters.late_dropped,
                orphans = counters.orphans,
                records = counters.records,
                revisions = counters.revisions,
                seconds = format!("{secs:.3}"),
                events_per_sec = format!("{:.0}", total as f64 / secs.max(1e-9)),
                "replay finished"
            );
            Ok(())
        }
        Some(Command::Generate(g)) => generate(g),
        None => anyhow::bail!("no command given; try `cxpulse replay --help`"),
    }
}

fn generate(g: GenerateCli) -> anyhow::Result<()> {
    use cxpulse::generate::{GenerateOptions, Generator};
    use cxpulse::time::{parse_duration, parse_rfc3339, MICROS_PER_MILLI};
    use std::io::Write;
    let ms = |what: &str, s: &str| -> anyhow::Result<i64> {
        Ok(parse_duration(s).map_err(|e| anyhow::anyhow!("--{what}: {e}"))? / MICROS_PER_MILLI)
    };
    let opts = GenerateOptions {
        seed: g.seed,
        rate: g.rate,
        duration_ms: ms("duration", &g.duration)?,
        start_ms: parse_rfc3339(&g.start).context("--start: not an RFC 3339 timestamp")?
            / MICROS_PER_MILLI,
        disorder_ms: ms("disorder", &g.disorder)?,
        late_fraction: g.late,
        late_by_ms: ms("late-by", &g.late_by)?,
        duplicate_fraction: g.duplicates,
        malformed_fraction: g.malformed,
        scenario: g
            .scenario
            .parse()
            .map_err(|e| anyhow::anyhow!("--scenario: {e}"))?,
        agents: g.agents,
    };
    let out: Box<dyn Write> = if g.output.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::File::create(&g.output)
                .with_context(|| format!("creating {}", g.output.display()))?,
        )
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut n = 0u64;
    for rec in Generator::new(opts) {
        out.write_all(rec.payload.as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    tracing::info!(records = n, "generated");
    Ok(())
}
