//! Requantization with a fused clamp/ReLU: `y = clamp((acc · M + 2^(s−1)) >> s, lo, hi)`, one row per channel.
//!
//! `hi` is 127 for int8 activations and 32767 for 16-bit values (the model's output, or activations that only
//! linear layers read); `lo` is `−hi − 1`, or 0 with a fused ReLU.
//! The quotient `q` is not a cell: it is `y + (2b − 1) · d`, with a clamp flag `b` (1 when clamped at `hi`) and a
//! slack `d ≥ 0` (how far `q` lies beyond the bound it was clamped to). The bias is fused in: `acc` is the bare
//! weighted sum (from the multiply-accumulate chip or a Freivalds-checked product) and the fixed offset is
//! `c = bias · M + 2^(s−1)`. The clamp ranges are told apart by `lo` alone where that suffices: `hi` is then no
//! column but the quadratic `hi(lo) = 127 + lo · (lo + 128) / 2^15`, which is 127 at `lo ∈ {−128, 0}` and 32767 at
//! `lo = −32768`. A model with 16-bit ReLU outputs (`[0, 32767]`, which `lo = 0` cannot tell from int8 ReLU outputs)
//! has the optional `WideRelu` chip: `hi` is then a fixed column. Gates (row with `q_req`; `M`, `2^s`, `c`, `lo`
//! and, with that chip, `hi` are fixed cells of that row):
//! - division:  `acc · M + c − (y + (2b − 1) · d) · 2^s − r = 0`
//! - clamp:     `b · (1 − b) = 0`, `b · (y − hi) = 0`, `(1 − b) · (y − lo) · d = 0`
//!
//! Range checks (range-check chip): `r ∈ [0, 2^s)`, `d ∈ [0, 2^slack)`, and `y ∈ [−hi − 1, hi]`, or
//! `y ∈ [0, hi]` with ReLU. Then `b = 1` forces `y = hi, q ≥ hi`; `b = 0, d ≠ 0` forces `y = lo, q < lo`; and
//! otherwise `q = y ∈ [lo, hi]`: exactly the clamp. The bounds on `y` and `d` also bound `q`, which makes the
//! division unique (DESIGN.md's first trap: with `q` unbounded, any `r` would satisfy the identity because `2^s`
//! is invertible modulo p). The slack's range follows from the accumulator bound, which counts the width of the
//! layer's inputs (`2^15` per 16-bit input).
//!
//! With a clamp table ([`super::clamp_table`]) an int8 requantization whose quotients fit it takes another gate
//! instead (row with `q_tab`; same fixed cells, the quotient `q` a cell of the `d` column, `b` zero):
//! - division:  `acc · M + c − q · 2^s − r = 0`, and `b = 0`
//! - lookup:    `(lo, q, y)` in the clamp table (`q_tab · lo, q_tab · q, q_tab · y`: `(0, 0, 0)` elsewhere)
//!
//! and one range check, `r ∈ [0, 2^s)`. The table bounds `q` (which makes the division unique, as above) and
//! gives `y = clamp(q, lo, 127)`. A requantization whose output only a table activation `f` reads can have that
//! activation fused in ([`super::fusion`]): its row's fixed `lo` cell holds the activation's tag instead, and the
//! lookup gives `y = f(clamp(q, lo, 127))`.

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector},
    poly::Rotation,
};

use super::clamp_table::{self, ClampTable};
use super::fusion::FusedActivation;
use super::range_check::{Range, RangeCheckConfig};
use crate::arith::slack_bits;
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::column_rows::ColumnRows;
use crate::field;
use crate::model::{OutputRange, Rescale};

/// Where a requantization's accumulator comes from.
#[derive(Clone, Copy, Debug)]
pub enum Accumulator<'v> {
    /// A copy of the multiply-accumulate chip's last running sum (without the bias, which the offset adds).
    Copy(&'v AssignedValue),
    /// A witness value that a Freivalds check binds later (the product of a convolution, without the bias).
    Witness(Fr),
}

