//! The clamp table: every int8 requantization's quotient and output in one lookup, where the quotient is.
//!
//! A requantization row checked through the table holds its quotient `q` as a cell and looks up
//! `(lo, q, y)` in a table of `(lo, q, clamp(q, lo, 127))` for both int8 output ranges (`lo = −128`, and
//! `lo = 0` with a fused ReLU) and every `q ∈ [−2^(w−1), 2^(w−1))`, `w = CircuitParams::clamp_bits`. One lookup
//! so proves the quotient small, the output in range and the output its clamp, which the flag-and-slack
//! requantization does with a clamp gate and two range checks (slack and output) of a limb each. Rows without
//! the table selector look up `(0, 0, 0)`, the ReLU entry of `q = 0`. The table has `2^(w+1)` rows, and `2^w`
//! more per table activation fused into it ([`super::fusion`]: entries `(tag, q, f(clamp(q, lo, 127)))`).
//!
//! A requantization uses the table when its output is int8 and every quotient its accumulator bound allows fits
//! (`|q| < 2^slack` with `slack ≤ w − 1`, [`covers`]); the others (16-bit outputs, a quotient too wide) keep
//! the flag-and-slack gate.

use halo2_proofs::{
    circuit::{Layouter, Value},
    halo2curves::bn256::Fr,
    plonk::{ConstraintSystem, Error, TableColumn},
};

use super::fusion::Fusion;
use crate::arith::slack_bits;
use crate::field;
use crate::model::{OutputRange, Rescale, ACT_BITS};

/// Narrowest quotient a clamp table holds (a table that narrow covers no real layer; the bound only keeps
/// parameters meaningful).
pub const MIN_CLAMP_BITS: u32 = 2;
/// Widest quotient a clamp table holds: `2^17` rows.
pub const MAX_CLAMP_BITS: u32 = 16;

/// The lower clamp bounds of the two int8 output ranges the table holds: plain int8, and int8 after a ReLU.
const INT8_LOWER_BOUNDS: [i64; 2] = [-128, 0];

/// The table's columns `(lo, q, y)` and its quotient width.
#[derive(Clone, Copy, Debug)]
pub struct ClampTable {
    /// Lower clamp bound of the entry's output range (−128 or 0), or a fused activation's tag (positive).
    pub lo: TableColumn,
    /// The quotient.
    pub q: TableColumn,
    /// Its clamp.
    pub y: TableColumn,
    /// Quotient bits `w`: the table holds `q ∈ [−2^(w−1), 2^(w−1))`.
    pub bits: u32,
}

/// Rows of a clamp table of `bits`-bit quotients with `activations` fused table activations: `2^bits` per output
/// range and per activation.
pub fn rows(bits: u32, activations: usize) -> usize {
    (INT8_LOWER_BOUNDS.len() + activations) << bits
}

/// Whether a requantization by `rescale` into `out` goes through a clamp table of `bits`-bit quotients (`0`: no
/// table): an int8 output whose every possible quotient lies in the table's range.
pub fn covers(bits: u32, rescale: &Rescale, out: OutputRange) -> bool {
    bits >= MIN_CLAMP_BITS && out.bits == ACT_BITS && quotient_bits(rescale, out) < bits
}

/// Bits of the largest quotient magnitude a requantization by `rescale` into `out` can have (`|q| < 2^b`).
pub fn quotient_bits(rescale: &Rescale, out: OutputRange) -> u32 {
    slack_bits(rescale.accumulator_bound, rescale.multiplier, rescale.shift, out.bits)
}

/// The clamp-table width that covers a requantization by `rescale` into `out` (`quotient_bits + 1`), or `None`
/// for an output no table holds (16-bit) or a quotient wider than [`MAX_CLAMP_BITS`] allows.
pub fn bits_to_cover(rescale: &Rescale, out: OutputRange) -> Option<u32> {
    let bits = quotient_bits(rescale, out) + 1;
    (out.bits == ACT_BITS && bits <= MAX_CLAMP_BITS).then_some(bits.max(MIN_CLAMP_BITS))
}

impl ClampTable {
    /// Allocates the table's columns for `bits`-bit quotients.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, bits: u32) -> Self {
        Self {
            lo: meta.lookup_table_column(),
            q: meta.lookup_table_column(),
            y: meta.lookup_table_column(),
            bits: bits.clamp(MIN_CLAMP_BITS, MAX_CLAMP_BITS),
        }
    }

    /// Fills the table: the ReLU range first, so that row 0 (which halo2 repeats in the unused rows) is one of
    /// its entries, then the plain int8 range, then each activation of `fusion` under its tag.
    pub fn load(&self, layouter: &mut impl Layouter<Fr>, fusion: &Fusion) -> Result<(), Error> {
        let half = 1i64 << (self.bits - 1);
        let clamps = INT8_LOWER_BOUNDS.iter().rev().map(|&lo| {
            let clamp = move |q: i64| q.clamp(lo, (1 << (ACT_BITS - 1)) - 1);
            (lo, Box::new(clamp) as Box<dyn Fn(i64) -> i64>)
        });
        let activations =
            (fusion.entries().iter()).map(|f| (f.tag, Box::new(|q| f.apply(q)) as Box<dyn Fn(i64) -> i64>));
        let ranges: Vec<_> = clamps.chain(activations).collect();
        layouter.assign_table(
            || "clamp table",
            |mut table| {
                let mut row = 0;
                for (tag, output) in &ranges {
                    for q in -half..half {
                        table.assign_cell(|| "lo", self.lo, row, || Value::known(field::from_i64(*tag)))?;
                        table.assign_cell(|| "q", self.q, row, || Value::known(field::from_i64(q)))?;
                        table.assign_cell(|| "y", self.y, row, || Value::known(field::from_i64(output(q))))?;
                        row += 1;
                    }
                }
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_covers_exactly_the_int8_requantizations_whose_quotients_fit() {
        let rescale = Rescale {
            multiplier: 1 << 12,
            shift: 20,
            bias: 0,
            accumulator_bound: 1 << 20,
        };
        let int8 = OutputRange { bits: 8, relu: true };
        // |q| ≤ 2^12 + 1 + 2^8 → 13 bits: a table of 14-bit quotients covers it, one of 13 bits does not.
        assert_eq!(quotient_bits(&rescale, int8), 13);
        assert_eq!(bits_to_cover(&rescale, int8), Some(14));
        assert!(covers(14, &rescale, int8));
        assert!(!covers(13, &rescale, int8));
        assert!(!covers(0, &rescale, int8));
        let wide = OutputRange { bits: 16, relu: false };
        assert!(!covers(MAX_CLAMP_BITS, &rescale, wide));
        assert_eq!(bits_to_cover(&rescale, wide), None);
        assert_eq!(rows(13, 0), 1 << 14);
        assert_eq!(rows(13, 2), 1 << 15);
    }
}
