//! Lowering of each float node to layers of the quantized IR, with the scales calibration chose.
//!
//! Every float tensor is known as a list of int8 [`Source`]s with one scale. Layers that compute produce a new
//! quantized tensor; data movement only rearranges sources (no layer), so a Flatten before a Gemm costs nothing.
//! A `Gather` layer is emitted where a whole tensor is needed: the input of a table, and the model output.

use std::collections::HashMap;

use zkinfer_circuits::model::{
    Activation, Kernel, Layer, Linear, LinearGroup, MaxPool, Mul, Op, Source, Table, TensorId, ACT_BITS, ACT_MAX,
    ACT_MIN,
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
}

/// The layers of the quantized model for `float`, given the calibrated maximum of every float tensor. Weights get
/// `precision.weight_bits`; the last node's outputs get `precision.output_bits` when it lowers to a linear layer
/// without a fused ReLU (the model output is read by nothing else), int8 otherwise.
pub(super) fn lower(float: &FloatModel, maxima: &[f64], input_scale: f32, precision: Precision) -> Result<Vec<Layer>> {
    let input_len = float.input_len();
    let input = QTensor {
        sources: (0..input_len).map(|index| Source { tensor: 0, index }).collect(),
        scale: input_scale,
        shape: ir_shape(&float.input_shape),
        origin: ("input".into(), "Input".into()),
    };
    let mut l = Lowering {
        layers: vec![],
        input_len,
        tensors: vec![input],
        weight_max: ((1i64 << (precision.weight_bits - 1)) - 1) as f64,
    };
    let caps = clip_caps(float);
    let last = float.nodes.len().saturating_sub(1);
    for (i, node) in float.nodes.iter().enumerate() {
        let bits = if i == last && node.op.requantizes() && !node.relu {
            precision.output_bits
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
    let out = l.tensors[float.nodes.len()].clone();
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
    Ok(l.layers)
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

    /// Lowers `node` with output scale `s_out`; a linear layer's outputs get `bits` bits.
    fn node(&mut self, node: &FloatNode, s_out: f32, bits: u32) -> std::result::Result<QTensor, String> {
        let shape = ir_shape(&node.output_shape);
        let (name, op_type) = (node.name.as_str(), node.op_type.as_str());
        let input = self.tensors[node.inputs[0]].clone();
        let w_max = self.weight_max;
        let op = match &node.op {
            FloatOp::Dense(d) => Op::Linear(dense(d, &input, s_out, bits, node.relu, w_max)?),
            FloatOp::Conv(c) => Op::Linear(conv(c, &input, s_out, bits, node.relu, w_max)?),
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
            let q = self.tensors[t].clone();
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

fn dense(d: &Dense, x: &QTensor, s_out: f32, bits: u32, relu: bool, w_max: f64) -> std::result::Result<Linear, String> {
    let kernels = channel_kernels(&d.weights, &d.bias, x.scale, s_out, w_max, bits)?;
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

fn conv(c: &Conv, x: &QTensor, s_out: f32, bits: u32, relu: bool, w_max: f64) -> std::result::Result<Linear, String> {
    let kernels = channel_kernels(&c.weights, &c.bias, x.scale, s_out, w_max, bits)?;
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
