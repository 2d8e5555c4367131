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
    about = "Event-time customer-experience KPIs from event streams",
    long_about = "Event-time customer-experience KPIs from event streams.\n\n\
        With no subcommand, runs the Kafka pipeline (`cxpulse run`): with the default \
        configuration (no kafka.brokers) that is an embedded demo on an in-process mock \
        cluster; set CXPULSE__KAFKA__BROKERS=host:9092 to use a real cluster."
)]
struct Cli {
    /// Log format on stderr (overrides `log.format`).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the Kafka pipeline (the default): input topics -> engine -> KPI
    /// and dead-letter topics. With no `kafka.brokers`, an embedded demo.
    Run {
        /// Configuration file (TOML), layered over the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Bounded mode (backfills, tests): once every input partition is
        /// read to its end and nothing arrived for this long (e.g. "5s"),
        /// fire every window like `replay`, commit and exit 0.
        #[arg(long)]
        drain: Option<String>,
    },
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
    /// Generate synthetic CX traffic as JSONL, or into Kafka with --brokers.
    Generate(GenerateCli),
}

#[derive(clap::Args, Debug)]
struct GenerateCli {
    /// Output file (`-` for stdout).
    #[arg(long, required_unless_present = "brokers", conflicts_with = "brokers")]
    output: Option<PathBuf>,
    /// Produce into Kafka instead (bootstrap servers): each record to its
    /// stream's topic (`kafka.topics`), keyed by its entity id.
    #[arg(long)]
    brokers: Option<String>,
    /// Configuration file for --brokers: topic names and `[kafka.properties]`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --brokers: pace by event time, this many event-time seconds per
    /// wall second (1 = real time). Default: as fast as possible.
    #[arg(long)]
    speed: Option<f64>,
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

/// Structured logs with tracing on stderr: text, or JSON lines. `RUST_LOG`
/// wins over `level`.
fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

impl Cli {
    /// The `--config` of the subcommand, if any.
    fn config_path(&self) -> Option<&std::path::Path> {
        match &self.command {
            Some(Command::Run { config, .. }) | Some(Command::Replay { config, .. }) => {
                config.as_deref()
            }
            Some(Command::Generate(g)) => g.config.as_deref(),
            None => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The log settings live in the configuration; a broken configuration is
    // reported (exit 2) with default logging.
    let (format, level) = match Config::load(cli.config_path()) {
        Ok(c) => (c.log.format, c.log.level),
        Err(_) => ("text".to_string(), "info".to_string()),
    };
    init_logging(cli.log_format.as_deref().unwrap_or(&format), &level);
    let stdout = std::path::Path::new("-");
    let writes_stdout = match &cli.command {
        Some(Command::Replay { output, .. }) => output == stdout,
        Some(Command::Generate(g)) => g.output.as_deref() == Some(stdout),
        _ => false,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`cxpulse replay --output - |
        // head`): it asked for no more, so stop quietly, as `cat` or
        // ripgrep do.
        Err(e) if writes_stdout && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e.downcast_ref::<ConfigError>().is_some()
                || matches!(
                    e.downcast_ref::<ReplayError>(),
                    Some(ReplayError::Config(_))
                );
            eprintln!("cxpulse: {}", error_message(&e));
            if config_error {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes, joined with `: ` as anyhow's `{:#}` does,
/// each cause once. cxpulse's library errors carry their cause in their
/// own message (they are logged by themselves) and also return it as
/// their `source()`, so the plain chain printed it twice ("reading x: No
/// such file or directory: No such file or directory").
fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Some cause of `e` is a write to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
        Some(Command::Run { config, drain }) => run_pipeline(config.as_deref(), drain.as_deref()),
        None => run_pipeline(None, None),
    }
}

/// `cxpulse run`: the Kafka pipeline (or the embedded demo) until
/// SIGINT/SIGTERM; exit 0 after a graceful shutdown.
fn run_pipeline(config: Option<&std::path::Path>, drain: Option<&str>) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let drain = drain
        .map(|d| {
            cxpulse::time::parse_duration(d)
                .map(|us| std::time::Duration::from_micros(us.max(0) as u64))
                .map_err(|e| cxpulse::config::ConfigError::Invalid {
                    key: "--drain".into(),
                    reason: e.to_string(),
                })
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cxpulse")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(cxpulse::pipeline::run(cfg, drain))
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
    if let Some(brokers) = &g.brokers {
        return generate_to_kafka(g.config.as_deref(), brokers, g.speed, opts);
    }
    let output = g.output.expect("clap requires --output without --brokers");
    let out: Box<dyn Write> = if output.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::File::create(&output)
                .with_context(|| format!("creating {}", output.display()))?,
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

/// `cxpulse generate --brokers`: the generator's traffic into the four input
/// topics, with a progress line; SIGINT/SIGTERM stops it after a flush.
fn generate_to_kafka(
    config: Option<&std::path::Path>,
    brokers: &str,
    speed: Option<f64>,
    opts: cxpulse::generate::GenerateOptions,
) -> anyhow::Result<()> {
    use cxpulse::pipeline::feed::{produce, FeedOptions, FeedStats};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if let Some(s) = speed {
        anyhow::ensure!(
            s.is_finite() && s > 0.0,
            "--speed: must be a positive number"
        );
    }
    let cfg = Config::load(config)?;
    let generator = cxpulse::generate::Generator::try_new(opts)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        // A small runtime on its own thread only waits for the signal.
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(cxpulse::pipeline::shutdown_signal());
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let feed = FeedOptions {
        client: cxpulse::pipeline::producer_config(&cfg, brokers),
        topics: cfg.kafka.topics.inputs().map(str::to_string),
        time_scale: speed,
        progress: true,
    };
    let stats = Arc::new(FeedStats::default());
    produce(&feed, generator, &stop, &stats)?;
    tracing::info!(
        records = stats.acked.load(Ordering::Relaxed),
        brokers,
        "generated into Kafka"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::error_message;
    use anyhow::Context;

    #[test]
    fn a_closed_pipe_is_found_under_the_replay_error() {
        let write = |kind| cxpulse::replay::ReplayError::Io {
            what: "writing",
            path: "-".into(),
            source: std::io::Error::new(kind, "write failed"),
        };
        let closed = anyhow::Error::new(write(std::io::ErrorKind::BrokenPipe));
        assert!(super::is_broken_pipe(&closed));
        let full = anyhow::Error::new(write(std::io::ErrorKind::StorageFull));
        assert!(!super::is_broken_pipe(&full));
    }

    #[test]
    fn an_error_message_names_each_cause_once() {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A library error that carries its cause in its message and as its source.
        let io = cxpulse::replay::ReplayError::Io {
            what: "reading",
            path: "x.jsonl".into(),
            source: missing(),
        };
        assert_eq!(
            error_message(&anyhow::Error::new(io)),
            "reading x.jsonl: no such file"
        );
        // A context over a cause that does not repeat it keeps both.
        let plain: anyhow::Result<()> = Err(missing()).context("creating out.jsonl");
        assert_eq!(
            error_message(&plain.unwrap_err()),
            "creating out.jsonl: no such file"
        );
    }
}
