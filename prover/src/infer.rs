//! Native integer inference: the bit-exact reference for the circuit.
//!
//! Each layer computes exactly the integers the IR defines: a linear layer `acc = Σ w·x + bias` over the non-padding
//! taps of each group (in i64; `QuantizedModel::validate` bounds every accumulator below 2^40), rounded by
//! [`Kernel::requantize`](zkinfer_circuits::model::Kernel::requantize), the one rounding function shared with the
//! circuit; a max pool the maximum of each window; a table
//! [`Table::apply`](zkinfer_circuits::model::Table::apply); a gather a copy.

use rayon::prelude::*;
use zkinfer_circuits::model::{Layer, Op, QuantizedModel, Source, ACT_MAX, ACT_MIN};

use crate::error::{ProverError, Result};

/// What one layer computed for one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTrace {
    /// The layer's name.
    pub name: String,
    /// For a linear layer, `Σ w·x + bias` of each output before requantization; empty for other layers.
    pub accumulators: Vec<i64>,
    /// The layer's int8 outputs.
    pub outputs: Vec<i64>,
}

/// A validated quantized model, ready for repeated inference.
#[derive(Clone, Debug)]
pub struct IntegerEngine {
    model: QuantizedModel,
}

/// The value of `s` among the tensors computed so far (validation guarantees it exists).
fn value(tensors: &[Vec<i64>], s: &Source) -> i64 {
    tensors[s.tensor][s.index]
}

impl IntegerEngine {
    /// Validates `model` (the same checks the circuit relies on).
    pub fn new(model: &QuantizedModel) -> Result<IntegerEngine> {
        model
            .validate()
            .map_err(|reason| ProverError::Quantization { reason })?;
        Ok(IntegerEngine { model: model.clone() })
    }

    /// The model this engine runs.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }

    /// Checks that `input_q` has the model's input length and holds int8 values.
    pub fn check_input(&self, input_q: &[i64]) -> Result<()> {
        let expected = self.model.input_len();
        if input_q.len() != expected {
            return Err(ProverError::WrongInputLength {
                expected,
                found: input_q.len(),
            });
        }
        match input_q.iter().position(|v| !(ACT_MIN..=ACT_MAX).contains(v)) {
            Some(index) => Err(ProverError::InputOutOfRange {
                index,
                value: input_q[index],
            }),
            None => Ok(()),
        }
    }

    /// Runs the layers, calling `visit(layer, accumulators, outputs)` after each; returns every tensor.
    fn run(&self, input_q: &[i64], mut visit: impl FnMut(&Layer, &[i64], &[i64])) -> Result<Vec<Vec<i64>>> {
        self.check_input(input_q)?;
        let mut tensors: Vec<Vec<i64>> = Vec::with_capacity(self.model.layers.len() + 1);
        tensors.push(input_q.to_vec());
        let mut taps = Vec::new();
        for layer in &self.model.layers {
            let len = layer.output_len();
            let mut acc = Vec::new();
            let out: Vec<i64> = match &layer.op {
                Op::Linear(lin) => {
                    let mut out = vec![0; len];
                    acc = vec![0; len];
                    for g in &lin.groups {
                        taps.clear();
                        taps.extend(g.taps.iter().map(|t| t.as_ref().map_or(0, |s| value(&tensors, s))));
                        for &(o, k) in &g.outputs {
                            let kernel = &lin.kernels[k];
                            let dot: i64 = kernel.weights.iter().zip(&taps).map(|(w, x)| w * x).sum();
                            acc[o] = dot + kernel.bias;
                            out[o] = kernel.requantize(acc[o], lin.output_range()).y;
                        }
                    }
                    out
                }
                Op::MaxPool(pool) => {
                    let max = |w: &Vec<Source>| w.iter().map(|s| value(&tensors, s)).max().unwrap_or(0);
                    pool.windows.iter().map(max).collect()
                }
                Op::Table(table) => tensors[table.input].iter().map(|&x| table.apply(x)).collect(),
                Op::Gather(sources) => sources.iter().map(|s| value(&tensors, s)).collect(),
            };
            visit(layer, &acc, &out);
            tensors.push(out);
        }
        Ok(tensors)
    }

    /// The int8 outputs for one int8 input.
    pub fn infer(&self, input_q: &[i64]) -> Result<Vec<i64>> {
        Ok(self.run(input_q, |_, _, _| {})?.pop().unwrap_or_default())
    }

    /// The int8 outputs for many inputs, in parallel over samples; fails on the first bad input.
    pub fn infer_batch(&self, inputs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        inputs.par_iter().map(|x| self.infer(x)).collect()
    }

    /// Every layer's accumulators and outputs for one input.
    pub fn trace(&self, input_q: &[i64]) -> Result<Vec<LayerTrace>> {
        let mut trace = Vec::with_capacity(self.model.layers.len());
        self.run(input_q, |layer, acc, y| {
            trace.push(LayerTrace {
                name: layer.name.clone(),
                accumulators: acc.to_vec(),
                outputs: y.to_vec(),
            })
        })?;
        Ok(trace)
    }
}

/// The int8 outputs of `model` for one int8 input (see [`IntegerEngine`] to run many).
pub fn infer(model: &QuantizedModel, input_q: &[i64]) -> Result<Vec<i64>> {
    IntegerEngine::new(model)?.infer(input_q)
}

/// The int8 outputs of `model` for many inputs, in parallel over samples.
pub fn infer_batch(model: &QuantizedModel, inputs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
    IntegerEngine::new(model)?.infer_batch(inputs)
}

/// Every layer's accumulators and outputs for one input (for debugging and witness checks).
pub fn infer_trace(model: &QuantizedModel, input_q: &[i64]) -> Result<Vec<LayerTrace>> {
    IntegerEngine::new(model)?.trace(input_q)
}

#[cfg(test)]
#[path = "infer/tests.rs"]
mod tests;
