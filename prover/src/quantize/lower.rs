//! Lowering of each float node to layers of the quantized IR, with the scales calibration chose.
//!
//! Every float tensor is known as a list of int8 [`Source`]s with one scale. Layers that compute produce a new
//! quantized tensor; data movement only rearranges sources (no layer), so a Flatten before a Gemm costs nothing.
//! A `Gather` layer is emitted where a whole tensor is needed: the input of a table, and the model output.

use std::collections::HashMap;

use zkinfer_circuits::model::{
    tensor_bits, Activation, ArgMax, InputQuantization, Layer, Linear, LinearGroup, MaxPool, Op, Source, TensorId,
    ACT_BITS, PROBABILITY_ONE,
};

mod ops;

use super::{qerr, scale_for_bits, Precision};
use crate::error::Result;
use crate::graph::{ActFn, FloatModel, FloatNode, FloatOp, Pool, PoolKind};
pub(super) use ops::norm_reads_16_bit;
use ops::{
    add, affine, average, conv, conv_factors, dense, dense_factors, embedding, kernel, layer_norm, matmul, mul,
    softmax, table, windows, WeightedOutput,
};

/// A bias beyond this cannot be right: the accumulator bound of the circuit is 2^40.
const BIAS_LIMIT: f64 = (1u64 << 40) as f64;
/// Residual additions accumulate at `max(s_a, s_b) / 2^ADD_BITS` (the coarser input's weight is `2^ADD_BITS`), or
/// finer where the finer input's weight would then fall below `2^ADD_FINE_BITS`: at `min(s_a, s_b) /
/// 2^ADD_FINE_BITS`, and never below `max(s_a, s_b) / MAX_WEIGHT`. So inputs of similar scales keep the plain rule,
/// and an int8 input beside a 16-bit one (scales ~256× apart) keeps at least 10 bits in both weights.
const ADD_BITS: i32 = 12;
/// The fewest bits of the finer input's weight in a residual addition (see [`ADD_BITS`]).
const ADD_FINE_BITS: i32 = 10;

/// Where the elements of a float tensor live in the quantized model.
#[derive(Clone, Debug)]
struct QTensor {
    /// One source per element.
    sources: Vec<Source>,
    /// The common scale of the sources.
    scale: f32,
    /// IR shape (batch dimension dropped).
    shape: Vec<usize>,
    /// Name and op type of the float node that made it (for a Gather that materializes it).
    origin: (String, String),
}

/// The IR shape of an ONNX shape: without the leading batch dimension of 1.
pub(crate) fn ir_shape(shape: &[usize]) -> Vec<usize> {
    match shape {
        [1, rest @ ..] if !rest.is_empty() => rest.to_vec(),
        s => s.to_vec(),
    }
}

struct Lowering {
    layers: Vec<Layer>,
    input_len: usize,
    tensors: Vec<QTensor>,
    /// Largest |weight| of a linear layer's quantized weights: `2^(weight_bits − 1) − 1`.
    weight_max: f64,
    /// With scales per input channel: each input element's scale over the input tensor's (largest) scale, in
    /// (0, 1]. A linear layer reading the input multiplies its weights by these factors; anything else reads the
    /// input rescaled to one scale.
    input_factors: Option<Vec<f64>>,
    /// The layer that rescales the input to one scale, once one was needed.
    rescaled_input: Option<TensorId>,
}

