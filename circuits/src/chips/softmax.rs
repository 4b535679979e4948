//! Softmax rows ([`crate::model::Softmax`]): one row per element, a row's elements on consecutive rows.
//!
//! Columns: `x` (the element, copied in), `m` (the row maximum, copied in: the max chip's chain over the kept
//! elements), `e` (its exponential), `h` (the running sum of the kept exponentials), `s` (the row sum `S`, a copy
//! of the last `h`), `p` (the output), `r` (the division's remainder) and `t = 2S − 1 − r`; fixed `first` (1 on a
//! row's first element) and `id` (the exponential table's id); selectors `q_soft` (every element) and `q_exp`
//! (kept elements only). Gates, on `q_soft` rows:
//!
//! - sum: `q_soft·(h − (1 − first)·h[−1]) − q_exp·e = 0`, so the last `h` is the sum of the kept `e`;
//! - division: `q_soft·(s − 2·p·s − r) + q_exp·254·e = 0`, i.e. `254·e + S = 2S·p + r` (`e` taken as 0 when
//!   masked);
//! - bound: `q_soft·(t − 2·s + 1 + r) = 0`;
//!
//! and the lookup `(q_exp·id, q_exp·(x − m), q_exp·e)` into the activation table, which holds `(id, d,
//! exp[d + 255])` for `d ∈ [−255, 0]` (a masked row looks up `(0, 0, 0)`, which the table holds). The layer range-
//! checks `p ∈ [0, 2^7)`, `r` and `t` in `[0, 2^B)` for `2^B > 2·max S`, so `0 ≤ r < 2S`.
//!
//! Why that is the softmax: the max chain makes `m` one of the kept elements and at least every other, so every
//! kept `d = x − m` lies in `[−255, 0]`, where the lookup fixes `e = exp[d + 255]`, and `d = 0` somewhere, so
//! `S ≥ exp[255] ≥ 1`. Every value is small (`S < 2^33`, `p < 2^7`, `r, t < 2^34`), so the division identity holds
//! over the integers, where `0 ≤ r < 2S` makes `p = ⌊(254·e + S) / 2S⌋` the only solution: the reference's
//! rounding. A masked row has `254·0 + S = 2S·p + r` with `r < 2S`, so `p = 0`, whatever `x` holds. Cells no
//! constraint reads on a masked row (`x`, `m`, `e`) are padding.

use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector, TableColumn},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::{Softmax, PROBABILITY_ONE};

/// Columns of the softmax chip.
#[derive(Clone, Debug)]
pub struct SoftmaxConfig {
    x: Column<Advice>,
    m: Column<Advice>,
    e: Column<Advice>,
    h: Column<Advice>,
    s: Column<Advice>,
    p: Column<Advice>,
    r: Column<Advice>,
    t: Column<Advice>,
    first: Column<Fixed>,
    id: Column<Fixed>,
    q_soft: Selector,
    q_exp: Selector,
}

/// The cells of one softmax row that the layer range-checks: each output `p`, remainder `r` and bound `t`.
pub struct SoftmaxCells {
    /// The outputs.
    pub outputs: Vec<AssignedValue>,
    /// The remainders `r` and bounds `t = 2S − 1 − r`, two per element.
    pub remainders: Vec<AssignedValue>,
}

impl SoftmaxConfig {
    /// Allocates the columns, the three gates and the lookup into `table` (the activation table's columns).
    pub fn configure(meta: &mut ConstraintSystem<Fr>, table: [TableColumn; 3]) -> Self {
        let [x, m, e, h, s, p, r, t] = [(); 8].map(|_| meta.advice_column());
        for c in [x, m, h, s, p, r, t] {
            meta.enable_equality(c);
        }
        let [first, id] = [(); 2].map(|_| meta.fixed_column());
        // Both complex: the gates add terms of each (halo2 multiplies a simple selector into its whole gate).
        let q_soft = meta.complex_selector();
        let q_exp = meta.complex_selector();
        meta.create_gate("softmax", |meta| {
            let q = meta.query_selector(q_soft);
            let kept = meta.query_selector(q_exp);
            let h_prev = meta.query_advice(h, Rotation::prev());
            let [e, h, s, p, r, t] = [e, h, s, p, r, t].map(|c| meta.query_advice(c, Rotation::cur()));
            let first = meta.query_fixed(first, Rotation::cur());
            let constant = |v: u64| Expression::Constant(Fr::from(v));
            let numerator = constant(2 * PROBABILITY_ONE as u64);
            vec![
                q.clone() * (h - (constant(1) - first) * h_prev) - kept.clone() * e.clone(),
                q.clone() * (s.clone() - constant(2) * p * s.clone() - r.clone()) + kept * numerator * e,
                q * (t - constant(2) * s + constant(1) + r),
            ]
        });
        meta.lookup("softmax exponential", |meta| {
            let kept = meta.query_selector(q_exp);
            let id = meta.query_fixed(id, Rotation::cur());
            let x = meta.query_advice(x, Rotation::cur());
            let m = meta.query_advice(m, Rotation::cur());
            let e = meta.query_advice(e, Rotation::cur());
            vec![
                (kept.clone() * id, table[0]),
                (kept.clone() * (x - m), table[1]),
                (kept * e, table[2]),
            ]
        });
        Self {
            x,
            m,
            e,
            h,
            s,
            p,
            r,
            t,
            first,
            id,
            q_soft,
            q_exp,
        }
    }

