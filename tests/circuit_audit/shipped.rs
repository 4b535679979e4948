//! The shipped models under the independent checker (`circuits/tests/common/checker.rs`) and the keygen-against-
//! proving layout comparison (`circuits/tests/common/structure.rs`).
//!
//! On test digits, every cell the circuit assigns for the input, the packing, the multiply-accumulate passes, the
//! requantizations, the pools and the tables equals what the checker's own integer arithmetic predicts; the
//! checker's outputs equal the native engine's (`zkinfer_prover::infer`) and the outputs the circuit binds to the
//! instance, and the circuit is satisfied with them as the public outputs. The keygen circuit and the circuit of a
//! test digit lay out the same fixed columns, selectors and copy constraints.

use halo2_proofs::dev::MockProver;
use zkinfer_circuits::assign::trace_cells;
use zkinfer_circuits::layout::plan;
use zkinfer_circuits::{poseidon, CircuitParams, ModelCircuit, PublicInputs, Witness};
use zkinfer_prover::{infer, quantize_input};

use crate::common::salt_and_nonce;
use crate::models::{shipped, test_set};
use crate::small::checker::derive;
use crate::small::structure::structure;

/// Test digits checked per model (spread evenly over the 360, so that every class is covered), unless
/// `ZKINFER_CHECKER_DIGITS` says otherwise.
const DIGITS: usize = 12;

fn check_digits(name: &str) {
    let model = shipped(name);
    let params = CircuitParams::for_model(model);
    let k = plan(model, &params).expect("plan").k;
    let test = test_set(name);
    let digits = std::env::var("ZKINFER_CHECKER_DIGITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DIGITS);
    let (salt, nonce) = salt_and_nonce();
    let step = (test.inputs.len() / digits.max(1)).max(1);
    let mut checked = 0;
    for index in (0..test.inputs.len()).step_by(step).take(digits) {
        let input = quantize_input(model, &test.inputs[index]).expect("quantize");
        let witness = Witness {
            salt,
            nonce,
            input: input.clone(),
        };
        let derived = derive(model, &params, &witness);
        let outputs: Vec<i64> = derived.outputs().iter().map(|&y| y as i64).collect();
        assert_eq!(
            outputs,
            infer(model, &input).expect("infer"),
            "{name} digit {index}: checker and native engine"
        );
        let public = PublicInputs {
            input_commitment: poseidon::commit_input(salt, &input),
            nonce,
            outputs,
        };
        let circuit = ModelCircuit::new(model.clone(), params.clone(), witness);
        let (prover, trace) =
            trace_cells(|| MockProver::run(k, &circuit, vec![public.to_instance()]).expect("synthesis"));
        let mismatches = derived.mismatches(&trace);
        assert!(
            mismatches.is_empty(),
            "{name} digit {index}:\n{}",
            mismatches.join("\n")
        );
        assert_eq!(
            circuit.last_synthesis().outputs,
            derived.output_fields(),
            "{name} digit {index}"
        );
        assert_eq!(
            prover.verify(),
            Ok(()),
            "{name} digit {index}: the checker's outputs as the instance"
        );
        checked += 1;
    }
    eprintln!("{name}: {checked} test digits checked cell for cell");
    assert_eq!(checked, digits.min(test.inputs.len()));
}

#[test]
fn digits_mlp_matches_the_independent_checker() {
    check_digits("digits-mlp");
}

#[test]
fn digits_cnn_matches_the_independent_checker() {
    check_digits("digits-cnn");
}

#[test]
fn digits_resnet_matches_the_independent_checker() {
    check_digits("digits-resnet");
}

#[test]
fn shipped_layouts_do_not_depend_on_the_witness() {
    let (salt, nonce) = salt_and_nonce();
    for name in crate::models::SHIPPED {
        let model = shipped(name);
        let params = CircuitParams::for_model(model);
        let k = plan(model, &params).expect("plan").k;
        let instance = vec![zkinfer_circuits::Fr::from(0); 2 + model.output_len()];
        let keygen = structure(
            k,
            &ModelCircuit::for_keygen(model.clone(), params.clone()),
            instance.clone(),
        );
        let input = quantize_input(model, &test_set(name).inputs[7]).expect("quantize");
        let circuit = ModelCircuit::new(model.clone(), params, Witness { salt, nonce, input });
        if let Some(diff) = keygen.diff(&structure(k, &circuit, instance)) {
            panic!("{name}: keygen and a test digit lay out differently: {diff}");
        }
    }
}
