//! The linear layers of a quantized model as GPU dot products ([`zkinfer_gpu::IntLinearKernels`]).
//!
//! A linear layer of the IR reads its taps from any earlier tensor. On the GPU, layer `i` reads one flat vector:
//! the input and the outputs of layers `0 … i−1`, concatenated in that order, so a tap `(tensor, index)` becomes
//! `offset[tensor] + index`. Kernels of different lengths are padded with zero weights and groups with padding taps
//! to one length. The layers are uploaded once per engine and run on a whole batch of inputs per dispatch; the GPU
//! returns the exact i64 accumulators (bias included) and the CPU requantizes them with the same function as always.

use std::fmt;
use std::sync::Arc;

use zkinfer_circuits::model::{Linear, Op, QuantizedModel};
use zkinfer_gpu::{GatheredLinear, GpuError, ResidentLinear};

use crate::device::GpuBackend;
use crate::error::{ProverError, Result};

/// A model's linear layers resident on a GPU.
pub struct GpuLinearLayers {
    backend: Arc<GpuBackend>,
    /// One entry per layer: `Some` for a linear layer.
    layers: Vec<Option<ResidentLinear>>,
}

impl fmt::Debug for GpuLinearLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuLinearLayers")
            .field("backend", &self.backend)
            .field("linear_layers", &self.layers.iter().flatten().count())
            .finish()
    }
}

/// Start of every tensor in the flat vector the layers read (tensor 0 is the input).
fn tensor_offsets(model: &QuantizedModel) -> Vec<usize> {
    let lengths = std::iter::once(model.input_len()).chain(model.layers.iter().map(|l| l.output_len()));
    lengths
        .scan(0, |start, len| {
            let offset = *start;
            *start += len;
            Some(offset)
        })
        .collect()
}

/// `lin` in gathered form, reading the flat vector of the tensors before layer `index`.
fn gathered(lin: &Linear, index: usize, output_len: usize, offsets: &[usize]) -> Result<GatheredLinear> {
    let too_large = |what: &str| ProverError::Gpu {
        reason: format!("layer {index}: {what} do not fit the GPU's 32-bit indices; use --device cpu"),
    };
    let taps_per_group = lin
        .groups
        .iter()
        .map(|g| g.taps.len())
        .chain(lin.kernels.iter().map(|k| k.weights.len()))
        .max()
        .unwrap_or(0);
    let mut taps = Vec::with_capacity(lin.groups.len() * taps_per_group);
    for group in &lin.groups {
        for tap in &group.taps {
            taps.push(match tap {
                Some(s) => i32::try_from(offsets[s.tensor] + s.index).map_err(|_| too_large("the taps"))?,
                None => -1,
            });
        }
        taps.resize(taps.len() + taps_per_group - group.taps.len(), -1);
    }
    let mut weights = Vec::with_capacity(lin.kernels.len() * taps_per_group);
    for kernel in &lin.kernels {
        for &w in &kernel.weights {
            // Validation bounds weights to 16 bits; the GPU checks the range again.
            weights.push(i32::try_from(w).map_err(|_| too_large("the weights"))?);
        }
        weights.resize(weights.len() + taps_per_group - kernel.weights.len(), 0);
    }
    let mut outputs = Vec::new();
    for (g, group) in lin.groups.iter().enumerate() {
        for &(o, k) in &group.outputs {
            let index = |v: usize| u32::try_from(v).map_err(|_| too_large("the outputs"));
            outputs.push((index(o)?, index(g)?, index(k)?));
        }
    }
    Ok(GatheredLinear {
        taps_per_group,
        taps,
        weights,
        bias: lin.kernels.iter().map(|k| k.bias).collect(),
        outputs,
        input_len: offsets[index + 1],
        output_len,
    })
}

impl GpuLinearLayers {
    /// Uploads the linear layers of `model` (validated by the caller) to `backend`'s GPU.
    pub fn new(model: &QuantizedModel, backend: Arc<GpuBackend>) -> Result<GpuLinearLayers> {
        let offsets = tensor_offsets(model);
        let layers = model
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| match &layer.op {
                Op::Linear(lin) => {
                    let gathered = gathered(lin, index, layer.output_len(), &offsets)?;
                    let resident = backend.linear().upload(&gathered).map_err(|e| gpu_error(&backend, e))?;
                    Ok(Some(resident))
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(GpuLinearLayers { backend, layers })
    }

    /// The accumulators of linear layer `index` for every sample, from each sample's tensors `0 ..= index`.
    pub fn accumulate(&self, index: usize, tensors: &[Vec<Vec<i64>>]) -> Result<Vec<Vec<i64>>> {
        let Some(Some(layer)) = self.layers.get(index) else {
            return Err(ProverError::Gpu {
                reason: format!("layer {index} is not a linear layer on the GPU; this is a bug, please report it"),
            });
        };
        let flat: Vec<Vec<i32>> = tensors
            .iter()
            .map(|t| {
                t.iter()
                    .flatten()
                    // Activations are int8/16-bit (validated); anything else is refused by the GPU's range check.
                    .map(|&v| i32::try_from(v).unwrap_or(i32::MAX))
                    .collect()
            })
            .collect();
        self.backend
            .linear()
            .run_batch(layer, &flat)
            .map_err(|e| gpu_error(&self.backend, e))
    }
}

fn gpu_error(backend: &GpuBackend, e: GpuError) -> ProverError {
    ProverError::Gpu {
        reason: format!(
            "integer inference on GPU `{}`: {e}; use --device cpu",
            backend.adapter().name
        ),
    }
}
