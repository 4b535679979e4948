//! Calibration and quantization: a [`FloatModel`] and sample inputs become an int8 [`QuantizedModel`].
//!
//! Scheme (DESIGN.md "Numbers"): every tensor gets a symmetric per-tensor scale `max|x| / 127` (`/ 32767` for
//! 16-bit model outputs, see [`Precision`]), the maximum taken
//! over the float activations of the calibration samples (after a fused ReLU), or 1 when that maximum is 0; a tensor
//! read only by `Clip` activations needs no range beyond the largest |bound| (Relu6 after a Conv: at most `6/127`).
//! Layers lower as follows (see `lower.rs` for the details):
//!
//! - Gemm/MatMul/Conv → `Op::Linear` with weights per output channel (`s_w[c] = max|W[c]| / w_max`,
//!   `w_max = 2^(weight_bits − 1) − 1`, 127 by default), the bias at the accumulator scale `s_in · s_w[c]`, and
//!   `(M, s)` from [`choose_multiplier`] for `m = s_in · s_w[c] / s_out`;
//! - average pools → `Op::Linear` with weights 1 and `m = s_in / (count · s_out)`;
//! - Add of two tensors → `Op::Linear` over `[a_i, b_i]` with integer weights `round(s / s_acc)` at the common
//!   accumulator scale `s_acc = max(s_a, s_b) / 2^12`, and `m = s_acc / s_out`;
//! - activations (and a ReLU that could not be fused) → `Op::Table`, the function tabulated on the 256 int8
//!   inputs: `values[q + 128] = clamp(round(f(q · s_in) / s_out), −128, 127)`;
//! - MaxPool → `Op::MaxPool` (the output keeps the input scale);
//! - data movement (Flatten, Reshape, Transpose, Concat) is folded into the sources of the layers that read it; a
//!   `Op::Gather` is emitted only where a whole tensor is needed (a table's input, or the model output).

mod lower;
pub mod search;

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zkinfer_circuits::arith::MAX_SHIFT;
use zkinfer_circuits::model::{
    InputQuantization, QuantizedModel, Source, ACT_BITS, MAX_OUTPUT_BITS, MODEL_FORMAT_VERSION,
};

use crate::error::{ProverError, Result};
use crate::graph::{FloatModel, FloatOp};

/// Widest weights [`Precision`] allows (the circuit's weight bound is 2^20).
const MAX_WEIGHT_BITS: u32 = 16;
/// The multiplier is taken at the smallest shift that gives it at least `out_bits + MULTIPLIER_EXTRA_BITS` bits:
/// rounding `M` then moves an output `|y| < 2^(out_bits−1)` by at most `|y| / 2M < 2^−6` of a unit.
const MULTIPLIER_EXTRA_BITS: u32 = 4;
/// Multipliers must stay below 2^32 (the circuit's bound).
const MULTIPLIER_LIMIT: f64 = (1u64 << 32) as f64;

fn qerr(reason: String) -> ProverError {
    ProverError::Quantization { reason }
}

/// The scale that maps `[-max, max]` onto `[-127, 127]`; 1 when the range is empty.
pub fn scale_for(max: f64) -> f32 {
    scale_for_bits(max, ACT_BITS)
}

/// The scale that maps `[-max, max]` onto `[−(2^(bits−1) − 1), 2^(bits−1) − 1]`; 1 when the range is empty.
pub fn scale_for_bits(max: f64, bits: u32) -> f32 {
    let s = (max / ((1i64 << (bits - 1)) - 1) as f64) as f32;
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// How the input's scales are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InputScales {
    /// One scale for the whole input tensor.
    PerTensor,
    /// One scale per channel: per feature of a `[1, F]` (or `[1, T, F]`) input, per colour channel of a
    /// `[1, C, H, W]` image. Features of different ranges (raw tabular data) each keep 8 bits.
    PerChannel,
}

