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
//! tie), tracked by [`FreivaldsRows`]. [`place_product`] performs the same placement without assigning anything
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

/// Rows used so far in each column pair of the chip, counting each pair's blank row 0: the next run of a pair
/// starts at its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreivaldsRows(Vec<usize>);

impl FreivaldsRows {
    /// A tracker for `pairs` column pairs (0 is taken as 1) with only the blank rows used.
    pub fn new(pairs: usize) -> Self {
        Self(vec![1; pairs.max(1)])
    }

    /// Number of column pairs.
    pub fn pairs(&self) -> usize {
        self.0.len()
    }

    /// Rows used in each pair (blank row included).
    pub fn used(&self) -> &[usize] {
        &self.0
    }

    /// The most rows used in any pair (blank row included): the rows the chip needs.
    pub fn max(&self) -> usize {
        self.0.iter().copied().max().unwrap_or(0)
    }

    /// Rows used in all pairs together (blank rows included).
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// The pair the next run goes to: the one with the fewest rows used, the first of equals.
    fn next_pair(&self) -> usize {
        let fewest = self.0.iter().copied().min().unwrap_or(0);
        self.0.iter().position(|&r| r == fewest).unwrap_or(0)
    }
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
pub fn place_product(rows: &mut FreivaldsRows, outputs: usize, taps: usize, positions: usize) {
    for len in run_lengths(outputs, taps, positions) {
        let pair = rows.next_pair();
        rows.0[pair] += len;
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
    /// reads); runs start at row 1 ([`FreivaldsRows::new`]).
    pub fn assign_blank_rows(&self, a: &mut Assigner) {
        for pair in &self.pairs {
            a.advice(CellKind::Padding, pair.h, 0, Fr::ZERO);
        }
    }

    /// One Horner run in the pair of `rows` with the fewest rows used; advances that pair by the rows written.
    fn place_horner<'v>(
        &self,
        a: &mut Assigner,
        rows: &mut FreivaldsRows,
        gamma: Fr,
        operands: impl Iterator<Item = Option<&'v AssignedValue>>,
    ) -> Result<AssignedValue, Error> {
        let p = rows.next_pair();
        let (cell, next) = self.pairs[p].horner_run(a, rows.0[p], gamma, operands)?;
        rows.0[p] = next;
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
        rows: &mut FreivaldsRows,
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
        if rows.pairs() != self.pairs.len()
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
            let p = rows.next_pair();
            rows.0[p] = self.pairs[p].check_run(a, rows.0[p], &terms, yo)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use halo2_proofs::{
        circuit::{Layouter, SimpleFloorPlanner},
        dev::MockProver,
        halo2curves::bn256::{Bn256, G1Affine},
        plonk::{create_proof, keygen_pk, keygen_vk, verify_proof, Circuit},
        poly::kzg::{
            commitment::{KZGCommitmentScheme, ParamsKZG},
            multiopen::{ProverSHPLONK, VerifierSHPLONK},
            strategy::SingleStrategy,
        },
        transcript::{Blake2bRead, Blake2bWrite, Challenge255, TranscriptReadBuffer, TranscriptWriterBuffer},
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    use super::*;
    use crate::assign::Tamper;

    const O: usize = 3;
    const K: usize = 5;
    const P: usize = 7;
    const LOG_ROWS: u32 = 8;
    /// The pair counts every negative test runs with.
    const PAIRS: [usize; 2] = [1, 3];

    /// `W`, `X` (`None` marks padding) and `Y` of a product.
    type Product = (Vec<Vec<i64>>, Vec<Vec<Option<i64>>>, Vec<Vec<i64>>);

    /// What a synthesis recorded: cell counts, and the placement tracker after the chip.
    type Record = (HashMap<CellKind, usize>, FreivaldsRows);

    /// A product with padding entries and negative values.
    fn product() -> Product {
        product_with_taps(K)
    }

    /// A product with `taps` columns of `W` (with none, `Y` is zero).
    fn product_with_taps(taps: usize) -> Product {
        let weights: Vec<Vec<i64>> = (0..O)
            .map(|o| (0..taps).map(|k| ((o * 7 + k * 3) % 11) as i64 - 5).collect())
            .collect();
        let x: Vec<Vec<Option<i64>>> = (0..taps)
            .map(|k| {
                (0..P)
                    .map(|p| ((k + 2 * p) % 4 != 0).then(|| ((k * 5 + p * 13) % 19) as i64 - 9))
                    .collect()
            })
            .collect();
        let y = (0..O)
            .map(|o| {
                (0..P)
                    .map(|p| (0..taps).map(|k| weights[o][k] * x[k][p].unwrap_or(0)).sum::<i64>())
                    .collect()
            })
            .collect();
        (weights, x, y)
    }

    /// The padding entries of `X` in a product with `taps` taps.
    fn padding_entries(taps: usize) -> usize {
        product_with_taps(taps)
            .1
            .iter()
            .flatten()
            .filter(|e| e.is_none())
            .count()
    }

    #[derive(Clone, Debug)]
    struct TestConfig {
        values: Column<Advice>,
        freivalds: FreivaldsConfig,
    }

    fn test_configure(meta: &mut ConstraintSystem<Fr>, pairs: usize) -> TestConfig {
        let values = meta.advice_column();
        meta.enable_equality(values);
        let freivalds = FreivaldsConfig::configure(meta, pairs);
        TestConfig { values, freivalds }
    }

    /// X and Y in a first-phase column (X entries as `Input`, Y entries as `Output` cells), then the chip with
    /// `pairs` column pairs checking the product `products` times (sharing one tracker).
    struct TestCircuit {
        pairs: usize,
        /// Taps of the product ([`product_with_taps`]).
        taps: usize,
        products: usize,
        tamper: Option<Tamper>,
        /// Lay out the chip with `γ + 1` in place of the challenge.
        wrong_gamma: bool,
        /// Cell counts and the tracker, recorded by the last synthesis.
        record: Mutex<Option<Record>>,
    }

    impl TestCircuit {
        fn new(pairs: usize, tamper: Option<Tamper>) -> Self {
            Self {
                pairs,
                taps: K,
                products: 1,
                tamper,
                wrong_gamma: false,
                record: Mutex::new(None),
            }
        }

        fn mock(&self) -> MockProver<Fr> {
            MockProver::run(LOG_ROWS, self, vec![]).expect("synthesis")
        }

        fn record(&self) -> Record {
            self.record.lock().unwrap().clone().expect("synthesized")
        }

        /// The record of an honest synthesis with `pairs` pairs.
        fn honest_record(pairs: usize) -> Record {
            let honest = Self::new(pairs, None);
            assert_eq!(
                honest.mock().verify(),
                Ok(()),
                "honest product rejected ({pairs} pairs)"
            );
            honest.record()
        }
    }

    impl Circuit<Fr> for TestCircuit {
        type Config = TestConfig;
        type FloorPlanner = SimpleFloorPlanner;
        type Params = usize;

        fn without_witnesses(&self) -> Self {
            Self {
                taps: self.taps,
                products: self.products,
                ..Self::new(self.pairs, self.tamper)
            }
        }

        fn params(&self) -> usize {
            self.pairs
        }

        fn configure_with_params(meta: &mut ConstraintSystem<Fr>, pairs: usize) -> TestConfig {
            test_configure(meta, pairs)
        }

        fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
            test_configure(meta, 1)
        }

        fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
            let (weights, x, y) = product_with_taps(self.taps);
            layouter.assign_region(
                || "freivalds",
                |mut region| {
                    let mut a = Assigner::new(&mut region, self.tamper);
                    let mut row = 0;
                    let mut x_cells: Vec<Vec<Option<AssignedValue>>> = Vec::new();
                    for xk in &x {
                        let mut cells = Vec::new();
                        for e in xk {
                            cells.push(e.map(|v| a.advice(CellKind::Input, config.values, row, field::from_i64(v))));
                            row += usize::from(e.is_some());
                        }
                        x_cells.push(cells);
                    }
                    let mut y_cells: Vec<Vec<AssignedValue>> = Vec::new();
                    for yo in &y {
                        let mut cells = Vec::new();
                        for &v in yo {
                            cells.push(a.advice(CellKind::Output, config.values, row, field::from_i64(v)));
                            row += 1;
                        }
                        y_cells.push(cells);
                    }
                    a.next_phase();
                    let mut gamma = a.challenge(config.freivalds.challenge());
                    if self.wrong_gamma {
                        gamma += Fr::ONE;
                    }
                    config.freivalds.assign_blank_rows(&mut a);
                    let mut rows = FreivaldsRows::new(config.freivalds.pairs());
                    for _ in 0..self.products {
                        config
                            .freivalds
                            .assign_product(&mut a, &mut rows, gamma, &weights, &x_cells, &y_cells)?;
                    }
                    *self.record.lock().unwrap() = Some((a.counts().clone(), rows));
                    Ok(())
                },
            )
        }
    }

    fn output_cells() -> usize {
        O * P
    }

    #[test]
    fn freivalds_honest_product_verifies_and_rows_are_exact() {
        for pairs in 1..=3 {
            for products in 1..=2 {
                let circuit = TestCircuit {
                    products,
                    ..TestCircuit::new(pairs, None)
                };
                assert_eq!(circuit.mock().verify(), Ok(()), "{pairs} pairs, {products} products");
                let (counts, used) = circuit.record();
                let chip_rows = products * rows(O, K, P);
                let padding = products * padding_entries(K);
                assert!(padding > 0);
                assert_eq!(counts[&CellKind::FreivaldsSum], chip_rows);
                // Every row has an operand: a copied one, or a padding zero for a padding entry of X.
                assert_eq!(counts[&CellKind::FreivaldsOperand], chip_rows - padding);
                assert_eq!(
                    counts[&CellKind::Padding],
                    pairs + padding,
                    "one blank row per pair and one operand per padding entry"
                );
                assert_eq!(counts[&CellKind::Output], output_cells());
                assert_eq!(used.pairs(), pairs);
                assert_eq!(used.total(), pairs + chip_rows);
                // The planner's placement is exactly the rows the chip wrote.
                let mut planned = FreivaldsRows::new(pairs);
                for _ in 0..products {
                    place_product(&mut planned, O, K, P);
                }
                assert_eq!(planned, used, "{pairs} pairs, {products} products");
            }
        }
    }

    #[test]
    fn freivalds_gate_degree_fits_halo2_axiom() {
        // halo2-axiom silently caps the degree at 5: a higher gate passes MockProver but breaks real proofs.
        for pairs in PAIRS {
            let mut meta = ConstraintSystem::<Fr>::default();
            test_configure(&mut meta, pairs);
            assert_eq!(meta.gates().len(), pairs, "one gate per pair");
            for gate in meta.gates() {
                assert!(gate.polynomials().iter().all(|p| p.degree() == 4), "{}", gate.name());
            }
            assert!(meta.degree() <= 5);
        }
    }

    #[test]
    fn freivalds_placement_fills_the_emptiest_pair_first() {
        let placed = |pairs: usize, shapes: &[(usize, usize, usize)]| {
            let mut rows = FreivaldsRows::new(pairs);
            for &(outputs, taps, positions) in shapes {
                place_product(&mut rows, outputs, taps, positions);
            }
            rows
        };
        // The X row and the Y row (2 rows each) alternate between two pairs, then the check (1 row) goes first.
        assert_eq!(placed(2, &[(1, 1, 2)]).used(), &[4, 3]);
        // Three Horner runs of 3 go round, then the two checks (1 row each) go to the first two pairs.
        assert_eq!(placed(3, &[(2, 1, 3)]).used(), &[5, 5, 4]);
        // A second product without taps: its Y run (1 row) goes to pair 2, its check (1 row) to the first of equals.
        assert_eq!(placed(3, &[(2, 1, 3), (1, 0, 1)]).used(), &[6, 5, 5]);
        // Eight Horner runs of 7 go round (3, 3, 2), then the checks of 5 fill pair 2 twice and pair 0 once.
        let three = placed(3, &[(O, K, P)]);
        assert_eq!(three.used(), &[27, 22, 25]);
        assert_eq!((three.max(), three.total()), (27, 3 + rows(O, K, P)));
        // The rows formula: P·(K + O) + O·max(K, 1).
        assert_eq!(rows(O, K, P), P * (K + O) + O * K);
        assert_eq!(rows(2, 0, 3), 3 * 2 + 2);
        let one = placed(1, &[(O, K, P)]);
        assert_eq!((one.max(), one.total()), (1 + rows(O, K, P), 1 + rows(O, K, P)));
        assert_eq!(placed(0, &[(O, K, P)]), one, "0 pairs is 1 pair");
        assert_eq!(FreivaldsRows::new(0).pairs(), 1);
        // Nothing to check places nothing.
        for shape in [(0, K, P), (O, K, 0)] {
            assert_eq!(placed(2, &[shape]), FreivaldsRows::new(2));
        }
        // Every shape's rows are conserved by the placement.
        for pairs in 1..=4 {
            for shape in [(1, 0, 1), (4, 9, 2), (2, 3, 11), (O, K, P)] {
                let r = placed(pairs, &[shape]);
                assert_eq!(r.total(), pairs + rows(shape.0, shape.1, shape.2));
                assert!(r.max() <= 1 + rows(shape.0, shape.1, shape.2));
            }
        }
    }

    #[test]
    fn freivalds_gates_use_the_challenge() {
        for pairs in PAIRS {
            let circuit = TestCircuit {
                wrong_gamma: true,
                ..TestCircuit::new(pairs, None)
            };
            assert!(
                circuit.mock().verify().is_err(),
                "witness computed at another point accepted ({pairs} pairs)"
            );
        }
    }

    #[test]
    fn freivalds_rejects_every_wrong_output() {
        for pairs in PAIRS {
            for index in 0..output_cells() {
                let tamper = Tamper::Cell {
                    kind: CellKind::Output,
                    index,
                    delta: 1,
                };
                assert!(
                    TestCircuit::new(pairs, Some(tamper)).mock().verify().is_err(),
                    "Y entry {index} off by one accepted ({pairs} pairs)"
                );
            }
        }
    }

    #[test]
    fn freivalds_without_taps_forces_a_zero_product() {
        for pairs in PAIRS {
            let honest = TestCircuit {
                taps: 0,
                ..TestCircuit::new(pairs, None)
            };
            assert_eq!(honest.mock().verify(), Ok(()), "zero product rejected ({pairs} pairs)");
            let (counts, used) = honest.record();
            assert_eq!(counts[&CellKind::FreivaldsSum], rows(O, 0, P));
            assert_eq!(used.total(), pairs + rows(O, 0, P));
            for index in 0..output_cells() {
                let wrong = TestCircuit {
                    taps: 0,
                    ..TestCircuit::new(
                        pairs,
                        Some(Tamper::Cell {
                            kind: CellKind::Output,
                            index,
                            delta: 1,
                        }),
                    )
                };
                assert!(
                    wrong.mock().verify().is_err(),
                    "nonzero Y entry {index} without taps accepted ({pairs} pairs)"
                );
            }
        }
    }

    #[test]
    fn freivalds_rejects_changed_inputs() {
        for pairs in PAIRS {
            let inputs = TestCircuit::honest_record(pairs).0[&CellKind::Input];
            assert!(inputs > 0);
            for index in 0..inputs {
                let tamper = Tamper::Cell {
                    kind: CellKind::Input,
                    index,
                    delta: 3,
                };
                assert!(
                    TestCircuit::new(pairs, Some(tamper)).mock().verify().is_err(),
                    "X entry {index} changed and accepted ({pairs} pairs)"
                );
            }
        }
    }

    // No test tampers the operand cell of a padding entry of X: it is a `CellKind::Padding` zero that the step gate
    // multiplies by the fixed `c = 0`, so no value in it can change any running value (it needs no constraint, and
    // the tamper harness skips padding by design). Every other operand is a copy, tampered below.
    #[test]
    fn freivalds_rejects_every_tampered_chip_cell() {
        for pairs in PAIRS {
            let (counts, _) = TestCircuit::honest_record(pairs);
            assert_eq!(counts[&CellKind::FreivaldsSum], rows(O, K, P));
            assert_eq!(counts[&CellKind::FreivaldsOperand], rows(O, K, P) - padding_entries(K));
            for kind in [CellKind::FreivaldsOperand, CellKind::FreivaldsSum] {
                for index in 0..counts[&kind] {
                    let tamper = Tamper::Cell { kind, index, delta: 1 };
                    assert!(
                        TestCircuit::new(pairs, Some(tamper)).mock().verify().is_err(),
                        "{kind:?} {index} tampered and accepted ({pairs} pairs)"
                    );
                }
            }
        }
    }

    #[test]
    fn freivalds_rejects_bad_shapes() {
        let (weights, _, _) = product();
        for pairs in PAIRS {
            let circuit = ShapeCircuit {
                pairs,
                weights: weights.clone(),
                checked: Mutex::new(false),
            };
            let prover = MockProver::run(LOG_ROWS, &circuit, vec![]).expect("synthesis");
            assert_eq!(prover.verify(), Ok(()));
            assert!(*circuit.checked.lock().unwrap(), "shape checks did not run");
        }
    }

    /// Calls the chip with mismatched shapes (or a tracker for another number of pairs) and checks every call is
    /// refused and leaves the tracker as it was (then does nothing).
    struct ShapeCircuit {
        pairs: usize,
        weights: Vec<Vec<i64>>,
        checked: Mutex<bool>,
    }

    impl Circuit<Fr> for ShapeCircuit {
        type Config = TestConfig;
        type FloorPlanner = SimpleFloorPlanner;
        type Params = usize;

        fn without_witnesses(&self) -> Self {
            Self {
                pairs: self.pairs,
                weights: self.weights.clone(),
                checked: Mutex::new(false),
            }
        }

        fn params(&self) -> usize {
            self.pairs
        }

        fn configure_with_params(meta: &mut ConstraintSystem<Fr>, pairs: usize) -> TestConfig {
            test_configure(meta, pairs)
        }

        fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
            test_configure(meta, 1)
        }

        fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
            layouter.assign_region(
                || "shapes",
                |mut region| {
                    let mut a = Assigner::new(&mut region, None);
                    let cell = a.advice(CellKind::Input, config.values, 0, Fr::ONE);
                    let f = &config.freivalds;
                    assert_eq!(f.pairs(), self.pairs);
                    let x = vec![vec![Some(cell); P]; K];
                    let y = vec![vec![cell; P]; O];
                    let w = &self.weights;
                    let short_x = vec![vec![Some(cell); P - 1]; K];
                    let short_y = vec![vec![cell; P - 1]; O];
                    let fresh = FreivaldsRows::new(self.pairs);
                    let mut r = fresh.clone();
                    let mut other = FreivaldsRows::new(self.pairs + 1);
                    for result in [
                        f.assign_product(&mut a, &mut r, Fr::ONE, &w[1..], &x, &y),
                        f.assign_product(&mut a, &mut r, Fr::ONE, w, &x[1..], &y),
                        f.assign_product(&mut a, &mut r, Fr::ONE, w, &short_x, &y),
                        f.assign_product(&mut a, &mut r, Fr::ONE, w, &x, &short_y),
                        f.assign_product(&mut a, &mut r, Fr::ONE, w, &x, &y[1..]),
                        f.assign_product(&mut a, &mut other, Fr::ONE, w, &x, &y),
                    ] {
                        assert!(matches!(result, Err(Error::Synthesis)));
                    }
                    assert_eq!(r, fresh, "a refused product moved the tracker");
                    assert_eq!(other, FreivaldsRows::new(self.pairs + 1));
                    assert!(f.assign_product(&mut a, &mut r, Fr::ONE, &[], &x, &[]).is_ok());
                    assert_eq!(r, fresh, "an empty product moved the tracker");
                    *self.checked.lock().unwrap() = true;
                    Ok(())
                },
            )
        }
    }

    #[test]
    fn freivalds_kzg_proof_verifies_and_wrong_product_fails() {
        let params = ParamsKZG::<Bn256>::setup(LOG_ROWS, ChaCha20Rng::seed_from_u64(7));
        let instances: &[&[&[Fr]]] = &[&[]];
        for pairs in PAIRS {
            let keygen_circuit = TestCircuit::new(pairs, None).without_witnesses();
            let vk = keygen_vk(&params, &keygen_circuit).expect("keygen_vk");
            let pk = keygen_pk(&params, vk.clone(), &keygen_circuit).expect("keygen_pk");

            let prove = |tamper: Option<Tamper>| -> Vec<u8> {
                let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
                // A prover may or may not notice the wrong witness; the verifier must reject it either way.
                let _ = create_proof::<KZGCommitmentScheme<Bn256>, ProverSHPLONK<'_, Bn256>, _, _, _, _>(
                    &params,
                    &pk,
                    &[TestCircuit::new(pairs, tamper)],
                    instances,
                    ChaCha20Rng::seed_from_u64(11),
                    &mut transcript,
                );
                transcript.finalize()
            };
            let verify = |proof: &[u8]| {
                let mut transcript = Blake2bRead::<_, G1Affine, Challenge255<_>>::init(proof);
                verify_proof::<KZGCommitmentScheme<Bn256>, VerifierSHPLONK<'_, Bn256>, _, _, _>(
                    &params,
                    &vk,
                    SingleStrategy::new(&params),
                    instances,
                    &mut transcript,
                )
            };

            let honest = prove(None);
            assert!(verify(&honest).is_ok(), "honest proof rejected ({pairs} pairs)");
            let wrong = prove(Some(Tamper::Cell {
                kind: CellKind::Output,
                index: 4,
                delta: 1,
            }));
            assert!(
                verify(&wrong).is_err(),
                "proof of a wrong product accepted ({pairs} pairs)"
            );
        }
    }
}
