//! Native integer inference: the bit-exact reference for the circuit.
//!
//! Each layer computes exactly the integers the IR defines: a linear layer `acc = Σ w·x + bias` over the non-padding
//! taps of each group (in i64; `QuantizedModel::validate` bounds every accumulator below 2^40), rounded by
//! [`Kernel::requantize`](zkinfer_circuits::model::Kernel::requantize), the one rounding function shared with the
//! circuit; a max pool the maximum of each window; a table
//! [`Table::apply`](zkinfer_circuits::model::Table::apply); a gather a copy.

use std::sync::Arc;

use rayon::prelude::*;
use zkinfer_circuits::model::{Layer, Op, QuantizedModel, Source, ACT_MAX, ACT_MIN};

use crate::device::GpuBackend;
use crate::error::{ProverError, Result};
use crate::infer_gpu::GpuLinearLayers;

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

/// A validated quantized model, ready for repeated inference, on the CPU or with its linear layers on a GPU.
#[derive(Clone, Debug)]
pub struct IntegerEngine {
    model: QuantizedModel,
    /// The linear layers resident on a GPU, when the engine runs there.
    gpu: Option<Arc<GpuLinearLayers>>,
}

/// The value of `s` among the tensors computed so far (validation guarantees it exists).
fn value(tensors: &[Vec<i64>], s: &Source) -> i64 {
    tensors[s.tensor][s.index]
}

/// One layer on the tensors computed so far: its accumulators (linear layers only) and its outputs. A linear
/// layer's accumulators are `gpu_accumulators` when given (the GPU computed them), else they are computed here.
fn layer_outputs(layer: &Layer, tensors: &[Vec<i64>], gpu_accumulators: Option<Vec<i64>>) -> (Vec<i64>, Vec<i64>) {
    let len = layer.output_len();
    match &layer.op {
        Op::Linear(lin) => {
            let acc = gpu_accumulators.unwrap_or_else(|| {
                let mut acc = vec![0; len];
                let mut taps = Vec::new();
                for g in &lin.groups {
                    taps.clear();
                    taps.extend(g.taps.iter().map(|t| t.as_ref().map_or(0, |s| value(tensors, s))));
                    for &(o, k) in &g.outputs {
                        let kernel = &lin.kernels[k];
                        let dot: i64 = kernel.weights.iter().zip(&taps).map(|(w, x)| w * x).sum();
                        acc[o] = dot + kernel.bias;
                    }
                }
                acc
            });
            let mut out = vec![0; len];
            for g in &lin.groups {
                for &(o, k) in &g.outputs {
                    out[o] = lin.kernels[k].requantize(acc[o], lin.output_range()).y;
                }
            }
            (acc, out)
        }
        Op::MaxPool(pool) => {
            let max = |w: &Vec<Source>| w.iter().map(|s| value(tensors, s)).max().unwrap_or(0);
            (Vec::new(), pool.windows.iter().map(max).collect())
        }
        Op::Table(table) => (
            Vec::new(),
            tensors[table.input].iter().map(|&x| table.apply(x)).collect(),
        ),
        Op::Gather(sources) => (Vec::new(), sources.iter().map(|s| value(tensors, s)).collect()),
    }
}

impl IntegerEngine {
    /// Validates `model` (the same checks the circuit relies on).
    pub fn new(model: &QuantizedModel) -> Result<IntegerEngine> {
        model
            .validate()
            .map_err(|reason| ProverError::Quantization { reason })?;
        Ok(IntegerEngine {
            model: model.clone(),
            gpu: None,
        })
    }

    /// Validates `model` and uploads its linear layers to `backend`'s GPU: their dot products run there, exactly
    /// (the same integers as on the CPU), and everything else on the CPU.
    pub fn on_gpu(model: &QuantizedModel, backend: Arc<GpuBackend>) -> Result<IntegerEngine> {
        let mut engine = IntegerEngine::new(model)?;
        engine.gpu = Some(Arc::new(GpuLinearLayers::new(model, backend)?));
        Ok(engine)
    }

    /// The model this engine runs.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }

    /// Whether the linear layers run on a GPU.
    pub fn is_on_gpu(&self) -> bool {
        self.gpu.is_some()
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

    /// Runs the layers on every input (in parallel over inputs on the CPU; layer by layer for all inputs at once
    /// on the GPU), calling `visit(sample, layer, accumulators, outputs)` after each layer; returns every tensor of
    /// every input.
    fn run(
        &self,
        inputs: &[Vec<i64>],
        mut visit: impl FnMut(usize, &Layer, &[i64], &[i64]),
    ) -> Result<Vec<Vec<Vec<i64>>>> {
        for input in inputs {
            self.check_input(input)?;
        }
        let mut tensors: Vec<Vec<Vec<i64>>> = inputs
            .iter()
            .map(|input| {
                let mut t = Vec::with_capacity(self.model.layers.len() + 1);
                t.push(input.clone());
                t
            })
            .collect();
        for (index, layer) in self.model.layers.iter().enumerate() {
            let mut accumulators: Vec<Option<Vec<i64>>> = vec![None; inputs.len()];
            if let (Some(gpu), Op::Linear(_)) = (&self.gpu, &layer.op) {
                for (sample, acc) in gpu.accumulate(index, &tensors)?.into_iter().enumerate() {
                    accumulators[sample] = Some(acc);
                }
            }
            let computed: Vec<(Vec<i64>, Vec<i64>)> = tensors
                .par_iter()
                .zip(accumulators)
                .map(|(t, acc)| layer_outputs(layer, t, acc))
                .collect();
            for (sample, ((acc, out), t)) in computed.into_iter().zip(&mut tensors).enumerate() {
                visit(sample, layer, &acc, &out);
                t.push(out);
            }
        }
        Ok(tensors)
    }

    /// The int8 outputs for one int8 input.
    pub fn infer(&self, input_q: &[i64]) -> Result<Vec<i64>> {
        Ok(self
            .infer_batch(std::slice::from_ref(&input_q.to_vec()))?
            .pop()
            .unwrap_or_default())
    }

    /// The int8 outputs for many inputs; fails on the first bad input.
    pub fn infer_batch(&self, inputs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        let tensors = self.run(inputs, |_, _, _, _| {})?;
        Ok(tensors.into_iter().map(|mut t| t.pop().unwrap_or_default()).collect())
    }

    /// Every layer's accumulators and outputs for one input.
    pub fn trace(&self, input_q: &[i64]) -> Result<Vec<LayerTrace>> {
        let mut trace = Vec::with_capacity(self.model.layers.len());
        self.run(std::slice::from_ref(&input_q.to_vec()), |_, layer, acc, y| {
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
