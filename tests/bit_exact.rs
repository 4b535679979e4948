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
