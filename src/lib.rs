//! cxpulse: event-time-correct customer-experience KPIs from event streams.
//!
//! The crate is laid out as the data flows:
//!
//! - input: [`input`] (JSONL files; Kafka in the pipeline) →
//! - decode: [`decode`] validates the event contract into [`event::Event`]s →
//! - engine: [`engine`] (watermarks, windows, entity state, KPIs; pure and
//!   deterministic, no I/O) →
//! - outputs: [`record::KpiRecord`]s written by [`output`]; Prometheus
//!   metrics in [`metrics`], served with the KPI API by [`http`].
//!
//! [`checkpoint`] stores engine state with the input offsets it covers.
//! [`pipeline`] runs the engine between Kafka topics (`cxpulse run`, with an
//! embedded demo cluster by default); [`replay`] wires a file through the
//! engine; [`generate`] makes synthetic traffic; [`config`] is the typed
//! configuration.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod engine;
pub mod event;
pub mod generate;
pub mod http;
pub mod input;
pub mod intern;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod time;
