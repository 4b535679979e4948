//! A Freivalds-style check of a matrix product `Y = W·X` at a random challenge, in place of the `O·K·P`
//! multiply-accumulates of the linear chip. A layer's bias is not part of the product: the caller folds it into
//! its requantization offset.
//!
//! `W` (`O×K`) is a constant baked into a fixed column, so the verifying key commits to it. `X` (`K×P`, with `None`
//! for a zero-padding entry) and `Y` (`O×P`) are first-phase advice cells assigned elsewhere. The chip lives in the
//! second phase: its challenge `γ` is squeezed after every first-phase advice column (so `X` and `Y`) is committed,
//! and all its advice columns are second-phase columns.
//!
//! With `e_p = γ^(P−1−p)` it evaluates every row of `X` and `Y` by Horner's rule, `v_k = Σ_p X[k,p]·e_p`,
//! `y_o = Σ_p Y[o,p]·e_p`, and then checks, for every output `o`, `y_o = Σ_k W[o,k]·v_k` with a multiply-accumulate
//! over the fixed weights. For each `o` the difference of the two sides is `Σ_p (Y[o,p] − Σ_k W[o,k]·X[k,p])·γ^(P−1−p)`,
//! a polynomial of degree `< P` in `γ` whose coefficients are fixed before `γ` is drawn; it vanishes at `γ` for a
//! wrong product with probability at most `(P−1)/|F|`, so a wrong `Y` passes with probability at most
//! `O·(P−1)/|F|`. As with the linear chip the product is over the field: callers bound `Y` where it matters
//! (requantization range checks).
//!
//! Columns: `pairs` column pairs ([`FreivaldsConfig::configure`]), each with its own advice `a` (operand) and `h`
//! (running value), both second phase and equality-enabled, its own fixed `mode` and `c` and its own selector
//! `q_step`; the challenge `γ` is shared. One gate, in every pair (all its queries stay inside the pair):
//!
//! `q_step · (h − (mode·(2 − mode)·γ + mode·(mode − 1)·½)·h[−1] − c·a) = 0` (degree 4).
//!
//! `mode` takes only the values 0, 1 and 2, where `mode·(2 − mode)` and `mode·(mode − 1)·½` are the indicators of
//! 1 and 2: the first row of a run has `mode = 0` (`h = c·a`), a further Horner row `mode = 1`
//! (`h = γ·h[−1] + c·a`) and a further multiply-accumulate row `mode = 2` (`h = h[−1] + c·a`). A Horner row has
//! `c = 1` and a copied operand, or `c = 0` for a padding entry of `X`; a multiply-accumulate row has `c` the
//! weight. No gate constrains the operand cell of a padding entry: it is a zero of kind [`CellKind::Padding`]
//! multiplied by the fixed `c = 0`, so whatever it holds cannot reach `h`.
//!
//! Layout: the check is a sequence of independent runs: one run per row of `X` (`P` rows each, ending in `v_k`),
//! one run per row of `Y` (`P` rows each, ending in `y_o`), then per output a multiply-accumulate run of `K` rows
//! whose operands are copies of `v_0 … v_(K−1)`; the `h` cell of its last row is a copy of `y_o`, so the step gate
//! there enforces the check. (With `K = 0` the product is zero: the run is one row with `c = 0` and a padding
//! operand, which forces `y_o = 0`.) In all `P·(K + O) + O·max(K, 1)` rows ([`rows`]; 0 when `O = 0` or `P = 0`).
//! The first row of a run has `mode = 0`, so its step gate does not depend on the row before (which must merely be
//! assigned): runs are tied together only by copy constraints (across columns and pairs alike), and each run may go
//! to any pair. Row 0 of every pair is a blank row ([`FreivaldsConfig::assign_blank_rows`]) and runs start at
//! row 1; each run goes, in the order above, to the pair with the fewest rows used so far (the first such pair on a
//! tie), tracked by a [`ColumnRows`] whose row 0 of every pair is the blank row. [`place_product`] performs the same placement without assigning anything
//! (for the layout planner).
//!
//! Soundness is unchanged by the split: every gate of every run is the step gate, in its own pair, with the fixed
//! `mode`, `c` and selector of its rows committed in the verifying key; the copy constraints carry `X`, `Y` and the
//! `v_k` between runs wherever they are placed.

