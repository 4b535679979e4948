//! The native integer engine and the circuit compute the same integers on every test image of the shipped model,
//! and the circuit is satisfied on real inputs.

mod common;

use zkinfer_prover::{infer_batch, quantize_input};

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
