//! Outputs for files: KPI records and dead letters as JSON lines (or stdout
//! for `-`). The Kafka and Prometheus outputs live in the pipeline.

use crate::decode::DecodeError;
use crate::record::KpiRecord;
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// A buffered JSONL writer to a file or stdout.
pub struct JsonLinesWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    buf: Vec<u8>,
}

impl JsonLinesWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        let inner: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path)?)
        };
        Ok(JsonLinesWriter {
            out: BufWriter::with_capacity(1 << 20, inner),
            buf: Vec::with_capacity(512),
        })
    }

    pub fn write_record(&mut self, record: &KpiRecord) -> io::Result<()> {
        self.buf.clear();
        record.write_json(&mut self.buf);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)
    }

    pub fn write_dead_letter(&mut self, letter: &DeadLetter) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, letter)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)
    }

    /// Flushes explicitly (never rely on drop to surface write errors).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A rejected input, as written to the dead-letter output.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter<'a> {
    /// `invalid` or `late`.
    pub kind: &'static str,
    /// Short machine label (`missing_field`, `not_json`, …).
    pub reason_code: &'static str,
    /// Human reason naming the field.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    /// Where it came from: `file:line` or `topic/partition@offset`.
    pub source: String,
    /// The original input (lossy UTF-8 if it was not UTF-8).
    pub line: std::borrow::Cow<'a, str>,
}

impl<'a> DeadLetter<'a> {
    pub fn invalid(err: &'a DecodeError, source: String, original: &'a [u8]) -> Self {
        DeadLetter {
            kind: "invalid",
            reason_code: err.kind(),
            reason: err.to_string(),
            field: err.field(),
            source,
            line: String::from_utf8_lossy(original),
        }
    }
}
