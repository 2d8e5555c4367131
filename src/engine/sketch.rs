//! A mergeable quantile sketch with bounded relative error (DDSketch-style
//! logarithmic buckets).
//!
//! Values are mapped to buckets `(γ^(i-1), γ^i]` with `γ = (1+α)/(1-α)`, so
//! any value reported for a bucket is within `α` relative error of every value
//! in it. We use `α = 0.5%`, half the contract's 1% budget. Merging two
//! sketches adds bucket counts, so pane sketches combine into window sketches
//! without keeping observations.
//!
//! Why not the `sketches-ddsketch` crate: the contract defines quantiles by
//! nearest rank (rank ⌈q·n⌉); that crate answers rank `q·(n-1)`, which picks
//! a different observation for small `n` (p90 of three values), an error far
//! above 1%. Owning the bucket walk lets us answer the contract's rank.

use serde::{Deserialize, Serialize};

/// Relative accuracy of reported quantiles.
pub const RELATIVE_ACCURACY: f64 = 0.005;

fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// Stores with at most this many buckets stay sparse.
const SPARSE_LIMIT: usize = 48;

/// Bucket counts: sparse sorted `(index, count)` pairs while small (most
/// pane sketches), dense `counts[index - offset]` once large (window
/// roll-ups), so that merging many small sketches into one stays linear in
/// the small ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Store {
    Sparse(Vec<(i32, u64)>),
    Dense { offset: i32, counts: Vec<u64> },
}

impl Default for Store {
    fn default() -> Self {
        Store::Sparse(Vec::new())
    }
}

impl Store {
    fn add(&mut self, index: i32, n: u64) {
        match self {
            Store::Sparse(buckets) => {
                match buckets.binary_search_by_key(&index, |b| b.0) {
                    Ok(pos) => buckets[pos].1 += n,
                    Err(pos) => buckets.insert(pos, (index, n)),
                }
                if buckets.len() > SPARSE_LIMIT {
                    self.densify();
                }
            }
            Store::Dense { offset, counts } => {
                if index < *offset {
                    let grow = (*offset - index) as usize + counts.len() / 2;
                    counts.splice(0..0, std::iter::repeat_n(0, grow));
                    *offset -= grow as i32;
                }
                let i = (index - *offset) as usize;
                if i >= counts.len() {
                    counts.resize(i + 1 + counts.len() / 2, 0);
                }
                counts[i] += n;
            }
        }
    }

    fn densify(&mut self) {
        if let Store::Sparse(buckets) = self {
            let (lo, hi) = match (buckets.first(), buckets.last()) {
                (Some(f), Some(l)) => (f.0, l.0),
                _ => return,
            };
            let mut counts = vec![0; (hi - lo + 1) as usize];
            for &(i, n) in buckets.iter() {
                counts[(i - lo) as usize] += n;
            }
            *self = Store::Dense { offset: lo, counts };
        }
    }