/// The layers of the quantized model for `float`, given the calibrated maximum of every float tensor (and, with
/// `clipped`, the ranges that int8 activations other than the model output take instead) and the input's scales,
/// and where each float tensor's elements live in it. Weights get `precision.weight_bits`; the last node's outputs
/// get `precision.output_bits` when it
/// lowers to a linear layer without a fused ReLU (the model output is read by nothing else), int8 otherwise.
pub(super) fn lower(
    float: &FloatModel,
    maxima: &[f64],
    clipped: Option<&[f64]>,
    input_q: &InputQuantization,
    precision: &Precision,
) -> Result<(Vec<Layer>, Vec<Vec<Source>>)> {
    let input_len = float.input_len();
    let input_scale = input_q.max_scale();
    let input = QTensor {
        sources: (0..input_len).map(|index| Source { tensor: 0, index }).collect(),
        scale: input_scale,
        shape: ir_shape(&float.input_shape),
        origin: ("input".into(), "Input".into()),
    };
    let input_factors = (!input_q.is_uniform()).then(|| {
        (0..input_len)
            .map(|i| input_q.scale_of(i) as f64 / input_scale as f64)
            .collect()
    });
    let mut l = Lowering {
        layers: vec![],
        input_len,
        tensors: vec![input],
        weight_max: ((1i64 << (precision.weight_bits - 1)) - 1) as f64,
        input_factors,
        rescaled_input: None,
    };
    let caps = clip_caps(float);
    let wide = tensors_that_may_be_16_bit(float);
    let last = float.nodes.len().saturating_sub(1);
    for (i, node) in float.nodes.iter().enumerate() {
        let bits = if i == last && node.op.requantizes() && !node.relu {
            precision.output_bits
        } else if i != last && wide[i + 1] && !precision.int8_layers.contains(&i) {
            precision.activation_bits
        } else {
            ACT_BITS
        };
        let range = match clipped {
            Some(ranges) if bits == ACT_BITS && i != last => ranges[i + 1],
            _ => maxima[i + 1],
        };
        let s_out = scale_for_bits(caps[i + 1].map_or(range, |cap| range.min(cap)), bits);
        let t = l
            .node(node, s_out, bits)
            .map_err(|e| qerr(format!("layer `{}` ({}): {e}", node.name, node.op_type)))?;
        l.tensors.push(t);
    }
    // The output must be the last layer's tensor: relabel its shape, or gather it when it is anything else.
    let out = l.one_scale(float.nodes.len());
    match l.whole(&out) {
        Some(t) if t > 0 && t == l.layers.len() => l.layers[t - 1].output_shape = out.shape,
        _ => drop(l.emit(
            &out.origin.0,
            &out.origin.1,
            out.shape.clone(),
            out.scale,
            Op::Gather(out.sources),
        )),
    }
    let sources = l.tensors.into_iter().map(|t| t.sources).collect();
    Ok((l.layers, sources))
}

/// For each float tensor: whether it may hold 16-bit values — it is the output of a node that lowers to a linear
/// layer (not a product) or a layer norm, and only Gemm/MatMul, Conv, affine or Add/Sub nodes read it, directly or
/// through single-input data movement (Flatten, Reshape, Transpose), or layer-norm nodes (of rows short enough for
/// 16-bit inputs) directly, never the model output. A transformer's residual stream is such a tensor: its int8
/// steps are what costs most of a quantized GPT's agreement with the float one.
pub(super) fn tensors_that_may_be_16_bit(float: &FloatModel) -> Vec<bool> {
    let n = float.nodes.len();
    // `ok[t]`: every reader of tensor t is linear (a single-input move counts through its own readers).
    let mut ok = vec![true; n + 1];
    ok[n] = false;
    for (i, node) in float.nodes.iter().enumerate().rev() {
        let reader_ok = match &node.op {
            // An Add or Sub of two activations is a linear layer too (a residual connection).
            FloatOp::Dense(_) | FloatOp::Conv(_) | FloatOp::Affine { .. } | FloatOp::Add | FloatOp::Sub => true,
            // Directly only: through a move the layer norm would read a gathered copy, which is int8.
            &FloatOp::LayerNorm { row_len, .. } => {
                let moved = node
                    .inputs
                    .first()
                    .and_then(|t| t.checked_sub(1))
                    .map(|p| &float.nodes[p].op);
                norm_reads_16_bit(row_len) && !matches!(moved, Some(FloatOp::Move(_)))
            }
            FloatOp::Move(_) if node.inputs.len() == 1 => ok[i + 1],
            _ => false,
        };
        for &t in &node.inputs {
            ok[t] &= reader_ok;
        }
    }
    (0..=n)
        .map(|t| {
            let producer = t.checked_sub(1).map(|i| &float.nodes[i].op);
            let linear =
                producer.is_some_and(|op| op.requantizes() && !matches!(op, FloatOp::Mul | FloatOp::MatMul { .. }));
            linear && ok[t]
        })
        .collect()
}