/// How finely [`quantize_with`] represents a model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Precision {
    /// Bits of the weights of Gemm/MatMul/Conv layers (signed, symmetric per output channel), 2 to 16.
    pub weight_bits: u32,
    /// Bits of the model's outputs, 8 or 16, when its last layer is linear (Gemm/MatMul/Conv/average pool/Add)
    /// without a fused ReLU; int8 otherwise. Wider outputs only cost range-check rows for the last layer.
    pub output_bits: u32,
    /// Scales of the input: per channel or per tensor.
    pub input: InputScales,
    /// Bits of the activations between layers, 8 or 16: with 16, every linear layer's output that only linear
    /// layers read (Gemm/MatMul/Conv, through Flatten/Reshape/Transpose) is 16-bit; outputs read by tables, pools
    /// or products stay int8.
    pub activation_bits: u32,
    /// Float layers (node indices) whose outputs stay int8 although `activation_bits` is 16: the precision search's
    /// per-layer choice (16 bits only where a layer needs them).
    #[serde(default)]
    pub int8_layers: BTreeSet<usize>,
    /// Whether the range of each int8 activation (not the model output) is clipped to the one that minimises its
    /// quantization error on the calibration samples ([`clipped_ranges`]) instead of their largest |value|.
    #[serde(default)]
    pub clip_ranges: bool,
}

