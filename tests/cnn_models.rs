//! The shipped convolutional models: int8 accuracy against float, bit-exact circuit on test images, a real proof
//! that verifies (also far outside the calibrated range), and the tampered-witness harness on the new chips (max
//! pool is covered by the circuit tests); the same at 10-bit weights and 16-bit outputs, which reach the float
//! model's accuracy.

mod common;

use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::{layout, CircuitParams, QuantizedModel};
use zkinfer_prover::Precision;
use zkinfer_prover::SrsSource;
use zkinfer_prover::{
    accuracy_report, import_onnx, infer_batch, quantize_input, quantize_with, setup, Dataset, InputScales,
};

/// Lowest float-vs-int8 top-1 agreement accepted on the 360 test digits (measured: see BENCHMARKS.md).
const MIN_AGREEMENT: f64 = 0.95;

/// The precision the compare script runs next to int8 (`scripts/compare-ezkl`).
const WIDE: Precision = Precision {
    weight_bits: 10,
    output_bits: 16,
    input: InputScales::PerChannel,
    activation_bits: 8,
    int8_layers: std::collections::BTreeSet::new(),
    clip_ranges: false,
};

fn compile(name: &str, precision: Precision) -> (QuantizedModel, Dataset) {
    let float = import_onnx(common::model_file(name, "model.onnx")).expect("import");
    let calibration = Dataset::load(common::model_file(name, "calibration.json")).expect("calibration");
    let model = quantize_with(&float, &calibration.inputs, precision).expect("quantize");
    let test = Dataset::load(common::model_file(name, "test.json")).expect("test set");
    (model, test)
}

fn check_model(name: &str, bit_exact_images: usize, precision: Precision) {
    let (model, test) = compile(name, precision.clone());
    let report = accuracy_report(common::model_file(name, "model.onnx"), &model, &test).expect("accuracy");
    assert!(
        report.top1_agreement >= MIN_AGREEMENT,
        "{name}: agreement {}",
        report.top1_agreement
    );
    let (float, int8) = (report.float_top1.expect("labels"), report.int8_top1.expect("labels"));
    assert!(int8 >= float - 0.02, "{name}: int8 {int8} vs float {float}");
    if precision == WIDE {
        // Measured: the float model's accuracy on all 360 test digits (int8 is one digit short on both models).
        assert!(int8 >= float, "{name} at {precision:?}: {int8} vs float {float}");
    }

    let params = CircuitParams::for_model(&model);
    // The greedy planner (used beyond a few convolutions) finds a layout as cheap as trying every subset.
    let (greedy, _) = layout::choose_with(&model, &layout::Goal::default(), 0).expect("greedy plan");
    let cost = |p: &CircuitParams| layout::plan(&model, p).expect("plan").estimated_cost();
    assert_eq!(
        cost(&greedy),
        cost(&params),
        "{name}: the greedy plan is costlier than the exhaustive one"
    );
    let inputs: Vec<Vec<i64>> = test
        .inputs
        .iter()
        .map(|x| quantize_input(&model, x).expect("quantize"))
        .collect();
    let native = infer_batch(&model, &inputs).expect("native");
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate().take(bit_exact_images) {
        let s = common::synthesize(&model, input, expected);
        assert_eq!(
            &s.outputs, expected,
            "{name} image {i}: circuit and native inference differ"
        );
        if i == 0 {
            assert_eq!(s.prover.verify(), Ok(()), "{name}: circuit not satisfied");
            let counts = s.circuit.assigned_cell_counts();
            let kinds = [
                CellKind::LayerInput,
                CellKind::ProductSum,
                CellKind::Remainder,
                CellKind::Output,
                CellKind::TableInput,
                CellKind::TableOutput,
                CellKind::PoolInput,
                CellKind::PoolMax,
                CellKind::RequantAccumulator,
                CellKind::FreivaldsOperand,
                CellKind::FreivaldsSum,
            ];
            for kind in kinds.into_iter().filter(|k| counts.contains_key(k)) {
                let index = counts[&kind] / 3;
                let tampered = s.circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                assert!(
                    !common::satisfied(&tampered, &s.public, s.k),
                    "{name}: tampered {kind:?} #{index} accepted"
                );
            }
        }
    }

    let keys = setup(&model, params.clone(), &SrsSource::InsecureDev).expect("setup");
    let (proven, _) = common::prove_and_check(name, &model, &keys, &test.inputs[0], &inputs[0], &native[0]);
    let plan = layout::plan(&model, &params).expect("plan");
    assert_eq!(
        proven.bundle.proof.len(),
        plan.proof_bytes,
        "{name}: the planner's proof size is not the real one"
    );
    // A proof-size cap the user sets is kept: the fastest layout under 5 KiB, and the smallest proof there is.
    let capped = layout::Goal {
        max_proof_bytes: Some(5 * 1024),
        ..Default::default()
    };
    let (under_cap, _) = layout::choose_for(&model, &capped).expect("a layout under 5 KiB");
    let under_cap = layout::plan(&model, &under_cap).expect("plan");
    assert!(under_cap.proof_bytes <= 5 * 1024, "{name}: proof over the cap");
    assert!(
        under_cap.estimated_cost() >= plan.estimated_cost(),
        "{name}: time is not the default objective"
    );
    let size = layout::Goal {
        objective: layout::Objective::Size,
        ..Default::default()
    };
    let (smallest, candidates) = layout::choose_for(&model, &size).expect("plan for size");
    let smallest = layout::plan(&model, &smallest).expect("plan").proof_bytes;
    assert_eq!(
        smallest,
        candidates.iter().map(|(_, l)| l.proof_bytes).min().unwrap_or(0),
        "{name}"
    );
    let too_small = layout::Goal {
        max_proof_bytes: Some(smallest - 1),
        ..Default::default()
    };
    let refused = layout::choose_for(&model, &too_small).expect_err("no layout fits");
    assert!(
        refused.contains(&format!("the smallest is {smallest} bytes")),
        "{refused}"
    );
}