    /// Writes a zero into `h` at row 0 (the blank row before the first softmax row, which the sum gate reads);
    /// softmax rows start at row 1.
    pub fn assign_blank_row(&self, a: &mut Assigner) {
        a.advice(CellKind::Padding, self.h, 0, Fr::from(0));
    }

    /// One softmax row from `row`: the elements `x` (`None` where masked), the row maximum cell `max` (of the kept
    /// elements) and the exponential table `id` of `softmax`. Returns the cells to range-check and the next free
    /// row. The division and the sum are computed from the cells as written (a forged cell propagates).
    pub fn assign_row(
        &self,
        a: &mut Assigner,
        row: usize,
        softmax: &Softmax,
        id: u64,
        x: &[Option<AssignedValue>],
        max: &AssignedValue,
    ) -> Result<(SoftmaxCells, usize), Error> {
        if x.iter().all(Option::is_none) {
            return Err(Error::Synthesis);
        }
        let value = |c: &AssignedValue| field::to_i64(&c.value);
        // The exponentials and the running sum.
        let mut exps: Vec<i64> = Vec::with_capacity(x.len());
        let mut sum: Option<AssignedValue> = None;
        for (j, xj) in x.iter().enumerate() {
            let at = row + j;
            a.enable(&self.q_soft, at)?;
            a.fixed(self.first, at, Fr::from(u64::from(j == 0)));
            a.fixed(self.id, at, Fr::from(id));
            let e = match xj {
                Some(xj) => {
                    a.enable(&self.q_exp, at)?;
                    let xc = a.copy(CellKind::SoftmaxInput, self.x, at, xj);
                    let mc = a.copy(CellKind::SoftmaxInput, self.m, at, max);
                    // Checked: a forged cell (tests only) may hold any i64; outside the table every d reads 0.
                    let d = value(&xc)
                        .zip(value(&mc))
                        .and_then(|(x, m)| x.checked_sub(m))
                        .unwrap_or(1);
                    a.advice(CellKind::SoftmaxExp, self.e, at, field::from_i64(softmax.exp_of(d)))
                        .value
                }
                None => {
                    for column in [self.x, self.m, self.e] {
                        a.advice(CellKind::Padding, column, at, Fr::from(0));
                    }
                    Fr::from(0)
                }
            };
            exps.push(field::to_i64(&e).unwrap_or(0));
            let running = sum.map_or(e, |s| s.value + e);
            sum = Some(a.advice(CellKind::SoftmaxSum, self.h, at, running));
        }
        let last = sum.ok_or(Error::Synthesis)?;
        // The division of each element by the sum, as written.
        let mut cells = SoftmaxCells {
            outputs: Vec::with_capacity(x.len()),
            remainders: Vec::with_capacity(2 * x.len()),
        };
        for (j, &e) in exps.iter().enumerate() {
            let at = row + j;
            let s = a.copy(CellKind::SoftmaxSum, self.s, at, &last);
            // In i128: a forged cell (tests only) may hold any i64.
            let total = i128::from(value(&s).unwrap_or(0));
            let numerator = i128::from(2 * PROBABILITY_ONE) * i128::from(e) + total;
            let (p, r) = if total > 0 {
                (numerator.div_euclid(2 * total), numerator.rem_euclid(2 * total))
            } else {
                (0, numerator)
            };
            let (p, r) = (field::from_i128(p), field::from_i128(r));
            let p = a.advice(CellKind::Output, self.p, at, p);
            let r = a.advice(CellKind::Remainder, self.r, at, r);
            let t = a.advice(
                CellKind::SoftmaxBound,
                self.t,
                at,
                s.value + s.value - Fr::from(1) - r.value,
            );
            cells.outputs.push(p);
            cells.remainders.extend([r, t]);
        }
        Ok((cells, row + x.len()))
    }
}
