//! The tampered-witness harness on the shipped model: one altered cell of each kind, or a division attack on a
//! hidden or an output channel, makes the circuit unsatisfied.

mod common;

use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::ModelCircuit;
use zkinfer_prover::{infer, quantize_input};

#[test]
fn tampered_digits_witness_is_rejected() {
    let model = common::digits_model();
    let input = quantize_input(model, &common::digits_test().inputs[3]).expect("quantize");
    let outputs = infer(model, &input).expect("infer");
    let s = common::synthesize(model, &input, &outputs);
    let (circuit, public) = (&s.circuit, &s.public);
    let check = |c: &ModelCircuit| common::satisfied(c, public, s.k);
    assert!(check(circuit), "honest witness rejected");
    let counts = circuit.assigned_cell_counts();
    let requantization = (CellKind::REQUANTIZATION.into_iter()).filter(|k| counts.get(k).is_some_and(|&n| n > 0));
    for kind in CellKind::ALWAYS.into_iter().chain(requantization) {
        let index = counts[&kind] / 2;
        let tampered = circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
        assert!(!check(&tampered), "{kind:?} #{index} + 1 was accepted");
    }
    // A hidden channel (0) and an output channel (the last requantization).
    for index in [0, counts[&CellKind::ClampFlag] - 1] {
        for attack in [Tamper::RemainderShift { index }, Tamper::UnboundedQuotient { index }] {
            assert!(!check(&circuit.clone().with_tamper(attack)), "{attack:?} was accepted");
        }
    }
}
