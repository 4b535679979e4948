//! Freivalds' test for a product of two witnessed matrices, `C = A·B` with `A` (`m×n`), `B` (`n×p`) and `C`
//! (`m×p`) all first-phase cells (attention's `Q·Kᵀ` and `A·V`, where neither operand is a constant the key fixes).
//!
//! With `e_j = γ^(p−1−j)` for the challenge `γ`, drawn after every first-phase column (so `A`, `B` and `C`) is
//! committed, the check evaluates every row of `B` and `C` by Horner's rule, `u_k = Σ_j B[k,j]·e_j` and
//! `y_i = Σ_j C[i,j]·e_j` (the runs of [`super::Pair::horner_run`]), and then checks, for every row `i`,
//! `y_i = Σ_k A[i,k]·u_k` with a dot-product run whose operands are both copied cells. For each `i` the difference
//! of the two sides is `Σ_j (C[i,j] − Σ_k A[i,k]·B[k,j])·γ^(p−1−j)`, a polynomial of degree `< p` in `γ` whose
//! coefficients are fixed before `γ` is drawn: a wrong `C` passes with probability at most `m·(p−1)/|F|`. As with
//! the other checks the product is over the field; the requantization of `C` bounds it where it matters.
//!
//! Columns: in a circuit with such products ([`crate::params::Chip::MatMul`]) every column pair gains a
//! second-phase, equality-enabled operand column `b` and a selector `q_dot` with the gate
//!
//! `q_dot · (h − mode·(mode − 1)·½·h[−1] − a·b) = 0` (degree 4),
//!
//! where the fixed `mode` is 0 on the first row of a dot run (`h = a·b`) and 2 on a further row (`h = h[−1] + a·b`).
//! A dot run of `n` rows copies `A[i,0..n]` into `a` and `u_0..u_(n−1)` into `b`; the `h` cell of its last row is
//! a copy of `y_i`, so the gate there enforces the check. Per product: `n` Horner runs of `p` rows, `m` of `p` rows,
//! then `m` dot runs of `n` rows ([`rows`]), each placed in the pair with the fewest rows used, as every run of the
//! chip is ([`place_product`]).

use ff::{Field, PrimeField};
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, SecondPhase, Selector},
    poly::Rotation,
};

use super::{FreivaldsConfig, Mode, Pair};
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::column_rows::ColumnRows;

/// The operand column and selector a pair gains for dot-product runs.
#[derive(Clone, Debug)]
pub(super) struct DotColumns {
    b: Column<Advice>,
    q_dot: Selector,
}

/// Allocates the operand column `b` and the dot-product gate of one pair (whose columns are `a`, `h` and `mode`).
pub(super) fn configure(
    meta: &mut ConstraintSystem<Fr>,
    a: Column<Advice>,
    h: Column<Advice>,
    mode: Column<Fixed>,
) -> DotColumns {
    let b = meta.advice_column_in(SecondPhase);
    meta.enable_equality(b);
    let q_dot = meta.selector();
    meta.create_gate("freivalds dot", |meta| {
        let q = meta.query_selector(q_dot);
        let h_cur = meta.query_advice(h, Rotation::cur());
        let h_prev = meta.query_advice(h, Rotation::prev());
        let a = meta.query_advice(a, Rotation::cur());
        let b = meta.query_advice(b, Rotation::cur());
        let mode = meta.query_fixed(mode, Rotation::cur());
        // 1 at mode 2 (a further row), 0 at mode 0 (the first row).
        let accumulate = mode.clone() * (mode - Expression::Constant(Fr::ONE)) * Expression::Constant(Fr::TWO_INV);
        vec![q * (h_cur - accumulate * h_prev - a * b)]
    });
    DotColumns { b, q_dot }
}

/// Rows one product of an `m×n` by an `n×p` matrix takes, in all pairs together: `n·p + m·p + m·n` (0 when a
/// size is 0).
pub fn rows(m: usize, n: usize, p: usize) -> usize {
    if m == 0 || n == 0 || p == 0 {
        return 0;
    }
    n * p + m * p + m * n
}

