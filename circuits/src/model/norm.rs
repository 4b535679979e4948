//! Layer normalization over the last axis of an int8 or 16-bit tensor, in exact integers (issue #17): for a row of
//! `n` elements `x_j`,
//!
//! - the centred values `c_j = n·x_j − S` with `S = Σ x_j` (`n` times `x_j − mean`, so no division),
//! - `V = Σ c_j² + E` (`n³/s²` times the variance plus ε, with `E = round(ε·n³/s²) ≥ 1` a constant of the layer),
//! - the inverse square root `q = ⌊2^F / √V⌋`: the one integer with `q²·V ≤ 2^(2F) < (q + 1)²·V`,
//! - the outputs `y_j = clamp((c_j·q·M + 2^(s−1)) >> s)`, since `(x_j − mean)/√(var + ε) = √n · c_j / √V ≈
//!   √n · c_j · q / 2^F`: `M / 2^s` is `√n / (2^F · s_out)`.
//!
//! γ and β are not here: the importer leaves them to an affine node, which folds into the linear layer that reads
//! the normalized values. Every quantity is an integer far below the field's modulus (`|c_j| < 2^28`, `V < 2^62`,
//! `q < 2^B`, `|c_j·q| < 2^48`), so the circuit's identities hold over the integers and `q` is unique. A 16-bit
//! input (the residual stream of a transformer, where int8 steps cost most of the quantized model's fidelity)
//! only widens `c_j` and `V`: rows whose `V` could reach 2^62 are refused.

use serde::{Deserialize, Serialize};

use super::{Activation, OutputRange, Rescale, TensorId, ACT_BITS, MAX_OUTPUT_BITS};

/// Largest row a layer normalization takes (of int8 inputs; 16-bit rows are bounded by [`MAX_NORM_VARIANCE`]).
pub const MAX_NORM_ROW: usize = 1 << 12;
/// Bound on `V = Σ c_j² + E` over every possible row (the native engine's `i64` arithmetic).
pub const MAX_NORM_VARIANCE: i128 = 1 << 62;
/// Largest `|c_j · q|` in bits: the accumulator bound of the requantization.
pub const MAX_NORM_PRODUCT_BITS: u32 = 48;
/// Largest `F` (so that `2^(2F)` fits in an `i128` with room to spare).
pub const MAX_ROOT_SHIFT: u32 = 62;
/// Largest `E`.
pub const MAX_NORM_EPSILON: i64 = 1 << 52;

/// Layer normalization (without γ and β) over rows of `row_len` consecutive elements of tensor `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    /// The tensor read, whole.
    pub input: TensorId,
    /// Width of the input's values: 8 (int8), or 16 (the tensor's own width, which validation checks).
    pub input_bits: u32,
    /// Elements per row (the normalized axes).
    pub row_len: usize,
    /// `E ≥ 1`, added to `Σ c_j²`: ε at the scale of `V`.
    pub epsilon: i64,
    /// `F`: the inverse square root is `⌊2^F / √V⌋`.
    pub root_shift: u32,
    /// `B`: every inverse square root lies in `[0, 2^B)` (the largest, at `V = E`, included).
    pub root_bits: u32,
    /// Requantization multiplier `M` of `c_j · q` (positive, below 2^32).
    pub multiplier: i64,
    /// Requantization shift `s`.
    pub shift: u32,
    /// Activation fused into the clamp.
    pub activation: Activation,
    /// Width of the outputs: 8, or 16 (activations that only linear layers read).
    pub output_bits: u32,
}

/// What a layer normalization computes for one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormRow {
    /// `S = Σ x_j`.
    pub sum: i64,
    /// `c_j = n·x_j − S`.
    pub centred: Vec<i64>,
    /// `V = Σ c_j² + E`.
    pub variance: i64,
    /// `q = ⌊2^F / √V⌋`.
    pub root: i64,
    /// `c_j · q`: what each output requantizes.
    pub products: Vec<i64>,
    /// The outputs.
    pub outputs: Vec<i64>,
}

