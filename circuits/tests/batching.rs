//! Batched models (`QuantizedModel::batched`): every tensor is the samples' tensors one after another, the
//! circuit proves them together (a dense layer becomes a matrix product Freivalds' test can check), and a witness
//! changed in any kind of cell, or public outputs moved between samples, is rejected.

mod common;

use common::satisfied;

use std::collections::BTreeSet;

use halo2_proofs::plonk::Circuit;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::layout::{freivalds_candidates, window_widths};
use zkinfer_circuits::model::{ModelError, Op, MAX_BATCH, MAX_BATCHED_ELEMENTS};
use zkinfer_circuits::poseidon::commit_input;
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit, PublicInputs, QuantizedModel, Witness};

const BATCH: usize = 3;

/// `BATCH` different int8 inputs of `model`'s sample length, one after another (a pattern, its negation, zeros).
fn batch_input(model: &QuantizedModel) -> Vec<i64> {
    let pattern = [127, -128, 0, -55, 3, -100, 90, 17, -7, 64];
    (0..BATCH * model.input_len())
        .map(|i| {
            let v = pattern[(i * 7) % pattern.len()];
            match (i / model.input_len()) % 3 {
                0 => v,
                1 => (-v).min(127),
                _ => 0,
            }
        })
        .collect()
}

/// The batched circuit of `model` with every linear layer that becomes a matrix product checked by Freivalds'
/// test (through its windows where it has them), and its public inputs.
fn batched_circuit(model: &QuantizedModel) -> (ModelCircuit, PublicInputs) {
    let batched = model.batched(BATCH).expect("batch");
    let freivalds_layers: BTreeSet<usize> = freivalds_candidates(&batched).into_iter().collect();
    let params = CircuitParams {
        freivalds_widths: window_widths(&batched, &freivalds_layers),
        freivalds_layers,
        ..CircuitParams::with_chips_of(&batched)
    };
    let witness = Witness {
        salt: Fr::from(5u64),
        nonce: Fr::from(6u64),
        input: batch_input(model),
    };
    let outputs = common::reference_outputs(&batched, &witness.input)
        .pop()
        .expect("outputs");
    let public = PublicInputs {
        input_commitment: commit_input(witness.salt, &witness.input),
        nonce: witness.nonce,
        outputs,
    };
    (ModelCircuit::new(batched, params, witness), public)
}

fn models() -> Vec<QuantizedModel> {
    vec![
        common::small_model(),
        common::small_cnn(),
        common::small_gated_model(),
        common::small_wide_hidden_model(),
        common::small_attention_model(),
        common::small_softmax_model(),
        common::small_argmax_model(),
        common::small_layer_norm_model(),
    ]
}

#[test]
fn a_batched_model_computes_every_tensor_of_each_sample_as_the_single_model_does() {
    for model in models() {
        let batched = model.batched(BATCH).expect("batch");
        batched.validate().expect("a batched model is valid");
        assert_eq!((batched.batch(), model.batch()), (BATCH, 1));
        assert_eq!(batched.input_len(), BATCH * model.input_len());
        assert_eq!(batched.sample_output_len(), model.output_len());
        let input = batch_input(&model);
        let together = common::reference_outputs(&batched, &input);
        for (b, sample) in input.chunks(model.input_len()).enumerate() {
            let alone = common::reference_outputs(&model, sample);
            for (t, tensor) in alone.iter().enumerate() {
                let part = &together[t][b * tensor.len()..(b + 1) * tensor.len()];
                assert_eq!(part, &tensor[..], "{}: sample {b}, tensor {t}", model.name);
            }
        }
    }
}

#[test]
fn batch_sizes_out_of_range_and_batching_twice_are_refused() {
    let model = common::small_model();
    assert!(model.batched(0).is_err());
    assert!(model.batched(MAX_BATCH + 1).is_err());
    assert_eq!(model.batched(1).expect("batch of one"), model);
    let twice = model.batched(2).expect("batch").batched(2);
    assert!(twice.is_err_and(|e| e.contains("already")));
}

#[test]
fn a_batch_of_more_tensor_elements_than_the_bound_is_refused() {
    // An input of 2^27 elements (the layers read the first few): valid alone, too many elements three times over.
    let mut model = common::small_model();
    model.input_shape = vec![1, 1 << 27];
    model
        .validate()
        .expect("a wide input the layers partly read is a valid model");
    let refused = model.batched(3).expect_err("3 · 2^27 input elements");
    assert!(refused.contains(&MAX_BATCHED_ELEMENTS.to_string()), "{refused}");
    assert!(model.batched(1).is_ok());
}

