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
//!
//! **Windows.** When the rows of `X` are sliding windows of shared lines (a stride-1 convolution reads each input
//! `kh·kw` times; [`Windows`]), the `v_k` are computed from the lines instead, with the same value:
//! `v_k = Σ_y G^(H−1−y)·R(line(k,y), d_k)` for `G = γ^W`, `P = H·W`, and each window value
//! `R(L, d) = F_L(d+W−1) − G·F_L(d−1)` from the Horner prefixes `F_L` of its line. For this every pair has, for each
//! window width `W` the circuit uses ([`FreivaldsConfig::configure`]'s `widths`), a *stride* selector and gate
//!
//! `q_stride_W · (h − γ^W·h[−1] − c·a) = 0` (degree 3; `γ^W` is a power of the challenge, of degree 0),
//!
//! and the runs of `X` become: one Horner run per line (its entries past its leading padding; each prefix `F_L(j)`
//! is a running value of it), a run of two rows per window that needs a subtraction (`h = −F_L(d−1)`, the first
//! row with `c = −1`; then a stride row `h = G·h[−1] + F_L(d+W−1)`; a window starting within the leading padding
//! is `F_L(d+W−1)` itself), and one run of `H` rows per tap: a first row, then stride rows, over the window values
//! of the tap's output rows (a copied window value with `c = 1`, or `c = 0` and a padding operand for an
//! all-padding segment). `v_k` is the same polynomial in `γ` as the plain evaluation computes, so the check and its
//! soundness are unchanged; [`Windows::find`] verifies its windows against `X` entry by entry when it builds them
//! from the model, and synthesis lays out exactly what the model's windows say (the verifying key fixes it).

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

pub mod bilinear;
pub mod windows;

pub use windows::{Windows, MAX_WINDOW_WIDTHS};

