//! Calibration and quantization: a [`FloatModel`] and sample inputs become an int8 [`QuantizedModel`].
//!
//! Scheme (DESIGN.md "Numbers"): the input scale is `max|x| / 127` over the calibration samples; weights are
//! symmetric per output channel, `s_w[c] = max|W[c,:]| / 127`; the bias sits at the accumulator scale
//! `s_in · s_w[c]`; each layer's output scale is `max|y| / 127` over the float activations of the calibration
//! samples (after ReLU when one is fused), and is the next layer's input scale. The real multiplier
//! `m = s_in · s_w[c] / s_out` becomes the integer pair `(M, s)` with `M = round(m · 2^s)`.

use rayon::prelude::*;
use zkinfer_circuits::arith::MAX_SHIFT;
use zkinfer_circuits::model::{Activation, DenseLayer, QuantizedModel, ACT_MAX, ACT_MIN, MODEL_FORMAT_VERSION};

use crate::error::{ProverError, Result};
use crate::import::FloatModel;

/// Largest |int8| weight (symmetric range, -128 unused).
const W_MAX: f64 = 127.0;
/// The multiplier is taken at the smallest shift that gives it at least this many bits of precision.
const MIN_MULTIPLIER: f64 = (1u64 << 15) as f64;
/// Multipliers must stay below 2^32 (the circuit's bound).
const MULTIPLIER_LIMIT: f64 = (1u64 << 32) as f64;
/// A bias beyond this cannot be right: the accumulator bound of the circuit is 2^40.
const BIAS_LIMIT: f64 = (1u64 << 40) as f64;

fn qerr(reason: String) -> ProverError {
    ProverError::Quantization { reason }
}