/// For each float tensor read only by `Clip` activations with finite bounds (and not the model output): the
/// largest |bound|. Such a tensor needs no range beyond it (the int8 clamp at ±127 saturates exactly as the clip
/// does), so its scale can be finer than calibration alone would give: Relu6 after a Conv gets `6 / 127` at most.
fn clip_caps(float: &FloatModel) -> Vec<Option<f64>> {
    // None: no reader seen yet; Some(None): a reader that needs the full range.
    let mut caps: Vec<Option<Option<f64>>> = vec![None; float.nodes.len() + 1];
    for node in &float.nodes {
        let cap = match node.op {
            FloatOp::Activation(ActFn::Clip { min, max }) if min.is_finite() && max.is_finite() => {
                Some(min.abs().max(max.abs()) as f64)
            }
            _ => None,
        };
        for &t in &node.inputs {
            caps[t] = Some(match caps[t] {
                None => cap,
                Some(prev) => prev.zip(cap).map(|(a, b)| a.max(b)),
            });
        }
    }
    let output = float.nodes.len();
    (caps.into_iter().enumerate())
        .map(|(t, c)| c.flatten().filter(|_| t != 0 && t != output))
        .collect()
}

impl Lowering {
    fn tensor_len(&self, t: TensorId) -> usize {
        match t {
            0 => self.input_len,
            t => self.layers[t - 1].output_len(),
        }
    }

    /// The quantized tensor `q` is exactly (all its elements, in order), if any.
    fn whole(&self, q: &QTensor) -> Option<TensorId> {
        let first = q.sources.first()?.tensor;
        let whole = q.sources.len() == self.tensor_len(first)
            && q.sources
                .iter()
                .enumerate()
                .all(|(i, s)| s.tensor == first && s.index == i);
        whole.then_some(first)
    }

    /// Appends a layer; returns its output tensor.
    fn emit(&mut self, name: &str, op_type: &str, shape: Vec<usize>, scale: f32, op: Op) -> QTensor {
        let len = shape.iter().product();
        self.layers.push(Layer {
            name: name.into(),
            op_type: op_type.into(),
            output_shape: shape.clone(),
            output_scale: scale,
            op,
        });
        let tensor = self.layers.len();
        QTensor {
            sources: (0..len).map(|index| Source { tensor, index }).collect(),
            scale,
            shape,
            origin: (name.into(), op_type.into()),
        }
    }

    /// The quantized tensor holding float tensor `t` exactly (in order), emitting a Gather when its elements are
    /// scattered.
    fn materialize(&mut self, t: usize) -> TensorId {
        if let Some(id) = self.whole(&self.tensors[t]) {
            return id;
        }
        let q = self.tensors[t].clone();
        let op = Op::Gather(q.sources.clone());
        let new = self.emit(&q.origin.0, &q.origin.1, q.shape.clone(), q.scale, op);
        self.tensors[t].sources = new.sources;
        self.layers.len()
    }

    /// The factor of source `s`: its scale over its tensor's scale (1 except for an input with channel scales).
    fn factor(&self, s: &Source) -> f64 {
        match (&self.input_factors, s.tensor) {
            (Some(f), 0) => f[s.index],
            _ => 1.0,
        }
    }

    /// Whether `q` holds input elements of different scales.
    fn mixes_scales(&self, q: &QTensor) -> bool {
        self.input_factors.is_some() && q.sources.iter().any(|s| s.tensor == 0)
    }