/// Columns of the requantization chip.
#[derive(Clone, Debug)]
pub struct RequantConfig {
    /// Accumulator column (also holds the nonce cell on a row without selector).
    pub acc: Column<Advice>,
    r: Column<Advice>,
    y: Column<Advice>,
    b: Column<Advice>,
    d: Column<Advice>,
    m: Column<Fixed>,
    two_s: Column<Fixed>,
    offset: Column<Fixed>,
    lo: Column<Fixed>,
    /// The upper bound, in a circuit with 16-bit ReLU outputs; derived from `lo` otherwise.
    hi: Option<Column<Fixed>>,
    q_req: Selector,
    /// The clamp table's selector and quotient width, in a circuit with a clamp table.
    table: Option<(Selector, u32)>,
}

/// The upper clamp bound derived from the lower one (without a `hi` column): `127 + lo · (lo + 128) / 2^15`.
fn hi_of_lo(lo: Expression<Fr>) -> Expression<Fr> {
    let inv_2_15 = Fr::from(1u64 << 15).invert().unwrap_or(Fr::ZERO);
    Expression::Constant(Fr::from(127)) + lo.clone() * (lo + Expression::Constant(Fr::from(128))) * inv_2_15
}

/// Whether the gate can express `out`: with a `hi` column every 8- or 16-bit range; without, those whose derived
/// bound `hi(lo)` is `out`'s (int8 with or without ReLU, 16-bit without).
fn gate_supports(out: OutputRange, hi_column: bool) -> bool {
    if hi_column {
        return matches!(out.bits, 8 | 16);
    }
    let lo = out.lo() as i128;
    127 + lo * (lo + 128) / (1 << 15) == out.hi() as i128 && (lo * (lo + 128)) % (1 << 15) == 0
}

/// The range checks one output requantized by `rescale` needs with a clamp table of `clamp_bits`-bit quotients
/// (0: none): the remainder's, and the clamp slack's and the output's unless the table covers it.
pub fn range_checks(rescale: &Rescale, out: OutputRange, clamp_bits: u32) -> Vec<Range> {
    if clamp_table::covers(clamp_bits, rescale, out) {
        return vec![Range::Unsigned { bits: rescale.shift }];
    }
    flag_and_slack_checks(rescale, out).to_vec()
}

/// The range checks of a requantization through the flag-and-slack gate: remainder, clamp slack, output.
fn flag_and_slack_checks(rescale: &Rescale, out: OutputRange) -> [Range; 3] {
    let slack = slack_bits(rescale.accumulator_bound, rescale.multiplier, rescale.shift, out.bits);
    [
        Range::Unsigned { bits: rescale.shift },
        Range::Unsigned { bits: slack },
        Range::of_output(out),
    ]
}

#[cfg(feature = "test-hooks")]
#[path = "requantize/attacks.rs"]
mod attacks;

impl RequantConfig {
    /// Adds the division and clamp gates over the advice columns `[acc, r, y, b, d]` (which the Poseidon chip also
    /// uses, in other rows) and allocates the fixed columns; `hi_column` for 16-bit ReLU outputs; with a clamp
    /// table, its gate and lookup too.
    pub fn configure(
        meta: &mut ConstraintSystem<Fr>,
        [acc, r, y, b, d]: [Column<Advice>; 5],
        hi_column: bool,
        clamp: Option<&ClampTable>,
    ) -> Self {
        for c in [acc, r, y, d] {
            meta.enable_equality(c);
        }
        let [m, two_s, offset, lo] = [(); 4].map(|_| meta.fixed_column());
        let hi = hi_column.then(|| meta.fixed_column());
        let q_req = meta.selector();
        meta.create_gate("requantize and clamp", |meta| {
            let sel = meta.query_selector(q_req);
            let cur = |meta: &mut halo2_proofs::plonk::VirtualCells<Fr>, c| meta.query_advice(c, Rotation::cur());
            let (acc, r, y, b, d) = (cur(meta, acc), cur(meta, r), cur(meta, y), cur(meta, b), cur(meta, d));
            let m = meta.query_fixed(m, Rotation::cur());
            let two_s = meta.query_fixed(two_s, Rotation::cur());
            let offset = meta.query_fixed(offset, Rotation::cur());
            let lo = meta.query_fixed(lo, Rotation::cur());
            let hi = match hi {
                Some(hi) => meta.query_fixed(hi, Rotation::cur()),
                None => hi_of_lo(lo.clone()),
            };
            let one = Expression::Constant(Fr::ONE);
            let q = y.clone() + (b.clone() + b.clone() - one.clone()) * d.clone();
            vec![
                sel.clone() * (acc * m + offset - q * two_s - r),
                sel.clone() * (b.clone() * (one.clone() - b.clone())),
                sel.clone() * (b.clone() * (y.clone() - hi)),
                sel * ((one - b) * (y - lo) * d),
            ]
        });
        let table = clamp.map(|table| {
            let q_tab = meta.complex_selector();
            meta.create_gate("requantize through the clamp table", |meta| {
                let sel = meta.query_selector(q_tab);
                let cur = |meta: &mut halo2_proofs::plonk::VirtualCells<Fr>, c| meta.query_advice(c, Rotation::cur());
                let (acc, r, b, q) = (cur(meta, acc), cur(meta, r), cur(meta, b), cur(meta, d));
                let m = meta.query_fixed(m, Rotation::cur());
                let two_s = meta.query_fixed(two_s, Rotation::cur());
                let offset = meta.query_fixed(offset, Rotation::cur());
                vec![sel.clone() * (acc * m + offset - q * two_s - r), sel * b]
            });
            meta.lookup("clamp table", |meta| {
                let sel = meta.query_selector(q_tab);
                let lo = meta.query_fixed(lo, Rotation::cur());
                let q = meta.query_advice(d, Rotation::cur());
                let y = meta.query_advice(y, Rotation::cur());
                vec![
                    (sel.clone() * lo, table.lo),
                    (sel.clone() * q, table.q),
                    (sel * y, table.y),
                ]
            });
            (q_tab, table.bits)
        });
        Self {
            acc,
            r,
            y,
            b,
            d,
            m,
            two_s,
            offset,
            lo,
            hi,
            q_req,
            table,
        }
    }