impl Default for Precision {
    /// int8 weights and outputs, input scales per channel.
    fn default() -> Self {
        Self {
            weight_bits: ACT_BITS,
            output_bits: ACT_BITS,
            input: InputScales::PerChannel,
            activation_bits: ACT_BITS,
            int8_layers: BTreeSet::new(),
            clip_ranges: false,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = match self.input {
            InputScales::PerTensor => "tensor",
            InputScales::PerChannel => "channel",
        };
        write!(
            f,
            "w{}/a{}/o{} input-scales {input}",
            self.weight_bits, self.activation_bits, self.output_bits
        )?;
        if self.activation_bits != ACT_BITS && !self.int8_layers.is_empty() {
            write!(f, " (int8 after layers {:?})", self.int8_layers)?;
        }
        if self.clip_ranges {
            write!(f, " clipped")?;
        }
        Ok(())
    }
}

impl Precision {
    /// Checks the widths; the message says what is allowed.
    pub fn check(&self) -> Result<()> {
        if !(2..=MAX_WEIGHT_BITS).contains(&self.weight_bits) {
            return Err(qerr(format!(
                "weight width {} bits is not supported; use 2 to {MAX_WEIGHT_BITS}",
                self.weight_bits
            )));
        }
        if ![ACT_BITS, MAX_OUTPUT_BITS].contains(&self.output_bits) {
            return Err(qerr(format!(
                "output width {} bits is not supported; use {ACT_BITS} or {MAX_OUTPUT_BITS}",
                self.output_bits
            )));
        }
        if ![ACT_BITS, MAX_OUTPUT_BITS].contains(&self.activation_bits) {
            return Err(qerr(format!(
                "activation width {} bits is not supported; use {ACT_BITS} or {MAX_OUTPUT_BITS}",
                self.activation_bits
            )));
        }
        Ok(())
    }
}

/// The largest |value| of every tensor of the float graph (input first), over the calibration samples.
pub fn calibrate(float: &FloatModel, calibration: &[Vec<f32>]) -> Result<Vec<f64>> {
    let max_abs = |v: &[f32]| v.iter().fold(0f64, |m, x| m.max(x.abs() as f64));
    let per_sample = calibration.par_iter().enumerate().map(|(i, x)| {
        if let Some(j) = x.iter().position(|v| !v.is_finite()) {
            return Err(qerr(format!("calibration sample {i} value {j} is not finite")));
        }
        let tensors = float.forward_all(x)?;
        Ok(tensors.iter().map(|t| max_abs(t)).collect::<Vec<f64>>())
    });
    let per_sample = per_sample.collect::<Result<Vec<_>>>()?;
    let mut maxima = vec![0f64; float.nodes.len() + 1];
    for sample in per_sample {
        maxima.iter_mut().zip(sample).for_each(|(m, v)| *m = m.max(v));
    }
    if let Some(t) = maxima.iter().position(|m| !m.is_finite()) {
        let what = if t == 0 {
            "the input".to_string()
        } else {
            format!("layer `{}`", float.nodes[t - 1].name)
        };
        return Err(qerr(format!(
            "{what} produces non-finite values on the calibration samples"
        )));
    }
    Ok(maxima)
}

/// The clipping factors [`clipped_ranges`] tries: 0.30, 0.32, …, 1.
const CLIP_FACTORS: std::ops::RangeInclusive<u32> = 15..=50;

/// For every tensor of the float graph (input first): the range `f · max` (`max` from [`calibrate`], `f` one of
/// 0.30, 0.32, …, 1) whose int8 quantization `clamp(round(x / s), −127, 127) · s`, `s = f · max / 127`, has the
/// smallest squared error over the calibration samples. A few large values then saturate instead of coarsening
/// every other value's step (the usual MSE calibration of post-training quantization).
pub fn clipped_ranges(float: &FloatModel, calibration: &[Vec<f32>], maxima: &[f64]) -> Result<Vec<f64>> {
    let factors: Vec<f64> = CLIP_FACTORS.map(|f| f as f64 / 50.0).collect();
    let errors_of = |x: &Vec<f32>| -> Result<Vec<Vec<f64>>> {
        let tensors = float.forward_all(x)?;
        Ok((tensors.iter().zip(maxima))
            .map(|(t, &max)| {
                (factors.iter())
                    .map(|&f| {
                        let s = f * max / 127.0;
                        if s <= 0.0 || !s.is_finite() {
                            return 0.0;
                        }
                        let error = |v: f64| (v / s).round().clamp(-127.0, 127.0) * s - v;
                        t.iter().map(|&v| error(v as f64).powi(2)).sum()
                    })
                    .collect()
            })
            .collect())
    };
    let per_sample = calibration.par_iter().map(errors_of).collect::<Result<Vec<_>>>()?;
    let mut totals = vec![vec![0f64; factors.len()]; maxima.len()];
    for sample in per_sample {
        for (total, errors) in totals.iter_mut().zip(sample) {
            total.iter_mut().zip(errors).for_each(|(t, e)| *t += e);
        }
    }
    Ok((totals.iter().zip(maxima))
        .map(|(errors, &max)| {
            // The smallest error, the widest range among equals.
            let best =
                (errors.iter().enumerate()).fold(factors.len() - 1, |b, (i, &e)| if e < errors[b] { i } else { b });
            factors[best] * max
        })
        .collect())
}

/// `(M, s)` for the real multiplier `m` of a layer with `out_bits`-bit outputs: the smallest shift `s ∈ [1, 48]`
/// with `M = round(m · 2^s) ≥ 2^(out_bits + 4)` (or `s = 48` when none reaches it; `M ≥ 1` always). The remainder
/// of the division by `2^s` is range-checked in `⌈s / L⌉` rows (`L`-bit limbs), so the smallest shift is the cheapest. Errors
/// when `m` is not a positive number or is so large that `M ≥ 2^32` already at `s = 1`.
pub fn choose_multiplier(m: f64, out_bits: u32) -> std::result::Result<(i64, u32), String> {
    if !(m.is_finite() && m > 0.0) {
        return Err(format!("requantization multiplier {m} is not a positive number"));
    }
    let min = f64::powi(2.0, (out_bits + MULTIPLIER_EXTRA_BITS) as i32);
    for s in 1..=MAX_SHIFT {
        let big = (m * f64::powi(2.0, s as i32)).round();
        if big >= MULTIPLIER_LIMIT {
            return Err(format!(
                "requantization multiplier {m} is too large (M = {big} ≥ 2^32 at shift {s})"
            ));
        }
        if big >= min {
            return Ok((big as i64, s));
        }
    }
    // Below 2^-36 the output rounds to 0 for every accumulator the circuit allows; keep M ≥ 1 anyway.
    let big = (m * f64::powi(2.0, MAX_SHIFT as i32)).round().max(1.0);
    Ok((big as i64, MAX_SHIFT))
}

/// Quantizes `float` to int8, calibrating activation ranges on the `calibration` inputs (flattened rows).
pub fn quantize(float: &FloatModel, calibration: &[Vec<f32>]) -> Result<QuantizedModel> {
    quantize_with(float, calibration, Precision::default())
}

/// [`quantize`] with int8 activations and the weight and output widths of `precision`.
pub fn quantize_with(float: &FloatModel, calibration: &[Vec<f32>], precision: Precision) -> Result<QuantizedModel> {
    Ok(quantize_traced(float, calibration, precision)?.0)
}

/// [`quantize_with`], also returning where each float tensor's elements live in the quantized model (the sources
/// of tensor `t`, input first): what [`crate::diagnostics`] compares layer by layer.
pub fn quantize_traced(
    float: &FloatModel,
    calibration: &[Vec<f32>],
    precision: Precision,
) -> Result<(QuantizedModel, Vec<Vec<Source>>)> {
    precision.check()?;
    float.check()?;
    if calibration.is_empty() {
        return Err(qerr(
            "no calibration samples; give a dataset with at least one input".into(),
        ));
    }
    let maxima = calibrate(float, calibration)?;
    let input = input_quantization(float, calibration, maxima[0], precision.input);
    let clipped = match precision.clip_ranges {
        true => Some(clipped_ranges(float, calibration, &maxima)?),
        false => None,
    };
    let (layers, sources) = lower::lower(float, &maxima, clipped.as_deref(), &input, &precision)?;
    let model = QuantizedModel {
        format_version: MODEL_FORMAT_VERSION,
        name: float.name.clone(),
        input_shape: float.input_shape.clone(),
        input,
        layers,
    };
    model.validate().map_err(|e| qerr(e.to_string()))?;
    Ok((model, sources))
}

/// The channels of an input of ONNX shape `shape` (batch included): `(count, stride)`. Images (`[1, C, H, W]`, three
/// or more dimensions after the batch) have channels on the first axis; other inputs (`[1, F]`, `[1, T, F]`) have
/// features on the last.
pub fn input_channels(shape: &[usize]) -> (usize, usize) {
    let dims = lower::ir_shape(shape);
    match dims.as_slice() {
        [c, rest @ ..] if rest.len() >= 2 => (*c, rest.iter().product()),
        [.., f] => (*f, 1),
        [] => (1, 1),
    }
}

/// The input's scales: per tensor (`input_max / 127`), or per channel from each channel's calibrated maximum; a
/// channel that is 0 on every calibration sample gets the tensor's scale (so whatever it holds later is still
/// representable at the tensor's resolution).
pub fn input_quantization(
    float: &FloatModel,
    calibration: &[Vec<f32>],
    input_max: f64,
    scales: InputScales,
) -> InputQuantization {
    if let Some(vocab) = float.token_vocab() {
        return InputQuantization::tokens(vocab);
    }
    let tensor_scale = scale_for(input_max);
    let (channels, stride) = input_channels(&float.input_shape);
    if scales == InputScales::PerTensor || channels <= 1 || stride == 0 || !input_read_by_linear_layers_only(float) {
        return InputQuantization::per_tensor(tensor_scale);
    }
    let mut maxima = vec![0f64; channels];
    for x in calibration {
        for (i, v) in x.iter().enumerate() {
            let c = (i / stride) % channels;
            maxima[c] = maxima[c].max(v.abs() as f64);
        }
    }
    let scales = maxima
        .iter()
        .map(|&m| if m > 0.0 { scale_for(m) } else { tensor_scale })
        .collect();
    InputQuantization {
        scales,
        stride,
        vocab: None,
    }
}

/// The float layers (node indices) whose outputs may be 16-bit: linear layers that only linear layers read, not the
/// model output.
pub fn wide_layers(float: &FloatModel) -> Vec<usize> {
    let wide = lower::tensors_that_may_be_16_bit(float);
    (0..float.nodes.len().saturating_sub(1))
        .filter(|&i| wide[i + 1])
        .collect()
}

/// Whether every layer that reads the input (directly or through data movement) is linear (Gemm/MatMul, Conv or an
/// affine node), so that its weights can absorb scales per input channel. Otherwise the input would need a rescaling
/// layer to one scale before anything else reads it, and per-channel scales gain little for that cost: the input is
/// then quantized per tensor.
fn input_read_by_linear_layers_only(float: &FloatModel) -> bool {
    let mut carries_input = vec![false; float.nodes.len() + 1];
    carries_input[0] = true;
    for (i, node) in float.nodes.iter().enumerate() {
        if !node.inputs.iter().any(|&t| carries_input[t]) {
            continue;
        }
        match node.op {
            FloatOp::Move(_) => carries_input[i + 1] = true,
            FloatOp::Dense(_) | FloatOp::Conv(_) | FloatOp::Affine { .. } => {}
            _ => return false,
        }
    }
    // The model output itself must not be input elements.
    !carries_input[float.nodes.len()]
}

/// Quantizes a float input with the model's input scales: `clamp(round(x_i / s_i), -128, 127)`; a token model's
/// input must hold integer ids of its vocabulary, taken as they are.
pub fn quantize_input(model: &QuantizedModel, x: &[f32]) -> Result<Vec<i64>> {
    if x.len() != model.input_len() {
        return Err(ProverError::WrongInputLength {
            expected: model.input_len(),
            found: x.len(),
        });
    }
    (model.input.check_floats(x)).map_err(|reason| ProverError::BadInput { reason })?;
    Ok(model.input.quantize(x))
}

/// Turns the integer outputs back into floats: `y · output_scale`.
pub fn dequantize_output(model: &QuantizedModel, y: &[i64]) -> Vec<f32> {
    let s = model.output_scale() as f64;
    y.iter().map(|&v| (v as f64 * s) as f32).collect()
}

#[cfg(test)]
pub(crate) mod tests;
