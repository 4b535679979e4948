//! Layer-normalization rows ([`crate::model::LayerNorm`]): one row per element, a row's `n` elements on
//! consecutive rows, then one root row.
//!
//! Columns: `x` (the element, copied in), `h` (the running sum of `x`), `s` (the row sum `S`, a copy of the last
//! `h`), `c` (the centred value), `v` (the running sum of `c²`), `w` (the inverse square root `q`, a copy) and `t`
//! (the product `c·q`); fixed `first` (1 on a row's first element), `len` (`n`), and on the root row `eps` (`E`)
//! and `pow` (`2^(2F)`). On element rows (`q_norm`):
//!
//! - sum: `h − (1 − first)·h[−1] − x = 0`, so the last `h` is `S`;
//! - centre: `c − len·x + s = 0`;
//! - squares: `v − (1 − first)·v[−1] − c² = 0`, so the last `v` is `Σ c²`;
//! - product: `t − c·w = 0`.
//!
//! The root row (`q_root`) holds `q` in the `x` column, the lower slack `a` in `c` and the upper slack `b` in `t`,
//! and reads the last element's `v` one row up (`V = v[−1] + E`):
//!
//! - lower: `a − pow + q²·V = 0`;
//! - upper: `b − (q + 1)²·V + pow + 1 = 0`.
//!
//! The layer range-checks `q ∈ [0, 2^B)`, `a` and `b` in [`LayerNorm::slack_bits`], and requantizes each `t`. Why
//! that is the normalization: `x` are copies of cells their producer range-checked to the input's width (int8 or
//! 16 bits), so `S`, `c`, `V < 2^62` are the reference's integers (far below the modulus); with `q`, `a`, `b`
//! range-checked every term of the two slack identities is below 2^200, so they hold over the integers:
//! `q²·V ≤ 2^(2F) < (q + 1)²·V`,
//! which only `q = ⌊2^F / √V⌋` satisfies (`V ≥ E ≥ 1`). The `s` and `w` cells of every element row are copies of
//! the last `h` and of `q` (copy constraints).

use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::LayerNorm;

/// Columns of the layer-normalization chip.
#[derive(Clone, Debug)]
pub struct NormConfig {
    x: Column<Advice>,
    h: Column<Advice>,
    s: Column<Advice>,
    c: Column<Advice>,
    v: Column<Advice>,
    w: Column<Advice>,
    t: Column<Advice>,
    first: Column<Fixed>,
    len: Column<Fixed>,
    eps: Column<Fixed>,
    pow: Column<Fixed>,
    q_norm: Selector,
    q_root: Selector,
}

/// The cells of one normalized row that the layer checks: the products to requantize, and the root and its two
/// slacks to range-check.
pub struct NormCells {
    /// `c_j · q`, one per element.
    pub products: Vec<AssignedValue>,
    /// `q`.
    pub root: AssignedValue,
    /// The lower slack `2^(2F) − q²·V`.
    pub lower: AssignedValue,
    /// The upper slack `(q + 1)²·V − 2^(2F) − 1`.
    pub upper: AssignedValue,
}