use ff::{Field, PrimeField};
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Challenge, Column, ConstraintSystem, Error, Expression, FirstPhase, Fixed, SecondPhase, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::column_rows::ColumnRows;
use crate::field;
use crate::model::Linear;

/// One column pair of the chip with its fixed columns and selector.
#[derive(Clone, Debug)]
struct Pair {
    a: Column<Advice>,
    h: Column<Advice>,
    mode: Column<Fixed>,
    c: Column<Fixed>,
    q_step: Selector,
}

/// Columns and challenge of the Freivalds chip.
#[derive(Clone, Debug)]
pub struct FreivaldsConfig {
    pairs: Vec<Pair>,
    gamma: Challenge,
}

/// Rows one product with `outputs` rows of `W`, `taps` columns of `W` and `positions` columns of `X` takes, in all
/// pairs together and without the blank rows: `P·(K + O) + O·max(K, 1)`, or zero when there is nothing to check
/// (`O = 0` or `P = 0`).
pub fn rows(outputs: usize, taps: usize, positions: usize) -> usize {
    if outputs == 0 || positions == 0 {
        return 0;
    }
    positions * (taps + outputs) + outputs * check_rows(taps)
}

/// Rows of one multiply-accumulate run over `taps` weights (one row with a zero coefficient when there are none).
fn check_rows(taps: usize) -> usize {
    taps.max(1)
}

/// The lengths of the runs of one product, in the order they are placed (none when there is nothing to check).
fn run_lengths(outputs: usize, taps: usize, positions: usize) -> impl Iterator<Item = usize> {
    let runs = if rows(outputs, taps, positions) == 0 {
        0
    } else {
        taps + 2 * outputs
    };
    let horner = taps + outputs;
    (0..runs).map(move |i| if i < horner { positions } else { check_rows(taps) })
}

/// Places the runs of one product (`outputs` rows of `W`, `taps` columns of `W`, `positions` columns of `X`) into
/// `rows` exactly as [`FreivaldsConfig::assign_product`] does, without assigning anything.
pub fn place_product(rows: &mut ColumnRows, outputs: usize, taps: usize, positions: usize) {
    for len in run_lengths(outputs, taps, positions) {
        rows.place(len);
    }
}

/// A linear layer seen as the matrix product `Y = W·X` (its bias left to the caller): `O` outputs (the kernels, in
/// group order), `K` taps and `P` positions (the groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductShape {
    /// Kernel index of each output row of `W`.
    pub kernels: Vec<usize>,
    /// Taps (columns of `W`, rows of `X`).
    pub taps: usize,
    /// Positions (columns of `X` and `Y`).
    pub positions: usize,
}

impl ProductShape {
    /// Rows the check takes (all pairs together, blank rows excluded): [`rows`].
    pub fn rows(&self) -> usize {
        rows(self.kernels.len(), self.taps, self.positions)
    }
}

/// The shape of `linear` as a matrix product, when it has several groups that all use the same kernels in the
/// same order over the same number of taps (a convolution); `None` otherwise.
pub fn product_shape(linear: &Linear) -> Option<ProductShape> {
    let first = linear.groups.first()?;
    let kernels: Vec<usize> = first.outputs.iter().map(|&(_, k)| k).collect();
    let taps = first.taps.len();
    let same = linear.groups.iter().all(|g| {
        g.taps.len() == taps
            && g.outputs.len() == kernels.len()
            && g.outputs.iter().zip(&kernels).all(|(o, k)| o.1 == *k)
    });
    let shaped = kernels
        .iter()
        .all(|&k| linear.kernels.get(k).is_some_and(|kernel| kernel.weights.len() == taps));
    (linear.groups.len() >= 2 && !kernels.is_empty() && same && shaped).then_some(ProductShape {
        kernels,
        taps,
        positions: linear.groups.len(),
    })
}

/// The kind of a row, stored in the fixed `mode` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The first row of a run: `h = c·a`.
    First,
    /// A further Horner row: `h = γ·h[−1] + c·a`.
    Horner,
    /// A further multiply-accumulate row: `h = h[−1] + c·a`.
    Accumulate,
}

impl Mode {
    /// The value of the `mode` column.
    fn value(self) -> Fr {
        match self {
            Mode::First => Fr::ZERO,
            Mode::Horner => Fr::ONE,
            Mode::Accumulate => Fr::from(2),
        }
    }

