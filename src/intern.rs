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
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            names: Vec::new(),
            index: AHashMap::new(),
        };
        interner.intern("unknown");
        interner
    }
}

impl Interner {
    /// Returns the symbol of `value`, adding it on first sight.
    pub fn intern(&mut self, value: &str) -> Sym {
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
}
