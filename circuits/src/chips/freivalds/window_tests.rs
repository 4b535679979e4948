//! Tests of the Freivalds chip evaluating `X` through sliding windows (stride gates): honest convolutions of two
//! widths verify with exactly the planned rows, and every wrong output, changed input, tampered chip cell, wrong
//! challenge and misfitting window is rejected (MockProver and a real KZG proof).

use std::collections::HashMap;
use std::sync::Mutex;

use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    dev::MockProver,
    plonk::Circuit,
};

use super::tests::Kzg;
use super::*;
use crate::assign::Tamper;

const LOG_ROWS: u32 = 10;
/// The pair counts every negative test runs with.
const PAIRS: [usize; 2] = [1, 3];

/// A stride-1 convolution: `channels × height × width` input, `kernel × kernel` kernels, `pad` zero padding on
/// every side, `outputs` output channels.
#[derive(Clone, Copy, Debug)]
struct Conv {
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    pad: usize,
    outputs: usize,
}

/// A padded 3×3 convolution (windows at offsets 0 and 1 start in the leading padding; offset 2 is a difference).
const PADDED: Conv = Conv {
    channels: 2,
    height: 4,
    width: 5,
    kernel: 3,
    pad: 1,
    outputs: 3,
};

/// An unpadded 3×3 convolution of another output width (every offset past 0 is a difference).
const UNPADDED: Conv = Conv {
    channels: 1,
    height: 5,
    width: 6,
    kernel: 3,
    pad: 0,
    outputs: 2,
};

impl Conv {
    fn out_height(&self) -> usize {
        self.height + 2 * self.pad + 1 - self.kernel
    }

    fn out_width(&self) -> usize {
        self.width + 2 * self.pad + 1 - self.kernel
    }