#[test]
fn the_batch_leads_every_input_shape() {
    // A vector input `[6]` and an imported `[1, 6]` are one sample; a scalar input `[]` reads one value.
    let mut vector = common::small_model();
    vector.input_shape = vec![6];
    let mut scalar = common::small_model();
    scalar.input_shape = vec![];
    if let Op::Linear(lin) = &mut scalar.layers[0].op {
        for tap in lin.groups.iter_mut().flat_map(|g| g.taps.iter_mut().flatten()) {
            tap.index = 0;
        }
    }
    for (model, batched_shape) in [
        (common::small_model(), vec![4, 6]),
        (vector, vec![4, 6]),
        (scalar, vec![4, 1]),
    ] {
        model.validate().expect("a valid single-sample model");
        assert_eq!(model.batch(), 1);
        let batched = model.batched(4).expect("batch");
        assert_eq!(batched.input_shape, batched_shape);
        assert_eq!((batched.batch(), batched.input_len()), (4, 4 * model.input_len()));
        assert!(batched.batched(2).is_err(), "{:?}: batched twice", model.input_shape);
    }
}

#[test]
fn a_batch_that_does_not_divide_the_outputs_is_an_invalid_model() {
    // Six inputs as a "batch" of 2 with 3 outputs.
    let mut model = common::small_model();
    model.input_shape = vec![2, 3];
    assert!(matches!(model.validate(), Err(ModelError::Batch { batch: 2, .. })));
    assert!(model.batched(2).is_err());
}

#[test]
fn dense_layers_of_a_batch_become_matrix_products() {
    // One group per dense layer alone (nothing for Freivalds' test), one per sample when batched.
    let mlp = common::small_model();
    assert!(freivalds_candidates(&mlp).is_empty());
    assert_eq!(freivalds_candidates(&mlp.batched(BATCH).expect("batch")), vec![0, 1]);
}

#[test]
fn a_batch_is_proven_with_each_samples_outputs() {
    for model in models() {
        let (circuit, public) = batched_circuit(&model);
        // Every model with products has them checked by Freivalds' test once batched.
        let products = (model.layers.iter()).any(|l| matches!(l.op, Op::Linear(_) | Op::MatMul(_)));
        assert_eq!(circuit.params().has_freivalds(), products, "{}", model.name);
        assert!(satisfied(&circuit, public.to_instance()), "{}", model.name);
        let proven: Vec<Fr> = circuit.last_synthesis().outputs;
        let expected: Vec<Fr> = public
            .outputs
            .iter()
            .map(|&v| zkinfer_circuits::field::from_i64(v))
            .collect();
        assert_eq!(proven, expected, "{}", model.name);
    }
}

#[test]
fn outputs_moved_between_samples_and_a_commitment_to_part_of_the_batch_are_rejected() {
    // The small CNN is left out: its last layer saturates to the same outputs on every input.
    for model in [
        common::small_model(),
        common::small_gated_model(),
        common::small_wide_hidden_model(),
    ] {
        let (circuit, public) = batched_circuit(&model);
        let samples: Vec<&[i64]> = public.outputs.chunks(model.output_len()).collect();
        let other = (1..BATCH).find(|&b| samples[b] != samples[0]);
        let other = other.unwrap_or_else(|| panic!("{}: every sample has the same outputs", model.name));
        let mut swapped = public.clone();
        let outputs: Vec<i64> = (0..BATCH)
            .flat_map(|b| {
                samples[if b == 0 {
                    other
                } else if b == other {
                    0
                } else {
                    b
                }]
                .to_vec()
            })
            .collect();
        swapped.outputs = outputs;
        assert!(!satisfied(&circuit, swapped.to_instance()), "{}: swapped", model.name);
        let input = batch_input(&model);
        let partial = PublicInputs {
            input_commitment: commit_input(Fr::from(5u64), &input[..model.input_len()]),
            ..public.clone()
        };
        assert!(!satisfied(&circuit, partial.to_instance()), "{}: partial", model.name);
    }
}

#[test]
fn every_kind_of_tampered_cell_of_a_batch_is_rejected() {
    for model in [common::small_model(), common::small_cnn()] {
        let (circuit, public) = batched_circuit(&model);
        let instance = public.to_instance();
        assert!(satisfied(&circuit, instance.clone()));
        let counts = circuit.assigned_cell_counts();
        let kinds: Vec<CellKind> = (counts.iter())
            .filter(|&(k, &n)| n > 0 && *k != CellKind::Padding)
            .map(|(k, _)| *k)
            .collect();
        for kind in [CellKind::FreivaldsOperand, CellKind::FreivaldsSum] {
            assert!(kinds.contains(&kind), "{}: no {kind:?} cells", model.name);
        }
        for kind in kinds {
            let n = counts[&kind];
            let mut indices = vec![0, n / 3, n / 2, n - 1];
            indices.dedup();
            for index in indices {
                let tampered = circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                assert!(
                    !satisfied(&tampered, instance.clone()),
                    "{}: {kind:?} #{index} + 1 was accepted",
                    model.name
                );
            }
        }
    }
}
