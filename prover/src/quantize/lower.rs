//! Lowering of each float node to layers of the quantized IR, with the scales calibration chose.
//!
//! Every float tensor is known as a list of int8 [`Source`]s with one scale. Layers that compute produce a new
//! quantized tensor; data movement only rearranges sources (no layer), so a Flatten before a Gemm costs nothing.
//! A `Gather` layer is emitted where a whole tensor is needed: the input of a table, and the model output.

use std::collections::HashMap;

use zkinfer_circuits::model::{
    Activation, InputQuantization, Kernel, Layer, Linear, LinearGroup, MaxPool, Mul, Op, Source, Table, TensorId,
    ACT_BITS, ACT_MAX, ACT_MIN,
};

use super::{choose_multiplier, qerr, scale_for_bits, Precision};
use crate::error::Result;
use crate::graph::{ActFn, Conv, Dense, FloatModel, FloatNode, FloatOp, Pool, PoolKind};

/// A bias beyond this cannot be right: the accumulator bound of the circuit is 2^40.
const BIAS_LIMIT: f64 = (1u64 << 40) as f64;
/// Residual additions accumulate at `max(s_a, s_b) / 2^ADD_BITS`: integer weights up to `2^ADD_BITS`.
const ADD_BITS: i32 = 12;

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