    /// Writes a row's fixed cells that both gates read: `M`, `2^s` and the offset `c`, and `lo` (the lower clamp
    /// bound, or a fused activation's tag).
    fn assign_constants(&self, a: &mut Assigner, row: usize, [m, two_s, offset]: [Fr; 3], lo: i64) {
        a.fixed(self.m, row, m);
        a.fixed(self.two_s, row, two_s);
        a.fixed(self.offset, row, offset);
        a.fixed(self.lo, row, field::from_i64(lo));
    }

    /// Requantizes `acc` with `rescale` into the output range `out` at `row`, range-checking in `range`; with
    /// `activation` (fused into the clamp table, which must cover the row) the output is the activation of the
    /// clamped value. Returns the output cell `y` and the accumulator cell.
    #[allow(clippy::too_many_arguments)]
    pub fn assign(
        &self,
        a: &mut Assigner,
        row: usize,
        range: &RangeCheckConfig,
        range_rows: &mut ColumnRows,
        rescale: &Rescale,
        out: OutputRange,
        acc: Accumulator<'_>,
        activation: Option<&FusedActivation>,
    ) -> Result<(AssignedValue, AssignedValue), Error> {
        if !gate_supports(out, self.hi.is_some()) {
            return Err(Error::Synthesis);
        }
        let through_table = self.table.filter(|&(_, bits)| clamp_table::covers(bits, rescale, out));
        if activation.is_some_and(|f| through_table.is_none() || f.lo != out.lo()) {
            return Err(Error::Synthesis);
        }
        let (m, s, lo, hi) = (rescale.multiplier, rescale.shift, out.lo(), out.hi());
        let bias = rescale.bias;
        let acc = match acc {
            Accumulator::Copy(source) => a.copy(CellKind::RequantAccumulator, self.acc, row, source),
            Accumulator::Witness(value) => a.advice(CellKind::RequantAccumulator, self.acc, row, value),
        };
        let honest = rescale.requantize(field::to_i64(&acc.value).unwrap_or(0) + bias, out);
        let half = Fr::from(2u64).pow_vartime([u64::from(s) - 1]);
        let offset = field::from_i64(bias) * field::from_i64(m) + half;
        let two_s = Fr::from(2u64).pow_vartime([s as u64]);
        let clamp = |q: i64| {
            let y = q.clamp(lo, hi);
            (
                field::from_i64(y),
                Fr::from(u64::from(q > hi)),
                field::from_i64((q - y).abs()),
            )
        };
        #[allow(unused_mut)]
        let mut r = field::from_i64(honest.r);
        #[allow(unused_mut)]
        let (mut y, mut b, mut d) = clamp(honest.q);
        #[cfg(feature = "test-hooks")]
        let change = a.next_requantization();
        if let Some((q_tab, _)) = through_table {
            // Through the clamp table: the quotient is a cell (of the `d` column), the flag is zero, and the
            // output is the clamp or, fused, the activation of it.
            let output = |q: i64| activation.map_or_else(|| clamp(q).0, |f| field::from_i64(f.apply(q)));
            #[cfg(not(feature = "test-hooks"))]
            let q = {
                y = output(honest.q);
                field::from_i64(honest.q)
            };
            #[cfg(feature = "test-hooks")]
            let q = {
                let row = attacks::TableRow {
                    numerator: acc.value * field::from_i64(m) + offset,
                    two_s,
                };
                let q;
                (q, y, r) = row.mount(change, honest, output, field::to_i64(&acc.value).is_none());
                q
            };
            a.enable(&q_tab, row)?;
            self.assign_constants(
                a,
                row,
                [field::from_i64(m), two_s, offset],
                activation.map_or(lo, |f| f.tag),
            );
            let r = a.advice(CellKind::Remainder, self.r, row, r);
            let y = a.advice(CellKind::Output, self.y, row, y);
            a.advice(CellKind::ClampFlag, self.b, row, Fr::ZERO);
            a.advice(CellKind::Quotient, self.d, row, q);
            range.check(a, range_rows, &r, Range::Unsigned { bits: s })?;
            return Ok((y, acc));
        }
        #[cfg(feature = "test-hooks")]
        {
            let row = attacks::Row {
                numerator: acc.value * field::from_i64(m) + offset,
                two_s,
                lo: field::from_i64(lo),
                hi: field::from_i64(hi),
            };
            if field::to_i64(&acc.value).is_none() {
                // Only a forged witness upstream sends an accumulator beyond i64 (a product of two forged operands;
                // validated models keep |acc| < 2^40): the row is solved in the field so that only its range
                // checks object, as the forgery harness expects of every row downstream of a forgery.
                (y, b, d, r) = row.beyond_i64();
            } else if let Some(change) = change {
                (y, b, d, r) = row.mount(change, honest, clamp);
            }
        }
        a.enable(&self.q_req, row)?;
        self.assign_constants(a, row, [field::from_i64(m), two_s, offset], lo);
        if let Some(column) = self.hi {
            a.fixed(column, row, field::from_i64(hi));
        }
        let r = a.advice(CellKind::Remainder, self.r, row, r);
        let y = a.advice(CellKind::Output, self.y, row, y);
        a.advice(CellKind::ClampFlag, self.b, row, b);
        let d = a.advice(CellKind::ClampSlack, self.d, row, d);

        let [r_range, d_range, y_range] = flag_and_slack_checks(rescale, out);
        range.check(a, range_rows, &r, r_range)?;
        range.check(a, range_rows, &d, d_range)?;
        range.check(a, range_rows, &y, y_range)?;
        Ok((y, acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates a constant expression.
    fn constant(e: &Expression<Fr>) -> Fr {
        e.evaluate(
            &|c| c,
            &|_| unreachable!(),
            &|_| unreachable!(),
            &|_| unreachable!(),
            &|_| unreachable!(),
            &|_| unreachable!(),
            &|a| -a,
            &|a, b| a + b,
            &|a, b| a * b,
            &|a, s| a * s,
        )
    }

    #[test]
    fn the_derived_upper_bound_matches_every_range_it_supports() {
        for (bits, relu) in [(8, false), (8, true), (16, false)] {
            let out = OutputRange { bits, relu };
            assert!(gate_supports(out, false), "{out:?}");
            let hi = constant(&hi_of_lo(Expression::Constant(field::from_i64(out.lo()))));
            assert_eq!(hi, field::from_i64(out.hi()), "{out:?}");
        }
        // A 16-bit ReLU output would need hi(0) = 32767: only the fixed `hi` column expresses it.
        let wide_relu = OutputRange { bits: 16, relu: true };
        assert!(!gate_supports(wide_relu, false));
        assert!(gate_supports(wide_relu, true));
        assert!(!gate_supports(OutputRange { bits: 12, relu: false }, true));
    }
}
