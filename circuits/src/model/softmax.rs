//! Softmax over the last axis of an int8 tensor, with positions masked out (a causal mask), in exact integers:
//! the row maximum `m` of the kept elements, `e_j = exp[x_j − m + 255]` from a 256-entry table on the difference
//! (`[−255, 0]`, every value two int8s can give), the row sum `S = Σ e_j` over the kept elements, and
//! `p_j = ⌊(254·e_j + S) / (2S)⌋ = round(127·e_j / S)` (half up) for a kept element, exactly 0 for a masked one.
//! The outputs are int8 probabilities at scale 1/127 (`p_j ≤ 127` since `e_j ≤ S`).

use serde::{Deserialize, Serialize};

use super::TensorId;

/// Entries of the exponential table: one per difference `d ∈ [−255, 0]`.
pub const EXP_TABLE_LEN: usize = 256;
/// Largest exponential-table value a model may hold.
pub const MAX_EXP_VALUE: i64 = 1 << 16;
/// Largest softmax row.
pub const MAX_SOFTMAX_ROW: usize = 1 << 16;
/// The largest probability: outputs are `round(PROBABILITY_ONE · e / S)`, at scale `1 / PROBABILITY_ONE`.
pub const PROBABILITY_ONE: i64 = 127;
/// Bits of a probability: `[0, 2^7)`.
pub const PROBABILITY_BITS: u32 = 7;

/// Softmax over rows of `row_len` consecutive elements of tensor `input` (its last axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    /// The tensor read, whole.
    pub input: TensorId,
    /// Elements per row (the last axis).
    pub row_len: usize,
    /// Whether each element of the input takes part (`false`: masked out, its output 0); every row keeps one at
    /// least.
    pub keep: Vec<bool>,
    /// `exp[d + 255] = round(2^E · e^(s·d))` for the input scale `s`: nonnegative, at most [`MAX_EXP_VALUE`],
    /// with `exp[255] ≥ 1` (the row maximum's own term, so that `S > 0`).
    pub exp: Vec<i64>,
}

/// What a softmax computes for one row: the row maximum, each kept element's exponential (0 masked), the sum and
/// the outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftmaxRow {
    /// The maximum of the kept elements.
    pub max: i64,
    /// `exp[x_j − max + 255]` of each kept element, 0 for a masked one.
    pub exps: Vec<i64>,
    /// The sum of the exponentials.
    pub sum: i64,
    /// The probabilities.
    pub outputs: Vec<i64>,
}

impl Softmax {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.keep.len().checked_div(self.row_len).unwrap_or(0)
    }

    /// The exponential of a difference `d = x − max` (0 outside `[−255, 0]`, which a valid input never gives).
    pub fn exp_of(&self, d: i64) -> i64 {
        (d.checked_add(255))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.exp.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// One row: `x` its inputs, `keep` which take part.
    pub fn row(&self, x: &[i64], keep: &[bool]) -> SoftmaxRow {
        let kept = || x.iter().zip(keep).filter(|(_, &k)| k).map(|(&v, _)| v);
        let max = kept().max().unwrap_or(0);
        let exps: Vec<i64> = (x.iter().zip(keep))
            .map(|(&v, &k)| if k { self.exp_of(v - max) } else { 0 })
            .collect();
        let sum: i64 = exps.iter().sum();
        let outputs = (exps.iter().zip(keep))
            .map(|(&e, &k)| match (k, sum) {
                (true, s) if s > 0 => (2 * PROBABILITY_ONE * e + s).div_euclid(2 * s),
                _ => 0,
            })
            .collect();
        SoftmaxRow {
            max,
            exps,
            sum,
            outputs,
        }
    }

    /// Every row of `input`, in order.
    pub fn eval_rows(&self, input: &[i64]) -> Vec<SoftmaxRow> {
        let n = self.row_len.max(1);
        input
            .chunks(n)
            .zip(self.keep.chunks(n))
            .map(|(x, k)| self.row(x, k))
            .collect()
    }

    /// The largest sum a row can reach: its kept elements times the largest exponential.
    pub fn max_sum(&self) -> i64 {
        let kept = (self.keep.chunks(self.row_len.max(1)))
            .map(|k| k.iter().filter(|&&k| k).count())
            .max()
            .unwrap_or(0);
        kept as i64 * self.exp.iter().copied().max().unwrap_or(0)
    }

    /// Bits of the division's remainder `r ∈ [0, 2S)` and of `2S − 1 − r`: enough for `2 · max_sum − 1`.
    pub fn remainder_bits(&self) -> u32 {
        let top = (2 * self.max_sum() - 1).max(1);
        64 - top.leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(keep: Vec<bool>) -> Softmax {
        // exp[d + 255] = round(64 · 2^(d/8)): halves every 8 steps down from 64 at d = 0.
        let exp = (-255..=0)
            .map(|d: i64| (64.0 * 2f64.powf(d as f64 / 8.0)).round() as i64)
            .collect();
        Softmax {
            input: 0,
            row_len: 4,
            keep,
            exp,
        }
    }

    #[test]
    fn rows_round_to_the_nearest_probability_and_masked_positions_are_zero() {
        let s = softmax(vec![true; 4]);
        // Differences 0, −8, −16, −255: exponentials 64, 32, 16, 0; sum 112.
        let row = s.row(&[10, 2, -6, -128], &[true; 4]);
        assert_eq!((row.max, row.sum), (10, 112));
        assert_eq!(row.exps, [64, 32, 16, 0]);
        // 127·64/112 = 72.57 → 73; 127·32/112 = 36.29 → 36; 127·16/112 = 18.14 → 18.
        assert_eq!(row.outputs, [73, 36, 18, 0]);
        // Masked: the largest element is left out of the maximum and the sum, and its output is 0.
        let row = s.row(&[10, 2, -6, 9], &[false, true, true, true]);
        assert_eq!(row.max, 9);
        assert_eq!(row.outputs[0], 0);
        assert_eq!(row.outputs.iter().sum::<i64>(), 127, "{:?}", row.outputs);
        // One kept element takes everything.
        let row = s.row(&[1, 2, 3, 4], &[true, false, false, false]);
        assert_eq!(row.outputs, [127, 0, 0, 0]);
    }

    #[test]
    fn the_remainder_bits_cover_twice_the_largest_sum() {
        let s = softmax(vec![true, true, false, false, true, true, true, false]);
        assert_eq!(s.max_sum(), 3 * 64);
        assert_eq!(s.remainder_bits(), 9, "2·192 − 1 = 383 < 2^9");
    }
}
