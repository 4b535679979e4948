//! Calibration diagnostics: which layer loses accuracy. Each float layer's output is compared with the dequantized
//! quantized tensor that stands for it, over a set of samples, and every requantization counts how often its clamp
//! fired (a saturated output); a short hint says what to change.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zkinfer_circuits::arith::Requantized;
use zkinfer_circuits::model::{Op, OutputRange, QuantizedModel, Source};

use crate::error::Result;
use crate::graph::FloatModel;
use crate::infer::IntegerEngine;
use crate::quantize::quantize_input;

/// How one float layer fares once quantized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerDiagnostic {
    /// The layer's name (the ONNX node's).
    pub name: String,
    /// Its operators.
    pub op_type: String,
    /// `‖dequantized − float‖ / ‖float‖` over every sample and element (root mean squares): the error
    /// accumulated up to this layer.
    pub relative_error: f64,
    /// Largest |dequantized − float| of an element.
    pub max_abs_error: f64,
    /// Outputs whose requantization clamp fired (the value was beyond the output range), over every sample.
    pub saturated: u64,
    /// Outputs computed, over every sample.
    pub outputs: u64,
}

/// The diagnostics of every float layer, and a hint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Samples run.
    pub samples: usize,
    /// One entry per float layer, in order.
    pub layers: Vec<LayerDiagnostic>,
    /// What to change, when something stands out.
    pub hint: Option<String>,
}

/// The scale of one quantized element: its tensor's, or the input channel's.
fn scale_of(model: &QuantizedModel, s: &Source) -> f64 {
    match s.tensor {
        0 => model.input.scale_of(s.index) as f64,
        t => model.tensor_scale(t) as f64,
    }
}

/// Runs `float` and `model` on `samples`; `sources[t]` are the quantized elements of float tensor `t`
/// ([`crate::quantize::quantize_traced`]).
pub fn diagnose(
    float: &FloatModel,
    model: &QuantizedModel,
    sources: &[Vec<Source>],
    samples: &[Vec<f32>],
) -> Result<Diagnostics> {
    let engine = IntegerEngine::new(model)?;
    let nodes = float.nodes.len();
    // Per sample: (squared error, squared float, max error) per float layer, and clamps fired per IR layer.
    type Sample = (Vec<(f64, f64, f64)>, Vec<u64>);
    let per_sample = |x: &Vec<f32>| -> Result<Sample> {
        let f = float.forward_all(x)?;
        let input = quantize_input(model, x)?;
        let q = engine.trace(&input)?;
        let mut tensors = vec![input];
        tensors.extend(q.iter().map(|l| l.outputs.clone()));
        let errors = (1..=nodes)
            .map(|t| {
                let pairs = sources[t].iter().zip(&f[t]).map(|(s, &v)| {
                    let deq = tensors[s.tensor][s.index] as f64 * scale_of(model, s);
                    (deq - v as f64, v as f64)
                });
                pairs.fold((0.0, 0.0, 0f64), |(e, n, m), (d, v)| {
                    (e + d * d, n + v * v, m.max(d.abs()))
                })
            })
            .collect();
        let clamps = (model.layers.iter().zip(&q))
            .map(|(layer, trace)| clamped(&layer.op, &trace.accumulators))
            .collect();
        Ok((errors, clamps))
    };
    let runs = samples.par_iter().map(per_sample).collect::<Result<Vec<Sample>>>()?;
    let mut layers: Vec<LayerDiagnostic> = float
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (e, n, m) = runs.iter().fold((0.0, 0.0, 0f64), |(e, n, m), r| {
                let (re, rn, rm) = r.0[i];
                (e + re, n + rn, m.max(rm))
            });
            LayerDiagnostic {
                name: node.name.clone(),
                op_type: node.op_type.clone(),
                relative_error: if n > 0.0 { (e / n).sqrt() } else { e.sqrt() },
                max_abs_error: m,
                saturated: 0,
                outputs: (node.output_len() * samples.len()) as u64,
            }
        })
        .collect();
    // Clamps are counted per IR layer; an IR layer carries the name of the float layer it lowers.
    for (l, layer) in model.layers.iter().enumerate() {
        let fired: u64 = runs.iter().map(|r| r.1[l]).sum();
        if let Some(d) = layers.iter_mut().find(|d| d.name == layer.name) {
            d.saturated += fired;
        }
    }
    let hint = hint(&layers);
    Ok(Diagnostics {
        samples: samples.len(),
        layers,
        hint,
    })
}