    fn merge(&mut self, other: &Store) {
        match other {
            Store::Sparse(b) if b.is_empty() => {}
            _ if self.is_empty() => self.clone_from(other),
            Store::Sparse(buckets) => match self {
                Store::Sparse(mine) => {
                    merge_sorted(mine, buckets);
                    if mine.len() > SPARSE_LIMIT {
                        self.densify();
                    }
                }
                Store::Dense { .. } => {
                    for &(i, n) in buckets {
                        self.add(i, n);
                    }
                }
            },
            Store::Dense { offset, counts } => {
                let (Some(lo), Some(hi)) = (
                    counts.iter().position(|&n| n > 0),
                    counts.iter().rposition(|&n| n > 0),
                ) else {
                    return;
                };
                // Widen this store to their non-empty range once (adding
                // zero to both ends), then add slice to slice.
                self.densify();
                self.add(*offset + lo as i32, 0);
                self.add(*offset + hi as i32, 0);
                if let Store::Dense {
                    offset: mine_offset,
                    counts: mine,
                } = self
                {
                    let at = (*offset + lo as i32 - *mine_offset) as usize;
                    for (m, n) in mine[at..].iter_mut().zip(&counts[lo..=hi]) {
                        *m += n;
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Store::Sparse(b) => b.is_empty(),
            Store::Dense { counts, .. } => counts.iter().all(|&n| n == 0),
        }
    }

    /// Non-empty buckets in ascending index order. One iterator type for
    /// both representations (one side is empty), so a quantile walk neither
    /// allocates nor dispatches dynamically per bucket.
    fn buckets(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        let (sparse, offset, counts): (&[(i32, u64)], i32, &[u64]) = match self {
            Store::Sparse(b) => (b, 0, &[]),
            Store::Dense { offset, counts } => (&[], *offset, counts),
        };
        sparse.iter().copied().chain(
            counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(move |(j, &n)| (offset + j as i32, n)),
        )
    }
}

/// Adds the sorted buckets `theirs` into the sorted buckets `mine`, in
/// place and in one pass: `mine` grows by the indices it lacks, then both
/// are merged from the back (every write lands at or after the read).
fn merge_sorted(mine: &mut Vec<(i32, u64)>, theirs: &[(i32, u64)]) {
    let (mut a, mut b, mut missing) = (0, 0, 0);
    while b < theirs.len() {
        if a == mine.len() || theirs[b].0 < mine[a].0 {
            missing += 1;
            b += 1;
        } else {
            b += usize::from(theirs[b].0 == mine[a].0);
            a += 1;
        }
    }
    let (mut a, mut b) = (mine.len(), theirs.len());
    mine.resize(a + missing, (0, 0));
    let mut w = mine.len();
    while b > 0 {
        w -= 1;
        if a > 0 && mine[a - 1].0 > theirs[b - 1].0 {
            a -= 1;
            mine[w] = mine[a];
        } else if a > 0 && mine[a - 1].0 == theirs[b - 1].0 {
            a -= 1;
            b -= 1;
            mine[w] = (mine[a].0, mine[a].1 + theirs[b].1);
        } else {
            b -= 1;
            mine[w] = theirs[b];
        }
    }
}

/// Quantile sketch over real values (negative, zero and positive).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuantileSketch {
    positive: Store,
    negative: Store,
    zeros: u64,
    count: u64,
}

fn bucket_index(magnitude: f64) -> i32 {
    (magnitude.ln() / gamma_ln()).ceil() as i32
}

fn bucket_value(index: i32) -> f64 {
    let g = gamma_ln();
    // 2·γ^i / (γ + 1): the point with equal relative distance to both edges.
    2.0 * (g * index as f64).exp() / (g.exp() + 1.0)
}

impl QuantileSketch {
    /// Not inlined on purpose: inlined into the pane update, LLVM hoisted
    /// both `ln(value)` and `ln(-value)` above the match on the update
    /// kind (`ln` has no side effects), so every observation of every KPI
    /// paid two logarithms that only samples (under a tenth of them) need.
    #[inline(never)]
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        if value > 0.0 {
            self.positive.add(bucket_index(value), 1);
        } else if value < 0.0 {
            self.negative.add(bucket_index(-value), 1);
        } else {
            self.zeros += 1;
        }
    }

    pub fn merge(&mut self, other: &QuantileSketch) {
        self.count += other.count;
        self.zeros += other.zeros;
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The nearest-rank quantile: the value of rank ⌈q·n⌉ (at least 1),
    /// within [`RELATIVE_ACCURACY`]. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        // Ascending order: most negative first.
        for (i, n) in self.negative.buckets().rev() {
            seen += n;
            if seen >= rank {
                return Some(-bucket_value(i));
            }
        }
        seen += self.zeros;
        if seen >= rank {
            return Some(0.0);
        }
        for (i, n) in self.positive.buckets() {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None
    }
}

impl PartialEq for QuantileSketch {
    /// Same counts in the same buckets, whatever the representation.
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.zeros == other.zeros
            && self.positive.buckets().eq(other.positive.buckets())
            && self.negative.buckets().eq(other.negative.buckets())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    #[test]
    fn nearest_rank_on_three_values() {
        let mut s = QuantileSketch::default();
        for v in [10.0, 20.0, 30.0] {
            s.add(v);
        }
        // rank ⌈0.9·3⌉ = 3 → the largest value, not the middle one.
        let p90 = s.quantile(0.9).unwrap();
        assert!((p90 - 30.0).abs() / 30.0 <= RELATIVE_ACCURACY);
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 20.0).abs() / 20.0 <= RELATIVE_ACCURACY);
    }

    #[test]
    fn zero_and_negative_values() {
        let mut s = QuantileSketch::default();
        for v in [-5.0, 0.0, 0.0, 7.0] {
            s.add(v);
        }
        assert!((s.quantile(0.25).unwrap() + 5.0).abs() <= 5.0 * RELATIVE_ACCURACY);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(0.99).unwrap() - 7.0).abs() <= 7.0 * RELATIVE_ACCURACY);
    }

    proptest! {
        /// Merging stores (sparse or dense, overlapping or not) adds their
        /// bucket counts, as a map from index to count would.
        #[test]
        fn store_merge_adds_bucket_counts(
            a in proptest::collection::vec((-40i32..40, 1u64..5), 0..120),
            b in proptest::collection::vec((-60i32..30, 1u64..5), 0..120),
        ) {
            let store = |adds: &[(i32, u64)]| {
                let mut s = Store::default();
                adds.iter().for_each(|&(i, n)| s.add(i, n));
                s
            };
            let mut want = std::collections::BTreeMap::new();
            for &(i, n) in a.iter().chain(&b) {
                *want.entry(i).or_insert(0) += n;
            }
            let mut merged = store(&a);
            merged.merge(&store(&b));
            let got: Vec<(i32, u64)> = merged.buckets().collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn within_relative_error_and_merge_equals_direct(
            a in proptest::collection::vec(0.001f64..1.0e6, 1..200),
            b in proptest::collection::vec(-100.0f64..1.0e5, 0..200),
        ) {
            let mut sa = QuantileSketch::default();
            a.iter().for_each(|v| sa.add(*v));
            let mut sb = QuantileSketch::default();
            b.iter().for_each(|v| sb.add(*v));
            let mut direct = QuantileSketch::default();
            a.iter().chain(b.iter()).for_each(|v| direct.add(*v));
            sa.merge(&sb);
            let all: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(sa.quantile(q), direct.quantile(q));
                let want = exact(&all, q);
                let got = sa.quantile(q).unwrap();
                prop_assert!((got - want).abs() <= want.abs() * RELATIVE_ACCURACY * 1.0001 + 1e-12,
                    "q={} got={} want={}", q, got, want);
            }
        }
    }
}
