//! Tests of the Freivalds chip: honest products for 1–3 column pairs, exact placement, and every wrong product,
//! changed input, tampered chip cell and wrong challenge rejected (MockProver and a real KZG proof).

use std::collections::HashMap;
use std::sync::Mutex;

use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    dev::MockProver,
    halo2curves::bn256::{Bn256, G1Affine},
    plonk::{create_proof, keygen_pk, keygen_vk, verify_proof, Circuit, ProvingKey, VerifyingKey},
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
type Record = (HashMap<CellKind, usize>, ColumnRows);

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
    let freivalds = FreivaldsConfig::configure(meta, pairs, &[], false);
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
                let mut a = Assigner::tampered(&mut region, self.tamper);
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
                let mut rows = ColumnRows::new(config.freivalds.pairs(), 1);
                for _ in 0..self.products {
                    config
                        .freivalds
                        .assign_product(&mut a, &mut rows, gamma, &weights, &x_cells, &y_cells, None)?;
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
            assert_eq!(used.columns(), pairs);
            assert_eq!(used.total(), pairs + chip_rows);
            // The planner's placement is exactly the rows the chip wrote.
            let mut planned = ColumnRows::new(pairs, 1);
            for _ in 0..products {
                place_product(&mut planned, O, K, P, None);
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
        let mut rows = ColumnRows::new(pairs, 1);
        for &(outputs, taps, positions) in shapes {
            place_product(&mut rows, outputs, taps, positions, None);
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
    assert_eq!(ColumnRows::new(0, 1).columns(), 1);
    // Nothing to check places nothing.
    for shape in [(0, K, P), (O, K, 0)] {
        assert_eq!(placed(2, &[shape]), ColumnRows::new(2, 1));
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

/// Asserts that adding `delta` to each of the first `count` cells of `kind` in `build(tamper)` is rejected.
fn assert_each_cell_rejected(kind: CellKind, count: usize, delta: u64, build: impl Fn(Tamper) -> TestCircuit) {
    for index in 0..count {
        let circuit = build(Tamper::Cell { kind, index, delta });
        assert!(
            circuit.mock().verify().is_err(),
            "{kind:?} #{index} + {delta} accepted ({} pairs, {} taps)",
            circuit.pairs,
            circuit.taps
        );
    }
}

#[test]
fn freivalds_rejects_every_wrong_output() {
    for pairs in PAIRS {
        assert_each_cell_rejected(CellKind::Output, output_cells(), 1, |t| {
            TestCircuit::new(pairs, Some(t))
        });
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
        assert_each_cell_rejected(CellKind::Output, output_cells(), 1, |t| TestCircuit {
            taps: 0,
            ..TestCircuit::new(pairs, Some(t))
        });
    }
}

#[test]
fn freivalds_rejects_changed_inputs() {
    for pairs in PAIRS {
        let inputs = TestCircuit::honest_record(pairs).0[&CellKind::Input];
        assert!(inputs > 0);
        assert_each_cell_rejected(CellKind::Input, inputs, 3, |t| TestCircuit::new(pairs, Some(t)));
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
            assert_each_cell_rejected(kind, counts[&kind], 1, |t| TestCircuit::new(pairs, Some(t)));
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
                let mut a = Assigner::new(&mut region);
                let cell = a.advice(CellKind::Input, config.values, 0, Fr::ONE);
                let f = &config.freivalds;
                assert_eq!(f.pairs(), self.pairs);
                let x = vec![vec![Some(cell); P]; K];
                let y = vec![vec![cell; P]; O];
                let w = &self.weights;
                let short_x = vec![vec![Some(cell); P - 1]; K];
                let short_y = vec![vec![cell; P - 1]; O];
                let fresh = ColumnRows::new(self.pairs, 1);
                let mut r = fresh.clone();
                let mut other = ColumnRows::new(self.pairs + 1, 1);
                for result in [
                    f.assign_product(&mut a, &mut r, Fr::ONE, &w[1..], &x, &y, None),
                    f.assign_product(&mut a, &mut r, Fr::ONE, w, &x[1..], &y, None),
                    f.assign_product(&mut a, &mut r, Fr::ONE, w, &short_x, &y, None),
                    f.assign_product(&mut a, &mut r, Fr::ONE, w, &x, &short_y, None),
                    f.assign_product(&mut a, &mut r, Fr::ONE, w, &x, &y[1..], None),
                    f.assign_product(&mut a, &mut other, Fr::ONE, w, &x, &y, None),
                ] {
                    assert!(matches!(result, Err(Error::Synthesis)));
                }
                assert_eq!(r, fresh, "a refused product moved the tracker");
                assert_eq!(other, ColumnRows::new(self.pairs + 1, 1));
                assert!(f.assign_product(&mut a, &mut r, Fr::ONE, &[], &x, &[], None).is_ok());
                assert_eq!(r, fresh, "an empty product moved the tracker");
                *self.checked.lock().unwrap() = true;
                Ok(())
            },
        )
    }
}

/// Real KZG proofs of the circuits of one shape (no public inputs): the keys of a keygen circuit, and whether a
/// proof of a circuit verifies against them.
pub(super) struct Kzg {
    params: ParamsKZG<Bn256>,
    vk: VerifyingKey<G1Affine>,
    pk: ProvingKey<G1Affine>,
}

impl Kzg {
    /// Keys of `keygen` (a circuit without witnesses) on `2^log_rows` rows.
    pub(super) fn new<C: Circuit<Fr>>(log_rows: u32, keygen: &C) -> Self {
        let params = ParamsKZG::<Bn256>::setup(log_rows, ChaCha20Rng::seed_from_u64(7));
        let vk = keygen_vk(&params, keygen).expect("keygen_vk");
        let pk = keygen_pk(&params, vk.clone(), keygen).expect("keygen_pk");
        Self { params, vk, pk }
    }

    /// Whether a proof of `circuit` verifies. A prover may or may not notice a wrong witness; the verifier must
    /// reject it either way.
    pub(super) fn accepts<C: Circuit<Fr>>(&self, circuit: C) -> bool {
        let instances: &[&[&[Fr]]] = &[&[]];
        let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
        let _ = create_proof::<KZGCommitmentScheme<Bn256>, ProverSHPLONK<'_, Bn256>, _, _, _, _>(
            &self.params,
            &self.pk,
            &[circuit],
            instances,
            ChaCha20Rng::seed_from_u64(11),
            &mut transcript,
        );
        let proof = transcript.finalize();
        let mut transcript = Blake2bRead::<_, G1Affine, Challenge255<_>>::init(&proof[..]);
        verify_proof::<KZGCommitmentScheme<Bn256>, VerifierSHPLONK<'_, Bn256>, _, _, _>(
            &self.params,
            &self.vk,
            SingleStrategy::new(&self.params),
            instances,
            &mut transcript,
        )
        .is_ok()
    }
}

#[test]
fn freivalds_kzg_proof_verifies_and_wrong_product_fails() {
    for pairs in PAIRS {
        let kzg = Kzg::new(LOG_ROWS, &TestCircuit::new(pairs, None).without_witnesses());
        assert!(
            kzg.accepts(TestCircuit::new(pairs, None)),
            "honest proof rejected ({pairs} pairs)"
        );
        let wrong = Tamper::Cell {
            kind: CellKind::Output,
            index: 4,
            delta: 1,
        };
        assert!(
            !kzg.accepts(TestCircuit::new(pairs, Some(wrong))),
            "proof of a wrong product accepted ({pairs} pairs)"
        );
    }
}
