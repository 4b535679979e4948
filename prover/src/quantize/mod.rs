//! Calibration and quantization: a [`FloatModel`] and sample inputs become an int8 [`QuantizedModel`].
//!
//! Scheme (DESIGN.md "Numbers"): every tensor gets a symmetric per-tensor scale `max|x| / 127`, the maximum taken
//! over the float activations of the calibration samples (after a fused ReLU), or 1 when that maximum is 0; a tensor
//! read only by `Clip` activations needs no range beyond the largest |bound| (Relu6 after a Conv: at most `6/127`).
//! Layers lower as follows (see `lower.rs` for the details):
//!
//! - Gemm/MatMul/Conv → `Op::Linear` with int8 weights per output channel (`s_w[c] = max|W[c]| / 127`), the bias at
//!   the accumulator scale `s_in · s_w[c]`, and `(M, s)` from [`choose_multiplier`] for `m = s_in · s_w[c] / s_out`;
//! - average pools → `Op::Linear` with weights 1 and `m = s_in / (count · s_out)`;
//! - Add of two tensors → `Op::Linear` over `[a_i, b_i]` with integer weights `round(s / s_acc)` at the common
//!   accumulator scale `s_acc = max(s_a, s_b) / 2^12`, and `m = s_acc / s_out`;
//! - activations (and a ReLU that could not be fused) → `Op::Table`, the function tabulated on the 256 int8
//!   inputs: `values[q + 128] = clamp(round(f(q · s_in) / s_out), −128, 127)`;
//! - MaxPool → `Op::MaxPool` (the output keeps the input scale);
//! - data movement (Flatten, Reshape, Transpose, Concat) is folded into the sources of the layers that read it; a
//!   `Op::Gather` is emitted only where a whole tensor is needed (a table's input, or the model output).

mod lower;

use rayon::prelude::*;
use zkinfer_circuits::arith::MAX_SHIFT;
use zkinfer_circuits::model::{QuantizedModel, ACT_MAX, ACT_MIN, MODEL_FORMAT_VERSION};

use crate::error::{ProverError, Result};
use crate::graph::FloatModel;

/// Largest |int8| weight and activation used by the symmetric scales (-128 unused).
const Q_MAX: f64 = 127.0;
/// The multiplier is taken at the smallest shift that gives it at least this many bits of precision.
const MIN_MULTIPLIER: f64 = (1u64 << 15) as f64;
/// Multipliers must stay below 2^32 (the circuit's bound).
const MULTIPLIER_LIMIT: f64 = (1u64 << 32) as f64;

fn qerr(reason: String) -> ProverError {
    ProverError::Quantization { reason }
}

/// The scale that maps `[-max, max]` onto `[-127, 127]`; 1 when the range is empty.
pub fn scale_for(max: f64) -> f32 {
    let s = (max / Q_MAX) as f32;
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
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

/// `(M, s)` for the real multiplier `m`: the smallest shift `s ∈ {8, 16, …, 48}` with `M = round(m · 2^s) ≥ 2^15`
/// (or `s = 48` when none reaches it; `M ≥ 1` always). Errors when `m` is not a positive number or is so large
/// that `M ≥ 2^32` already at `s = 8`.
pub fn choose_multiplier(m: f64) -> std::result::Result<(i64, u32), String> {
    if !(m.is_finite() && m > 0.0) {
        return Err(format!("requantization multiplier {m} is not a positive number"));
    }
    for s in (8..=MAX_SHIFT).step_by(8) {
        let big = (m * f64::powi(2.0, s as i32)).round();
        if big >= MULTIPLIER_LIMIT {
            return Err(format!(
                "requantization multiplier {m} is too large (M = {big} ≥ 2^32 at shift {s})"
            ));
        }
        if big >= MIN_MULTIPLIER {
            return Ok((big as i64, s));
        }
    }
    // Below 2^-33 the output rounds to 0 for every accumulator the circuit allows; keep M ≥ 1 anyway.
    let big = (m * f64::powi(2.0, MAX_SHIFT as i32)).round().max(1.0);
    Ok((big as i64, MAX_SHIFT))
}

/// Quantizes `float` to int8, calibrating activation ranges on the `calibration` inputs (flattened rows).
pub fn quantize(float: &FloatModel, calibration: &[Vec<f32>]) -> Result<QuantizedModel> {
    float.check()?;
    if calibration.is_empty() {
        return Err(qerr(
            "no calibration samples; give a dataset with at least one input".into(),
        ));
    }
    let maxima = calibrate(float, calibration)?;
    let input_scale = scale_for(maxima[0]);
    let layers = lower::lower(float, &maxima, input_scale)?;
    let model = QuantizedModel {
        format_version: MODEL_FORMAT_VERSION,
        name: float.name.clone(),
        input_shape: float.input_shape.clone(),
        input_scale,
        layers,
    };
    model.validate().map_err(qerr)?;
    Ok(model)
}

/// Quantizes a float input: `clamp(round(x / input_scale), -128, 127)`.
pub fn quantize_input(model: &QuantizedModel, x: &[f32]) -> Result<Vec<i64>> {
    if x.len() != model.input_len() {
        return Err(ProverError::WrongInputLength {
            expected: model.input_len(),
            found: x.len(),
        });
    }
    let s = model.input_scale as f64;
    Ok(x.iter()
        .map(|&v| (v as f64 / s).round().clamp(ACT_MIN as f64, ACT_MAX as f64) as i64)
        .collect())
}

/// Turns int8 outputs back into floats: `y · output_scale`.
pub fn dequantize_output(model: &QuantizedModel, y: &[i64]) -> Vec<f32> {
    let s = model.output_scale() as f64;
    y.iter().map(|&v| (v as f64 * s) as f32).collect()
}

#[cfg(test)]
pub(crate) mod tests;
