//! Native integer inference: the bit-exact reference for the circuit.
//!
//! Each layer computes exactly the integers the IR defines: the engine runs
//! [`Layer::eval_with`](zkinfer_circuits::model::Layer::eval_with), the IR's one definition of every op, over many
//! inputs in parallel, with a linear layer's dot products on a GPU when it has one (the GPU returns the exact
//! accumulators and the IR requantizes them).

use std::sync::Arc;

use rayon::prelude::*;
use zkinfer_circuits::model::{Layer, LayerValues, Op, QuantizedModel};

use crate::device::GpuBackend;
use crate::error::Result;
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

impl IntegerEngine {
    /// Validates `model` (the same checks the circuit relies on).
    pub fn new(model: &QuantizedModel) -> Result<IntegerEngine> {
        model.validate()?;
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
        Ok(self.model.check_input(input_q)?)
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
            let computed: Vec<LayerValues> = tensors
                .par_iter()
                .zip(accumulators)
                .map(|(t, acc)| layer.eval_with(t, acc))
                .collect();
            for (sample, (values, t)) in computed.into_iter().zip(&mut tensors).enumerate() {
                visit(sample, layer, &values.accumulators, &values.outputs);
                t.push(values.outputs);
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