impl LayerNorm {
    /// Number of rows of an input of `len` elements.
    pub fn rows(&self, len: usize) -> usize {
        len.checked_div(self.row_len).unwrap_or(0)
    }

    /// The range the requantized outputs are clamped to.
    pub fn output_range(&self) -> OutputRange {
        OutputRange::of(self.output_bits, self.activation)
    }

    /// Largest `|c_j|`: `(n − 1)·(hi − lo)` for inputs in `[lo, hi]` (255 for int8, 65,535 for 16 bits; at least
    /// 1, saturating).
    pub fn centred_bound(&self) -> i64 {
        Self::centred_bound_of(self.row_len, self.input_bits)
    }

    /// [`Self::centred_bound`] of rows of `row_len` values of `input_bits` bits.
    pub fn centred_bound_of(row_len: usize, input_bits: u32) -> i64 {
        let width = OutputRange::of(input_bits.clamp(ACT_BITS, MAX_OUTPUT_BITS), Activation::Identity);
        (row_len.max(1) as i64 - 1)
            .saturating_mul(width.hi() - width.lo())
            .max(1)
    }

    /// Largest `V`: `n · centred_bound² + E` (saturating).
    pub fn variance_bound(&self) -> i128 {
        Self::variance_bound_of(self.row_len, self.input_bits, self.epsilon)
    }

    /// [`Self::variance_bound`] of rows of `row_len` values of `input_bits` bits with `E = epsilon`.
    pub fn variance_bound_of(row_len: usize, input_bits: u32, epsilon: i64) -> i128 {
        let c = i128::from(Self::centred_bound_of(row_len, input_bits));
        (row_len as i128)
            .saturating_mul(c * c)
            .saturating_add(i128::from(epsilon))
    }

    /// `2^(2F)`.
    pub fn root_square(&self) -> u128 {
        1u128 << (2 * self.root_shift.min(MAX_ROOT_SHIFT))
    }

    /// `⌊2^F / √v⌋ = ⌊√⌊2^(2F) / v⌋⌋` for `v ≥ 1` (0 for `v ≤ 0`, which a valid model never gives).
    pub fn root_of(&self, v: i64) -> i64 {
        if v <= 0 {
            return 0;
        }
        i64::try_from((self.root_square() / v as u128).isqrt()).unwrap_or(i64::MAX)
    }

    /// The requantization of every `c_j · q`: no bias, `|c_j · q| < centred_bound · 2^B`.
    pub fn rescale(&self) -> Rescale {
        Rescale {
            multiplier: self.multiplier,
            shift: self.shift,
            bias: 0,
            accumulator_bound: i128::from(self.centred_bound()) * ((1i128 << self.root_bits.min(63)) - 1),
        }
    }

    /// Bits of each slack, `2^(2F) − q²·V` and `(q + 1)²·V − 2^(2F) − 1`: both lie in `[0, (2q + 1)·V)` (the lower
    /// one because `(q + 1)²·V > 2^(2F)`), with `q < 2^B` and `V` at most [`Self::variance_bound`].
    pub fn slack_bits(&self) -> u32 {
        let top = ((1u128 << (self.root_bits.min(63) + 1)) - 1).saturating_mul(self.variance_bound().max(1) as u128);
        128 - top.leading_zeros()
    }

    /// One row of inputs.
    pub fn row(&self, x: &[i64]) -> NormRow {
        let n = x.len() as i64;
        // Wrapping: identical for a validated model and inputs of its width, and no panic on anything else.
        let sum = x.iter().fold(0i64, |s, &v| s.wrapping_add(v));
        let centred: Vec<i64> = x.iter().map(|&v| n.wrapping_mul(v).wrapping_sub(sum)).collect();
        let variance = (centred.iter()).fold(self.epsilon, |s, &c| s.wrapping_add(c.wrapping_mul(c)));
        let root = self.root_of(variance);
        let products: Vec<i64> = centred.iter().map(|&c| c.wrapping_mul(root)).collect();
        let (rescale, range) = (self.rescale(), self.output_range());
        let outputs = products.iter().map(|&p| rescale.requantize(p, range).y).collect();
        NormRow {
            sum,
            centred,
            variance,
            root,
            products,
            outputs,
        }
    }

