//! The native integer engine and the circuit compute the same integers on every test image of the shipped model,
//! and the circuit is satisfied on real inputs.

mod common;

use zkinfer_prover::{
    accuracy_report, import_onnx, infer_batch, quantize_input, quantize_with, Dataset, InputScales, Precision,
};

#[test]
fn circuit_outputs_equal_native_inference_on_every_test_image() {
    let model = common::digits_model();
    let inputs: Vec<Vec<i64>> = common::digits_test()
        .inputs
        .iter()
        .map(|x| quantize_input(model, x).expect("quantize"))
        .collect();
    let native = infer_batch(model, &inputs).expect("native inference");
    assert_eq!(native.len(), 360);
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
        let s = common::synthesize(model, input, expected);
        assert_eq!(
            &s.outputs, expected,
            "test image {i}: circuit and native inference differ"
        );
        assert_eq!(
            s.commitment, s.public.input_commitment,
            "test image {i}: commitment differs"
        );
        // Full constraint check on a spread of images (every one is synthesized and compared above).
        if i % 45 == 0 {
            assert_eq!(s.prover.verify(), Ok(()), "test image {i}: circuit not satisfied");
        }
    }
}

#[test]
fn wide_weights_and_outputs_are_bit_exact_and_as_accurate_as_float() {
    let float = import_onnx(common::model_file("digits-mlp", "model.onnx")).expect("import");
    let calibration = Dataset::load(common::model_file("digits-mlp", "calibration.json")).expect("calibration");
    // One scale for the whole input (pixels share one range): with a scale per pixel, a test pixel brighter than
    // any calibration sample showed at its position saturates, and one near tie in 360 flips.
    let precision = Precision {
        weight_bits: 10,
        output_bits: 16,
        input: InputScales::PerTensor,
        ..Precision::default()
    };
    let model = quantize_with(&float, &calibration.inputs, precision).expect("quantize");
    let test = common::digits_test();
    let report = accuracy_report(common::model_file("digits-mlp", "model.onnx"), &model, test).expect("accuracy");
    assert!(report.int8_top1 >= report.float_top1, "{report}");
    let inputs: Vec<Vec<i64>> = (test.inputs.iter().step_by(6))
        .map(|x| quantize_input(&model, x).expect("quantize"))
        .collect();
    let native = infer_batch(&model, &inputs).expect("native inference");
    assert!(
        native.iter().flatten().any(|y| y.abs() > 127),
        "no output uses the 16-bit range"
    );
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
        let s = common::synthesize(&model, input, expected);
        assert_eq!(&s.outputs, expected, "image {i}: circuit and native inference differ");
        if i % 15 == 0 {
            assert_eq!(s.prover.verify(), Ok(()), "image {i}: circuit not satisfied");
        }
    }
}

/// 16-bit activations between layers: the hidden layer's ReLU outputs are 16-bit and the last layer reads them.
/// Native and circuit agree on every sixth test image (some hidden values beyond int8), the circuit is satisfied,
/// tampered cells of every kind are rejected, a real proof verifies, and the accuracy holds.
#[test]
fn sixteen_bit_activations_are_bit_exact_tamper_proof_and_accurate() {
    use zkinfer_circuits::assign::{CellKind, Tamper};
    use zkinfer_circuits::model::Op;
    let float = import_onnx(common::model_file("digits-mlp", "model.onnx")).expect("import");
    let calibration = Dataset::load(common::model_file("digits-mlp", "calibration.json")).expect("calibration");
    let precision = Precision {
        activation_bits: 16,
        ..Precision::default()
    };
    let model = quantize_with(&float, &calibration.inputs, precision).expect("quantize");
    let Op::Linear(hidden) = &model.layers[0].op else {
        panic!("the first layer is dense")
    };
    assert_eq!(hidden.output_bits, 16, "the hidden activations are 16-bit");
    assert_eq!(
        model.input_bits(match &model.layers[1].op {
            Op::Linear(l) => l,
            _ => panic!("the last layer is dense"),
        }),
        16
    );
    let test = common::digits_test();
    let report = accuracy_report(common::model_file("digits-mlp", "model.onnx"), &model, test).expect("accuracy");
    eprintln!("digits-mlp with 16-bit activations:\n{report}");
    assert!(report.top1_agreement >= 0.98, "{report}");
    let inputs: Vec<Vec<i64>> = (test.inputs.iter().step_by(6))
        .map(|x| quantize_input(&model, x).expect("quantize"))
        .collect();
    let hidden: Vec<Vec<i64>> = inputs
        .iter()
        .map(|x| model.eval_reference(x).expect("reference")[1].clone())
        .collect();
    assert!(
        hidden.iter().flatten().any(|v| *v > 127),
        "no hidden value uses the 16-bit range"
    );
    let native = infer_batch(&model, &inputs).expect("native inference");
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
        let s = common::synthesize(&model, input, expected);
        assert_eq!(&s.outputs, expected, "image {i}: circuit and native inference differ");
        if i % 15 == 0 {
            assert_eq!(s.prover.verify(), Ok(()), "image {i}: circuit not satisfied");
        }
        if i == 0 {
            let counts = s.circuit.assigned_cell_counts();
            for kind in [
                CellKind::LayerInput,
                CellKind::ProductSum,
                CellKind::RequantAccumulator,
                CellKind::Remainder,
                CellKind::ClampFlag,
                CellKind::ClampSlack,
                CellKind::Quotient,
                CellKind::Output,
            ] {
                // The flag-and-slack and the clamp-table requantizations: the layout may use either or both.
                let Some(&count) = counts.get(&kind).filter(|&&n| n > 0) else {
                    continue;
                };
                for index in [0, count / 2, count - 1] {
                    let tampered = s.circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                    assert!(
                        !common::satisfied(&tampered, &s.public, s.k),
                        "tampered {kind:?} #{index} accepted"
                    );
                }
            }
        }
    }
    let keys = zkinfer_prover::setup(
        &model,
        zkinfer_circuits::CircuitParams::for_model(&model),
        &zkinfer_prover::SrsSource::InsecureDev,
    )
    .expect("setup");
    common::prove_and_check(
        "16-bit activations",
        &model,
        &keys,
        &test.inputs[0],
        &inputs[0],
        &native[0],
    );
}