/// How many of a requantizing layer's accumulators land beyond its output range (below 0 under a fused ReLU is the
/// activation, not a saturation).
fn clamped(op: &Op, accumulators: &[i64]) -> u64 {
    let fired = |r: Requantized, range: OutputRange| u64::from(r.over > 0 || (r.under > 0 && !range.relu));
    match op {
        Op::Linear(lin) => {
            let range = lin.output_range();
            let outputs = lin.groups.iter().flat_map(|g| &g.outputs);
            (outputs.filter_map(|&(o, k)| Some(lin.kernels.get(k)?.requantize(*accumulators.get(o)?, range))))
                .map(|r| fired(r, range))
                .sum()
        }
        Op::Mul(_) | Op::MatMul(_) | Op::LayerNorm(_) => {
            let (rescale, range) = match op {
                Op::Mul(mul) => (mul.rescale(), mul.output_range()),
                Op::MatMul(matmul) => (matmul.rescale(), matmul.output_range()),
                Op::LayerNorm(norm) => (norm.rescale(), norm.output_range()),
                _ => return 0,
            };
            (accumulators.iter())
                .map(|&acc| fired(rescale.requantize(acc, range), range))
                .sum()
        }
        _ => 0,
    }
}

/// The layer whose error grows most, and saturations, as advice.
fn hint(layers: &[LayerDiagnostic]) -> Option<String> {
    let mut hints = vec![];
    let saturating = layers.iter().filter(|d| d.outputs > 0 && d.saturated * 100 > d.outputs);
    for d in saturating {
        hints.push(format!(
            "`{}` saturates {:.1}% of its outputs: the calibration samples may not cover the inputs it sees (give \
             more varied calibration data), or its range is dominated by outliers",
            d.name,
            100.0 * d.saturated as f64 / d.outputs as f64
        ));
    }
    let mut previous = 0.0;
    let mut worst: Option<(&LayerDiagnostic, f64)> = None;
    for d in layers {
        let growth = d.relative_error - previous;
        if worst.is_none_or(|(_, g)| growth > g) {
            worst = Some((d, growth));
        }
        previous = d.relative_error;
    }
    if let Some((d, growth)) = worst.filter(|(_, g)| *g > 0.05) {
        hints.push(format!(
            "`{}` ({}) adds the most error (+{:.1}% relative): try wider weights (--weight-bits 12), 16-bit outputs \
             if it is the last layer (--output-bits 16), or --target accuracy",
            d.name,
            d.op_type,
            100.0 * growth
        ));
    }
    (!hints.is_empty()).then(|| hints.join("; "))
}

impl fmt::Display for Diagnostics {
    /// A per-layer table of relative error and saturation, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "per-layer error on {} calibration samples (dequantized vs float):",
            self.samples
        )?;
        writeln!(
            f,
            "  layer                      op                           rel. error   max |error|  saturated"
        )?;
        for d in &self.layers {
            writeln!(
                f,
                "  {:<26} {:<28} {:>9.3}%  {:>12.5}  {:>9}",
                d.name,
                d.op_type,
                100.0 * d.relative_error,
                d.max_abs_error,
                if d.outputs == 0 {
                    "-".to_string()
                } else {
                    format!("{:.2}%", 100.0 * d.saturated as f64 / d.outputs as f64)
                }
            )?;
        }
        match &self.hint {
            Some(h) => write!(f, "  hint: {h}"),
            None => write!(f, "  no layer stands out"),
        }
    }
}
