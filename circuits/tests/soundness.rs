//! The tampered-witness harness: a valid witness satisfies the circuit; changing any single cell of any kind, or
//! mounting the remainder/quotient attacks on any requantization, or changing any public input, does not.

mod common;

use halo2_proofs::dev::MockProver;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::layout::plan;
use zkinfer_circuits::model::Op;
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit};

fn satisfied(circuit: &ModelCircuit, instance: Vec<Fr>) -> bool {
    let k = plan(circuit.model(), CircuitParams::for_model(circuit.model()))
        .expect("plan")
        .k;
    MockProver::run(k, circuit, vec![instance])
        .expect("synthesis")
        .verify()
        .is_ok()
}

#[test]
fn honest_witness_is_accepted_and_exercises_both_clamps() {
    for model in [common::small_model(), common::small_cnn()] {
        let (circuit, public) = common::circuit_for(model.clone());
        assert!(satisfied(&circuit, public.to_instance()), "{}", model.name);
        let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
        let mut pieces = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            if let Op::Linear(lin) = &layer.op {
                for g in &lin.groups {
                    for &(_, k) in &g.outputs {
                        let kern = &lin.kernels[k];
                        let acc: i64 = g
                            .taps
                            .iter()
                            .zip(&kern.weights)
                            .filter_map(|(t, w)| t.map(|s| w * tensors[s.tensor][s.index]))
                            .sum();
                        pieces.push((i, kern.requantize(acc + kern.bias, lin.activation)));
                    }
                }
            }
        }
        assert!(
            pieces.iter().any(|(_, r)| r.over > 0),
            "{}: no output saturates high",
            model.name
        );
        assert!(
            pieces.iter().any(|(_, r)| r.under > 0),
            "{}: no output saturates low",
            model.name
        );
        assert!(
            pieces.iter().any(|(_, r)| r.over == 0 && r.under == 0),
            "{}: no output inside the range",
            model.name
        );
    }
}

fn assert_every_kind_rejected(model: zkinfer_circuits::QuantizedModel, kinds: &[CellKind]) {
    let (circuit, public) = common::circuit_for(model);
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let counts = circuit.assigned_cell_counts();
    for &kind in kinds {
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
fn every_kind_of_tampered_cell_is_rejected() {
    assert_every_kind_rejected(common::small_model(), &CellKind::ALWAYS);
}

#[test]
fn every_kind_of_tampered_cnn_cell_is_rejected() {
    let cnn_kinds = [
        CellKind::PoolInput,
        CellKind::PoolMax,
        CellKind::TableInput,
        CellKind::TableOutput,
    ];
    assert_every_kind_rejected(common::small_cnn(), &[&CellKind::ALWAYS[..], &cnn_kinds[..]].concat());
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
    for (model, expected) in [(common::small_model(), 8), (common::small_cnn(), 32 + 8 + 3)] {
        let (circuit, public) = common::circuit_for(model);
        let instance = public.to_instance();
        assert!(satisfied(&circuit, instance.clone()));
        let requantizations = circuit.assigned_cell_counts()[&CellKind::Quotient];
        assert_eq!(requantizations, expected);
        attack_every_requantization(&circuit, &instance, requantizations);
    }
}

fn attack_every_requantization(circuit: &ModelCircuit, instance: &[Fr], requantizations: usize) {
    let instance = instance.to_vec();
    for index in 0..requantizations {
        for attack in [Tamper::RemainderShift { index }, Tamper::UnboundedQuotient { index }] {
            let tampered = circuit.clone().with_tamper(attack);
            assert!(!satisfied(&tampered, instance.clone()), "{attack:?} was accepted");
        }
    }
}

#[test]
fn wrong_public_inputs_are_rejected() {
    for model in [common::small_model(), common::small_cnn()] {
        let (circuit, public) = common::circuit_for(model);
        let instance = public.to_instance();
        for row in 0..instance.len() {
            let mut wrong = instance.clone();
            wrong[row] += Fr::from(1u64);
            assert!(!satisfied(&circuit, wrong), "instance row {row} changed was accepted");
        }
    }
}

#[test]
fn outputs_match_the_reference_inference() {
    for model in [common::small_model(), common::small_cnn()] {
        let (circuit, public) = common::circuit_for(model.clone());
        assert!(satisfied(&circuit, public.to_instance()));
        let expected = common::reference_outputs(&model, &common::witness_for(&model).input)
            .pop()
            .unwrap_or_default();
        let circuit_outputs: Vec<i64> = circuit
            .last_synthesis()
            .outputs
            .iter()
            .map(|f| zkinfer_circuits::field::to_i64(f).expect("small"))
            .collect();
        assert_eq!(circuit_outputs, expected, "{}", model.name);
    }
}