    /// A one-tap linear layer per element of `q`: `y_i = x_i · factor(i)` at `scale`, with factors in (0, 1] (so every
    /// multiplier is in range), one kernel per distinct factor.
    fn rescale(&mut self, name: &str, q: &QTensor, scale: f32, factor: impl Fn(usize) -> f64) -> QTensor {
        let mut kernels = vec![];
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut groups = Vec::with_capacity(q.sources.len());
        for (i, s) in q.sources.iter().enumerate() {
            let m = factor(i);
            let k = *index.entry(m.to_bits()).or_insert_with(|| {
                kernels.push(kernel(vec![1], 0, m, ACT_BITS).expect("0 < m ≤ 1 always has a multiplier"));
                kernels.len() - 1
            });
            groups.push(LinearGroup {
                taps: vec![Some(*s)],
                outputs: vec![(i, k)],
            });
        }
        let op = Op::Linear(Linear {
            kernels,
            groups,
            activation: Activation::Identity,
            output_bits: ACT_BITS,
        });
        self.emit(name, "Rescale", q.shape.clone(), scale, op)
    }

    /// Float tensor `t` with every element at its one scale: input elements of an input with channel scales are
    /// read from a layer that rescales the input (emitted once, when first needed: `y = q · s_c / s_max`).
    fn one_scale(&mut self, t: usize) -> QTensor {
        if !self.mixes_scales(&self.tensors[t]) {
            return self.tensors[t].clone();
        }
        let rescaled = match self.rescaled_input {
            Some(r) => r,
            None => {
                let factors = self.input_factors.clone().unwrap_or_default();
                let input = self.tensors[0].clone();
                self.rescale("input/rescale", &input, input.scale, |i| factors[i]);
                self.rescaled_input = Some(self.layers.len());
                self.layers.len()
            }
        };
        let q = &mut self.tensors[t];
        for s in q.sources.iter_mut().filter(|s| s.tensor == 0) {
            s.tensor = rescaled;
        }
        q.clone()
    }

