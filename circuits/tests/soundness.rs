//! The tampered-witness harness: a valid witness satisfies the circuit; changing any single cell of any kind, or
//! mounting the remainder/quotient attacks on any requantization, or changing any public input, does not.

mod common;

use halo2_proofs::dev::MockProver;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::layout::plan;
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit};

fn satisfied(circuit: &ModelCircuit, instance: Vec<Fr>) -> bool {
    let k = plan(circuit.model(), CircuitParams::default()).expect("plan").k;
    MockProver::run(k, circuit, vec![instance])
        .expect("synthesis")
        .verify()
        .is_ok()
}

const KINDS: [CellKind; 13] = [
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

#[test]
fn honest_witness_is_accepted_and_exercises_both_clamps() {
    let (circuit, public) = common::small_circuit();
    assert!(satisfied(&circuit, public.to_instance()));
    let model = common::small_model();
    let input = common::small_witness().input;
    let mut pieces = Vec::new();
    let mut x = input;
    for l in &model.layers {
        let next: Vec<_> = (0..l.out_features)
            .map(|c| {
                let acc = (0..l.in_features).map(|i| l.weight(c, i) * x[i]).sum::<i64>() + l.bias[c];
                let r = l.requantize(c, acc);
                pieces.push(r);
                r.y
            })
            .collect();
        x = next;
    }
    assert!(pieces.iter().any(|r| r.over > 0), "no channel saturates high");
    assert!(pieces.iter().any(|r| r.under > 0), "no channel saturates low");
    assert!(
        pieces.iter().any(|r| r.over == 0 && r.under == 0),
        "no channel lands inside the range"
    );
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    let (circuit, public) = common::small_circuit();
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let counts = circuit.assigned_cell_counts();
    for kind in KINDS {
        let n = *counts.get(&kind).unwrap_or(&0);
        assert!(n > 0, "{kind:?}: no cells assigned");
        let mut indices = vec![0, n / 2, n - 1];
        indices.dedup();
        for index in indices {
            for delta in [1u64, 1 << 8] {
                let tampered = circuit.clone().with_tamper(Tamper::Cell { kind, index, delta });
                assert!(
                    !satisfied(&tampered, instance.clone()),
                    "{kind:?} #{index} + {delta} was accepted"
                );
            }
        }
    }
}

#[test]
fn every_range_limb_is_load_bearing() {
    let (circuit, public) = common::small_circuit();
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let n = circuit.assigned_cell_counts()[&CellKind::RangeLimb];
    for index in (0..n).step_by(7) {
        let tampered = circuit.clone().with_tamper(Tamper::Cell {
            kind: CellKind::RangeLimb,
            index,
            delta: 1,
        });
        assert!(
            !satisfied(&tampered, instance.clone()),
            "range limb #{index} was accepted"
        );
    }
}

#[test]
fn remainder_shift_and_unbounded_quotient_attacks_are_rejected() {
    let (circuit, public) = common::small_circuit();
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let requantizations = circuit.assigned_cell_counts()[&CellKind::Quotient];
    assert_eq!(requantizations, 8);
    for index in 0..requantizations {
        for attack in [Tamper::RemainderShift { index }, Tamper::UnboundedQuotient { index }] {
            let tampered = circuit.clone().with_tamper(attack);
            assert!(!satisfied(&tampered, instance.clone()), "{attack:?} was accepted");
        }
    }
}

#[test]
fn wrong_public_inputs_are_rejected() {
    let (circuit, public) = common::small_circuit();
    let instance = public.to_instance();
    for row in 0..instance.len() {
        let mut wrong = instance.clone();
        wrong[row] += Fr::from(1u64);
        assert!(!satisfied(&circuit, wrong), "instance row {row} changed was accepted");
    }
}

#[test]
fn outputs_match_the_reference_inference() {
    let (circuit, public) = common::small_circuit();
    let expected = common::native_outputs(circuit.model(), &common::small_witness().input);
    assert_eq!(public.outputs, expected);
    assert!(satisfied(&circuit, public.to_instance()));
}