impl NormConfig {
    /// Allocates the columns and the two gates.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let [x, h, s, c, v, w, t] = [(); 7].map(|_| meta.advice_column());
        for column in [x, h, s, c, t, w] {
            meta.enable_equality(column);
        }
        let [first, len, eps, pow] = [(); 4].map(|_| meta.fixed_column());
        let q_norm = meta.selector();
        let q_root = meta.selector();
        meta.create_gate("layer norm element", |meta| {
            let q = meta.query_selector(q_norm);
            let h_prev = meta.query_advice(h, Rotation::prev());
            let v_prev = meta.query_advice(v, Rotation::prev());
            let [x, h, s, c, v, w, t] = [x, h, s, c, v, w, t].map(|col| meta.query_advice(col, Rotation::cur()));
            let first = meta.query_fixed(first, Rotation::cur());
            let len = meta.query_fixed(len, Rotation::cur());
            let one = Expression::Constant(Fr::from(1));
            vec![
                q.clone() * (h - (one.clone() - first.clone()) * h_prev - x.clone()),
                q.clone() * (c.clone() - len * x + s),
                q.clone() * (v - (one - first) * v_prev - c.clone() * c.clone()),
                q * (t - c * w),
            ]
        });
        meta.create_gate("layer norm root", |meta| {
            let sel = meta.query_selector(q_root);
            let v_prev = meta.query_advice(v, Rotation::prev());
            let [q, a, b] = [x, c, t].map(|col| meta.query_advice(col, Rotation::cur()));
            let eps = meta.query_fixed(eps, Rotation::cur());
            let pow = meta.query_fixed(pow, Rotation::cur());
            let one = Expression::Constant(Fr::from(1));
            let variance = v_prev + eps;
            let next = q.clone() + one.clone();
            vec![
                sel.clone() * (a - pow.clone() + q.clone() * q * variance.clone()),
                sel * (b - next.clone() * next * variance + pow + one),
            ]
        });
        Self {
            x,
            h,
            s,
            c,
            v,
            w,
            t,
            first,
            len,
            eps,
            pow,
            q_norm,
            q_root,
        }
    }

    /// Rows one normalized row of `n` elements takes: one per element and the root row.
    pub fn rows(n: usize) -> usize {
        n + 1
    }

    /// Writes zeros into `h` and `v` at row 0 (the blank row before the first layer-norm row, which the element
    /// gate reads); layer-norm rows start at row 1.
    pub fn assign_blank_row(&self, a: &mut Assigner) {
        a.advice(CellKind::Padding, self.h, 0, Fr::from(0));
        a.advice(CellKind::Padding, self.v, 0, Fr::from(0));
    }

    /// One normalized row from `row`: the elements `x` of layer `norm`. Returns the cells to check and the next
    /// free row. Every cell is computed from the cells as written (a forged cell propagates).
    pub fn assign_row(
        &self,
        a: &mut Assigner,
        row: usize,
        norm: &LayerNorm,
        x: &[AssignedValue],
    ) -> Result<(NormCells, usize), Error> {
        let n = x.len();
        if n == 0 {
            return Err(Error::Synthesis);
        }
        let root_row = row + n;
        let len = Fr::from(n as u64);
        // Sums, centred values and squares.
        let mut copies = Vec::with_capacity(n);
        let mut running = Fr::from(0);
        let mut last_sum = None;
        for (j, xj) in x.iter().enumerate() {
            let at = row + j;
            a.enable(&self.q_norm, at)?;
            a.fixed(self.first, at, Fr::from(u64::from(j == 0)));
            a.fixed(self.len, at, len);
            let xc = a.copy(CellKind::NormInput, self.x, at, xj);
            running += xc.value;
            last_sum = Some(a.advice(CellKind::NormSum, self.h, at, running));
            running = last_sum.map_or(running, |h| h.value);
            copies.push(xc);
        }
        let last_sum = last_sum.ok_or(Error::Synthesis)?;
        let mut squares = Fr::from(0);
        let mut centred = Vec::with_capacity(n);
        for (j, xc) in copies.iter().enumerate() {
            let at = row + j;
            let s = a.copy(CellKind::NormSum, self.s, at, &last_sum);
            let c = a.advice(CellKind::NormCentred, self.c, at, len * xc.value - s.value);
            squares += c.value * c.value;
            squares = a.advice(CellKind::NormSquares, self.v, at, squares).value;
            centred.push(c);
        }
        // The root, from the sum of squares as written.
        let eps = field::from_i64(norm.epsilon);
        let pow = field::from_i128(norm.root_square() as i128);
        let variance = squares + eps;
        let q = field::to_i64(&variance).map_or(0, |v| norm.root_of(v));
        a.enable(&self.q_root, root_row)?;
        a.fixed(self.eps, root_row, eps);
        a.fixed(self.pow, root_row, pow);
        let root = a.advice(CellKind::NormRoot, self.x, root_row, field::from_i64(q));
        let q = root.value;
        let next = q + Fr::from(1);
        let lower = a.advice(CellKind::NormSlack, self.c, root_row, pow - q * q * variance);
        let upper = a.advice(
            CellKind::NormSlack,
            self.t,
            root_row,
            next * next * variance - pow - Fr::from(1),
        );
        for column in [self.h, self.s, self.v, self.w] {
            a.advice(CellKind::Padding, column, root_row, Fr::from(0));
        }
        // The products.
        let mut products = Vec::with_capacity(n);
        for (j, c) in centred.iter().enumerate() {
            let at = row + j;
            let w = a.copy(CellKind::NormRoot, self.w, at, &root);
            products.push(a.advice(CellKind::NormProduct, self.t, at, c.value * w.value));
        }
        let cells = NormCells {
            products,
            root,
            lower,
            upper,
        };
        Ok((cells, root_row + 1))
    }
}