    /// Every row of `input`, in order.
    pub fn eval_rows(&self, input: &[i64]) -> Vec<NormRow> {
        input.chunks(self.row_len.max(1)).map(|x| self.row(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(row_len: usize, epsilon: i64, root_shift: u32, root_bits: u32) -> LayerNorm {
        LayerNorm {
            input: 0,
            input_bits: 8,
            row_len,
            epsilon,
            root_shift,
            root_bits,
            multiplier: 1 << 12,
            shift: 20,
            activation: Activation::Identity,
            output_bits: 8,
        }
    }

    #[test]
    fn the_root_is_the_floor_of_the_inverse_square_root() {
        let l = norm(4, 1, 20, 21);
        for v in [1i64, 2, 3, 4, 99, 100, 101, 1 << 20, (1 << 40) + 7] {
            let q = l.root_of(v) as i128;
            let (p, v) = (1i128 << 40, v as i128);
            assert!(q * q * v <= p && (q + 1) * (q + 1) * v > p, "v = {v}, q = {q}");
        }
        assert_eq!(l.root_of(1), 1 << 20);
        assert_eq!(l.root_of(4), 1 << 19);
        assert_eq!(l.root_of(0), 0);
    }

    #[test]
    fn a_row_is_centred_scaled_by_its_variance_and_requantized() {
        let l = norm(4, 1, 20, 21);
        let row = l.row(&[10, 20, 30, 40]);
        assert_eq!(row.sum, 100);
        assert_eq!(row.centred, [-60, -20, 20, 60]);
        assert_eq!(row.variance, 2 * 3600 + 2 * 400 + 1);
        assert_eq!(row.root, ((1u128 << 40) / 8001).isqrt() as i64);
        // √n · c · q / 2^F is the normalized value: ±1.342, ±0.447 (the mean is 25, the std 11.18); the outputs
        // are c · q · M / 2^s rounded, M / 2^s = 2^−8 here.
        let normalized = |j: usize| 2.0 * row.centred[j] as f64 * row.root as f64 / f64::powi(2.0, 20);
        for (j, &y) in row.outputs.iter().enumerate() {
            let expected = (row.products[j] as f64 / 256.0).round();
            assert_eq!(y as f64, expected.clamp(-128.0, 127.0), "{j}");
            assert!((normalized(j) - [-1.3416, -0.4472, 0.4472, 1.3416][j]).abs() < 1e-3);
        }
        // A constant row has V = E and zero outputs.
        let flat = l.row(&[5, 5, 5, 5]);
        assert_eq!((flat.variance, flat.root, flat.outputs), (1, 1 << 20, vec![0; 4]));
    }

    #[test]
    fn the_slack_bits_cover_their_largest_values() {
        let l = norm(64, 1000, 30, 26);
        assert_eq!(l.centred_bound(), 63 * 255);
        let top = ((1u128 << 27) - 1) * l.variance_bound() as u128;
        assert!(top < 1u128 << l.slack_bits() && top >= 1u128 << (l.slack_bits() - 1));
        // Both slacks of every root fit, the lower one included.
        for v in [1000i64, 1001, 123_456_789, l.variance_bound() as i64] {
            let q = l.root_of(v) as u128;
            let (p, v) = (l.root_square(), v as u128);
            assert!(p - q * q * v < 1u128 << l.slack_bits() && (q + 1) * (q + 1) * v - p - 1 < 1u128 << l.slack_bits());
        }
    }
}
