//! Matrix products of two activations (attention's `Q·Kᵀ` and `A·V`) in the circuit: the honest witness is
//! accepted and computes the reference's integers; every kind of cell tampered with is rejected, in one Freivalds
//! pair and spread over two; every cell of the product check is load-bearing; a wrong product requantized
//! consistently (so that only the Freivalds test can object) is rejected by it; and a circuit without the chip
//! refuses the layer.

mod common;

use common::forge::{verdict, Honest};
use rayon::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, Tamper};
use zkinfer_circuits::layout::plan;
use zkinfer_circuits::model::Op;
use zkinfer_circuits::params::Chip;
use zkinfer_circuits::{CircuitParams, ModelCircuit, PublicInputs};

/// The attention model's circuit with `params`, checked to be satisfied and to compute the reference outputs.
fn honest(params: CircuitParams) -> (ModelCircuit, PublicInputs, u32) {
    let model = common::small_attention_model();
    let k = plan(&model, &params).expect("plan").k;
    let (circuit, public) = common::circuit_with(model.clone(), params);
    assert!(
        common::satisfied(&circuit, public.to_instance()),
        "honest witness rejected"
    );
    let outputs: Vec<i64> = (circuit.last_synthesis().outputs.iter())
        .map(|f| zkinfer_circuits::field::to_i64(f).expect("small"))
        .collect();
    assert_eq!(outputs, public.outputs, "circuit and reference differ");
    (circuit, public, k)
}

/// The planned layout, and one with the products spread over two Freivalds pairs.
fn layouts() -> [CircuitParams; 2] {
    let model = common::small_attention_model();
    let planned = CircuitParams::for_model(&model);
    assert!(planned.has(Chip::MatMul), "{planned:?}");
    let two_pairs = CircuitParams {
        freivalds_pairs: 2,
        ..CircuitParams::with_chips_of(&model)
    };
    [planned, two_pairs]
}

#[test]
fn products_saturate_at_both_ends_and_land_inside() {
    let model = common::small_attention_model();
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    for (i, layer) in model.layers.iter().enumerate() {
        let Op::MatMul(matmul) = &layer.op else {
            panic!("{}: not a matrix product", layer.name)
        };
        let pieces: Vec<_> = (layer.eval(&tensors[..=i]).accumulators.iter())
            .map(|&acc| matmul.rescale().requantize(acc, matmul.output_range()))
            .collect();
        assert!(pieces.iter().any(|r| r.over > 0), "{}: none high", layer.name);
        assert!(pieces.iter().any(|r| r.under > 0), "{}: none low", layer.name);
        assert!(
            pieces.iter().any(|r| r.over == 0 && r.under == 0),
            "{}: none inside",
            layer.name
        );
    }
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    for params in layouts() {
        let (circuit, public, _) = honest(params);
        let instance = public.to_instance();
        let counts = circuit.assigned_cell_counts();
        let kinds: Vec<CellKind> = (counts.iter())
            .filter(|(&k, &n)| n > 0 && k != CellKind::Padding)
            .map(|(&k, _)| k)
            .collect();
        for kind in [CellKind::FreivaldsOperand, CellKind::FreivaldsSum, CellKind::Output] {
            assert!(kinds.contains(&kind), "no {kind:?} cell in {kinds:?}");
        }
        let tampers: Vec<Tamper> = (kinds.iter())
            .flat_map(|&kind| {
                let n = counts[&kind];
                [0, n / 2, n - 1]
                    .into_iter()
                    .flat_map(move |index| [1u64, 1 << 8].map(|delta| Tamper::Cell { kind, index, delta }))
            })
            .collect();
        tampers.into_par_iter().for_each(|tamper| {
            let tampered = circuit.clone().with_tamper(tamper);
            assert!(!common::satisfied(&tampered, instance.clone()), "{tamper:?} accepted");
        });
        let mut wrong = public.clone();
        wrong.outputs[3] += 1;
        assert!(
            !common::satisfied(&circuit, wrong.to_instance()),
            "a wrong output accepted"
        );
    }
}

#[test]
fn every_cell_of_the_product_check_is_load_bearing() {
    let (circuit, public, _) = honest(layouts()[0].clone());
    let instance = public.to_instance();
    let counts = circuit.assigned_cell_counts();
    let tampers: Vec<Tamper> = [
        CellKind::FreivaldsOperand,
        CellKind::FreivaldsSum,
        CellKind::RequantAccumulator,
    ]
    .into_iter()
    .flat_map(|kind| (0..counts[&kind]).map(move |index| Tamper::Cell { kind, index, delta: 1 }))
    .collect();
    tampers.into_par_iter().for_each(|tamper| {
        let tampered = circuit.clone().with_tamper(tamper);
        assert!(!common::satisfied(&tampered, instance.clone()), "{tamper:?} accepted");
    });
}

/// A product off by one, requantized as if it were right (the requantization row re-solved, later layers computed
/// from it, the outputs claimed accordingly): only the Freivalds test stands in the way, and it objects.
#[test]
fn a_wrong_product_requantized_consistently_is_caught_by_the_freivalds_test() {
    for params in layouts() {
        let (circuit, _, k) = honest(params.clone());
        let model = common::small_attention_model();
        let honest = Honest::of(&model, params, k, common::witness_for(&model).input);
        let accumulators = circuit.assigned_cell_counts()[&CellKind::RequantAccumulator];
        assert_eq!(accumulators, 16 + 24 + 8, "one accumulator per output");
        let indices: Vec<usize> = (0..accumulators).step_by(3).chain([accumulators - 1]).collect();
        indices.into_par_iter().for_each(|index| {
            for delta in [1, -1, 1 << 10] {
                let forgery = Forgery::Cell {
                    kind: CellKind::RequantAccumulator,
                    index,
                    delta,
                };
                let v = verdict(&honest, Tamper::forge(&[forgery]).expect("one forgery"));
                assert!(!v.accepted, "a product off by {delta} at #{index} accepted");
                assert!(
                    v.gates.iter().any(|g| g.contains("freivalds")),
                    "#{index} {delta}: not caught by the product check: {:?} {:?}",
                    v.gates,
                    v.lookups
                );
            }
        });
    }
}

#[test]
fn a_circuit_without_the_chip_refuses_the_layer() {
    let model = common::small_attention_model();
    let mut params = CircuitParams::with_chips_of(&model);
    params.chips.remove(&Chip::MatMul);
    let problem = plan(&model, &params).expect_err("planned without the chip");
    assert!(problem.contains("scores"), "{problem}");
}
