//! Decoding one event ahead of processing ([`Lookahead`]).
//!
//! Most of the engine's time per event goes to waiting on memory: the dedup
//! table is probed at a random place for nearly every event. When the next
//! event is decoded before the current one is processed, its slot can be
//! prefetched ([`Engine::prefetch`]) and loads while the current event
//! runs. Results are the same as processing each input as it is decoded:
//! only the moment a valid event is processed moves, by one input, and an
//! invalid input first processes the event held back, so the engine sees
//! every input in the same order.

use super::watermark::PartitionId;
use super::Engine;
use crate::decode::DecodeError;
use crate::event::Event;
use crate::record::KpiRecord;
use crate::time::Micros;

/// Feeds one stream of raw inputs to an engine, one valid event behind
/// decoding. Call [`Lookahead::finish`] at the end of the input (and before
/// anything that must see every input processed, such as a snapshot).
#[derive(Debug, Default)]
pub struct Lookahead {
    held: Option<(PartitionId, Event, Micros)>,
}

impl Lookahead {
    /// Decodes `bytes` from partition `p` at wall time `wall`: a valid event
    /// is held back (and the one held before it is processed); invalid
    /// input is counted as [`Engine::ingest`] counts it, after the held
    /// event.
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
                engine.prefetch(&event);
                if let Some((p, event, wall)) = self.held.replace((p, event, wall)) {
                    engine.process(p, event, wall, out);
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

    /// Processes the event held back, if any.
    pub fn finish(&mut self, engine: &mut Engine, out: &mut Vec<KpiRecord>) {
        if let Some((p, event, wall)) = self.held.take() {
            engine.process(p, event, wall, out);
        }
    }
}
