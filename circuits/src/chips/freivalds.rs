//! A Freivalds-style check of a matrix product `Y = W·X + b·1ᵀ` at a random challenge, in place of the `O·K·P`
//! multiply-accumulates of the linear chip.
//!
//! `W` (`O×K`) and `b` (`O`) are constants baked into fixed columns, so the verifying key commits to them. `X`
//! (`K×P`, with `None` for a zero-padding entry) and `Y` (`O×P`) are first-phase advice cells assigned elsewhere.
//! The chip lives in the second phase: its challenge `γ` is squeezed after every first-phase advice column (so `X`
//! and `Y`) is committed, and its two advice columns are second-phase columns.
//!
//! With `e_p = γ^(P−1−p)` it evaluates every row of `X` and `Y` and the all-ones row by Horner's rule,
//! `v_k = Σ_p X[k,p]·e_p`, `y_o = Σ_p Y[o,p]·e_p`, `S = Σ_p e_p`, and then checks, for every output `o`,
//! `y_o = Σ_k W[o,k]·v_k + b_o·S` with a multiply-accumulate over the fixed weights. For each `o` the difference of
//! the two sides is `Σ_p (Y[o,p] − Σ_k W[o,k]·X[k,p] − b_o)·γ^(P−1−p)`, a polynomial of degree `< P` in `γ` whose
//! coefficients are fixed before `γ` is drawn; it vanishes at `γ` for a wrong product with probability at most
//! `(P−1)/|F|`, so a wrong `Y` passes with probability at most `O·(P−1)/|F|`. As with the linear chip the product
//! is over the field: callers bound `Y` where it matters (requantization range checks).
//!
//! Columns: advice `a` (operand) and `h` (running value), both second phase and equality-enabled; fixed `m`, `n`,
//! `c`; selectors `q_step` and `q_pin`.
//! Gates:
//! - step: `q_step · (h − (m·γ + n)·h[−1] − c·a) = 0` (degree 3). A Horner row has `m = 1, n = 0` (`m = 0` on the
//!   first row of a run) and `c = 1`, or `c = 0` for a padding entry; a multiply-accumulate row has `m = 0`,
//!   `n = 1` (`n = 0` on its first row) and `c` the weight or the bias.
//! - pin: `q_pin · (a − c) = 0` (degree 2), on the Horner rows whose operand is a constant: a padding entry's
//!   operand is pinned to 0, the all-ones row's operand to 1.
//!
//! Layout from the starting row (the row before it must have `h` assigned: a previous use of the chip or
//! [`FreivaldsConfig::assign_blank_row`]): the all-ones run (`P` rows, ending in `S`), one run per row of `X`
//! (`K·P` rows, each ending in `v_k`), one run per row of `Y` (`O·P` rows, each ending in `y_o`), then per output
//! `K + 1` multiply-accumulate rows whose operands are copies of `v_0 … v_(K−1)` and `S`; the `h` cell of the last
//! of these is a copy of `y_o`, so the step gate there enforces the check. In all
//! `P·(1 + K + O) + O·(K + 1)` rows ([`rows`]).

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Challenge, Column, ConstraintSystem, Error, FirstPhase, Fixed, SecondPhase, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::Linear;

/// Columns and challenge of the Freivalds chip.
#[derive(Clone, Debug)]
pub struct FreivaldsConfig {
    a: Column<Advice>,
    h: Column<Advice>,
    m: Column<Fixed>,
    n: Column<Fixed>,
    c: Column<Fixed>,
    q_step: Selector,
    q_pin: Selector,
    gamma: Challenge,
}

/// Rows one product with `outputs` rows of `W`, `taps` columns of `W` and `positions` columns of `X` takes (zero
/// when there is nothing to check).
pub fn rows(outputs: usize, taps: usize, positions: usize) -> usize {
    if outputs == 0 || positions == 0 {
        return 0;
    }
    positions * (1 + taps + outputs) + outputs * (taps + 1)
}

/// A linear layer seen as the matrix product `Y = W·X + b·1ᵀ`: `O` outputs (the kernels, in group order), `K` taps
/// and `P` positions (the groups).
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
    /// Rows the check takes.
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

