//! The per-operator lowerings: each float op with its calibrated scales becomes the weights, kernels and groups of
//! one IR op (`lower.rs` drives them and keeps track of where every float tensor lives).

use std::collections::HashMap;

use zkinfer_circuits::arith::MAX_SHIFT;
use zkinfer_circuits::model::{
    Activation, Embedding, Kernel, LayerNorm, Linear, LinearGroup, MatMul, Mul, Softmax, Source, Table, TensorId,
    ACT_BITS, ACT_MAX, ACT_MIN, EXP_TABLE_LEN, MAX_NORM_EPSILON, MAX_NORM_PRODUCT_BITS, MAX_NORM_ROW,
    MAX_NORM_VARIANCE, MAX_OUTPUT_BITS, MAX_ROOT_SHIFT, MAX_WEIGHT,
};

use super::super::choose_multiplier;
use super::{QTensor, ADD_BITS, ADD_FINE_BITS, BIAS_LIMIT};
use crate::graph::{ActFn, Conv, Dense, Pool, PoolKind};

/// Quantizes one output channel to integers in `[−w_max, w_max]` and their scale (`max|w| / w_max`, 1 for an
/// all-zero channel).
pub(super) fn quantize_channel(w: &[f32], w_max: f64) -> (Vec<i64>, f64) {
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
pub(super) fn kernel(weights: Vec<i64>, bias: i64, m: f64, out_bits: u32) -> std::result::Result<Kernel, String> {
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
pub(super) fn channel_kernels(
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

/// What a lowering with float weights (Gemm, Conv, affine) produces: outputs at `scale` with `bits` bits and a
/// fused ReLU, from weights quantized into `[−w_max, w_max]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct WeightedOutput {
    /// Output scale.
    pub scale: f32,
    /// Output bits.
    pub bits: u32,
    /// Whether a ReLU is fused.
    pub relu: bool,
    /// Largest weight magnitude.
    pub w_max: f64,
}

impl WeightedOutput {
    /// Per-channel kernels for float weights `[channels][per]` and bias read at input scale `s_in`.
    fn kernels(&self, weights: &[f32], bias: &[f32], s_in: f32) -> std::result::Result<Vec<Kernel>, String> {
        channel_kernels(weights, bias, s_in, self.scale, self.w_max, self.bits)
    }

    /// The linear layer of these kernels and groups.
    fn layer(&self, kernels: Vec<Kernel>, groups: Vec<LinearGroup>) -> Linear {
        Linear {
            kernels,
            groups,
            activation: activation(self.relu),
            output_bits: self.bits,
        }
    }
}

pub(super) fn activation(relu: bool) -> Activation {
    if relu {
        Activation::Relu
    } else {
        Activation::Identity
    }
}

/// `weights` (rows of `per` values) with column `j` multiplied by `factors[j % per]`: an input element's own
/// scale folded into the weights that read it (empty `factors`: unchanged).
pub(super) fn fold_factors(weights: &[f32], factors: &[f64]) -> Vec<f32> {
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
pub(super) fn conv_factors(c: &Conv, x: &QTensor, factor: impl Fn(&Source) -> f64) -> Option<Vec<f64>> {
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

/// For a dense layer reading `x`: the factor of each of its `in_features` inputs, when every position has the
/// same ones (always, with one position); `None` when a feature's factor changes from one position to another.
pub(super) fn dense_factors(d: &Dense, x: &QTensor, factor: impl Fn(&Source) -> f64) -> Option<Vec<f64>> {
    let all: Vec<f64> = x.sources.iter().map(factor).collect();
    let first = all.get(..d.in_features)?;
    all.chunks_exact(d.in_features.max(1))
        .all(|row| row == first)
        .then(|| first.to_vec())
}

/// A dense layer: one group per position (its row of `x`), every group with the same kernels, so that a layer
/// applied to every token of a sequence is a matrix product (Freivalds-checkable with `P` = positions).
pub(super) fn dense(
    d: &Dense,
    x: &QTensor,
    factors: &[f64],
    out: WeightedOutput,
) -> std::result::Result<Linear, String> {
    let kernels = out.kernels(&fold_factors(&d.weights, factors), &d.bias, x.scale)?;
    let per = d.in_features.max(1);
    let groups = (x.sources.chunks_exact(per).enumerate())
        .map(|(p, row)| LinearGroup {
            taps: row.iter().copied().map(Some).collect(),
            outputs: (0..d.out_features).map(|c| (p * d.out_features + c, c)).collect(),
        })
        .collect();
    Ok(out.layer(kernels, groups))
}

pub(super) fn conv(c: &Conv, x: &QTensor, factors: &[f64], out: WeightedOutput) -> std::result::Result<Linear, String> {
    let weights = if c.depthwise && !factors.is_empty() {
        // Kernel o (all of its weights) reads channel o only.
        let per = c.weights_per_channel();
        let per_weight: Vec<f64> = factors.iter().flat_map(|&f| std::iter::repeat_n(f, per)).collect();
        fold_factors(&c.weights, &per_weight)
    } else {
        fold_factors(&c.weights, factors)
    };
    let kernels = out.kernels(&weights, &c.bias, x.scale)?;
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
    Ok(out.layer(kernels, groups))
}

/// `y_i = a_i · x_i + b_i`: a one-tap linear layer per element, one kernel per distinct `(a_i · factor_i, b_i)`
/// (a per-channel normalisation of an image has one per channel).
pub(super) fn affine(
    scale: &[f32],
    shift: &[f32],
    x: &QTensor,
    factors: &[f64],
    out: WeightedOutput,
) -> std::result::Result<Linear, String> {
    let mut kernels = vec![];
    let mut index: HashMap<(u32, u32), usize> = HashMap::new();
    let mut groups = Vec::with_capacity(x.sources.len());
    for (i, source) in x.sources.iter().enumerate() {
        let a = (scale[i] as f64 * factors[i]) as f32;
        let k = match index.get(&(a.to_bits(), shift[i].to_bits())) {
            Some(&k) => k,
            None => {
                let mut kernel = out
                    .kernels(&[a], &[shift[i]], x.scale)
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
    Ok(out.layer(kernels, groups))
}

/// The window of every output of a pool, channel-major, padding as `None`.
pub(super) fn windows(p: &Pool, x: &QTensor) -> Vec<Vec<Option<Source>>> {
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
pub(super) fn average(p: &Pool, x: &QTensor, s_out: f32, bits: u32) -> std::result::Result<Linear, String> {
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

/// `a + sign · b` (`sign` 1 for Add, −1 for Sub): a two-tap linear layer with integer weights `round(s / s_acc)`
/// at the common accumulator scale `s_acc` that `ADD_BITS` describes, bias 0.
pub(super) fn add(
    a: &QTensor,
    b: &QTensor,
    sign: i64,
    (s_out, bits, relu): (f32, u32, bool),
) -> std::result::Result<Linear, String> {
    let (coarse, fine) = (a.scale.max(b.scale) as f64, a.scale.min(b.scale) as f64);
    let s_acc = (coarse / f64::powi(2.0, ADD_BITS))
        .min(fine / f64::powi(2.0, ADD_FINE_BITS))
        .max(coarse / MAX_WEIGHT as f64);
    let weight = |s: f32| (s as f64 / s_acc).round() as i64;
    let kernels = vec![kernel(
        vec![weight(a.scale), sign * weight(b.scale)],
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
pub(super) fn mul(a: &QTensor, b: &QTensor, s_out: f32, bits: u32, relu: bool) -> std::result::Result<Mul, String> {
    let (multiplier, shift) = choose_multiplier(a.scale as f64 * b.scale as f64 / s_out as f64, bits)?;
    Ok(Mul {
        operands: a.sources.iter().zip(&b.sources).map(|(&x, &y)| [x, y]).collect(),
        multiplier,
        shift,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// The matrix products `a · b` (`m × n` by `n × p` matrices, as many of each), requantized by `s_a · s_b / s_out`.
pub(super) fn matmul(
    a: &QTensor,
    b: &QTensor,
    [rows, inner, columns]: [usize; 3],
    (s_out, bits, relu): (f32, u32, bool),
) -> std::result::Result<MatMul, String> {
    let (multiplier, shift) = choose_multiplier(a.scale as f64 * b.scale as f64 / s_out as f64, bits)?;
    Ok(MatMul {
        rows,
        inner,
        columns,
        lhs: a.sources.clone(),
        rhs: b.sources.clone(),
        multiplier,
        shift,
        activation: activation(relu),
        output_bits: bits,
    })
}

/// Bits of the softmax exponentials: `exp[255] = 2^14` (the row maximum's own term).
pub(super) const SOFTMAX_EXP_BITS: i32 = 14;

/// Softmax over rows of `row_len` elements of tensor `input` (at scale `s_in`), masked where `keep` says: the
/// exponential table `round(2^14 · e^(s_in · d))` for every difference `d ∈ [−255, 0]` to the row maximum.
pub(super) fn softmax(input: TensorId, row_len: usize, keep: &[bool], s_in: f32) -> Softmax {
    let one = f64::powi(2.0, SOFTMAX_EXP_BITS);
    let exp = (-(EXP_TABLE_LEN as i64) + 1..=0)
        .map(|d| (one * (s_in as f64 * d as f64).exp()).round() as i64)
        .collect();
    Softmax {
        input,
        row_len,
        keep: keep.to_vec(),
        exp,
    }
}

/// Widest inverse square root a lowering gives a layer normalization.
const NORM_ROOT_BITS: u32 = 32;
/// Bits of `|c·q|` a lowering allows beyond the input's width: 2^40 for int8 rows, 2^48 (the most validation takes)
/// for 16-bit ones.
const NORM_PRODUCT_BITS_OVER_INPUT: u32 = 32;
/// Bits every inverse square root keeps at the largest variance a row can have.
const NORM_ROOT_PRECISION: u32 = 12;
/// The requantization of a layer normalization keeps `M ≥ 2^(bits + NORM_MULTIPLIER_BITS)` (as
/// [`choose_multiplier`] does for every layer).
const NORM_MULTIPLIER_BITS: u32 = 4;

/// Whether a layer norm over rows of `row_len` elements may read 16-bit inputs: every row's variance sum stays
/// below [`MAX_NORM_VARIANCE`] and its root keeps [`NORM_ROOT_PRECISION`] bits within `|c·q| < 2^48` (BERT's 768
/// features do, 4,096 do not).
pub(in crate::quantize) fn norm_reads_16_bit(row_len: usize) -> bool {
    let centred_bits = 64 - LayerNorm::centred_bound_of(row_len, MAX_OUTPUT_BITS).leading_zeros();
    (1..=MAX_NORM_ROW).contains(&row_len)
        && LayerNorm::variance_bound_of(row_len, MAX_OUTPUT_BITS, 1) < MAX_NORM_VARIANCE
        && centred_bits + NORM_ROOT_PRECISION <= MAX_NORM_PRODUCT_BITS
}

/// Layer normalization of rows of `row_len` elements of tensor `input` (`input_bits`-bit values at scale `s_in`)
/// into `bits`-bit outputs at `s_out`: `E = round(ε·n³ / s_in²)` (at least 1, and at least what keeps 12 bits in
/// every root); the root as wide as `|c·q| < 2^(32 + input bits)` allows (at most 32 bits); `F` the largest that
/// keeps the root at `V = E` within that width and the multiplier `√n / (2^F · s_out)` large enough for a shift of
/// at most 48; then `M, s` for that multiplier.
pub(super) fn layer_norm(
    (input, input_bits): (TensorId, u32),
    row_len: usize,
    epsilon: f32,
    s_in: f32,
    (s_out, bits, relu): (f32, u32, bool),
) -> Result<LayerNorm, String> {
    if !(1..=MAX_NORM_ROW).contains(&row_len) || (input_bits != ACT_BITS && !norm_reads_16_bit(row_len)) {
        return Err(format!(
            "rows of {row_len} {input_bits}-bit elements: a layer norm takes 1 to {MAX_NORM_ROW} int8 elements, \
             or rows whose variance fits 2^62 of 16-bit ones"
        ));
    }
    let n = row_len as f64;
    let e = (epsilon as f64 * n.powi(3) / (s_in as f64).powi(2)).round();
    if e.is_nan() || e > MAX_NORM_EPSILON as f64 {
        return Err(format!(
            "ε = {epsilon} is too large for the input's scale {s_in} (ε·n³/s² = {e:e} beyond 2^52)"
        ));
    }
    let mut norm = LayerNorm {
        input,
        input_bits,
        row_len,
        epsilon: e.clamp(1.0, MAX_NORM_EPSILON as f64) as i64,
        root_shift: 0,
        root_bits: 0,
        multiplier: 1,
        shift: 1,
        activation: activation(relu),
        output_bits: bits,
    };
    let centred_bits = 64 - norm.centred_bound().leading_zeros();
    // |c·q| below 2^40 for int8 rows (a wider root than that buys them nothing and costs range rows), 2^48 for
    // 16-bit ones.
    let product_bits = (NORM_PRODUCT_BITS_OVER_INPUT + input_bits).min(MAX_NORM_PRODUCT_BITS);
    norm.root_bits = product_bits
        .checked_sub(centred_bits)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("rows of {row_len} elements are too long to normalize"))?
        .min(NORM_ROOT_BITS);
    // Every root keeps NORM_ROOT_PRECISION bits even at the largest variance a row can have, so F is at least
    // that plus ⌈log2 √(n · c_max²)⌉; where the root at V = E would then not fit in B bits (a tiny ε, BERT's 1e-12
    // say, makes E = 1), E is raised until it does: an ε floor that only rows whose variance lies
    // ~2^(2(F − B)) below the largest possible notice.
    let variance_bits = (n * (norm.centred_bound() as f64).powi(2)).sqrt().log2().ceil() as u32;
    let f_min = (NORM_ROOT_PRECISION + variance_bits).min(MAX_ROOT_SHIFT);
    if f_min > norm.root_bits {
        let floor = (1i64 << (2 * (f_min - norm.root_bits)).min(52)) + 1;
        norm.epsilon = norm.epsilon.max(floor.min(MAX_NORM_EPSILON));
    }
    // The largest F whose root at V = E fits in B bits …
    let mut f = 0;
    while f < MAX_ROOT_SHIFT {
        norm.root_shift = f + 1;
        if norm.root_of(norm.epsilon) >= 1i64 << norm.root_bits {
            break;
        }
        f += 1;
    }
    // … and whose multiplier keeps M ≥ 2^(bits + 4) at a shift of at most 48.
    let headroom = (n.sqrt() / s_out as f64).log2() + (MAX_SHIFT - bits - NORM_MULTIPLIER_BITS) as f64;
    if !headroom.is_finite() {
        return Err(format!("output scale {s_out} cannot hold normalized values"));
    }
    norm.root_shift = f.min(headroom.floor().max(0.0) as u32);
    let m = n.sqrt() / (f64::powi(2.0, norm.root_shift as i32) * s_out as f64);
    (norm.multiplier, norm.shift) = choose_multiplier(m, bits)?;
    Ok(norm)
}

/// `f` tabulated on the int8 inputs: `values[q + 128] = clamp(round(f(q · s_in) / s_out), −128, 127)`.
pub(super) fn table(f: ActFn, input: TensorId, s_in: f32, s_out: f32) -> Table {
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

/// An embedding table quantized at `scale`: `round(E / scale)` clamped to int8, looked up by the token ids `ids`.
pub(super) fn embedding(ids: &[Source], width: usize, table: &[f32], scale: f32) -> Embedding {
    let table = (table.iter())
        .map(|&v| (v as f64 / scale as f64).round().clamp(ACT_MIN as f64, ACT_MAX as f64) as i8)
        .collect();
    Embedding {
        ids: ids.to_vec(),
        width,
        table,
    }
}
