//! librdkafka's mock cluster as a standalone process, for scripts that need
//! a broker to kill a real `cxpulse` process against (`.ci/crash-kill9.sh`):
//! no Kafka install needed. Creates the topics of the default config
//! (`PARTITIONS`, default 4, per topic; the state topic with one), prints
//! the bootstrap servers on stdout, and runs until stdin closes or SIGTERM.
//!
//! `cargo run --release --example mock_broker`

use cxpulse::config::Config;
use cxpulse::pipeline::embedded::{create_topics, EmbeddedCluster};
use std::io::{BufRead, Write};

fn main() -> anyhow::Result<()> {
    let partitions = std::env::var("PARTITIONS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4);
    let cluster = EmbeddedCluster::start(1)?;
    create_topics(&cluster, &Config::default(), partitions)?;
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush()?;
    // Until stdin closes (the script's coprocess pipe) or the process dies.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
