//! Decoding events ahead of processing ([`Lookahead`]).
//!
//! Most of the engine's time per event goes to waiting on memory: the dedup
//! table is probed at a random place for nearly every event. When events
//! are decoded before they are processed, their slots can be prefetched
//! ([`Engine::prefetch`]) and load while earlier events run.
//!
//! Events are prefetched in batches of [`BATCH`], back to back, one batch
//! ahead of processing. Once the table is hundreds of MiB, nearly every
//! probe also misses the TLB, and a prefetch waits for its page walk;
//! prefetches issued together walk in parallel, where one prefetch per
//! event (as this module first did) paid a whole walk per event. Measured
//! in `PHASES=steady` of the throughput bench: +11-20% events/s (see
//! `benches/HISTORY.md`).
//!
//! Results are the same as processing each input as it is decoded: only
//! the moment a valid event is processed moves, by at most `2 × BATCH`
//! inputs, and an invalid input first processes every event held back, so
//! the engine sees every input in the same order.

use super::watermark::PartitionId;
use super::Engine;
use crate::decode::DecodeError;
use crate::event::Event;
use crate::record::KpiRecord;
use crate::time::Micros;

/// Events decoded before their slots are prefetched together (8, 32 and
/// 64 measured slower than 16).
const BATCH: usize = 16;

type Held = (PartitionId, Event, Micros);

/// Feeds one stream of raw inputs to an engine, up to `2 × BATCH` valid
/// events behind decoding. Call [`Lookahead::finish`] at the end of the
/// input (and before anything that must see every input processed, such
/// as a snapshot).
#[derive(Debug, Default)]
pub struct Lookahead {
    /// Decoded, not prefetched yet.
    pending: Vec<Held>,
    /// Prefetched, processed next (before `pending`).
    ready: Vec<Held>,
}

impl Lookahead {
    /// Decodes `bytes` from partition `p` at wall time `wall`: a valid event
    /// is held back (and once a batch is full, the batch before it is
    /// processed); invalid input is counted as [`Engine::ingest`] counts
    /// it, after every held event.
    pub fn ingest(
        &mut self,
        engine: &mut Engine,
        p: PartitionId,
        bytes: &[u8],
        wall: Micros,
        out: &mut Vec<KpiRecord>,
    ) -> Result<(), DecodeError> {
        match engine.decode(bytes) {
            Ok(event) => {
                self.pending.push((p, event, wall));
                if self.pending.len() == BATCH {
                    for (_, event, _) in &self.pending {
                        engine.prefetch(event);
                    }
                    for (p, event, wall) in self.ready.drain(..) {
                        engine.process(p, event, wall, out);
                    }
                    std::mem::swap(&mut self.pending, &mut self.ready);
                }
                Ok(())
            }
            Err(e) => {
                self.finish(engine, out);
                engine.reject(p, wall);
                Err(e)
            }
        }
    }

    /// Processes every event held back, in input order.
    pub fn finish(&mut self, engine: &mut Engine, out: &mut Vec<KpiRecord>) {
        for (p, event, wall) in self.ready.drain(..).chain(self.pending.drain(..)) {
            engine.process(p, event, wall, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::generate::{GenerateOptions, Generator};

    /// Through the lookahead, the engine emits the same records and counts
    /// the same as when each input is processed as it is decoded, on
    /// disordered traffic with late events, duplicates and invalid lines
    /// (which make it process its held events early).
    #[test]
    fn same_results_as_processing_each_input_at_once() {
        let opts = GenerateOptions {
            rate: 50.0,
            duration_ms: 900_000,
            malformed_fraction: 0.01,
            late_fraction: 0.01,
            duplicate_fraction: 0.01,
            ..GenerateOptions::default()
        };
        let lines: Vec<String> = Generator::new(opts).map(|r| r.payload).collect();
        let settings = Config::default().engine_settings().unwrap();

        let mut direct = Engine::new(settings.clone());
        let mut direct_out = Vec::new();
        let mut ahead_engine = Engine::new(settings);
        let mut ahead = Lookahead::default();
        let mut ahead_out = Vec::new();
        let mut rejected = [0, 0];
        for line in &lines {
            rejected[0] += usize::from(
                direct
                    .ingest(0, line.as_bytes(), 0, &mut direct_out)
                    .is_err(),
            );
            rejected[1] += usize::from(
                ahead
                    .ingest(&mut ahead_engine, 0, line.as_bytes(), 0, &mut ahead_out)
                    .is_err(),
            );
        }
        ahead.finish(&mut ahead_engine, &mut ahead_out);
        direct.finish(&mut direct_out);
        ahead_engine.finish(&mut ahead_out);

        assert!(rejected[0] > 100, "the traffic has invalid lines");
        assert_eq!(rejected[0], rejected[1]);
        assert!(direct_out.len() > 1000);
        assert_eq!(direct_out, ahead_out);
        assert_eq!(direct.counters(), ahead_engine.counters());
        assert!(direct.counters().duplicates > 100 && direct.counters().late > 100);
    }
}
