//! The tampered-witness harness: a valid witness satisfies the circuit; changing any single cell of any kind, or
//! mounting the remainder/quotient attacks on any requantization, or changing any public input, does not.

mod common;

use common::satisfied;

use halo2_proofs::dev::MockProver;
use rayon::prelude::*;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::layout::{freivalds_candidates, plan};
use zkinfer_circuits::model::Op;
use zkinfer_circuits::{Chip, CircuitParams, Fr, ModelCircuit};

#[test]
fn honest_witness_is_accepted_and_exercises_both_clamps() {
    for model in [
        common::small_model(),
        common::small_cnn(),
        common::small_wide_model(),
        common::small_wide_hidden_model(),
    ] {
        let (circuit, public) = common::circuit_for(model.clone());
        assert!(satisfied(&circuit, public.to_instance()), "{}", model.name);
        let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
        let mut pieces = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            if let Op::Linear(lin) = &layer.op {
                let acc = layer.eval(&tensors[..=i]).accumulators;
                for g in &lin.groups {
                    for &(o, k) in &g.outputs {
                        pieces.push((i, lin.kernels[k].requantize(acc[o], lin.output_range())));
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

/// The small CNN laid out with every convolution on the multiply-accumulate chip and one range column of byte
/// limbs; with every convolution checked by Freivalds' test entry by entry and two range columns of 10-bit limbs;
/// and the same through the convolutions' sliding windows (stride gates).
fn cnn_layouts() -> [(ModelCircuit, zkinfer_circuits::PublicInputs); 3] {
    let model = common::small_cnn();
    let mac = CircuitParams::with_chips_of(&model);
    let freivalds_layers: std::collections::BTreeSet<usize> = freivalds_candidates(&model).into_iter().collect();
    assert!(!freivalds_layers.is_empty(), "the small CNN has no convolution");
    let freivalds = CircuitParams {
        freivalds_layers: freivalds_layers.clone(),
        range_columns: 2,
        limb_bits: 10,
        ..mac.clone()
    };
    let windowed = CircuitParams {
        freivalds_widths: zkinfer_circuits::layout::window_widths(&model, &freivalds_layers),
        ..freivalds.clone()
    };
    assert!(
        !windowed.freivalds_widths.is_empty(),
        "the small CNN's convolution has no windows"
    );
    [
        common::circuit_with(model.clone(), mac),
        common::circuit_with(model.clone(), freivalds),
        common::circuit_with(model, windowed),
    ]
}

fn assert_every_kind_rejected(model: zkinfer_circuits::QuantizedModel, kinds: &[CellKind]) {
    let (circuit, public) = common::circuit_for(model);
    assert_every_kind_rejected_in(circuit, public, kinds);
}

fn assert_every_kind_rejected_in(circuit: ModelCircuit, public: zkinfer_circuits::PublicInputs, kinds: &[CellKind]) {
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let counts = circuit.assigned_cell_counts();
    // The requantization kinds the layout uses (one of them at least).
    let requantization: Vec<CellKind> = (CellKind::REQUANTIZATION.into_iter())
        .filter(|k| counts.get(k).is_some_and(|&n| n > 0))
        .collect();
    assert!(!requantization.is_empty(), "no requantization cells assigned");
    let mut tampers = Vec::new();
    for &kind in kinds.iter().chain(&requantization) {
        let n = *counts.get(&kind).unwrap_or(&0);
        assert!(n > 0, "{kind:?}: no cells assigned");
        let mut indices = vec![0, n / 2, n - 1];
        indices.dedup();
        for index in indices {
            for delta in [1u64, 1 << 8] {
                tampers.push(Tamper::Cell { kind, index, delta });
            }
        }
    }
    // Each tampered witness is checked on its own: on all cores.
    tampers.into_par_iter().for_each(|tamper| {
        let tampered = circuit.clone().with_tamper(tamper);
        assert!(!satisfied(&tampered, instance.clone()), "{tamper:?} was accepted");
    });
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    assert_every_kind_rejected(common::small_model(), &CellKind::ALWAYS);
}

#[test]
fn every_kind_of_tampered_cell_with_16_bit_outputs_is_rejected() {
    assert_every_kind_rejected(common::small_wide_model(), &CellKind::ALWAYS);
}

#[test]
fn every_kind_of_tampered_cell_with_16_bit_hidden_activations_is_rejected() {
    assert_every_kind_rejected(common::small_wide_hidden_model(), &CellKind::ALWAYS);
}

#[test]
fn a_16_bit_relu_output_needs_the_wide_relu_chip() {
    let model = common::small_wide_hidden_model();
    let mut params = CircuitParams::for_model(&model);
    assert!(params.has(Chip::WideRelu), "{params:?}");
    let k = plan(&model, &params).expect("plan").k;
    params.chips.remove(&Chip::WideRelu);
    // The planner refuses the layout, and synthesis refuses the layer: without the `hi` column the gate derives
    // hi(0) = 127, which would pass [0, 32767] values off as int8.
    let err = plan(&model, &params).unwrap_err();
    assert!(err.contains("WideRelu"), "{err}");
    let (circuit, public) = common::circuit_with(model, params);
    assert!(MockProver::run(k, &circuit, vec![public.to_instance()]).is_err());
}

#[test]
fn a_16_bit_hidden_activation_passed_off_as_int8_saturation_is_rejected() {
    let model = common::small_wide_hidden_model();
    let (circuit, public) = common::circuit_for(model.clone());
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    // The first layer's requantizations come first; every hidden value between 127 and 32767 is a target.
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    let targets: Vec<usize> = (0..tensors[1].len())
        .filter(|&o| (128..32767).contains(&tensors[1][o]))
        .collect();
    assert!(
        !targets.is_empty(),
        "no hidden value between int8 and 16-bit saturation: {:?}",
        tensors[1]
    );
    assert!(
        tensors[1].contains(&32767),
        "no hidden value saturates at 32767: {:?}",
        tensors[1]
    );
    for o in targets {
        let tampered = circuit.clone().with_tamper(Tamper::ClampAtInt8 { index: o });
        assert!(
            !satisfied(&tampered, instance.clone()),
            "hidden value {o} clamped at 127 was accepted"
        );
    }
}

#[test]
fn a_16_bit_output_passed_off_as_int8_saturation_is_rejected() {
    let model = common::small_wide_model();
    let (circuit, public) = common::circuit_for(model.clone());
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    // The last layer's requantizations come last; every output between 127 and 32767 is a target.
    let outputs = &public.outputs;
    let first = circuit.assigned_cell_counts()[&CellKind::ClampFlag] - outputs.len();
    let targets: Vec<usize> = (0..outputs.len())
        .filter(|&o| (128..32767).contains(&outputs[o]))
        .collect();
    assert!(
        !targets.is_empty(),
        "no output between int8 and 16-bit saturation: {outputs:?}"
    );
    for o in targets {
        let tampered = circuit.clone().with_tamper(Tamper::ClampAtInt8 { index: first + o });
        assert!(
            !satisfied(&tampered, instance.clone()),
            "output {o} clamped at 127 was accepted"
        );
    }
}

#[test]
fn every_kind_of_tampered_product_cell_is_rejected() {
    let kinds = [CellKind::MulOperand, CellKind::MulProduct];
    assert_every_kind_rejected(
        common::small_gated_model(),
        &[&CellKind::ALWAYS[..], &kinds[..]].concat(),
    );
}

/// The gated model's products exercise both clamps and the inside of the range, in int8 and in 16 bits.
#[test]
fn products_saturate_at_both_ends_and_land_inside() {
    let model = common::small_gated_model();
    let (circuit, public) = common::circuit_for(model.clone());
    assert!(satisfied(&circuit, public.to_instance()));
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    for (i, layer) in model.layers.iter().enumerate() {
        let Op::Mul(mul) = &layer.op else { continue };
        let products = layer.eval(&tensors[..=i]).accumulators;
        let pieces: Vec<_> = products
            .iter()
            .map(|&p| mul.rescale().requantize(p, mul.output_range()))
            .collect();
        assert!(
            pieces.iter().any(|r| r.over > 0),
            "{}: no product saturates high",
            layer.name
        );
        assert!(
            pieces.iter().any(|r| r.under > 0),
            "{}: no product saturates low",
            layer.name
        );
        assert!(
            pieces.iter().any(|r| r.over == 0 && r.under == 0),
            "{}: no product inside the range",
            layer.name
        );
    }
}

#[test]
fn every_kind_of_tampered_cnn_cell_is_rejected() {
    let cnn_kinds = [
        CellKind::PoolInput,
        CellKind::PoolMax,
        CellKind::TableInput,
        CellKind::TableOutput,
    ];
    let [(mac, mac_public), plain, windowed] = cnn_layouts();
    assert_every_kind_rejected_in(mac, mac_public, &[&CellKind::ALWAYS[..], &cnn_kinds[..]].concat());
    let product_kinds = [CellKind::FreivaldsOperand, CellKind::FreivaldsSum];
    for (freivalds, freivalds_public) in [plain, windowed] {
        assert_every_kind_rejected_in(
            freivalds,
            freivalds_public,
            &[&CellKind::ALWAYS[..], &cnn_kinds[..], &product_kinds[..]].concat(),
        );
    }
}

#[test]
fn every_freivalds_cell_is_load_bearing() {
    let [_, plain, windowed] = cnn_layouts();
    for (circuit, public) in [plain, windowed] {
        let instance = public.to_instance();
        assert!(satisfied(&circuit, instance.clone()));
        let counts = circuit.assigned_cell_counts();
        for kind in [
            CellKind::FreivaldsOperand,
            CellKind::FreivaldsSum,
            CellKind::RequantAccumulator,
        ] {
            for index in (0..counts[&kind]).step_by(5) {
                let tampered = circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                assert!(
                    !satisfied(&tampered, instance.clone()),
                    "{kind:?} #{index} was accepted"
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
    let [cnn_mac, cnn_freivalds, cnn_windowed] = cnn_layouts();
    for ((circuit, public), expected) in [
        (common::circuit_for(common::small_model()), 8),
        (common::circuit_for(common::small_wide_model()), 8),
        (common::circuit_for(common::small_wide_hidden_model()), 8),
        (cnn_mac, 32 + 8 + 3),
        (cnn_freivalds, 32 + 8 + 3),
        (cnn_windowed, 32 + 8 + 3),
    ] {
        let instance = public.to_instance();
        assert!(satisfied(&circuit, instance.clone()));
        let requantizations = circuit.assigned_cell_counts()[&CellKind::ClampFlag];
        assert_eq!(requantizations, expected);
        attack_every_requantization(&circuit, &instance, requantizations);
    }
}

/// The small MLP and the Freivalds CNN with some of their int8 requantizations through the narrowest clamp table
/// any fits (the others, and 16-bit outputs, keep the flag and slack).
fn clamp_table_layouts() -> Vec<(ModelCircuit, zkinfer_circuits::PublicInputs)> {
    let with_table = |model: zkinfer_circuits::QuantizedModel, params: CircuitParams| {
        let clamp_bits = common::narrowest_used_clamp_bits(&model, &params);
        common::circuit_with(model, CircuitParams { clamp_bits, ..params })
    };
    let mlp = common::small_model();
    let cnn = common::small_cnn();
    let freivalds_layers: std::collections::BTreeSet<usize> = freivalds_candidates(&cnn).into_iter().collect();
    let freivalds = CircuitParams {
        freivalds_widths: zkinfer_circuits::layout::window_widths(&cnn, &freivalds_layers),
        freivalds_layers,
        range_columns: 2,
        limb_bits: 10,
        requant_sets: 2,
        ..CircuitParams::with_chips_of(&cnn)
    };
    vec![
        with_table(mlp.clone(), CircuitParams::with_chips_of(&mlp)),
        with_table(cnn, freivalds),
    ]
}

/// Checks that the honest witness of `circuit` holds and that some row used the clamp table; returns its cell counts.
fn honest_counts_through_the_table(
    circuit: &ModelCircuit,
    instance: &[Fr],
) -> std::collections::HashMap<CellKind, usize> {
    assert!(satisfied(circuit, instance.to_vec()));
    let counts = circuit.assigned_cell_counts();
    assert!(
        counts.get(&CellKind::Quotient).is_some_and(|&n| n > 0),
        "no row used the clamp table"
    );
    counts
}

#[test]
fn every_kind_of_tampered_cell_through_the_clamp_table_is_rejected() {
    for (circuit, public) in clamp_table_layouts() {
        let instance = public.to_instance();
        let counts = honest_counts_through_the_table(&circuit, &instance);
        assert_every_kind_rejected_in(circuit.clone(), public, &CellKind::ALWAYS);
        // On every requantization: the quotient one below with the remainder 2^s above, and the quotient solved
        // in the field for a flipped remainder.
        let requantizations = counts[&CellKind::ClampFlag];
        attack_every_requantization(&circuit, &instance, requantizations);
    }
}

/// The widest clamp table (16-bit quotients, `2^17` rows, so `k` 18), which the planner would give the small MLP:
/// the other tests use the narrowest table some requantization fits, to stay at a small `k`. The honest witness
/// holds, and the first row's quotient, output and remainder tampered, or its remainder shifted or quotient
/// solved in the field, are rejected.
#[test]
fn the_widest_clamp_table_rejects_tampered_rows() {
    let model = common::small_model();
    let params = CircuitParams {
        clamp_bits: zkinfer_circuits::chips::clamp_table::MAX_CLAMP_BITS,
        ..CircuitParams::with_chips_of(&model)
    };
    let (circuit, public) = common::circuit_with(model, params);
    let instance = public.to_instance();
    honest_counts_through_the_table(&circuit, &instance);
    let cells = [CellKind::Quotient, CellKind::Output, CellKind::Remainder].map(|kind| Tamper::Cell {
        kind,
        index: 0,
        delta: 1,
    });
    let attacks = [
        Tamper::RemainderShift { index: 0 },
        Tamper::UnboundedQuotient { index: 0 },
    ];
    cells
        .into_iter()
        .chain(attacks)
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|tamper| {
            let tampered = circuit.clone().with_tamper(tamper);
            assert!(!satisfied(&tampered, instance.clone()), "{tamper:?} was accepted");
        });
}

/// Table activations fused into the clamp table: every cell kind tampered (a fused row's output among them), and
/// the remainder and quotient attacks on every requantization, are rejected.
#[test]
fn every_kind_of_tampered_cell_with_fused_tables_is_rejected() {
    let model = common::small_activated_model();
    let params = common::fused_params(&model);
    let (circuit, public) = common::circuit_with(model, params);
    let instance = public.to_instance();
    let counts = honest_counts_through_the_table(&circuit, &instance);
    let kinds: Vec<CellKind> = (CellKind::ALWAYS.into_iter())
        .chain([
            CellKind::TableInput,
            CellKind::TableOutput,
            CellKind::MulOperand,
            CellKind::MulProduct,
        ])
        .collect();
    assert_every_kind_rejected_in(circuit.clone(), public, &kinds);
    attack_every_requantization(&circuit, &instance, counts[&CellKind::ClampFlag]);
}

/// A fused row that outputs the plain clamp of its quotient (a valid entry of the table, under the plain range's
/// tag) instead of the activation of it is caught by the clamp-table lookup: the tag in the row's fixed `lo` cell
/// names the activation.
#[test]
fn a_fused_row_that_outputs_the_plain_clamp_is_rejected() {
    use halo2_proofs::plonk::Circuit;
    let model = common::small_activated_model();
    let params = common::fused_params(&model);
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    // fc2 (layer 2) clamps into tensor 3 and its fused Tanh gives tensor 4; its rows follow fc1's five.
    let (index, delta) = (tensors[3].iter().zip(&tensors[4]))
        .enumerate()
        .find(|(_, (clamped, activated))| clamped > activated)
        .map(|(i, (clamped, activated))| (5 + i, (clamped - activated) as u64))
        .expect("a Tanh output below its input");
    let (circuit, public) = common::circuit_with(model, params);
    let instance = public.to_instance();
    assert!(satisfied(&circuit, instance.clone()));
    let k = plan(circuit.model(), &circuit.params()).expect("plan").k;
    let tampered = circuit.with_tamper(Tamper::Cell {
        kind: CellKind::Output,
        index,
        delta,
    });
    let failures = MockProver::run(k, &tampered, vec![instance])
        .expect("synthesis")
        .verify()
        .expect_err("the plain clamp in a fused row was accepted");
    assert!(
        (failures.iter()).any(|f| matches!(f, halo2_proofs::dev::VerifyFailure::Lookup { .. })),
        "not caught by a lookup: {failures:?}"
    );
}

fn attack_every_requantization(circuit: &ModelCircuit, instance: &[Fr], requantizations: usize) {
    let attacks: Vec<Tamper> = (0..requantizations)
        .flat_map(|index| [Tamper::RemainderShift { index }, Tamper::UnboundedQuotient { index }])
        .collect();
    attacks.into_par_iter().for_each(|attack| {
        let tampered = circuit.clone().with_tamper(attack);
        assert!(!satisfied(&tampered, instance.to_vec()), "{attack:?} was accepted");
    });
}

#[test]
fn wrong_public_inputs_are_rejected() {
    for model in [
        common::small_model(),
        common::small_cnn(),
        common::small_wide_model(),
        common::small_wide_hidden_model(),
    ] {
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
    for model in [
        common::small_model(),
        common::small_cnn(),
        common::small_wide_model(),
        common::small_wide_hidden_model(),
        common::small_gated_model(),
    ] {
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