/// What goes into the operand cell of a Horner row.
enum Operand<'v> {
    /// A copy of a first-phase cell.
    Copy(&'v AssignedValue),
    /// A constant pinned by the pin gate (0 for padding, 1 for the all-ones row).
    Pinned(Fr),
}

impl FreivaldsConfig {
    /// Allocates the challenge, the second-phase columns and the gates. At least one first-phase advice column
    /// must have been allocated before (halo2 requires it for a second-phase column).
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let gamma = meta.challenge_usable_after(FirstPhase);
        let a = meta.advice_column_in(SecondPhase);
        let h = meta.advice_column_in(SecondPhase);
        meta.enable_equality(a);
        meta.enable_equality(h);
        let m = meta.fixed_column();
        let n = meta.fixed_column();
        let c = meta.fixed_column();
        let q_step = meta.selector();
        let q_pin = meta.selector();
        meta.create_gate("freivalds step", |meta| {
            let q = meta.query_selector(q_step);
            let g = meta.query_challenge(gamma);
            let h_cur = meta.query_advice(h, Rotation::cur());
            let h_prev = meta.query_advice(h, Rotation::prev());
            let a = meta.query_advice(a, Rotation::cur());
            let m = meta.query_fixed(m, Rotation::cur());
            let n = meta.query_fixed(n, Rotation::cur());
            let c = meta.query_fixed(c, Rotation::cur());
            vec![q * (h_cur - (m * g + n) * h_prev - c * a)]
        });
        meta.create_gate("freivalds pinned operand", |meta| {
            let q = meta.query_selector(q_pin);
            let a = meta.query_advice(a, Rotation::cur());
            let c = meta.query_fixed(c, Rotation::cur());
            vec![q * (a - c)]
        });
        Self {
            a,
            h,
            m,
            n,
            c,
            q_step,
            q_pin,
            gamma,
        }
    }

    /// The challenge `γ` (usable after the first phase); read it with [`Assigner::challenge`].
    pub fn challenge(&self) -> Challenge {
        self.gamma
    }

    /// Writes a zero into `h` at `row` (the row before the chip's first row, which its step gate reads).
    pub fn assign_blank_row(&self, a: &mut Assigner, row: usize) {
        a.advice(CellKind::Padding, self.h, row, Fr::ZERO);
    }

    /// One Horner row: `h = γ·h_prev + c·operand` (`h = c·operand` on the first row of a run).
    fn horner_row(
        &self,
        a: &mut Assigner,
        row: usize,
        gamma: Fr,
        first: bool,
        prev: Fr,
        operand: Operand,
    ) -> Result<AssignedValue, Error> {
        a.enable(&self.q_step, row)?;
        let (cell, c) = match operand {
            Operand::Copy(source) => (a.copy(CellKind::FreivaldsOperand, self.a, row, source), Fr::ONE),
            Operand::Pinned(value) => {
                a.enable(&self.q_pin, row)?;
                (a.advice(CellKind::FreivaldsOperand, self.a, row, value), value)
            }
        };
        let m = if first { Fr::ZERO } else { Fr::ONE };
        a.fixed(self.m, row, m);
        a.fixed(self.n, row, Fr::ZERO);
        a.fixed(self.c, row, c);
        Ok(a.advice(CellKind::FreivaldsSum, self.h, row, m * gamma * prev + c * cell.value))
    }

    /// One Horner run over `operands` from `row`; returns the evaluation cell and the next free row.
    fn horner_run<'v>(
        &self,
        a: &mut Assigner,
        mut row: usize,
        gamma: Fr,
        operands: impl Iterator<Item = Operand<'v>>,
    ) -> Result<(AssignedValue, usize), Error> {
        let mut last: Option<AssignedValue> = None;
        for operand in operands {
            let prev = last.map_or(Fr::ZERO, |l| l.value);
            last = Some(self.horner_row(a, row, gamma, last.is_none(), prev, operand)?);
            row += 1;
        }
        let last = last.ok_or(Error::Synthesis)?;
        Ok((last, row))
    }

    /// Lays out the check `Y = W·X + b·1ᵀ` from `row` with challenge value `gamma` (call it after
    /// [`Assigner::next_phase`], with `gamma = a.challenge(self.challenge())`). `weights` is `O×K`, `bias` has `O`
    /// entries, `x` is `K×P` (`None` for a zero-padding entry) and `y` is `O×P`; `x` and `y` must be first-phase
    /// cells. Returns the next free row; a shape mismatch is an `Error::Synthesis`.
    #[allow(clippy::too_many_arguments)]
    pub fn assign_product(
        &self,
        a: &mut Assigner,
        mut row: usize,
        gamma: Fr,
        weights: &[Vec<i64>],
        bias: &[i64],
        x: &[Vec<Option<AssignedValue>>],
        y: &[Vec<AssignedValue>],
    ) -> Result<usize, Error> {
        let outputs = weights.len();
        let taps = x.len();
        let positions = match (x.first(), y.first()) {
            (Some(xk), _) => xk.len(),
            (None, Some(yo)) => yo.len(),
            (None, None) => 0,
        };
        if bias.len() != outputs
            || y.len() != outputs
            || weights.iter().any(|w| w.len() != taps)
            || x.iter().any(|xk| xk.len() != positions)
            || y.iter().any(|yo| yo.len() != positions)
        {
            return Err(Error::Synthesis);
        }
        if rows(outputs, taps, positions) == 0 {
            return Ok(row);
        }

        let (ones, next) = self.horner_run(a, row, gamma, (0..positions).map(|_| Operand::Pinned(Fr::ONE)))?;
        row = next;
        let mut v = Vec::with_capacity(taps);
        for xk in x {
            let operands = xk.iter().map(|e| match e {
                Some(cell) => Operand::Copy(cell),
                None => Operand::Pinned(Fr::ZERO),
            });
            let (vk, next) = self.horner_run(a, row, gamma, operands)?;
            v.push(vk);
            row = next;
        }
        let mut evaluations = Vec::with_capacity(outputs);
        for yo in y {
            let (eval, next) = self.horner_run(a, row, gamma, yo.iter().map(Operand::Copy))?;
            evaluations.push(eval);
            row = next;
        }

        for ((wo, &bo), yo) in weights.iter().zip(bias).zip(&evaluations) {
            let terms = wo
                .iter()
                .zip(&v)
                .map(|(&w, vk)| (field::from_i64(w), vk))
                .chain(std::iter::once((field::from_i64(bo), &ones)));
            let mut sum = Fr::ZERO;
            for (j, (w, source)) in terms.enumerate() {
                a.enable(&self.q_step, row)?;
                let operand = a.copy(CellKind::FreivaldsOperand, self.a, row, source);
                let n = if j == 0 { Fr::ZERO } else { Fr::ONE };
                a.fixed(self.m, row, Fr::ZERO);
                a.fixed(self.n, row, n);
                a.fixed(self.c, row, w);
                sum = n * sum + w * operand.value;
                if j == taps {
                    // The bias row closes the check: its running value is the evaluation of Y's row.
                    a.copy(CellKind::FreivaldsSum, self.h, row, yo);
                } else {
                    sum = a.advice(CellKind::FreivaldsSum, self.h, row, sum).value;
                }
                row += 1;
            }
        }
        Ok(row)
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
    const LOG_ROWS: u32 = 7;

    /// `W`, `b`, `X` (`None` marks padding) and `Y` of a product.
    type Product = (Vec<Vec<i64>>, Vec<i64>, Vec<Vec<Option<i64>>>, Vec<Vec<i64>>);

    /// What a synthesis recorded: cell counts, and the chip's first and next free rows.
    type Record = (HashMap<CellKind, usize>, usize, usize);

    /// A product with padding entries and negative values.
    fn product() -> Product {
        let weights: Vec<Vec<i64>> = (0..O)
            .map(|o| (0..K).map(|k| ((o * 7 + k * 3) % 11) as i64 - 5).collect())
            .collect();
        let bias = vec![17, -4, 0];
        let x: Vec<Vec<Option<i64>>> = (0..K)
            .map(|k| {
                (0..P)
                    .map(|p| ((k + 2 * p) % 4 != 0).then(|| ((k * 5 + p * 13) % 19) as i64 - 9))
                    .collect()
            })
            .collect();
        let y = (0..O)
            .map(|o| {
                (0..P)
                    .map(|p| bias[o] + (0..K).map(|k| weights[o][k] * x[k][p].unwrap_or(0)).sum::<i64>())
                    .collect()
            })
            .collect();
        (weights, bias, x, y)
    }

    #[derive(Clone, Debug)]
    struct TestConfig {
        values: Column<Advice>,
        freivalds: FreivaldsConfig,
    }

    /// X and Y in a first-phase column (X entries as `Input`, Y entries as `Output` cells), then the chip.
    struct TestCircuit {
        tamper: Option<Tamper>,
        /// Lay out the chip with `γ + 1` in place of the challenge.
        wrong_gamma: bool,
        /// Cell counts and the chip's (first, next free) rows, recorded by the last synthesis.
        record: Mutex<Option<Record>>,
    }

    impl TestCircuit {
        fn new(tamper: Option<Tamper>) -> Self {
            Self {
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
    }

    impl Circuit<Fr> for TestCircuit {
        type Config = TestConfig;
        type FloorPlanner = SimpleFloorPlanner;
        type Params = ();

        fn without_witnesses(&self) -> Self {
            Self::new(self.tamper)
        }

        fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
            let values = meta.advice_column();
            meta.enable_equality(values);
            let freivalds = FreivaldsConfig::configure(meta);
            TestConfig { values, freivalds }
        }

        fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
            let (weights, bias, x, y) = product();
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
                    config.freivalds.assign_blank_row(&mut a, 0);
                    let next = config
                        .freivalds
                        .assign_product(&mut a, 1, gamma, &weights, &bias, &x_cells, &y_cells)?;
                    *self.record.lock().unwrap() = Some((a.counts().clone(), 1, next));
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
        let circuit = TestCircuit::new(None);
        assert_eq!(circuit.mock().verify(), Ok(()));
        let (counts, first, next) = circuit.record();
        assert_eq!(next - first, rows(O, K, P));
        assert_eq!(counts[&CellKind::FreivaldsSum], rows(O, K, P));
        assert_eq!(counts[&CellKind::FreivaldsOperand], rows(O, K, P));
        assert_eq!(counts[&CellKind::Output], output_cells());
    }

    #[test]
    fn freivalds_gates_use_the_challenge() {
        let circuit = TestCircuit {
            wrong_gamma: true,
            ..TestCircuit::new(None)
        };
        assert!(
            circuit.mock().verify().is_err(),
            "witness computed at another point accepted"
        );
    }

    #[test]
    fn freivalds_rejects_every_wrong_output() {
        for index in 0..output_cells() {
            let tamper = Tamper::Cell {
                kind: CellKind::Output,
                index,
                delta: 1,
            };
            assert!(
                TestCircuit::new(Some(tamper)).mock().verify().is_err(),
                "Y entry {index} off by one accepted"
            );
        }
    }

    #[test]
    fn freivalds_rejects_changed_inputs() {
        let honest = TestCircuit::new(None);
        honest.mock();
        let inputs = honest.record().0[&CellKind::Input];
        assert!(inputs > 0);
        for index in 0..inputs {
            let tamper = Tamper::Cell {
                kind: CellKind::Input,
                index,
                delta: 3,
            };
            assert!(
                TestCircuit::new(Some(tamper)).mock().verify().is_err(),
                "X entry {index} changed and accepted"
            );
        }
    }

    /// The operand indices (in assignment order) of the padding entries: the all-ones run comes first, then X's
    /// rows in order, one operand per entry.
    fn padding_operand_indices() -> Vec<usize> {
        let (_, _, x, _) = product();
        x.iter()
            .flatten()
            .enumerate()
            .filter(|(_, e)| e.is_none())
            .map(|(i, _)| P + i)
            .collect()
    }

    #[test]
    fn freivalds_rejects_every_tampered_chip_cell() {
        let (counts, _, _) = {
            let c = TestCircuit::new(None);
            c.mock();
            c.record()
        };
        let padding = padding_operand_indices();
        assert!(!padding.is_empty());
        for index in &padding {
            let tamper = Tamper::Cell {
                kind: CellKind::FreivaldsOperand,
                index: *index,
                delta: 1,
            };
            assert!(
                TestCircuit::new(Some(tamper)).mock().verify().is_err(),
                "padding operand {index} made nonzero and accepted"
            );
        }
        for kind in [CellKind::FreivaldsOperand, CellKind::FreivaldsSum] {
            for index in 0..counts[&kind] {
                let tamper = Tamper::Cell { kind, index, delta: 1 };
                assert!(
                    TestCircuit::new(Some(tamper)).mock().verify().is_err(),
                    "{kind:?} {index} tampered and accepted"
                );
            }
        }
    }

    #[test]
    fn freivalds_rejects_bad_shapes() {
        let (weights, bias, _, _) = product();
        let circuit = ShapeCircuit { weights, bias };
        let prover = MockProver::run(LOG_ROWS, &circuit, vec![]).expect("synthesis");
        assert_eq!(prover.verify(), Ok(()));
    }

    /// Calls the chip with mismatched shapes and checks every call is refused (then does nothing).
    struct ShapeCircuit {
        weights: Vec<Vec<i64>>,
        bias: Vec<i64>,
    }

    impl Circuit<Fr> for ShapeCircuit {
        type Config = TestConfig;
        type FloorPlanner = SimpleFloorPlanner;
        type Params = ();

        fn without_witnesses(&self) -> Self {
            Self {
                weights: self.weights.clone(),
                bias: self.bias.clone(),
            }
        }

        fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
            TestCircuit::configure(meta)
        }

        fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
            layouter.assign_region(
                || "shapes",
                |mut region| {
                    let mut a = Assigner::new(&mut region, None);
                    let cell = a.advice(CellKind::Input, config.values, 0, Fr::ONE);
                    let f = &config.freivalds;
                    let x = vec![vec![Some(cell); P]; K];
                    let y = vec![vec![cell; P]; O];
                    let (w, b) = (&self.weights, &self.bias);
                    let short_x = vec![vec![Some(cell); P - 1]; K];
                    let short_y = vec![vec![cell; P - 1]; O];
                    for result in [
                        f.assign_product(&mut a, 1, Fr::ONE, w, &b[1..], &x, &y),
                        f.assign_product(&mut a, 1, Fr::ONE, &w[1..], b, &x, &y),
                        f.assign_product(&mut a, 1, Fr::ONE, w, b, &x[1..], &y),
                        f.assign_product(&mut a, 1, Fr::ONE, w, b, &short_x, &y),
                        f.assign_product(&mut a, 1, Fr::ONE, w, b, &x, &short_y),
                        f.assign_product(&mut a, 1, Fr::ONE, w, b, &x, &y[1..]),
                    ] {
                        assert!(matches!(result, Err(Error::Synthesis)));
                    }
                    assert_eq!(f.assign_product(&mut a, 1, Fr::ONE, &[], &[], &x, &[]).ok(), Some(1));
                    Ok(())
                },
            )
        }
    }

    #[test]
    fn freivalds_kzg_proof_verifies_and_wrong_product_fails() {
        let params = ParamsKZG::<Bn256>::setup(LOG_ROWS, ChaCha20Rng::seed_from_u64(7));
        let keygen_circuit = TestCircuit::new(None).without_witnesses();
        let vk = keygen_vk(&params, &keygen_circuit).expect("keygen_vk");
        let pk = keygen_pk(&params, vk.clone(), &keygen_circuit).expect("keygen_pk");
        let instances: &[&[&[Fr]]] = &[&[]];

        let prove = |tamper: Option<Tamper>| -> Vec<u8> {
            let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
            // A prover may or may not notice the wrong witness; the verifier must reject it either way.
            let _ = create_proof::<KZGCommitmentScheme<Bn256>, ProverSHPLONK<'_, Bn256>, _, _, _, _>(
                &params,
                &pk,
                &[TestCircuit::new(tamper)],
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
        assert!(verify(&honest).is_ok(), "honest proof rejected");
        let wrong = prove(Some(Tamper::Cell {
            kind: CellKind::Output,
            index: 4,
            delta: 1,
        }));
        assert!(verify(&wrong).is_err(), "proof of a wrong product accepted");
    }
}
