//! Keygen against proving: the fixed columns, the selectors and the copy constraints a circuit lays out must not
//! depend on the witness. The verifying key is made from `ModelCircuit::for_keygen` (all-zero input, salt and
//! nonce, unknown challenge); every proof synthesizes the circuit with a real witness. Checked two ways:
//!
//! - the mock prover's fixed columns (with its compressed selector columns) and permutation mapping for the keygen
//!   circuit equal those for random inputs, salts and nonces, on every small model and layout;
//! - `keygen_vk` on circuits carrying those witnesses gives the verifying key of the keygen circuit (the real
//!   keygen path, where the challenge is unknown).
//!
//! A toy circuit with a selector enabled only for a nonzero witness (likewise a fixed cell or a copy that depends
//! on the witness) shows that both comparisons catch such a layout.

mod common;

use common::forge::subjects;
use common::structure::structure;
use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner, Value},
    halo2curves::bn256::Bn256,
    plonk::{keygen_vk, Advice, Circuit, Column, ConstraintSystem, Error, Expression, Fixed, Instance, Selector},
    poly::{commitment::Params, kzg::commitment::ParamsKZG, Rotation},
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::{Fr, ModelCircuit, QuantizedModel, Witness};

/// Random witnesses compared with the keygen circuit per model and layout.
const WITNESSES: usize = 8;

/// A random witness for `model`: int8 input, salt and nonce.
fn random_witness(model: &QuantizedModel, rng: &mut ChaCha8Rng) -> Witness {
    Witness {
        salt: Fr::from(rng.next_u64()),
        nonce: Fr::from(rng.next_u64()),
        input: (0..model.input_len())
            .map(|_| (rng.next_u32() % 256) as i64 - 128)
            .collect(),
    }
}

/// Any instance column of the right length (its values do not enter the structure).
fn instance(model: &QuantizedModel) -> Vec<Fr> {
    let rows = model
        .output_len()
        .div_ceil(zkinfer_circuits::public_inputs::OUTPUTS_PER_ROW);
    vec![Fr::from(0); 2 + rows]
}

#[test]
fn the_layout_does_not_depend_on_the_witness() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for subject in subjects() {
        let keygen = ModelCircuit::for_keygen(subject.model.clone(), subject.params.clone());
        let expected = structure(subject.k, &keygen, instance(&subject.model));
        assert!(expected.fixed.iter().flatten().count() > 0);
        for _ in 0..WITNESSES {
            let witness = random_witness(&subject.model, &mut rng);
            let circuit = ModelCircuit::new(subject.model.clone(), subject.params.clone(), witness.clone());
            let got = structure(subject.k, &circuit, instance(&subject.model));
            if let Some(diff) = expected.diff(&got) {
                panic!("{}: keygen and {witness:?} lay out differently: {diff}", subject.name());
            }
        }
    }
}

#[test]
fn the_verifying_key_does_not_depend_on_the_witness() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xfeed);
    let subjects = subjects();
    let k = subjects.iter().map(|s| s.k).max().expect("subjects");
    let params = ParamsKZG::<Bn256>::setup(k, ChaCha8Rng::seed_from_u64(1));
    let params_at = |size: u32| {
        let mut p = params.clone();
        p.downsize(size);
        p
    };
    // The MLP, the 16-bit MLP, and the CNN with Freivalds layers (second phase, challenge unknown at keygen).
    for subject in [&subjects[0], &subjects[1], &subjects[3]] {
        let params = params_at(subject.k);
        let keygen = ModelCircuit::for_keygen(subject.model.clone(), subject.params.clone());
        let expected = keygen_vk(&params, &keygen).expect("keygen").transcript_repr();
        for _ in 0..2 {
            let witness = random_witness(&subject.model, &mut rng);
            let circuit = ModelCircuit::new(subject.model.clone(), subject.params.clone(), witness.clone());
            let got = keygen_vk(&params, &circuit).expect("keygen").transcript_repr();
            assert_eq!(
                got,
                expected,
                "{}: {witness:?} changes the verifying key",
                subject.name()
            );
        }
    }
}