    fn taps(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// The input values (negative ones included).
    fn input(&self) -> Vec<i64> {
        (0..self.channels * self.height * self.width)
            .map(|i| ((i * 37 + 11) % 23) as i64 - 11)
            .collect()
    }

    /// `X` as input indices (`None` for padding): taps in `(channel, dy, dx)` order, positions in `(y, x)` order.
    fn x(&self) -> Vec<Vec<Option<usize>>> {
        let (oh, ow, k) = (self.out_height(), self.out_width(), self.kernel);
        (0..self.taps())
            .map(|t| {
                let (c, dy, dx) = (t / (k * k), t / k % k, t % k);
                (0..oh * ow)
                    .map(|p| {
                        let iy = (p / ow + dy).checked_sub(self.pad).filter(|&v| v < self.height);
                        let ix = (p % ow + dx).checked_sub(self.pad).filter(|&v| v < self.width);
                        Some(c * self.height * self.width + iy? * self.width + ix?)
                    })
                    .collect()
            })
            .collect()
    }

    fn weights(&self) -> Vec<Vec<i64>> {
        (0..self.outputs)
            .map(|o| (0..self.taps()).map(|k| ((o * 7 + k * 3) % 13) as i64 - 6).collect())
            .collect()
    }

    /// `Y = W·X`.
    fn y(&self) -> Vec<Vec<i64>> {
        let (input, x, w) = (self.input(), self.x(), self.weights());
        (0..self.outputs)
            .map(|o| {
                (0..self.positions())
                    .map(|p| {
                        (0..self.taps())
                            .map(|k| w[o][k] * x[k][p].map_or(0, |i| input[i]))
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }

    fn windows(&self) -> Windows {
        let x = self.x();
        Windows::find(self.taps(), self.positions(), |k, p| x[k][p]).expect("a convolution has windows")
    }

    /// Rows of the product's check through its windows.
    fn rows(&self) -> usize {
        windowed_rows(self.outputs, self.taps(), self.positions(), &self.windows())
    }
}

#[derive(Clone, Debug)]
struct TestConfig {
    values: Column<Advice>,
    freivalds: FreivaldsConfig,
}

/// The chip's configuration: `pairs` pairs, with stride gates of `widths`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shape {
    pairs: usize,
    widths: Vec<usize>,
}

fn test_configure(meta: &mut ConstraintSystem<Fr>, shape: &Shape) -> TestConfig {
    let values = meta.advice_column();
    meta.enable_equality(values);
    let freivalds = FreivaldsConfig::configure(meta, shape.pairs, &shape.widths, false);
    TestConfig { values, freivalds }
}

/// Each convolution's input (`Input` cells) and `Y` (`Output` cells) in a first-phase column, then the chip
/// checking each product through its windows (or, for a convolution in `plain`, entry by entry).
struct TestCircuit {
    shape: Shape,
    convs: Vec<Conv>,
    /// Convolutions (by index) laid out without windows.
    plain: Vec<usize>,
    tamper: Option<Tamper>,
    /// Lay out the chip with `γ + 1` in place of the challenge.
    wrong_gamma: bool,
    /// Cell counts and the tracker, recorded by the last synthesis.
    record: Mutex<Option<(HashMap<CellKind, usize>, ColumnRows)>>,
}

impl TestCircuit {
    fn new(pairs: usize, convs: &[Conv], tamper: Option<Tamper>) -> Self {
        let mut widths: Vec<usize> = convs.iter().map(Conv::out_width).collect();
        widths.sort_unstable();
        widths.dedup();
        Self {
            shape: Shape { pairs, widths },
            convs: convs.to_vec(),
            plain: Vec::new(),
            tamper,
            wrong_gamma: false,
            record: Mutex::new(None),
        }
    }

    fn mock(&self) -> MockProver<Fr> {
        MockProver::run(LOG_ROWS, self, vec![]).expect("synthesis")
    }

    fn record(&self) -> (HashMap<CellKind, usize>, ColumnRows) {
        self.record.lock().unwrap().clone().expect("synthesized")
    }
}

impl Circuit<Fr> for TestCircuit {
    type Config = TestConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = Shape;

    fn without_witnesses(&self) -> Self {
        Self {
            shape: self.shape.clone(),
            convs: self.convs.clone(),
            plain: self.plain.clone(),
            tamper: self.tamper,
            wrong_gamma: false,
            record: Mutex::new(None),
        }
    }

    fn params(&self) -> Shape {
        self.shape.clone()
    }

    fn configure_with_params(meta: &mut ConstraintSystem<Fr>, shape: Shape) -> TestConfig {
        test_configure(meta, &shape)
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
        test_configure(meta, &Shape::default())
    }

    fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        layouter.assign_region(
            || "windows",
            |mut region| {
                let mut a = Assigner::tampered(&mut region, self.tamper);
                let mut row = 0;
                let mut products = Vec::new();
                for conv in &self.convs {
                    let input: Vec<AssignedValue> = (conv.input().iter())
                        .enumerate()
                        .map(|(i, &v)| a.advice(CellKind::Input, config.values, row + i, field::from_i64(v)))
                        .collect();
                    row += input.len();
                    let x: Vec<Vec<Option<AssignedValue>>> = (conv.x().iter())
                        .map(|xk| xk.iter().map(|e| e.map(|i| input[i])).collect())
                        .collect();
                    let mut y = Vec::new();
                    for yo in conv.y() {
                        y.push(
                            (yo.iter().enumerate())
                                .map(|(p, &v)| a.advice(CellKind::Output, config.values, row + p, field::from_i64(v)))
                                .collect::<Vec<_>>(),
                        );
                        row += yo.len();
                    }
                    products.push((conv.weights(), x, y));
                }
                a.next_phase();
                let mut gamma = a.challenge(config.freivalds.challenge());
                if self.wrong_gamma {
                    gamma += Fr::ONE;
                }
                config.freivalds.assign_blank_rows(&mut a);
                let mut rows = ColumnRows::new(config.freivalds.pairs(), 1);
                for (i, ((w, x, y), conv)) in products.iter().zip(&self.convs).enumerate() {
                    let windows = (!self.plain.contains(&i)).then(|| conv.windows());
                    config
                        .freivalds
                        .assign_product(&mut a, &mut rows, gamma, w, x, y, windows.as_ref())?;
                }
                *self.record.lock().unwrap() = Some((a.counts().clone(), rows));
                Ok(())
            },
        )
    }
}

/// Padding operands the windowed evaluation of `conv` writes: one per padding entry of a line past its leading
/// padding, and one per all-padding segment in a tap's run.
fn padding_operands(conv: &Conv) -> usize {
    let w = conv.windows();
    let in_lines: usize = (w.lines.iter())
        .map(|l| l.entries[l.lead..].iter().filter(|e| e.is_none()).count())
        .sum();
    in_lines + w.windows.iter().flatten().filter(|win| win.is_none()).count()
}

#[test]
fn windowed_products_verify_with_the_planned_rows() {
    for convs in [&[PADDED][..], &[UNPADDED], &[PADDED, UNPADDED]] {
        for pairs in 1..=3 {
            let circuit = TestCircuit::new(pairs, convs, None);
            assert_eq!(circuit.mock().verify(), Ok(()), "{pairs} pairs, {convs:?}");
            let (counts, used) = circuit.record();
            let chip_rows: usize = convs.iter().map(Conv::rows).sum();
            assert_eq!(counts[&CellKind::FreivaldsSum], chip_rows);
            let padding: usize = convs.iter().map(padding_operands).sum();
            assert_eq!(counts[&CellKind::FreivaldsOperand], chip_rows - padding);
            assert_eq!(counts[&CellKind::Padding], pairs + padding);
            // The planner's placement is exactly the rows the chip wrote.
            let mut planned = ColumnRows::new(pairs, 1);
            for conv in convs {
                let windows = conv.windows();
                place_product(
                    &mut planned,
                    conv.outputs,
                    conv.taps(),
                    conv.positions(),
                    Some(&windows),
                );
            }
            assert_eq!(planned, used, "{pairs} pairs, {convs:?}");
            // And fewer than the plain evaluation's.
            for conv in convs {
                assert!(conv.rows() < rows(conv.outputs, conv.taps(), conv.positions()));
            }
        }
    }
}

#[test]
fn windowed_and_plain_products_share_the_chip() {
    let circuit = TestCircuit {
        plain: vec![1],
        ..TestCircuit::new(2, &[PADDED, UNPADDED], None)
    };
    assert_eq!(circuit.mock().verify(), Ok(()));
    let (counts, _) = circuit.record();
    let plain = rows(UNPADDED.outputs, UNPADDED.taps(), UNPADDED.positions());
    assert_eq!(counts[&CellKind::FreivaldsSum], PADDED.rows() + plain);
}

#[test]
fn stride_gates_fit_halo2_axiom() {
    for pairs in PAIRS {
        let mut meta = ConstraintSystem::<Fr>::default();
        let shape = Shape {
            pairs,
            widths: vec![3, 4, 32],
        };
        test_configure(&mut meta, &shape);
        assert_eq!(
            meta.gates().len(),
            pairs * 4,
            "a step gate and three stride gates per pair"
        );
        let strides: Vec<_> = meta.gates().iter().filter(|g| g.name() == "freivalds stride").collect();
        assert_eq!(strides.len(), 3 * pairs);
        assert!(strides.iter().all(|g| g.polynomials().iter().all(|p| p.degree() == 3)));
        assert!(meta.degree() <= 5);
    }
}

#[test]
fn windowed_products_use_the_challenge() {
    for pairs in PAIRS {
        let circuit = TestCircuit {
            wrong_gamma: true,
            ..TestCircuit::new(pairs, &[PADDED, UNPADDED], None)
        };
        assert!(circuit.mock().verify().is_err(), "{pairs} pairs");
    }
}

/// Asserts that adding `delta` to each of the first `count` cells of `kind` is rejected.
fn assert_each_cell_rejected(pairs: usize, convs: &[Conv], kind: CellKind, count: usize, delta: u64) {
    assert!(count > 0);
    for index in 0..count {
        let circuit = TestCircuit::new(pairs, convs, Some(Tamper::Cell { kind, index, delta }));
        assert!(
            circuit.mock().verify().is_err(),
            "{kind:?} #{index} + {delta} accepted ({pairs} pairs, {convs:?})"
        );
    }
}

#[test]
fn windowed_products_reject_every_wrong_output_and_changed_input() {
    let convs = [PADDED, UNPADDED];
    for pairs in PAIRS {
        let (counts, _) = TestCircuit::new(pairs, &convs, None).tap_record();
        assert_each_cell_rejected(pairs, &convs, CellKind::Output, counts[&CellKind::Output], 1);
        // Every input is read by some window, so changing it changes X.
        assert_each_cell_rejected(pairs, &convs, CellKind::Input, counts[&CellKind::Input], 3);
    }
}

// As in the plain chip, a padding operand is multiplied by the fixed `c = 0` and needs no constraint (the
// harness skips padding); every other operand is a copy and every running value is gated, tampered here.
#[test]
fn windowed_products_reject_every_tampered_chip_cell() {
    let convs = [PADDED, UNPADDED];
    for pairs in PAIRS {
        let (counts, _) = TestCircuit::new(pairs, &convs, None).tap_record();
        for kind in [CellKind::FreivaldsOperand, CellKind::FreivaldsSum] {
            assert_each_cell_rejected(pairs, &convs, kind, counts[&kind], 1);
        }
    }
}

impl TestCircuit {
    /// The record of this circuit's honest synthesis (asserting it verifies).
    fn tap_record(self) -> (HashMap<CellKind, usize>, ColumnRows) {
        assert_eq!(self.mock().verify(), Ok(()));
        self.record()
    }
}

#[test]
fn windows_that_do_not_fit_are_refused() {
    let circuit = MisfitCircuit {
        checked: Mutex::new(false),
    };
    let prover = MockProver::run(LOG_ROWS, &circuit, vec![]).expect("synthesis");
    assert_eq!(prover.verify(), Ok(()));
    assert!(*circuit.checked.lock().unwrap(), "the checks did not run");
}

/// Calls the chip with windows that do not fit (another width than its stride gates, another product's windows,
/// a window past its line) and checks each is refused and leaves the tracker as it was.
struct MisfitCircuit {
    checked: Mutex<bool>,
}

impl Circuit<Fr> for MisfitCircuit {
    type Config = TestConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = Shape;

    fn without_witnesses(&self) -> Self {
        Self {
            checked: Mutex::new(false),
        }
    }

    fn params(&self) -> Shape {
        Shape {
            pairs: 2,
            widths: vec![PADDED.out_width()],
        }
    }

    fn configure_with_params(meta: &mut ConstraintSystem<Fr>, shape: Shape) -> TestConfig {
        test_configure(meta, &shape)
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
        test_configure(meta, &Shape::default())
    }

    fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        layouter.assign_region(
            || "misfits",
            |mut region| {
                let mut a = Assigner::new(&mut region);
                let cell = a.advice(CellKind::Input, config.values, 0, Fr::ONE);
                let f = &config.freivalds;
                let cells = |conv: &Conv| -> Vec<Vec<Option<AssignedValue>>> {
                    conv.x()
                        .iter()
                        .map(|xk| xk.iter().map(|e| e.map(|_| cell)).collect())
                        .collect()
                };
                let (x, y) = (cells(&PADDED), vec![vec![cell; PADDED.positions()]; PADDED.outputs]);
                let (x2, y2) = (
                    cells(&UNPADDED),
                    vec![vec![cell; UNPADDED.positions()]; UNPADDED.outputs],
                );
                // A window moved past the end of its line.
                let mut beyond = PADDED.windows();
                let last = (beyond.windows.iter_mut().flatten().flatten()).find(|w| w.offset == 2);
                last.expect("a window at offset 2").offset = 3;
                let mut no_lead = PADDED.windows();
                no_lead.lines[0].lead = no_lead.lines[0].entries.len();
                let fresh = ColumnRows::new(2, 1);
                let mut r = fresh.clone();
                for (w, x, y, windows) in [
                    // No stride gate of this width.
                    (UNPADDED.weights(), &x2, &y2, UNPADDED.windows()),
                    // Another product's windows.
                    (PADDED.weights(), &x, &y, UNPADDED.windows()),
                    (PADDED.weights(), &x, &y, beyond),
                    (PADDED.weights(), &x, &y, no_lead),
                ] {
                    let result = f.assign_product(&mut a, &mut r, Fr::ONE, &w, x, y, Some(&windows));
                    assert!(matches!(result, Err(Error::Synthesis)));
                }
                assert_eq!(r, fresh, "a refused product moved the tracker");
                *self.checked.lock().unwrap() = true;
                Ok(())
            },
        )
    }
}

#[test]
fn windowed_kzg_proof_verifies_and_wrong_product_fails() {
    let convs = [PADDED, UNPADDED];
    for pairs in PAIRS {
        let kzg = Kzg::new(LOG_ROWS, &TestCircuit::new(pairs, &convs, None).without_witnesses());
        assert!(
            kzg.accepts(TestCircuit::new(pairs, &convs, None)),
            "honest proof rejected ({pairs} pairs)"
        );
        for (kind, index) in [
            (CellKind::Output, 7),
            (CellKind::Input, 5),
            (CellKind::FreivaldsSum, 40),
        ] {
            let wrong = Some(Tamper::Cell { kind, index, delta: 1 });
            assert!(
                !kzg.accepts(TestCircuit::new(pairs, &convs, wrong)),
                "{kind:?} #{index} accepted ({pairs} pairs)"
            );
        }
    }
}