    /// The factor of `h[−1]` at challenge value `gamma`.
    fn factor(self, gamma: Fr) -> Fr {
        match self {
            Mode::First => Fr::ZERO,
            Mode::Horner => gamma,
            Mode::Accumulate => Fr::ONE,
        }
    }
}

impl Pair {
    /// Allocates one column pair with its fixed columns, selector and gate.
    fn configure(meta: &mut ConstraintSystem<Fr>, gamma: Challenge) -> Self {
        let a = meta.advice_column_in(SecondPhase);
        let h = meta.advice_column_in(SecondPhase);
        meta.enable_equality(a);
        meta.enable_equality(h);
        let mode = meta.fixed_column();
        let c = meta.fixed_column();
        let q_step = meta.selector();
        meta.create_gate("freivalds step", |meta| {
            let q = meta.query_selector(q_step);
            let g = meta.query_challenge(gamma);
            let h_cur = meta.query_advice(h, Rotation::cur());
            let h_prev = meta.query_advice(h, Rotation::prev());
            let a = meta.query_advice(a, Rotation::cur());
            let mode = meta.query_fixed(mode, Rotation::cur());
            let c = meta.query_fixed(c, Rotation::cur());
            let constant = |v: Fr| Expression::Constant(v);
            // The indicators of mode 1 (Horner) and mode 2 (multiply-accumulate), both 0 at mode 0.
            let horner = mode.clone() * (constant(Fr::from(2)) - mode.clone());
            let accumulate = mode.clone() * (mode - constant(Fr::ONE)) * constant(Fr::TWO_INV);
            vec![q * (h_cur - (horner * g + accumulate) * h_prev - c * a)]
        });
        Self { a, h, mode, c, q_step }
    }

    /// The selector and fixed cells of one row and its operand cell: a copy of `operand`, or a zero of kind
    /// [`CellKind::Padding`] for `None` (then `c` must be 0, so no constraint needs to read it). Returns `c·a`.
    fn step(
        &self,
        a: &mut Assigner,
        row: usize,
        mode: Mode,
        c: Fr,
        operand: Option<&AssignedValue>,
    ) -> Result<Fr, Error> {
        a.enable(&self.q_step, row)?;
        a.fixed(self.mode, row, mode.value());
        a.fixed(self.c, row, c);
        let value = match operand {
            Some(source) => a.copy(CellKind::FreivaldsOperand, self.a, row, source).value,
            None => {
                debug_assert_eq!(c, Fr::ZERO, "an unconstrained operand must be multiplied by zero");
                a.advice(CellKind::Padding, self.a, row, Fr::ZERO).value
            }
        };
        Ok(c * value)
    }

    /// One Horner run over `operands` (`None` for a padding entry) from `row`; returns the evaluation cell and the
    /// next free row.
    fn horner_run<'v>(
        &self,
        a: &mut Assigner,
        mut row: usize,
        gamma: Fr,
        operands: impl Iterator<Item = Option<&'v AssignedValue>>,
    ) -> Result<(AssignedValue, usize), Error> {
        let mut last: Option<AssignedValue> = None;
        for operand in operands {
            let (mode, prev) = match last {
                None => (Mode::First, Fr::ZERO),
                Some(l) => (Mode::Horner, l.value),
            };
            let c = if operand.is_some() { Fr::ONE } else { Fr::ZERO };
            let term = self.step(a, row, mode, c, operand)?;
            last = Some(a.advice(CellKind::FreivaldsSum, self.h, row, mode.factor(gamma) * prev + term));
            row += 1;
        }
        let last = last.ok_or(Error::Synthesis)?;
        Ok((last, row))
    }

    /// One multiply-accumulate run from `row` over `terms` (fixed weight, copied operand), whose last running value
    /// is a copy of `target` (with no terms, one row with weight 0 and a padding operand, forcing `target = 0`);
    /// returns the next free row.
    fn check_run(
        &self,
        a: &mut Assigner,
        mut row: usize,
        terms: &[(Fr, &AssignedValue)],
        target: &AssignedValue,
    ) -> Result<usize, Error> {
        let terms: Vec<(Fr, Option<&AssignedValue>)> = if terms.is_empty() {
            vec![(Fr::ZERO, None)]
        } else {
            terms.iter().map(|&(w, source)| (w, Some(source))).collect()
        };
        let last = terms.len() - 1;
        let mut sum = Fr::ZERO;
        for (j, &(w, source)) in terms.iter().enumerate() {
            let mode = if j == 0 { Mode::First } else { Mode::Accumulate };
            sum = mode.factor(Fr::ONE) * sum + self.step(a, row, mode, w, source)?;
            if j == last {
                // The last weight row closes the check: its running value is the evaluation of Y's row.
                a.copy(CellKind::FreivaldsSum, self.h, row, target);
            } else {
                sum = a.advice(CellKind::FreivaldsSum, self.h, row, sum).value;
            }
            row += 1;
        }
        Ok(row)
    }
}