/// The lengths of the runs of one product, in the order they are placed: a Horner run per row of `B`, one per row
/// of `C`, then a dot run per row of `A`.
fn run_lengths(m: usize, n: usize, p: usize) -> impl Iterator<Item = usize> {
    let runs = if rows(m, n, p) == 0 { (0, 0, 0) } else { (n, m, m) };
    let horner = std::iter::repeat_n(p, runs.0 + runs.1);
    horner.chain(std::iter::repeat_n(n, runs.2))
}

/// Places the runs of one product (`m×n` by `n×p`) into `rows` exactly as [`FreivaldsConfig::assign_matmul`]
/// does, without assigning anything.
pub fn place_product(rows: &mut ColumnRows, m: usize, n: usize, p: usize) {
    for len in run_lengths(m, n, p) {
        rows.place(len);
    }
}

impl Pair {
    /// One dot-product run from `row` over `lhs · rhs` (equal lengths, at least one term), whose last running
    /// value is a copy of `target`; returns the next free row. An `Error::Synthesis` in a pair without the dot gate.
    fn dot_run(
        &self,
        a: &mut Assigner,
        mut row: usize,
        lhs: &[AssignedValue],
        rhs: &[AssignedValue],
        target: &AssignedValue,
    ) -> Result<usize, Error> {
        let dot = self.dot.as_ref().ok_or(Error::Synthesis)?;
        if lhs.len() != rhs.len() || lhs.is_empty() {
            return Err(Error::Synthesis);
        }
        let last = lhs.len() - 1;
        let mut sum = Fr::ZERO;
        for (k, (x, u)) in lhs.iter().zip(rhs).enumerate() {
            let mode = if k == 0 { Mode::First } else { Mode::Accumulate };
            a.enable(&dot.q_dot, row)?;
            a.fixed(self.mode, row, mode.value());
            let x = a.copy(CellKind::FreivaldsOperand, self.a, row, x);
            let u = a.copy(CellKind::FreivaldsOperand, dot.b, row, u);
            let value: Fr = mode.factor(Fr::ONE) * sum + x.value * u.value;
            if k == last {
                // The last row closes the check: its running value is the evaluation of C's row.
                a.copy(CellKind::FreivaldsSum, self.h, row, target);
            } else {
                sum = a.advice(CellKind::FreivaldsSum, self.h, row, value).value;
            }
            row += 1;
        }
        Ok(row)
    }
}

impl FreivaldsConfig {
    /// Lays out the check `C = A·B` with challenge value `gamma` (after [`Assigner::next_phase`]), placing each run
    /// in the pair of `rows` with the fewest rows used (as [`place_product`] does) and advancing `rows`. `lhs` is
    /// `m×n`, `rhs` `n×p` and `out` `m×p`, all first-phase cells. A shape mismatch, a size of 0, a chip without
    /// dot gates or a tracker for another number of pairs is an `Error::Synthesis`.
    pub fn assign_matmul(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        gamma: Fr,
        lhs: &[Vec<AssignedValue>],
        rhs: &[Vec<AssignedValue>],
        out: &[Vec<AssignedValue>],
    ) -> Result<(), Error> {
        let (m, n) = (lhs.len(), rhs.len());
        let p = rhs.first().map_or(0, Vec::len);
        if rows.columns() != self.pairs.len()
            || self.pairs.iter().any(|pair| pair.dot.is_none())
            || self::rows(m, n, p) == 0
            || out.len() != m
            || lhs.iter().any(|r| r.len() != n)
            || rhs.iter().any(|r| r.len() != p)
            || out.iter().any(|r| r.len() != p)
        {
            return Err(Error::Synthesis);
        }
        let mut evaluate = |matrix: &[Vec<AssignedValue>], rows: &mut ColumnRows| {
            (matrix.iter())
                .map(|r| {
                    self.place(rows, |pair, row| {
                        Self::last(pair.horner_run(a, row, gamma, r.iter().map(Some)))
                    })
                })
                .collect::<Result<Vec<_>, Error>>()
        };
        let u = evaluate(rhs, rows)?;
        let y = evaluate(out, rows)?;
        for (ai, yi) in lhs.iter().zip(&y) {
            self.place(rows, |pair, row| Ok(((), pair.dot_run(a, row, ai, &u, yi)?)))?;
        }
        Ok(())
    }

    /// Whether every pair has the dot gate (a circuit with [`crate::params::Chip::MatMul`]).
    pub fn has_dot(&self) -> bool {
        self.pairs.iter().all(|pair| pair.dot.is_some())
    }
}