/// One column pair of the chip with its fixed columns and selectors.
#[derive(Clone, Debug)]
struct Pair {
    a: Column<Advice>,
    h: Column<Advice>,
    mode: Column<Fixed>,
    c: Column<Fixed>,
    q_step: Selector,
    /// The stride selector of each window width: `h = γ^W·h[−1] + c·a`.
    strides: Vec<(usize, Selector)>,
    /// The operand column and gate of dot-product runs (`h = h[−1] + a·b`), in a circuit with matrix products of
    /// two activations ([`bilinear`]).
    dot: Option<bilinear::DotColumns>,
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

/// Rows one product takes when `X` is evaluated through `windows` ([`Windows::rows`] in place of `K·P`).
pub fn windowed_rows(outputs: usize, taps: usize, positions: usize, windows: &Windows) -> usize {
    if outputs == 0 || positions == 0 {
        return 0;
    }
    windows.rows() + positions * outputs + outputs * check_rows(taps)
}

/// The lengths of the runs of one product, in the order they are placed (none when there is nothing to check):
/// the evaluation of `X` (a run per tap, or the lines, differences and taps of `windows`), then a run per row
/// of `Y`, then a check per output.
fn run_lengths(outputs: usize, taps: usize, positions: usize, windows: Option<&Windows>) -> Vec<usize> {
    if rows(outputs, taps, positions) == 0 {
        return Vec::new();
    }
    let mut runs = Vec::with_capacity(2 * taps + 2 * outputs);
    match windows {
        None => runs.extend(std::iter::repeat_n(positions, taps)),
        Some(w) => {
            runs.extend(w.line_runs());
            runs.extend(std::iter::repeat_n(2, w.differences.len()));
            runs.extend(std::iter::repeat_n(w.height, taps));
        }
    }
    runs.extend(std::iter::repeat_n(positions, outputs));
    runs.extend(std::iter::repeat_n(check_rows(taps), outputs));
    runs
}

/// Places the runs of one product (`outputs` rows of `W`, `taps` columns of `W`, `positions` columns of `X`,
/// evaluated through `windows` when given) into `rows` exactly as [`FreivaldsConfig::assign_product`] does,
/// without assigning anything.
pub fn place_product(rows: &mut ColumnRows, outputs: usize, taps: usize, positions: usize, windows: Option<&Windows>) {
    for len in run_lengths(outputs, taps, positions, windows) {
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

/// The windows of `linear`'s `X` ([`Windows::find`] over its taps' sources), when `linear` is a matrix product
/// whose `X` they evaluate in fewer rows.
pub fn product_windows(linear: &Linear) -> Option<Windows> {
    let shape = product_shape(linear)?;
    Windows::find(shape.taps, shape.positions, |k, p| {
        linear.groups.get(p).and_then(|g| g.taps.get(k)).cloned().flatten()
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

/// The multiplier of stride rows: `G = γ^width`.
#[derive(Clone, Copy, Debug)]
struct Stride {
    /// The window width `W`.
    width: usize,
    /// `γ^W` at the challenge's value.
    power: Fr,
}

/// `base^exponent` as an expression (square and multiply; `exponent ≥ 1`).
fn power(base: Expression<Fr>, exponent: usize) -> Expression<Fr> {
    let mut result: Option<Expression<Fr>> = None;
    let mut square = base;
    let mut e = exponent;
    loop {
        if e & 1 == 1 {
            result = Some(match result {
                None => square.clone(),
                Some(r) => r * square.clone(),
            });
        }
        e >>= 1;
        if e == 0 {
            break;
        }
        square = square.clone() * square;
    }
    result.unwrap_or(Expression::Constant(Fr::ONE))
}

impl Pair {
    /// Allocates one column pair with its fixed columns, selectors and gates (a stride gate per width in
    /// `widths`, and the dot-product column and gate with `dot`).
    fn configure(meta: &mut ConstraintSystem<Fr>, gamma: Challenge, widths: &[usize], dot: bool) -> Self {
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
        let strides = (widths.iter())
            .map(|&width| {
                let q_stride = meta.selector();
                meta.create_gate("freivalds stride", |meta| {
                    let q = meta.query_selector(q_stride);
                    let g = power(meta.query_challenge(gamma), width);
                    let h_cur = meta.query_advice(h, Rotation::cur());
                    let h_prev = meta.query_advice(h, Rotation::prev());
                    let a = meta.query_advice(a, Rotation::cur());
                    let c = meta.query_fixed(c, Rotation::cur());
                    vec![q * (h_cur - g * h_prev - c * a)]
                });
                (width, q_stride)
            })
            .collect();
        Self {
            a,
            h,
            mode,
            c,
            q_step,
            strides,
            dot: dot.then(|| bilinear::configure(meta, a, h, mode)),
        }
    }

    /// The operand cell of a row: a copy of `operand`, or a zero of kind [`CellKind::Padding`] for `None` (then
    /// `c` must be 0, so no constraint needs to read it). Returns `c·a`.
    fn operand(&self, a: &mut Assigner, row: usize, c: Fr, operand: Option<&AssignedValue>) -> Fr {
        a.fixed(self.c, row, c);
        let value = match operand {
            Some(source) => a.copy(CellKind::FreivaldsOperand, self.a, row, source).value,
            None => {
                debug_assert_eq!(c, Fr::ZERO, "an unconstrained operand must be multiplied by zero");
                a.advice(CellKind::Padding, self.a, row, Fr::ZERO).value
            }
        };
        c * value
    }

    /// A stride row (`h = γ^W·h[−1] + c·a`, with `h[−1] = prev`): writes the operand and the running value; an
    /// `Error::Synthesis` when the pair has no stride gate of that width.
    fn stride(
        &self,
        a: &mut Assigner,
        row: usize,
        stride: Stride,
        prev: Fr,
        c: Fr,
        operand: Option<&AssignedValue>,
    ) -> Result<AssignedValue, Error> {
        let (_, q) = (self.strides.iter())
            .find(|(w, _)| *w == stride.width)
            .ok_or(Error::Synthesis)?;
        a.enable(q, row)?;
        let term = self.operand(a, row, c, operand);
        Ok(a.advice(CellKind::FreivaldsSum, self.h, row, stride.power * prev + term))
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
        Ok(self.operand(a, row, c, operand))
    }

    /// One Horner run over `operands` (`None` for a padding entry) from `row`; returns its running values (the
    /// last is the evaluation) and the next free row.
    fn horner_run<'v>(
        &self,
        a: &mut Assigner,
        mut row: usize,
        gamma: Fr,
        operands: impl Iterator<Item = Option<&'v AssignedValue>>,
    ) -> Result<(Vec<AssignedValue>, usize), Error> {
        let mut run: Vec<AssignedValue> = Vec::new();
        for operand in operands {
            let (mode, prev) = match run.last() {
                None => (Mode::First, Fr::ZERO),
                Some(l) => (Mode::Horner, l.value),
            };
            let c = if operand.is_some() { Fr::ONE } else { Fr::ZERO };
            let term = self.step(a, row, mode, c, operand)?;
            run.push(a.advice(CellKind::FreivaldsSum, self.h, row, mode.factor(gamma) * prev + term));
            row += 1;
        }
        if run.is_empty() {
            return Err(Error::Synthesis);
        }
        Ok((run, row))
    }

    /// One run in `G = γ^W` from `row` over `operands`: a first row, then stride rows; a copied operand has
    /// `c = 1`, a padding one `c = 0`. Returns the evaluation cell and the next free row.
    fn stride_run<'v>(
        &self,
        a: &mut Assigner,
        mut row: usize,
        stride: Stride,
        operands: impl Iterator<Item = Option<&'v AssignedValue>>,
    ) -> Result<(AssignedValue, usize), Error> {
        let mut last: Option<AssignedValue> = None;
        for operand in operands {
            let c = if operand.is_some() { Fr::ONE } else { Fr::ZERO };
            last = Some(match last {
                None => {
                    let term = self.step(a, row, Mode::First, c, operand)?;
                    a.advice(CellKind::FreivaldsSum, self.h, row, term)
                }
                Some(prev) => self.stride(a, row, stride, prev.value, c, operand)?,
            });
            row += 1;
        }
        Ok((last.ok_or(Error::Synthesis)?, row))
    }

    /// The two-row run of a window value `end − G·start`: `h = −start`, then a stride row `h = G·h[−1] + end`.
    /// Returns the window value's cell and the next free row.
    fn difference_run(
        &self,
        a: &mut Assigner,
        row: usize,
        stride: Stride,
        start: &AssignedValue,
        end: &AssignedValue,
    ) -> Result<(AssignedValue, usize), Error> {
        let term = self.step(a, row, Mode::First, -Fr::ONE, Some(start))?;
        let first = a.advice(CellKind::FreivaldsSum, self.h, row, term);
        let value = self.stride(a, row + 1, stride, first.value, Fr::ONE, Some(end))?;
        Ok((value, row + 2))
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
    /// Allocates the challenge and `pairs` column pairs (0 is taken as 1) with their gates, a stride gate in
    /// every pair for each window width in `widths`, and with `dot` the dot-product column and gate of products of
    /// two activations ([`bilinear`]). At least one first-phase advice column must have been allocated before
    /// (halo2 requires it for a second-phase column).
    pub fn configure(meta: &mut ConstraintSystem<Fr>, pairs: usize, widths: &[usize], dot: bool) -> Self {
        let gamma = meta.challenge_usable_after(FirstPhase);
        let pairs = (0..pairs.max(1))
            .map(|_| Pair::configure(meta, gamma, widths, dot))
            .collect();
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

    /// One run in the pair of `rows` with the fewest rows used, laid out by `run` from the row it is given (which
    /// returns its result and the next free row); advances that pair by the rows written.
    fn place<T>(
        &self,
        rows: &mut ColumnRows,
        run: impl FnOnce(&Pair, usize) -> Result<(T, usize), Error>,
    ) -> Result<T, Error> {
        let (p, start) = rows.next();
        let (out, next) = run(&self.pairs[p], start)?;
        rows.advance(p, next - start);
        Ok(out)
    }

    /// Lays out the check `Y = W·X` with challenge value `gamma` (call it after [`Assigner::next_phase`], with
    /// `gamma = a.challenge(self.challenge())`), placing each run in the pair of `rows` with the fewest rows used
    /// (as [`place_product`] does) and advancing `rows`. `weights` is `O×K`, `x` is `K×P` (`None` for a
    /// zero-padding entry) and `y` is `O×P`; `x` and `y` must be first-phase cells. With `windows`, `X` is
    /// evaluated through them (the chip must have a stride gate of their width). A shape mismatch, windows that
    /// do not fit `x`, or a tracker for another number of pairs is an `Error::Synthesis` (with `rows` untouched).
    #[allow(clippy::too_many_arguments)]
    pub fn assign_product(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        gamma: Fr,
        weights: &[Vec<i64>],
        x: &[Vec<Option<AssignedValue>>],
        y: &[Vec<AssignedValue>],
        windows: Option<&Windows>,
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
            || windows.is_some_and(|w| !self.fits(w, x, positions))
        {
            return Err(Error::Synthesis);
        }
        if self::rows(outputs, taps, positions) == 0 {
            return Ok(());
        }
        let v = match windows {
            None => (x.iter())
                .map(|xk| {
                    self.place(rows, |pair, row| {
                        Self::last(pair.horner_run(a, row, gamma, xk.iter().map(Option::as_ref)))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(w) => self.evaluate_windows(a, rows, gamma, x, w)?,
        };
        let mut evaluations = Vec::with_capacity(outputs);
        for yo in y {
            evaluations.push(self.place(rows, |pair, row| {
                Self::last(pair.horner_run(a, row, gamma, yo.iter().map(Some)))
            })?);
        }
        for (wo, yo) in weights.iter().zip(&evaluations) {
            let terms: Vec<(Fr, &AssignedValue)> = wo.iter().zip(&v).map(|(&w, vk)| (field::from_i64(w), vk)).collect();
            self.place(rows, |pair, row| Ok(((), pair.check_run(a, row, &terms, yo)?)))?;
        }
        Ok(())
    }

    /// The last running value of a Horner run, with the next free row.
    fn last(run: Result<(Vec<AssignedValue>, usize), Error>) -> Result<(AssignedValue, usize), Error> {
        let (run, next) = run?;
        Ok((*run.last().ok_or(Error::Synthesis)?, next))
    }

    /// Whether `windows` fit `x` (`K×P`): one row of windows per tap, `W·H = P`, every window inside its line and
    /// every line entry a non-padding entry of `x`, and a stride gate of width `W` in the chip.
    fn fits(&self, windows: &Windows, x: &[Vec<Option<AssignedValue>>], positions: usize) -> bool {
        let (width, height) = (windows.width, windows.height);
        let entry_ok =
            |e: &windows::Entry| e.is_none_or(|(k, p)| x.get(k).and_then(|xk| xk.get(p)).is_some_and(Option::is_some));
        self.pairs
            .iter()
            .all(|pair| pair.strides.iter().any(|(w, _)| *w == width))
            && width.checked_mul(height) == Some(positions)
            && windows.windows.len() == x.len()
            && (windows.lines.iter()).all(|l| l.lead < l.entries.len() && l.entries.iter().all(entry_ok))
            && (windows.windows.iter()).all(|wk| {
                wk.len() == height
                    && wk.iter().flatten().all(|win| {
                        windows
                            .lines
                            .get(win.line)
                            .is_some_and(|l| win.offset + width <= l.entries.len())
                    })
            })
            && (windows.differences.iter()).all(|d| {
                windows
                    .lines
                    .get(d.line)
                    .is_some_and(|l| d.offset > l.lead && d.offset + width <= l.entries.len())
            })
    }

    /// The evaluations `v_k` of the rows of `X` through `windows` (already checked by [`Self::fits`]): a Horner run
    /// per line, a difference run per window past its line's leading padding, and a run in `G = γ^W` per tap.
    fn evaluate_windows(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        gamma: Fr,
        x: &[Vec<Option<AssignedValue>>],
        windows: &Windows,
    ) -> Result<Vec<AssignedValue>, Error> {
        let width = windows.width;
        let stride = Stride {
            width,
            power: gamma.pow_vartime([width as u64]),
        };
        let entry = |e: &windows::Entry| e.and_then(|(k, p)| x.get(k).and_then(|xk| xk.get(p)).copied().flatten());
        // The Horner prefixes of each line past its leading padding: prefix j is F_L(lead + j).
        let mut prefixes = Vec::with_capacity(windows.lines.len());
        for line in &windows.lines {
            let operands: Vec<Option<AssignedValue>> = line.entries[line.lead..].iter().map(entry).collect();
            prefixes.push(self.place(rows, |pair, row| {
                pair.horner_run(a, row, gamma, operands.iter().map(Option::as_ref))
            })?);
        }
        // F_L(j) for j at or past the leading padding.
        let prefix = |line: usize, j: usize| -> Result<AssignedValue, Error> {
            let lead = windows.lines.get(line).ok_or(Error::Synthesis)?.lead;
            (prefixes.get(line))
                .and_then(|f| f.get(j.checked_sub(lead)?))
                .copied()
                .ok_or(Error::Synthesis)
        };
        let mut values = std::collections::HashMap::with_capacity(windows.differences.len());
        for d in &windows.differences {
            let start = prefix(d.line, d.offset - 1)?;
            let end = prefix(d.line, d.offset + width - 1)?;
            let value = self.place(rows, |pair, row| pair.difference_run(a, row, stride, &start, &end))?;
            values.insert(*d, value);
        }
        // R(L, d): a difference's cell, or F_L(d + W − 1) for a window within the leading padding.
        let window_value = |w: &windows::Window| -> Result<AssignedValue, Error> {
            match values.get(w) {
                Some(v) => Ok(*v),
                None if w.offset <= windows.lines.get(w.line).ok_or(Error::Synthesis)?.lead => {
                    prefix(w.line, w.offset + width - 1)
                }
                None => Err(Error::Synthesis),
            }
        };
        let mut v = Vec::with_capacity(windows.windows.len());
        for wk in &windows.windows {
            let operands = (wk.iter())
                .map(|w| w.as_ref().map(window_value).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            v.push(self.place(rows, |pair, row| {
                pair.stride_run(a, row, stride, operands.iter().map(Option::as_ref))
            })?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
