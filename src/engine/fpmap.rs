//! Hashing and storing id fingerprints ([`Fp`]) for the engine's tables
//! ([`super::table`]): the dedup and entity tables, and the window panes,
//! whose keys pack into one `u128`.
//!
//! - an id's key is already a uniformly distributed 128-bit hash (xxh3-128
//!   of the id), so hashing it again is wasted work: [`fold`] folds it to
//!   64 bits with one multiply, mixed with a per-process random key so that
//!   ids chosen to collide in xxh3's low bits still spread over a table;
//! - the key is stored as [`FpKey`], two `u64`s (alignment 8) instead of a
//!   `u128` (alignment 16), so an entity slot does not pad to 16 bytes.

use crate::event::Fp;
use serde::{Deserialize, Serialize};
use std::hash::BuildHasher;
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

fn process_key() -> u64 {
    static KEY: OnceLock<u64> = OnceLock::new();
    *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
}

/// The 64-bit hash of `fp` that places it in a table.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_spread() {
        for i in 0..10_000u32 {
            let fp = crate::event::fingerprint(&format!("id-{i}"));
            assert_eq!(Fp::from(FpKey::from(fp)), fp);
        }
        assert_eq!(std::mem::size_of::<(FpKey, i64)>(), 24);
        // Fingerprints that differ only in their high half, or only in
        // their low half, still hash apart.
        let high: std::collections::HashSet<u64> = (0..1000u128).map(|i| fold(i << 64)).collect();
        let low: std::collections::HashSet<u64> = (0..1000u128).map(fold).collect();
        assert_eq!((high.len(), low.len()), (1000, 1000));
    }
}
