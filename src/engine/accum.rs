//! Mergeable accumulators: the one aggregate state every KPI uses.
//!
//! An [`Acc`] holds a count, a numerator, a sum and (for distributions) a
//! quantile sketch. Every field merges by addition, so pane accumulators
//! combine into window accumulators in any order with the same result
//! (floating-point sums up to rounding).

use super::sketch::QuantileSketch;
use serde::{Deserialize, Serialize};

/// What one observation contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// One more event (counts; the denominator of a ratio).
    Count,
    /// One more value for a mean, sum or score.
    Value(f64),
    /// One more value for a distribution (kept in the sketch too).
    Sample(f64),
    /// One more denominator, and one more numerator when `true`.
    Hit(bool),
    /// One more numerator only (orders for conversion, reopens, cancellations).
    Numerator,
}

/// Aggregate state of one KPI in one pane or window and group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    /// Observations (the denominator for ratios).
    pub n: u64,
    /// Numerator for ratios and churn.
    pub num: u64,
    /// Sum of values.
    pub sum: f64,
    /// Distribution of samples.
    pub sketch: Option<Box<QuantileSketch>>,
}

impl Acc {
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Count => self.n += 1,
            Update::Value(v) => {
                self.n += 1;
                self.sum += v;
            }
            Update::Sample(v) => {
                self.n += 1;
                self.sum += v;
                self.sketch.get_or_insert_with(Default::default).add(v);
            }
            Update::Hit(hit) => {
                self.n += 1;
                self.num += u64::from(hit);
            }
            Update::Numerator => self.num += 1,
        }
    }

    pub fn merge(&mut self, other: &Acc) {
        self.n += other.n;
        self.num += other.num;
        self.sum += other.sum;
        if let Some(s) = &other.sketch {
            match &mut self.sketch {
                Some(mine) => mine.merge(s),
                None => self.sketch = Some(s.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn update() -> impl Strategy<Value = Update> {
        prop_oneof![
            Just(Update::Count),
            (0u32..1000).prop_map(|v| Update::Value(f64::from(v))),
            (0u32..100_000).prop_map(|v| Update::Sample(f64::from(v) / 8.0)),
            any::<bool>().prop_map(Update::Hit),
            Just(Update::Numerator),
        ]
    }

    proptest! {
        /// Splitting observations into panes and merging equals one accumulator.
        #[test]
        fn merging_panes_equals_direct(
            updates in proptest::collection::vec(update(), 0..100),
            cuts in proptest::collection::vec(0usize..100, 0..5),
        ) {
            let mut direct = Acc::default();
            updates.iter().for_each(|u| direct.apply(*u));
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(updates.len())).collect();
            bounds.push(0);
            bounds.push(updates.len());
            bounds.sort();
            let mut merged = Acc::default();
            for w in bounds.windows(2).rev() {
                let mut pane = Acc::default();
                updates[w[0]..w[1]].iter().for_each(|u| pane.apply(*u));
                merged.merge(&pane);
            }
            prop_assert_eq!(merged.n, direct.n);
            prop_assert_eq!(merged.num, direct.num);
            // Values are integers / eighths, so sums are exact in any order.
            prop_assert_eq!(merged.sum, direct.sum);
            prop_assert_eq!(merged.sketch, direct.sketch);
        }
    }
}