/// What the toy circuit gets wrong, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    None,
    /// Enables its selector only where the witness is nonzero.
    Selector,
    /// Writes the witness into a fixed cell.
    Fixed,
    /// Adds a copy constraint only where the witness is nonzero.
    Copy,
}

#[derive(Clone)]
struct ToyConfig {
    a: Column<Advice>,
    f: Column<Fixed>,
    q: Selector,
    instance: Column<Instance>,
}

/// Two advice cells holding the witness, a fixed cell, a selector on a trivial gate and a copy.
#[derive(Clone)]
struct Toy {
    value: u64,
    flaw: Flaw,
}

impl Circuit<Fr> for Toy {
    type Config = ToyConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = ();

    fn without_witnesses(&self) -> Self {
        Self { value: 0, ..*self }
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> ToyConfig {
        let a = meta.advice_column();
        meta.enable_equality(a);
        let f = meta.fixed_column();
        let q = meta.selector();
        let instance = meta.instance_column();
        meta.create_gate("toy", |meta| {
            let q = meta.query_selector(q);
            let a = meta.query_advice(a, Rotation::cur());
            let f = meta.query_fixed(f, Rotation::cur());
            vec![q * (a.clone() - a) * f * Expression::Constant(Fr::from(1))]
        });
        ToyConfig { a, f, q, instance }
    }

    fn synthesize(&self, config: ToyConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        layouter.assign_region(
            || "toy",
            |mut region| {
                let v = Fr::from(self.value);
                let x = region.assign_advice(config.a, 0, Value::known(v)).cell();
                let y = region.assign_advice(config.a, 1, Value::known(v)).cell();
                let nonzero = self.value != 0;
                if self.flaw != Flaw::Selector || nonzero {
                    config.q.enable(&mut region, 0)?;
                }
                let fixed = if self.flaw == Flaw::Fixed { v } else { Fr::from(1) };
                region.assign_fixed(config.f, 0, fixed);
                if self.flaw != Flaw::Copy || nonzero {
                    region.constrain_equal(x, y);
                }
                Ok(())
            },
        )?;
        let _ = config.instance;
        Ok(())
    }
}

#[test]
fn a_witness_dependent_selector_fixed_cell_or_copy_is_caught() {
    const K: u32 = 4;
    let params = ParamsKZG::<Bn256>::setup(K, ChaCha8Rng::seed_from_u64(2));
    for flaw in [Flaw::None, Flaw::Selector, Flaw::Fixed, Flaw::Copy] {
        let keygen = Toy { value: 0, flaw };
        let proving = Toy { value: 5, flaw };
        let diff = structure(K, &keygen, vec![]).diff(&structure(K, &proving, vec![]));
        let vk = |c: &Toy| keygen_vk(&params, c).expect("keygen").transcript_repr();
        let same_vk = vk(&keygen) == vk(&proving);
        if flaw == Flaw::None {
            assert_eq!(diff, None);
            assert!(same_vk);
        } else {
            assert!(diff.is_some(), "{flaw:?}: the structures compare equal");
            assert!(!same_vk, "{flaw:?}: the verifying keys compare equal");
        }
    }
}

/// The plan is the layout: on every small model and layout, the rows the planner counts for each column group are
/// the rows synthesis used (the planner and the layer chips advance the same cursors).
#[test]
fn the_planned_rows_are_the_rows_synthesis_uses() {
    use halo2_proofs::dev::MockProver;
    use zkinfer_circuits::layout::plan;
    for subject in subjects() {
        let layout = plan(&subject.model, &subject.params).expect("plan");
        let honest = subject.on(common::witness_for(&subject.model).input);
        MockProver::run(subject.k, &honest.circuit, vec![honest.public.to_instance()]).expect("synthesis");
        let rows = honest.circuit.last_synthesis().rows;
        let name = subject.name();
        assert_eq!(layout.linear_rows, rows.linear, "{name}: multiply-accumulate rows");
        assert_eq!(
            layout.requant_rows,
            rows.requant.max(),
            "{name}: sponge, requantization and nonce rows"
        );
        assert_eq!(layout.range_rows, rows.range.max(), "{name}: range-check rows");
        assert_eq!(layout.pool_rows, rows.pool, "{name}: max-pool rows");
        assert_eq!(layout.table_rows, rows.table, "{name}: table rows");
        assert_eq!(layout.product_rows, rows.product, "{name}: product rows");
        assert_eq!(layout.softmax_rows, rows.softmax, "{name}: softmax rows");
        assert_eq!(layout.argmax_rows, rows.argmax, "{name}: ArgMax rows");
        let freivalds = if subject.params.has_freivalds() {
            rows.freivalds.max()
        } else {
            0
        };
        assert_eq!(layout.freivalds_rows, freivalds, "{name}: Freivalds rows");
    }
}

/// The planner places requantization rows and range checks once per (limbs, range columns, requantization sets)
/// and reuses them for every other choice: planning many layouts of one model in a row must give each the layout
/// a fresh plan of it gives, and so must every candidate the planner reports.
#[test]
fn shared_planning_gives_each_layout_its_fresh_plan() {
    use zkinfer_circuits::layout::{choose, freivalds_candidates, plan, plan_each, window_widths};
    use zkinfer_circuits::CircuitParams;
    for model in [common::small_cnn(), common::small_model(), common::small_gated_model()] {
        let base = CircuitParams::with_chips_of(&model);
        let layers: std::collections::BTreeSet<usize> = freivalds_candidates(&model).into_iter().collect();
        let mut grid = Vec::new();
        for freivalds in [false, true] {
            for limb_bits in [8, 10] {
                for requant_sets in [1, 2] {
                    for range_columns in [1, 3] {
                        for mac_lanes in [2, 4] {
                            let mut params = CircuitParams {
                                limb_bits,
                                requant_sets,
                                range_columns,
                                mac_lanes,
                                ..base.clone()
                            };
                            if freivalds && !layers.is_empty() {
                                params.freivalds_widths = window_widths(&model, &layers);
                                params.freivalds_layers = layers.clone();
                            }
                            grid.push(params);
                        }
                    }
                }
            }
        }
        let shared = plan_each(&model, &grid).expect("plan");
        for (params, layout) in grid.iter().zip(&shared) {
            assert_eq!(
                &plan(&model, params).expect("plan"),
                layout,
                "{}: {params:?}",
                model.name
            );
        }
        let (_, candidates) = choose(&model).expect("choose");
        for (params, layout) in &candidates {
            assert_eq!(
                &plan(&model, params).expect("plan"),
                layout,
                "{}: {params:?}",
                model.name
            );
        }
    }
}

/// Requantization sets split the requantization rows (the sponge's stay in the first set) and add five advice
/// columns each; the planner's counts for them are checked against synthesis above (the Freivalds subject has three).
#[test]
fn requantization_sets_share_the_rows() {
    use zkinfer_circuits::{layout::plan, CircuitParams};
    let model = common::small_cnn();
    let base = CircuitParams::with_chips_of(&model);
    let one = plan(&model, &base).expect("plan");
    let three = plan(
        &model,
        &CircuitParams {
            requant_sets: 3,
            ..base
        },
    )
    .expect("plan");
    assert!(
        three.requant_rows < one.requant_rows,
        "{} vs {}",
        three.requant_rows,
        one.requant_rows
    );
    assert!(3 * three.requant_rows >= one.requant_rows);
    assert_eq!(three.advice_columns, one.advice_columns + 10);
}
