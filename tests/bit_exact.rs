//! The native integer engine and the circuit compute the same integers on every test image of the shipped model,
//! and the circuit is satisfied on real inputs.

mod common;

use halo2_proofs::dev::MockProver;
use zkinfer_circuits::{field, layout, poseidon, CircuitParams, ModelCircuit, PublicInputs, Witness};
use zkinfer_prover::{infer_batch, quantize_input};

#[test]
fn circuit_outputs_equal_native_inference_on_every_test_image() {
    let model = common::digits_model();
    let data = common::digits_test();
    let (salt, nonce) = common::salt_and_nonce();
    let k = layout::plan(model, CircuitParams::for_model(model)).expect("plan").k;
    let inputs: Vec<Vec<i64>> = data
        .inputs
        .iter()
        .map(|x| quantize_input(model, x).expect("quantize"))
        .collect();
    let native = infer_batch(model, &inputs).expect("native inference");
    assert_eq!(native.len(), 360);
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
        let circuit = ModelCircuit::new(
            model.clone(),
            CircuitParams::for_model(model),
            Witness {
                salt,
                nonce,
                input: input.clone(),
            },
        );
        let public = PublicInputs {
            input_commitment: poseidon::commit_input(salt, input),
            nonce,
            outputs: expected.clone(),
        };
        let prover = MockProver::run(k, &circuit, vec![public.to_instance()]).expect("synthesis");
        let record = circuit.last_synthesis();
        let circuit_outputs: Vec<i64> = record
            .outputs
            .iter()
            .map(|f| field::to_i64(f).expect("small"))
            .collect();
        assert_eq!(
            &circuit_outputs, expected,
            "test image {i}: circuit and native inference differ"
        );
        assert_eq!(
            record.commitment, public.input_commitment,
            "test image {i}: commitment differs"
        );
        // Full constraint check on a spread of images (every one is synthesized and compared above).
        if i % 45 == 0 {
            assert_eq!(prover.verify(), Ok(()), "test image {i}: circuit not satisfied");
        }
    }
}
