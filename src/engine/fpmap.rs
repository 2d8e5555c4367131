//! Hashing and storing id fingerprints ([`Fp`]) for the engine's tables:
//! the dedup and entity tables ([`super::table`]) and the window panes,
//! whose keys pack into one `u128`.
//!
//! - the key is already a uniformly distributed 128-bit hash (xxh3-128 of
//!   the id), so hashing it again is wasted work: [`fold`] (and
//!   [`FpHasher`], for `HashMap`s) folds it to 64 bits with one multiply,
//!   mixed with a per-process random key so that ids chosen to collide in
//!   xxh3's low bits still spread over a table;
//! - the key is stored as [`FpKey`], two `u64`s (alignment 8) instead of a
//!   `u128` (alignment 16), so an entity slot does not pad to 16 bytes.

use crate::event::Fp;
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

/// A fingerprint stored with 8-byte alignment (serialized as the `u128`
/// it is, so the state format does not depend on this layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "u128", into = "u128")]
pub struct FpKey(u64, u64);

impl From<Fp> for FpKey {
    fn from(fp: Fp) -> Self {
        FpKey(fp as u64, (fp >> 64) as u64)
    }
}

impl From<FpKey> for Fp {
    fn from(k: FpKey) -> Self {
        u128::from(k.0) | (u128::from(k.1) << 64)
    }
}

impl Hash for FpKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One call, so that `FpHasher` sees both halves at once.
        state.write_u128(Fp::from(*self));
    }
}

/// Builds [`FpHasher`]s with the process's random key. For keys that hash
/// as one `u128` (`write_u128`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FpBuildHasher;

fn process_key() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
}

impl BuildHasher for FpBuildHasher {
    type Hasher = FpHasher;

    fn build_hasher(&self) -> FpHasher {
        FpHasher {
            key: process_key(),
            hash: 0,
        }
    }
}

/// The 64-bit hash [`FpHasher`] gives `fp` (for tables that place keys
/// themselves, such as the dedup table).
#[inline]
pub fn fold(fp: Fp) -> u64 {
    fold_with(fp, process_key())
}

#[inline]
fn fold_with(fp: Fp, key: u64) -> u64 {
    let lo = (fp as u64) ^ key;
    let hi = ((fp >> 64) as u64) ^ key.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    let product = u128::from(lo) * u128::from(hi);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Folds a 128-bit fingerprint to 64 bits: the high and low halves of the
/// 128-bit product of its (keyed) halves, xored.
#[derive(Debug, Clone, Copy)]
pub struct FpHasher {
    key: u64,
    hash: u64,
}

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write_u128(&mut self, fp: u128) {
        self.hash = fold_with(fp, self.key);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `FpKey`; kept correct for any other caller.
        for chunk in bytes.chunks(16) {
            let mut buf = [0u8; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            let prev = self.hash;
            self.write_u128(u128::from_le_bytes(buf));
            self.hash ^= prev.rotate_left(29);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_round_trip_and_spread() {
        let mut m: HashMap<FpKey, u32, FpBuildHasher> = HashMap::default();
        for i in 0..10_000u32 {
            let fp = crate::event::fingerprint(&format!("id-{i}"));
            m.insert(fp.into(), i);
        }
        for i in 0..10_000u32 {
            let fp = crate::event::fingerprint(&format!("id-{i}"));
            assert_eq!(m.get(&fp.into()), Some(&i));
        }
        assert_eq!(std::mem::size_of::<(FpKey, i64)>(), 24);
        // Fingerprints that differ only in their high half still hash apart.
        let b = FpBuildHasher;
        let h: std::collections::HashSet<u64> = (0..1000u128)
            .map(|i| b.hash_one(FpKey::from(i << 64)))
            .collect();
        assert_eq!(h.len(), 1000);
    }
}
