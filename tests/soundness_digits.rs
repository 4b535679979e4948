//! The tampered-witness harness on the shipped model: one altered cell of each kind, or a division attack on a
//! hidden or an output channel, makes the circuit unsatisfied.

mod common;

use halo2_proofs::dev::MockProver;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::{layout, poseidon, CircuitParams, ModelCircuit, PublicInputs, Witness};
use zkinfer_prover::{infer, quantize_input};

#[test]
fn tampered_digits_witness_is_rejected() {
    let model = common::digits_model();
    let (salt, nonce) = common::salt_and_nonce();
    let input = quantize_input(model, &common::digits_test().inputs[3]).expect("quantize");
    let outputs = infer(model, &input).expect("infer");
    let public = PublicInputs {
        input_commitment: poseidon::commit_input(salt, &input),
        nonce,
        outputs,
    };
    let k = layout::plan(model, CircuitParams::for_model(model)).expect("plan").k;
    let circuit = ModelCircuit::new(
        model.clone(),
        CircuitParams::for_model(model),
        Witness { salt, nonce, input },
    );
    let check = |c: &ModelCircuit| {
        MockProver::run(k, c, vec![public.to_instance()])
            .expect("synthesis")
            .verify()
            .is_ok()
    };
    assert!(check(&circuit), "honest witness rejected");
    let counts = circuit.assigned_cell_counts();
    let kinds = [
        CellKind::Salt,
        CellKind::Input,
        CellKind::PoseidonState,
        CellKind::LayerInput,
        CellKind::ProductSum,
        CellKind::RequantAccumulator,
        CellKind::Quotient,
        CellKind::Remainder,
        CellKind::Over,
        CellKind::Under,
        CellKind::Output,
        CellKind::RangeLimb,
        CellKind::Nonce,
    ];
    for kind in kinds {
        let index = counts[&kind] / 2;
        let tampered = circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
        assert!(!check(&tampered), "{kind:?} #{index} + 1 was accepted");
    }
    // A hidden channel (0) and an output channel (the last requantization).
    for index in [0, counts[&CellKind::Quotient] - 1] {
        for attack in [Tamper::RemainderShift { index }, Tamper::UnboundedQuotient { index }] {
            assert!(!check(&circuit.clone().with_tamper(attack)), "{attack:?} was accepted");
        }
    }
}
