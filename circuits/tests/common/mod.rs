//! A small deterministic model for the chip tests: 6 inputs → 5 (ReLU) → 3, with multipliers chosen so that
//! outputs clamp at both ends as well as land inside the range.

use zkinfer_circuits::model::{Activation, DenseLayer, QuantizedModel, MODEL_FORMAT_VERSION};
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit, PublicInputs, Witness};

fn pseudo_random(seed: &mut u64) -> i64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 33) % 255) as i64 - 127
}

fn layer(name: &str, inputs: usize, outputs: usize, activation: Activation, seed: &mut u64) -> DenseLayer {
    let weights = (0..inputs * outputs).map(|_| pseudo_random(seed) as i8).collect();
    let bias = (0..outputs).map(|_| pseudo_random(seed) * 40).collect();
    DenseLayer {
        name: name.into(),
        in_features: inputs,
        out_features: outputs,
        weights,
        bias,
        // Mixed precisions: shifts 16 and 24, multipliers that make some channels saturate.
        multiplier: (0..outputs)
            .map(|c| [9_000_000, 40_000, 3_000_000][(c + outputs) % 3])
            .collect(),
        shift: (0..outputs).map(|c| if c % 2 == 0 { 24 } else { 32 }).collect(),
        activation,
        weight_scales: vec![0.01; outputs],
        output_scale: 0.05,
    }
}

/// The test model.
pub fn small_model() -> QuantizedModel {
    let mut seed = 7;
    QuantizedModel {
        format_version: MODEL_FORMAT_VERSION,
        name: "small".into(),
        input_shape: vec![1, 6],
        input_scale: 0.01,
        layers: vec![
            layer("fc1", 6, 5, Activation::Relu, &mut seed),
            layer("fc2", 5, 3, Activation::Identity, &mut seed),
        ],
    }
}

/// A valid witness for the test model.
pub fn small_witness() -> Witness {
    Witness {
        salt: Fr::from(1234u64),
        nonce: Fr::from(99u64),
        input: vec![127, -128, 0, -55, 3, -100],
    }
}

/// The circuit and its public inputs.
pub fn small_circuit() -> (ModelCircuit, PublicInputs) {
    let model = small_model();
    let witness = small_witness();
    let outputs = native_outputs(&model, &witness.input);
    let public = PublicInputs {
        input_commitment: zkinfer_circuits::poseidon::commit_input(witness.salt, &witness.input),
        nonce: witness.nonce,
        outputs,
    };
    (ModelCircuit::new(model, CircuitParams::default(), witness), public)
}

/// Straightforward integer inference (the circuit tests' own reference).
pub fn native_outputs(model: &QuantizedModel, input: &[i64]) -> Vec<i64> {
    let mut x = input.to_vec();
    for l in &model.layers {
        x = (0..l.out_features)
            .map(|c| {
                let acc: i64 = (0..l.in_features).map(|i| l.weight(c, i) * x[i]).sum::<i64>() + l.bias[c];
                l.requantize(c, acc).y
            })
            .collect();
    }
    x
}