/// The scale that maps `[-max, max]` onto `[-127, 127]`; 1 when the range is empty.
fn scale_for(max: f64) -> f32 {
    let s = (max / W_MAX) as f32;
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// The largest |value| of the input and of every layer's output, over the calibration samples.
fn calibrate(float: &FloatModel, calibration: &[Vec<f32>]) -> Result<(f64, Vec<f64>)> {
    let max_abs = |v: &[f32]| v.iter().fold(0f64, |m, x| m.max(x.abs() as f64));
    let per_sample = calibration
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            if let Some(j) = x.iter().position(|v| !v.is_finite()) {
                return Err(qerr(format!("calibration sample {i} value {j} is not finite")));
            }
            let outs = float.forward_layers(x)?;
            Ok((max_abs(x), outs.iter().map(|o| max_abs(o)).collect::<Vec<f64>>()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut layer_max = vec![0f64; float.layers.len()];
    let mut input_max = 0f64;
    for (x_max, outs) in per_sample {
        input_max = input_max.max(x_max);
        layer_max.iter_mut().zip(outs).for_each(|(m, o)| *m = m.max(o));
    }
    Ok((input_max, layer_max))
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

/// Quantizes `float` to int8, calibrating activation ranges on the `calibration` inputs.
pub fn quantize(float: &FloatModel, calibration: &[Vec<f32>]) -> Result<QuantizedModel> {
    float.check()?;
    if calibration.is_empty() {
        return Err(qerr(
            "no calibration samples; give a dataset with at least one input".into(),
        ));
    }
    let (input_max, layer_max) = calibrate(float, calibration)?;
    let input_scale = scale_for(input_max);
    let mut s_in = input_scale as f64;
    let mut layers = Vec::with_capacity(float.layers.len());
    for (fl, out_max) in float.layers.iter().zip(layer_max) {
        let output_scale = scale_for(out_max);
        let s_out = output_scale as f64;
        let (n_in, n_out) = (fl.in_features, fl.out_features);
        let mut weights = Vec::with_capacity(n_in * n_out);
        let (mut bias, mut multiplier, mut shift, mut weight_scales) = (vec![], vec![], vec![], vec![]);
        for c in 0..n_out {
            let row = &fl.weights[c * n_in..(c + 1) * n_in];
            if row.iter().any(|w| !w.is_finite()) || !fl.bias[c].is_finite() {
                return Err(qerr(format!(
                    "layer `{}` channel {c} has a non-finite parameter",
                    fl.name
                )));
            }
            let s_w = scale_for(row.iter().fold(0f64, |m, w| m.max(w.abs() as f64)));
            let sw = s_w as f64;
            weights.extend(row.iter().map(|&w| (w as f64 / sw).round().clamp(-W_MAX, W_MAX) as i8));
            let b = (fl.bias[c] as f64 / (s_in * sw)).round();
            if b.abs() >= BIAS_LIMIT {
                return Err(qerr(format!(
                    "layer `{}` channel {c}: bias {} is {b:e} at the accumulator scale; the calibration inputs may \
                     not cover the model's input range",
                    fl.name, fl.bias[c]
                )));
            }
            let (m, s) = choose_multiplier(s_in * sw / s_out)
                .map_err(|e| qerr(format!("layer `{}` channel {c}: {e}", fl.name)))?;
            bias.push(b as i64);
            multiplier.push(m);
            shift.push(s);
            weight_scales.push(s_w);
        }
        layers.push(DenseLayer {
            name: fl.name.clone(),
            in_features: n_in,
            out_features: n_out,
            weights,
            bias,
            multiplier,
            shift,
            activation: if fl.relu {
                Activation::Relu
            } else {
                Activation::Identity
            },
            weight_scales,
            output_scale,
        });
        s_in = s_out;
    }
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
pub(crate) mod tests {
    use super::*;
    use crate::import::FloatDense;
    use crate::infer::infer;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random 3-layer MLP (16 → 12 → 8 → 4, ReLU on the hidden layers) and 64 random inputs.
    pub(crate) fn random_model(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dims = [16usize, 12, 8, 4];
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| FloatDense {
                name: format!("fc{i}"),
                in_features: d[0],
                out_features: d[1],
                weights: (0..d[0] * d[1]).map(|_| rng.gen_range(-0.5..0.5)).collect(),
                bias: (0..d[1]).map(|_| rng.gen_range(-0.2..0.2)).collect(),
                relu: i < 2,
            })
            .collect();
        let model = FloatModel {
            name: "random".into(),
            input_shape: vec![1, 16],
            layers,
        };
        let inputs = (0..64)
            .map(|_| (0..16).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        (model, inputs)
    }

    #[test]
    fn multiplier_has_at_least_15_bits_at_the_smallest_shift() {
        assert_eq!(choose_multiplier(0.5), Ok((1 << 15, 16)));
        assert_eq!(choose_multiplier(200.0), Ok((51_200, 8)));
        let (m, s) = choose_multiplier(0.003).unwrap();
        assert_eq!(s, 24);
        assert_eq!(m, (0.003f64 * (1u64 << 24) as f64).round() as i64);
        assert_eq!(choose_multiplier(1e-30), Ok((1, 48)));
        assert!(choose_multiplier(1e8).is_err());
        assert!(choose_multiplier(0.0).is_err());
        assert!(choose_multiplier(f64::NAN).is_err());
    }

    #[test]
    fn quantized_model_follows_the_scheme() {
        let (float, calib) = random_model(1);
        let q = quantize(&float, &calib).unwrap();
        assert_eq!(q.format_version, MODEL_FORMAT_VERSION);
        assert_eq!(q.layers.len(), 3);
        assert_eq!(q.layers[0].activation, Activation::Relu);
        assert_eq!(q.layers[2].activation, Activation::Identity);
        let in_max = calib.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        assert!((q.input_scale - in_max / 127.0).abs() < 1e-7);
        for (fl, l) in float.layers.iter().zip(&q.layers) {
            for c in 0..l.out_features {
                let row = &l.weights[c * l.in_features..(c + 1) * l.in_features];
                assert_eq!(
                    row.iter().map(|w| w.unsigned_abs()).max(),
                    Some(127),
                    "channel max maps to 127"
                );
                let w_max = fl.weights[c * fl.in_features..(c + 1) * fl.in_features]
                    .iter()
                    .fold(0f32, |m, w| m.max(w.abs()));
                assert!((l.weight_scales[c] - w_max / 127.0).abs() < 1e-7);
                assert!(l.shift[c] % 8 == 0 && (1 << 15..1 << 32).contains(&l.multiplier[c]));
            }
        }
    }

    #[test]
    fn integer_outputs_track_the_float_model() {
        let (float, calib) = random_model(2);
        let q = quantize(&float, &calib).unwrap();
        let out_range = q.output_scale() * 127.0;
        for x in &calib {
            let want = float.forward(x).unwrap();
            let got = dequantize_output(&q, &infer(&q, &quantize_input(&q, x).unwrap()).unwrap());
            for (a, b) in want.iter().zip(&got) {
                assert!(
                    (a - b).abs() < 0.05 * out_range,
                    "float {a} vs int8 {b} (range {out_range})"
                );
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_errors_not_panics() {
        let (mut float, calib) = random_model(3);
        assert!(matches!(quantize(&float, &[]), Err(ProverError::Quantization { .. })));
        assert!(matches!(
            quantize(&float, &[vec![0.0; 3]]),
            Err(ProverError::WrongInputLength { .. })
        ));
        assert!(matches!(
            quantize(&float, &[vec![f32::NAN; 16]]),
            Err(ProverError::Quantization { .. })
        ));
        let q = quantize(&float, &calib).unwrap();
        assert!(matches!(
            quantize_input(&q, &[1.0; 15]),
            Err(ProverError::WrongInputLength {
                expected: 16,
                found: 15
            })
        ));
        assert_eq!(quantize_input(&q, &[1e9; 16]).unwrap(), vec![127; 16]);
        // An all-zero channel gets scale 1 and zero weights; all-zero inputs give scale 1.
        float.layers[0].weights[..16].fill(0.0);
        let q = quantize(&float, &[vec![0.0; 16]]).unwrap();
        assert_eq!(q.input_scale, 1.0);
        assert_eq!(q.layers[0].weight_scales[0], 1.0);
        assert!(q.layers[0].weights[..16].iter().all(|w| *w == 0));
        float.layers[1].bias.pop();
        assert!(matches!(
            quantize(&float, &calib),
            Err(ProverError::UnsupportedGraph { .. })
        ));
    }
}