    /// Lowers `node` with output scale `s_out`; a linear layer's outputs get `bits` bits.
    fn node(&mut self, node: &FloatNode, s_out: f32, bits: u32) -> std::result::Result<QTensor, String> {
        let shape = ir_shape(&node.output_shape);
        let (name, op_type) = (node.name.as_str(), node.op_type.as_str());
        let weighted = WeightedOutput {
            scale: s_out,
            bits,
            relu: node.relu,
            w_max: self.weight_max,
        };
        let mut input = self.tensors[node.inputs[0]].clone();
        if let FloatOp::Conv(c) = &node.op {
            if self.mixes_scales(&input) && conv_factors(c, &input, |s| self.factor(s)).is_none() {
                input = self.one_scale(node.inputs[0]);
            }
        } else if let FloatOp::Dense(d) = &node.op {
            if self.mixes_scales(&input) && dense_factors(d, &input, |s| self.factor(s)).is_none() {
                input = self.one_scale(node.inputs[0]);
            }
        } else if !matches!(node.op, FloatOp::Dense(_) | FloatOp::Affine { .. } | FloatOp::Move(_)) {
            for &t in &node.inputs {
                self.one_scale(t);
            }
            input = self.tensors[node.inputs[0]].clone();
        }
        let op = match &node.op {
            FloatOp::Dense(d) => {
                let factors = dense_factors(d, &input, |s| self.factor(s)).unwrap_or_default();
                Op::Linear(dense(d, &input, &factors, weighted)?)
            }
            FloatOp::Conv(c) => {
                let factors = conv_factors(c, &input, |s| self.factor(s)).unwrap_or_default();
                Op::Linear(conv(c, &input, &factors, weighted)?)
            }
            FloatOp::Pool(
                p @ Pool {
                    kind: PoolKind::Max, ..
                },
            ) => {
                let windows = windows(p, &input)
                    .into_iter()
                    .map(|w| w.into_iter().flatten().collect())
                    .collect();
                return Ok(self.emit(name, op_type, shape, input.scale, Op::MaxPool(MaxPool { windows })));
            }
            FloatOp::Pool(p) => Op::Linear(average(p, &input, s_out, bits)?),
            FloatOp::Affine { scale, shift } => {
                let factors: Vec<f64> = input.sources.iter().map(|s| self.factor(s)).collect();
                Op::Linear(affine(scale, shift, &input, &factors, weighted)?)
            }
            FloatOp::Add | FloatOp::Sub => {
                let sign = if matches!(node.op, FloatOp::Sub) { -1 } else { 1 };
                let other = &self.tensors[node.inputs[1]];
                Op::Linear(add(&input, other, sign, (s_out, bits, node.relu))?)
            }
            FloatOp::Mul => Op::Mul(mul(&input, &self.tensors[node.inputs[1]], s_out, bits, node.relu)?),
            &FloatOp::MatMul { rows, inner, columns } => {
                let other = &self.tensors[node.inputs[1]];
                Op::MatMul(matmul(&input, other, [rows, inner, columns], (s_out, bits, node.relu))?)
            }
            FloatOp::Activation(f) => {
                let table = table(*f, self.materialize(node.inputs[0]), input.scale, s_out);
                Op::Table(table)
            }
            &FloatOp::ArgMax {
                row_len,
                select_last_index,
            } => {
                // Indices: integers at scale 1.
                let op = ArgMax {
                    input: self.materialize(node.inputs[0]),
                    row_len,
                    select_last_index,
                };
                return Ok(self.emit(name, op_type, shape, 1.0, Op::ArgMax(op)));
            }
            FloatOp::Softmax { row_len, keep } => {
                // Probabilities at scale 1/127, whatever calibration saw.
                let op = softmax(self.materialize(node.inputs[0]), *row_len, keep, input.scale);
                let scale = 1.0 / PROBABILITY_ONE as f32;
                return Ok(self.emit(name, op_type, shape, scale, Op::Softmax(op)));
            }
            &FloatOp::LayerNorm { row_len, epsilon } => {
                let input_tensor = self.materialize(node.inputs[0]);
                Op::LayerNorm(layer_norm(
                    (input_tensor, tensor_bits(&self.layers, input_tensor)),
                    row_len,
                    epsilon,
                    input.scale,
                    (s_out, bits, node.relu),
                )?)
            }
            FloatOp::Move(map) => return Ok(self.moved(node, map, shape)),
            FloatOp::Embedding { width, table } => {
                // The table's own range sets the scale: every row is representable, used in calibration or not.
                let max = table.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
                let scale = super::scale_for(max);
                let op = embedding(&input.sources, *width, table, scale);
                return Ok(self.emit(name, op_type, shape, scale, Op::Embedding(op)));
            }
        };
        Ok(self.emit(name, op_type, shape, s_out, op))
    }

    /// The tensor of a data-movement node: its inputs' sources rearranged, after rescaling inputs to the largest
    /// input scale where they differ (Concat of tensors with different scales).
    fn moved(&mut self, node: &FloatNode, map: &[(usize, usize)], shape: Vec<usize>) -> QTensor {
        let scale = node.inputs.iter().map(|&t| self.tensors[t].scale).fold(0f32, f32::max);
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (j, &t) in node.inputs.iter().enumerate() {
            let mut q = self.tensors[t].clone();
            if q.scale != scale && self.mixes_scales(&q) {
                q = self.one_scale(t);
            }
            if q.scale == scale {
                inputs.push(q.sources);
                continue;
            }
            let m = q.scale as f64 / scale as f64;
            let name = format!("{}/rescale{j}", node.name);
            inputs.push(self.rescale(&name, &q, scale, |_| m).sources);
        }
        QTensor {
            sources: map.iter().map(|&(j, k)| inputs[j][k]).collect(),
            scale,
            shape,
            origin: (node.name.clone(), node.op_type.clone()),
        }
    }
}
