//! Requantization with a fused clamp/ReLU: `y = clamp((acc · M + 2^(s−1)) >> s, lo, 127)`, one row per channel.
//!
//! Gates (row with `q_req`; `M`, `2^s`, `2^(s−1)`, `lo` are fixed cells of that row):
//! - division:  `acc · M + 2^(s−1) − q · 2^s − r = 0`
//! - clamp:     `q − y − over + under = 0`, `(y − 127) · over = 0`, `(y − lo) · under = 0`
//!
//! Range checks (range-check chip): `r ∈ [0, 2^s)`, `over, under ∈ [0, 2^(8·slack))`, `y + 128 ∈ [0, 256)` and, for
//! ReLU, `y ∈ [0, 256)`. The slack bounds also bound `q`, which makes the division unique (DESIGN.md's first trap:
//! with `q` unbounded, any `r` would satisfy the identity because `2^s` is invertible modulo p).

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector},
    poly::Rotation,
};

use super::range_check::{self, RangeCheckConfig};
use crate::arith::{slack_limbs, LIMB_BITS};
use crate::assign::{AssignedValue, Assigner, CellKind, Tamper};
use crate::field;
use crate::model::{Activation, Kernel, ACT_MAX, ACT_MIN};

/// Columns of the requantization chip.
#[derive(Clone, Debug)]
pub struct RequantConfig {
    /// Accumulator column (also holds the nonce cell on a row without selector).
    pub acc: Column<Advice>,
    q: Column<Advice>,
    r: Column<Advice>,
    y: Column<Advice>,
    over: Column<Advice>,
    under: Column<Advice>,
    m: Column<Fixed>,
    two_s: Column<Fixed>,
    half: Column<Fixed>,
    lo: Column<Fixed>,
    q_req: Selector,
}

/// Rows of the range-check column one output of `kernel` uses.
pub fn range_rows(kernel: &Kernel, activation: Activation) -> usize {
    let s = kernel.shift as usize / LIMB_BITS as usize;
    let slack = slack_limbs(kernel.accumulator_bound(), kernel.multiplier, kernel.shift);
    let y_checks = if activation == Activation::Relu { 2 } else { 1 };
    range_check::rows(s) + 2 * range_check::rows(slack) + y_checks * range_check::rows(1)
}

impl RequantConfig {
    /// Allocates the columns and the division and clamp gates.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let [acc, q, r, y, over, under] = [(); 6].map(|_| meta.advice_column());
        for c in [acc, r, y, over, under] {
            meta.enable_equality(c);
        }
        let [m, two_s, half, lo] = [(); 4].map(|_| meta.fixed_column());
        let q_req = meta.selector();
        meta.create_gate("requantize and clamp", |meta| {
            let sel = meta.query_selector(q_req);
            let cur = |meta: &mut halo2_proofs::plonk::VirtualCells<Fr>, c| meta.query_advice(c, Rotation::cur());
            let (acc, q, r, y) = (cur(meta, acc), cur(meta, q), cur(meta, r), cur(meta, y));
            let (over, under) = (cur(meta, over), cur(meta, under));
            let m = meta.query_fixed(m, Rotation::cur());
            let two_s = meta.query_fixed(two_s, Rotation::cur());
            let half = meta.query_fixed(half, Rotation::cur());
            let lo = meta.query_fixed(lo, Rotation::cur());
            let hi = Expression::Constant(field::from_i64(ACT_MAX));
            vec![
                sel.clone() * (acc * m + half - q.clone() * two_s - r),
                sel.clone() * (q - y.clone() - over.clone() + under.clone()),
                sel.clone() * ((y.clone() - hi) * over),
                sel * ((y - lo) * under),
            ]
        });
        Self {
            acc,
            q,
            r,
            y,
            over,
            under,
            m,
            two_s,
            half,
            lo,
            q_req,
        }
    }

    /// Requantizes `acc` with `kernel` and the fused `activation` at `row`, range-checking in `range` from
    /// `range_row`.
    /// Returns the output cell `y` and the next free range-check row.
    #[allow(clippy::too_many_arguments)]
    pub fn assign(
        &self,
        a: &mut Assigner,
        row: usize,
        range: &RangeCheckConfig,
        range_row: usize,
        kernel: &Kernel,
        activation: Activation,
        acc: &AssignedValue,
    ) -> Result<(AssignedValue, usize), Error> {
        let (m, s, lo) = (kernel.multiplier, kernel.shift, activation.lower_bound());
        let acc = a.copy(CellKind::RequantAccumulator, self.acc, row, acc);
        let honest = kernel.requantize(field::to_i64(&acc.value).unwrap_or(0), activation);
        let two_s = Fr::from(2u64).pow_vartime([s as u64]);
        let (mut q, mut r) = (field::from_i64(honest.q), field::from_i64(honest.r));
        let (mut y, mut over, mut under) = (
            field::from_i64(honest.y),
            field::from_i64(honest.over),
            field::from_i64(honest.under),
        );
        match a.next_requantization_attack() {
            Some(Tamper::RemainderShift { .. }) => {
                // q − 1 with r + 2^s: the division identity holds and q stays small; only r's range check can object.
                let shifted = honest.q - 1;
                r += two_s;
                q = field::from_i64(shifted);
                y = field::from_i64(shifted.clamp(lo, ACT_MAX));
                over = field::from_i64((shifted - ACT_MAX).max(0));
                under = field::from_i64((lo - shifted).max(0));
            }
            Some(Tamper::UnboundedQuotient { .. }) => {
                r = field::from_i64(honest.r ^ 1);
                let numerator = acc.value * field::from_i64(m) + two_s * Fr::from(2u64).invert().unwrap_or(Fr::ZERO);
                q = (numerator - r) * two_s.invert().unwrap_or(Fr::ZERO);
                over = q - y + under;
            }
            _ => {}
        }
        a.enable(&self.q_req, row)?;
        a.fixed(self.m, row, field::from_i64(m));
        a.fixed(self.two_s, row, two_s);
        a.fixed(self.half, row, two_s * Fr::from(2u64).invert().unwrap_or(Fr::ZERO));
        a.fixed(self.lo, row, field::from_i64(lo));
        a.advice(CellKind::Quotient, self.q, row, q);
        let r = a.advice(CellKind::Remainder, self.r, row, r);
        let y = a.advice(CellKind::Output, self.y, row, y);
        let over = a.advice(CellKind::Over, self.over, row, over);
        let under = a.advice(CellKind::Under, self.under, row, under);

        let slack = slack_limbs(kernel.accumulator_bound(), m, s);
        let mut next = range.check(a, range_row, &r, 0, s as usize / LIMB_BITS as usize)?;
        next = range.check(a, next, &over, 0, slack)?;
        next = range.check(a, next, &under, 0, slack)?;
        next = range.check(a, next, &y, -ACT_MIN, 1)?;
        if activation == Activation::Relu {
            next = range.check(a, next, &y, 0, 1)?;
        }
        Ok((y, next))
    }
}