impl FreivaldsConfig {
    /// Allocates the challenge and `pairs` column pairs (0 is taken as 1) with their gates. At least one
    /// first-phase advice column must have been allocated before (halo2 requires it for a second-phase column).
    pub fn configure(meta: &mut ConstraintSystem<Fr>, pairs: usize) -> Self {
        let gamma = meta.challenge_usable_after(FirstPhase);
        let pairs = (0..pairs.max(1)).map(|_| Pair::configure(meta, gamma)).collect();
        Self { pairs, gamma }
    }

    /// Number of column pairs.
    pub fn pairs(&self) -> usize {
        self.pairs.len()
    }

    /// The challenge `γ` (usable after the first phase); read it with [`Assigner::challenge`].
    pub fn challenge(&self) -> Challenge {
        self.gamma
    }

    /// Writes a zero into `h` at row 0 of every pair (the blank row before the first run, which its step gate
    /// reads); runs start at row 1 (`ColumnRows::new(pairs, 1)`).
    pub fn assign_blank_rows(&self, a: &mut Assigner) {
        for pair in &self.pairs {
            a.advice(CellKind::Padding, pair.h, 0, Fr::ZERO);
        }
    }

    /// One Horner run in the pair of `rows` with the fewest rows used; advances that pair by the rows written.
    fn place_horner<'v>(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        gamma: Fr,
        operands: impl Iterator<Item = Option<&'v AssignedValue>>,
    ) -> Result<AssignedValue, Error> {
        let (p, start) = rows.next();
        let (cell, next) = self.pairs[p].horner_run(a, start, gamma, operands)?;
        rows.advance(p, next - start);
        Ok(cell)
    }

    /// Lays out the check `Y = W·X` with challenge value `gamma` (call it after [`Assigner::next_phase`], with
    /// `gamma = a.challenge(self.challenge())`), placing each run in the pair of `rows` with the fewest rows used
    /// (as [`place_product`] does) and advancing `rows`. `weights` is `O×K`, `x` is `K×P` (`None` for a
    /// zero-padding entry) and `y` is `O×P`; `x` and `y` must be first-phase cells. A shape mismatch, or a tracker
    /// for another number of pairs, is an `Error::Synthesis` (with `rows` untouched).
    pub fn assign_product(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        gamma: Fr,
        weights: &[Vec<i64>],
        x: &[Vec<Option<AssignedValue>>],
        y: &[Vec<AssignedValue>],
    ) -> Result<(), Error> {
        let outputs = weights.len();
        let taps = x.len();
        let positions = match (x.first(), y.first()) {
            (Some(xk), _) => xk.len(),
            (None, Some(yo)) => yo.len(),
            (None, None) => 0,
        };
        if rows.columns() != self.pairs.len()
            || y.len() != outputs
            || weights.iter().any(|w| w.len() != taps)
            || x.iter().any(|xk| xk.len() != positions)
            || y.iter().any(|yo| yo.len() != positions)
        {
            return Err(Error::Synthesis);
        }
        if run_lengths(outputs, taps, positions).next().is_none() {
            return Ok(());
        }
        let mut v = Vec::with_capacity(taps);
        for xk in x {
            v.push(self.place_horner(a, rows, gamma, xk.iter().map(Option::as_ref))?);
        }
        let mut evaluations = Vec::with_capacity(outputs);
        for yo in y {
            evaluations.push(self.place_horner(a, rows, gamma, yo.iter().map(Some))?);
        }

        for (wo, yo) in weights.iter().zip(&evaluations) {
            let terms: Vec<(Fr, &AssignedValue)> = wo.iter().zip(&v).map(|(&w, vk)| (field::from_i64(w), vk)).collect();
            let (p, start) = rows.next();
            let next = self.pairs[p].check_run(a, start, &terms, yo)?;
            rows.advance(p, next - start);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
