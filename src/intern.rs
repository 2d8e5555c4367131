//! Interning of dimension values (`channel`, `region`, `agent_id`).
//!
//! Dimension values repeat on every event, so the engine stores them as small
//! [`Sym`] handles and resolves them back to text only when a KPI record is
//! written. Symbol 0 is always `"unknown"`, the value of an absent dimension.

use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An interned dimension value.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Sym(pub u32);

impl Sym {
    /// The value of a dimension that the event (or stored entity) does not carry.
    pub const UNKNOWN: Sym = Sym(0);
}

/// Text ↔ [`Sym`] table. Serializable so that engine checkpoints stay valid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interner {
    names: Vec<Arc<str>>,
    #[serde(skip)]
    index: AHashMap<Arc<str>, Sym>,
    #[serde(skip)]
    recent: ShortCache,
}

/// A direct-mapped cache of short values (1 to 16 bytes) in front of the
/// index. Dimension values are mostly short codes (`eu`, `chat`,
/// `agent-042`) seen again and again; a hit costs two loads and a compare
/// where the index hashes the text and compares it byte by byte. An entry
/// only ever holds a value's own symbol (symbols are never reassigned), so
/// a collision just evicts.
#[derive(Debug, Clone)]
struct ShortCache(Box<[ShortEntry; ShortCache::SLOTS]>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortEntry {
    /// The value's bytes (see [`short_words`]) and length; length 0 is an
    /// empty entry.
    words: [u64; 2],
    len: u32,
    sym: Sym,
}

impl Default for ShortCache {
    fn default() -> Self {
        let empty = ShortEntry {
            words: [0; 2],
            len: 0,
            sym: Sym::UNKNOWN,
        };
        ShortCache(Box::new([empty; ShortCache::SLOTS]))
    }
}

impl ShortCache {
    const SLOTS: usize = 256;

    /// The entry a short value would use, and its key; `None` for values
    /// too long (or empty) to cache.
    fn key(value: &[u8]) -> Option<(usize, ShortEntry)> {
        let words = short_words(value)?;
        let len = value.len() as u32;
        let h = (words[0] ^ words[1].rotate_left(32) ^ u64::from(len))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = (h >> (64 - Self::SLOTS.trailing_zeros())) as usize;
        let entry = ShortEntry {
            words,
            len,
            sym: Sym::UNKNOWN,
        };
        Some((slot, entry))
    }
}

/// Two words that, with the length, identify a value of 1 to 16 bytes:
/// overlapping little-endian loads from both ends cover every byte.
fn short_words(b: &[u8]) -> Option<[u64; 2]> {
    let n = b.len();
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let half = |i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes")));
    match n {
        8..=16 => Some([word(0), word(n - 8)]),
        4..=7 => Some([half(0) | (half(n - 4) << 32), 0]),
        1..=3 => Some([
            u64::from(b[0]) | (u64::from(b[n / 2]) << 8) | (u64::from(b[n - 1]) << 16),
            0,
        ]),
        _ => None,
    }
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            names: Vec::new(),
            index: AHashMap::new(),
            recent: ShortCache::default(),
        };
        interner.intern("unknown");
        interner
    }
}

impl Interner {
    /// Returns the symbol of `value`, adding it on first sight.
    pub fn intern(&mut self, value: &str) -> Sym {
        let short = ShortCache::key(value.as_bytes());
        if let Some((slot, key)) = short {
            let hit = self.recent.0[slot];
            if hit.words == key.words && hit.len == key.len {
                return hit.sym;
            }
        }
        let sym = self.intern_indexed(value);
        if let Some((slot, key)) = short {
            self.recent.0[slot] = ShortEntry { sym, ..key };
        }
        sym
    }

    /// [`Interner::intern`] behind the cache: the index, then a new symbol.
    fn intern_indexed(&mut self, value: &str) -> Sym {
        if let Some(sym) = self.index.get(value) {
            return *sym;
        }
        let sym = Sym(self.names.len() as u32);
        let name: Arc<str> = Arc::from(value);
        self.names.push(name.clone());
        self.index.insert(name, sym);
        sym
    }

    /// The text of a symbol.
    pub fn resolve(&self, sym: Sym) -> &Arc<str> {
        &self.names[sym.0 as usize]
    }

    /// Number of distinct values seen.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Rebuilds the lookup index after deserialization.
    pub fn rebuild_index(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), Sym(i as u32)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_zero_and_interning_is_stable() {
        let mut i = Interner::default();
        assert_eq!(i.intern("unknown"), Sym::UNKNOWN);
        let eu = i.intern("eu");
        assert_eq!(i.intern("eu"), eu);
        assert_ne!(i.intern("us"), eu);
        assert_eq!(&**i.resolve(eu), "eu");
    }

    #[test]
    fn a_cached_value_of_another_length_is_a_miss() {
        // "a", "aa" and "aaa" load the same words; only the length tells
        // them apart. Plant "a"'s entry in the slot "aaa" uses.
        let mut i = Interner::default();
        let a = i.intern("a");
        let (slot, key) = ShortCache::key(b"aaa").unwrap();
        let (_, planted) = ShortCache::key(b"a").unwrap();
        assert_eq!(planted.words, key.words);
        i.recent.0[slot] = ShortEntry { sym: a, ..planted };
        let aaa = i.intern("aaa");
        assert_ne!(aaa, a);
        assert_eq!(&**i.resolve(aaa), "aaa");
    }

    proptest::proptest! {
        /// The short-value cache never changes an answer: every value gets
        /// the symbol of its first sighting (and resolves back to itself),
        /// whatever its length and however often values collide in the cache.
        #[test]
        fn symbols_are_first_sightings(values in proptest::collection::vec("[ab\\x{e9}]{0,20}", 1..400)) {
            let mut interner = Interner::default();
            let mut first: std::collections::HashMap<&str, Sym> = Default::default();
            for v in &values {
                let next = Sym(interner.len() as u32);
                let want = *first.entry(v.as_str()).or_insert(next);
                let got = interner.intern(v);
                proptest::prop_assert_eq!(got, want, "{:?}", v);
                proptest::prop_assert_eq!(&**interner.resolve(got), v.as_str());
            }
        }
    }
}