/// The layers of the quantized model for `float`, given the calibrated maximum of every float tensor and the
/// input's scales, and where each float tensor's elements live in it. Weights get `precision.weight_bits`; the last node's outputs get `precision.output_bits` when it
/// lowers to a linear layer without a fused ReLU (the model output is read by nothing else), int8 otherwise.
pub(super) fn lower(
    float: &FloatModel,
    maxima: &[f64],
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
    let wide = linear_readers_only(float);
    let last = float.nodes.len().saturating_sub(1);
    for (i, node) in float.nodes.iter().enumerate() {
        let bits = if i == last && node.op.requantizes() && !node.relu {
            precision.output_bits
        } else if i != last && wide[i + 1] && !precision.int8_layers.contains(&i) {
            precision.activation_bits
        } else {
            ACT_BITS
        };
        let s_out = scale_for_bits(caps[i + 1].map_or(maxima[i + 1], |cap| maxima[i + 1].min(cap)), bits);
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
/// layer (not a product), and only Gemm/MatMul, Conv or affine nodes read it, directly or through single-input data
/// movement (Flatten, Reshape, Transpose), never the model output.
pub(super) fn linear_readers_only(float: &FloatModel) -> Vec<bool> {
    let n = float.nodes.len();
    // `ok[t]`: every reader of tensor t is linear (a single-input move counts through its own readers).
    let mut ok = vec![true; n + 1];
    ok[n] = false;
    for (i, node) in float.nodes.iter().enumerate().rev() {
        let reader_ok = match &node.op {
            FloatOp::Dense(_) | FloatOp::Conv(_) | FloatOp::Affine { .. } => true,
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
            let linear = producer.is_some_and(|op| op.requantizes() && !matches!(op, FloatOp::Mul));
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

/// Quantizes one output channel to integers in `[−w_max, w_max]` and their scale (`max|w| / w_max`, 1 for an
/// all-zero channel).
fn quantize_channel(w: &[f32], w_max: f64) -> (Vec<i64>, f64) {
    let max = w.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let s = match (max / w_max) as f32 {
        s if s.is_finite() && s > 0.0 => s as f64,
        _ => 1.0,
    };
    (
        w.iter()
            .map(|&v| (v as f64 / s).round().clamp(-w_max, w_max) as i64)
            .collect(),
        s,
    )
}

/// A kernel with the requantization of the real multiplier `m`.
fn kernel(weights: Vec<i64>, bias: i64, m: f64, out_bits: u32) -> std::result::Result<Kernel, String> {
    let (multiplier, shift) = choose_multiplier(m, out_bits)?;
    Ok(Kernel {
        weights,
        bias,
        multiplier,
        shift,
    })
}

/// Per-channel kernels for float weights `[channels][per]` and bias, at input scale `s_in` and output scale `s_out`,
/// with weights in `[−w_max, w_max]` and `out_bits`-bit outputs.
fn channel_kernels(
    weights: &[f32],
    bias: &[f32],
    s_in: f32,
    s_out: f32,
    w_max: f64,
    out_bits: u32,
) -> std::result::Result<Vec<Kernel>, String> {
    let per = weights.len() / bias.len().max(1);
    let rows = weights.chunks_exact(per.max(1)).zip(bias);
    let kernel_of = |(c, (row, &b)): (usize, (&[f32], &f32))| {
        if row.iter().any(|w| !w.is_finite()) || !b.is_finite() {
            return Err(format!("channel {c} has a non-finite parameter"));
        }
        let (w, s_w) = quantize_channel(row, w_max);
        let acc_scale = s_in as f64 * s_w;
        let b_q = (b as f64 / acc_scale).round();
        if b_q.abs() >= BIAS_LIMIT {
            return Err(format!(
                "channel {c}: bias {b} is {b_q:e} at the accumulator scale; the calibration inputs may not cover the \
                 model's input range"
            ));
        }
        kernel(w, b_q as i64, acc_scale / s_out as f64, out_bits).map_err(|e| format!("channel {c}: {e}"))
    };
    rows.enumerate().map(kernel_of).collect()
}

fn activation(relu: bool) -> Activation {
    if relu {
        Activation::Relu
    } else {
        Activation::Identity
    }
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
                let mut kernels: Vec<Kernel> = vec![];
                let mut index: HashMap<u64, usize> = HashMap::new();
                let mut groups = Vec::with_capacity(self.input_len);
                for (i, &m) in factors.iter().enumerate() {
                    let k = *index.entry(m.to_bits()).or_insert_with(|| {
                        kernels.push(kernel(vec![1], 0, m, ACT_BITS).expect("0 < m ≤ 1 always has a multiplier"));
                        kernels.len() - 1
                    });
                    groups.push(LinearGroup {
                        taps: vec![Some(Source { tensor: 0, index: i })],
                        outputs: vec![(i, k)],
                    });
                }
                let op = Op::Linear(Linear {
                    kernels,
                    groups,
                    activation: Activation::Identity,
                    output_bits: ACT_BITS,
                });
                let input = self.tensors[0].clone();
                self.emit("input/rescale", "Rescale", input.shape, input.scale, op);
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
        let w_max = self.weight_max;
        let mut input = self.tensors[node.inputs[0]].clone();
        if let FloatOp::Conv(c) = &node.op {
            if self.mixes_scales(&input) && conv_factors(c, &input, |s| self.factor(s)).is_none() {
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
                let factors: Vec<f64> = input.sources.iter().map(|s| self.factor(s)).collect();
                Op::Linear(dense(d, &input, &factors, s_out, bits, node.relu, w_max)?)
            }
            FloatOp::Conv(c) => {
                let factors = conv_factors(c, &input, |s| self.factor(s)).unwrap_or_default();
                Op::Linear(conv(c, &input, &factors, s_out, bits, node.relu, w_max)?)
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
                Op::Linear(affine(scale, shift, &input, &factors, s_out, bits, node.relu, w_max)?)
            }
            FloatOp::Add => Op::Linear(add(&input, &self.tensors[node.inputs[1]], s_out, bits, node.relu)?),
            FloatOp::Mul => Op::Mul(mul(&input, &self.tensors[node.inputs[1]], s_out, bits, node.relu)?),
            FloatOp::Activation(f) => {
                let table = table(*f, self.materialize(node.inputs[0]), input.scale, s_out);
                Op::Table(table)
            }
            FloatOp::Move(map) => return Ok(self.moved(node, map, shape)),
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
            // A 1-tap linear layer per element: y = x · s_in / scale (≤ 1, so the multiplier is in range).
            let groups = (q.sources.iter().enumerate())
                .map(|(i, s)| LinearGroup {
                    taps: vec![Some(*s)],
                    outputs: vec![(i, 0)],
                })
                .collect();
            let m = q.scale as f64 / scale as f64;
            let kernels = vec![kernel(vec![1], 0, m, ACT_BITS).expect("0 < m ≤ 1 always has a multiplier")];
            let op = Op::Linear(Linear {
                kernels,
                groups,
                activation: Activation::Identity,
                output_bits: ACT_BITS,
            });
            let name = format!("{}/rescale{j}", node.name);
            inputs.push(self.emit(&name, "Rescale", q.shape.clone(), scale, op).sources);
        }
        QTensor {
            sources: map.iter().map(|&(j, k)| inputs[j][k]).collect(),
            scale,
            shape,
            origin: (node.name.clone(), node.op_type.clone()),
        }
    }
}

/// `weights` (rows of `per` values) with column `j` multiplied by `factors[j % per]`: an input element's own
/// scale folded into the weights that read it (empty `factors`: unchanged).
fn fold_factors(weights: &[f32], factors: &[f64]) -> Vec<f32> {
    if factors.is_empty() || factors.iter().all(|&f| f == 1.0) {
        return weights.to_vec();
    }
    let per = factors.len();
    (weights.iter().enumerate())
        .map(|(i, &w)| (w as f64 * factors[i % per]) as f32)
        .collect()
}

/// For a convolution reading `x`: the factor of each weight of a kernel (`I·kh·kw`, channel-major), when every
/// element of an input channel shares one factor; `None` when a channel mixes factors.
fn conv_factors(c: &Conv, x: &QTensor, factor: impl Fn(&Source) -> f64) -> Option<Vec<f64>> {
    let plane = c.window.input_hw[0] * c.window.input_hw[1];
    let taps = c.window.kernel[0] * c.window.kernel[1];
    let channel: Vec<f64> = (0..c.in_channels)
        .map(|ci| {
            let sources = &x.sources[ci * plane..(ci + 1) * plane];
            let f = factor(&sources[0]);
            sources.iter().all(|s| factor(s) == f).then_some(f)
        })
        .collect::<Option<_>>()?;
    Some(if c.depthwise {
        // One kernel per channel: weight k of kernel o reads channel o; the factors go per kernel below.
        channel
    } else {
        channel.iter().flat_map(|&f| std::iter::repeat_n(f, taps)).collect()
    })
}

fn dense(
    d: &Dense,
    x: &QTensor,
    factors: &[f64],
    s_out: f32,
    bits: u32,
    relu: bool,
    w_max: f64,
) -> std::result::Result<Linear, String> {
    let weights = fold_factors(&d.weights, factors);
    let kernels = channel_kernels(&weights, &d.bias, x.scale, s_out, w_max, bits)?;
    let group = LinearGroup {
        taps: x.sources.iter().copied().map(Some).collect(),
        outputs: (0..d.out_features).map(|c| (c, c)).collect(),
    };
    Ok(Linear {
        kernels,
        groups: vec![group],
        activation: activation(relu),
        output_bits: bits,
    })
}

fn conv(
    c: &Conv,
    x: &QTensor,
    factors: &[f64],
    s_out: f32,
    bits: u32,
    relu: bool,
    w_max: f64,
) -> std::result::Result<Linear, String> {
    let weights = if c.depthwise && !factors.is_empty() {
        // Kernel o (all of its weights) reads channel o only.
        let per = c.weights_per_channel();
        let per_weight: Vec<f64> = factors.iter().flat_map(|&f| std::iter::repeat_n(f, per)).collect();
        fold_factors(&c.weights, &per_weight)
    } else {
        fold_factors(&c.weights, factors)
    };
    let kernels = channel_kernels(&weights, &c.bias, x.scale, s_out, w_max, bits)?;
    let [h, w] = c.window.input_hw;
    let [oh, ow] = c.window.output_hw();
    let plane = oh * ow;
    let tap = |ci: usize, t: Option<(usize, usize)>| t.map(|(y, xx)| x.sources[ci * h * w + y * w + xx]);
    let mut groups = Vec::with_capacity(if c.depthwise { plane * c.out_channels } else { plane });
    for p in 0..plane {
        let (oy, ox) = (p / ow, p % ow);
        if c.depthwise {
            for ch in 0..c.out_channels {
                groups.push(LinearGroup {
                    taps: c.window.taps(oy, ox).map(|t| tap(ch, t)).collect(),
                    outputs: vec![(ch * plane + p, ch)],
                });
            }
        } else {
            let taps = (0..c.in_channels).flat_map(|ci| c.window.taps(oy, ox).map(move |t| tap(ci, t)));
            groups.push(LinearGroup {
                taps: taps.collect(),
                outputs: (0..c.out_channels).map(|ch| (ch * plane + p, ch)).collect(),
            });
        }
    }
    Ok(Linear {
        kernels,
        groups,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// `y_i = a_i · x_i + b_i`: a one-tap linear layer per element, one kernel per distinct `(a_i · factor_i, b_i)`
/// (a per-channel normalisation of an image has one per channel).
#[allow(clippy::too_many_arguments)]
fn affine(
    scale: &[f32],
    shift: &[f32],
    x: &QTensor,
    factors: &[f64],
    s_out: f32,
    bits: u32,
    relu: bool,
    w_max: f64,
) -> std::result::Result<Linear, String> {
    let mut kernels = vec![];
    let mut index: HashMap<(u32, u32), usize> = HashMap::new();
    let mut groups = Vec::with_capacity(x.sources.len());
    for (i, source) in x.sources.iter().enumerate() {
        let a = (scale[i] as f64 * factors[i]) as f32;
        let k = match index.get(&(a.to_bits(), shift[i].to_bits())) {
            Some(&k) => k,
            None => {
                let mut kernel = channel_kernels(&[a], &[shift[i]], x.scale, s_out, w_max, bits)
                    .map_err(|e| format!("element {i}: {e}"))?;
                kernels.append(&mut kernel);
                index.insert((a.to_bits(), shift[i].to_bits()), kernels.len() - 1);
                kernels.len() - 1
            }
        };
        groups.push(LinearGroup {
            taps: vec![Some(*source)],
            outputs: vec![(i, k)],
        });
    }
    Ok(Linear {
        kernels,
        groups,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// The window of every output of a pool, channel-major, padding as `None`.
fn windows(p: &Pool, x: &QTensor) -> Vec<Vec<Option<Source>>> {
    let [h, w] = p.window.input_hw;
    let [oh, ow] = p.window.output_hw();
    let mut out = Vec::with_capacity(p.channels * oh * ow);
    for c in 0..p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let taps = p
                    .window
                    .taps(oy, ox)
                    .map(|t| t.map(|(y, xx)| x.sources[c * h * w + y * w + xx]));
                out.push(taps.collect());
            }
        }
    }
    out
}

/// An average pool: weights 1 over the valid taps, one kernel per (count, divisor), `m = s_in / (divisor · s_out)`.
fn average(p: &Pool, x: &QTensor, s_out: f32, bits: u32) -> std::result::Result<Linear, String> {
    let PoolKind::Average { count_include_pad } = p.kind else {
        unreachable!("max pools lower to MaxPool")
    };
    let area = p.window.kernel[0] * p.window.kernel[1];
    let mut kernels = vec![];
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut groups = vec![];
    for (o, window) in windows(p, x).into_iter().enumerate() {
        let taps: Vec<Option<Source>> = window.into_iter().filter(Option::is_some).collect();
        let n = taps.len();
        let k = match index.get(&n) {
            Some(&k) => k,
            None => {
                let divisor = if count_include_pad { area } else { n };
                kernels.push(kernel(
                    vec![1; n],
                    0,
                    x.scale as f64 / (divisor as f64 * s_out as f64),
                    bits,
                )?);
                index.insert(n, kernels.len() - 1);
                kernels.len() - 1
            }
        };
        groups.push(LinearGroup {
            taps,
            outputs: vec![(o, k)],
        });
    }
    Ok(Linear {
        kernels,
        groups,
        activation: Activation::Identity,
        output_bits: bits,
    })
}

/// `a + b` at the accumulator scale `max(s_a, s_b) / 2^12`: integer weights `round(s / s_acc)`, bias 0.
fn add(a: &QTensor, b: &QTensor, s_out: f32, bits: u32, relu: bool) -> std::result::Result<Linear, String> {
    let s_acc = a.scale.max(b.scale) as f64 / f64::powi(2.0, ADD_BITS);
    let weight = |s: f32| (s as f64 / s_acc).round() as i64;
    let kernels = vec![kernel(
        vec![weight(a.scale), weight(b.scale)],
        0,
        s_acc / s_out as f64,
        bits,
    )?];
    let groups = (a.sources.iter().zip(&b.sources).enumerate())
        .map(|(i, (sa, sb))| LinearGroup {
            taps: vec![Some(*sa), Some(*sb)],
            outputs: vec![(i, 0)],
        })
        .collect();
    Ok(Linear {
        kernels,
        groups,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// `a · b`, the int8 product requantized by `s_a · s_b / s_out`.
fn mul(a: &QTensor, b: &QTensor, s_out: f32, bits: u32, relu: bool) -> std::result::Result<Mul, String> {
    let (multiplier, shift) = choose_multiplier(a.scale as f64 * b.scale as f64 / s_out as f64, bits)?;
    Ok(Mul {
        operands: a.sources.iter().zip(&b.sources).map(|(&x, &y)| [x, y]).collect(),
        multiplier,
        shift,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// `f` tabulated on the int8 inputs: `values[q + 128] = clamp(round(f(q · s_in) / s_out), −128, 127)`.
fn table(f: ActFn, input: TensorId, s_in: f32, s_out: f32) -> Table {
    let values = (ACT_MIN..=ACT_MAX)
        .map(|q| {
            let y = f.eval(q as f64 * s_in as f64) / s_out as f64;
            y.round().clamp(ACT_MIN as f64, ACT_MAX as f64) as i8
        })
        .collect();
    Table {
        input,
        function: f.name().into(),
        values,
    }
}