#[test]
fn digits_cnn_is_accurate_bit_exact_and_provable() {
    check_model("digits-cnn", 360, Precision::default());
}

#[test]
fn digits_resnet_is_accurate_bit_exact_and_provable() {
    check_model("digits-resnet", 24, Precision::default());
}

#[test]
fn digits_cnn_with_wide_weights_and_outputs_matches_float_and_is_provable() {
    check_model("digits-cnn", 60, WIDE);
}

#[test]
fn digits_resnet_with_wide_weights_and_outputs_matches_float_and_is_provable() {
    check_model("digits-resnet", 8, WIDE);
}

/// The shipped CNNs with their int8 requantizations through a clamp table (a layout the planner leaves to larger
/// models), and digits-resnet with its Sigmoid fused into that table too: the circuit computes the native engine's
/// integers on test digits, a real proof verifies, and one made with the table-free keys is refused by the table's
/// keys (another model id).
#[test]
fn the_clamp_table_layout_is_bit_exact_and_provable() {
    use halo2_proofs::dev::MockProver;
    use zkinfer_circuits::chips::fusion::Fusion;
    use zkinfer_circuits::{field, poseidon, Chip, Fr, ModelCircuit, PublicInputs, Witness};
    for (name, fused) in [("digits-cnn", false), ("digits-resnet", false), ("digits-resnet", true)] {
        let (model, test) = compile(name, Precision::default());
        let clamp_bits = layout::clamp_table_bits(&model);
        assert!(clamp_bits > 0, "{name}: no requantization a clamp table covers");
        let mut params = CircuitParams {
            clamp_bits,
            ..CircuitParams::for_model(&model)
        };
        if fused {
            params.chips.insert(Chip::FusedTables);
            params.chips.remove(&Chip::Table);
            assert!(
                !Fusion::of(&model, &params).is_empty(),
                "{name}: the Sigmoid does not fuse"
            );
        }
        let k = layout::plan(&model, &params).expect("plan").k;
        let inputs: Vec<Vec<i64>> = (test.inputs.iter().take(6))
            .map(|x| quantize_input(&model, x).expect("quantize"))
            .collect();
        let native = infer_batch(&model, &inputs).expect("native");
        let (salt, nonce) = common::salt_and_nonce();
        for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
            let witness = Witness {
                salt,
                nonce,
                input: input.clone(),
            };
            let circuit = ModelCircuit::new(model.clone(), params.clone(), witness);
            let public = PublicInputs {
                input_commitment: poseidon::commit_input(salt, input),
                nonce,
                outputs: expected.clone(),
            };
            let prover = MockProver::run(k, &circuit, vec![public.to_instance()]).expect("synthesis");
            let record = circuit.last_synthesis();
            let outputs: Vec<Fr> = expected.iter().map(|&y| field::from_i64(y)).collect();
            assert_eq!(
                record.outputs, outputs,
                "{name} image {i}: circuit and native inference differ"
            );
            assert!(
                record.cell_counts.get(&CellKind::Quotient).is_some_and(|&n| n > 0),
                "{name}: no row used the clamp table"
            );
            assert_eq!(prover.verify(), Ok(()), "{name} image {i}: circuit not satisfied");
        }
        let keys = setup(&model, params.clone(), &SrsSource::InsecureDev).expect("setup");
        let (proven, expect) = common::prove_and_check(name, &model, &keys, &test.inputs[0], &inputs[0], &native[0]);
        assert_eq!(
            proven.bundle.proof.len(),
            layout::plan(&model, &params).expect("plan").proof_bytes,
            "{name}: the planner's proof size is not the real one"
        );
        let plain = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
        let request = zkinfer_prover::ProveRequest {
            input: &test.inputs[0],
            salt,
            nonce,
        };
        let other = zkinfer_prover::prove(&model, &plain.prover, &plain.verifier, &request).expect("prove");
        let mut relabelled = other.bundle.clone();
        relabelled.model_id = keys.verifier.model_id();
        assert!(
            zkinfer_verifier::verify_bundle(&keys.verifier, &relabelled, &expect).is_err(),
            "{name}: a proof for the table-free circuit was accepted by the clamp table's key"
        );
    }
}
