//! Choosing the precision to a target, as EZKL's `calibrate-settings` does: every candidate precision (weight
//! bits 4, 8, 12, 16; 8- or 16-bit activations and outputs; input scales per channel or per tensor) is quantized,
//! planned, and run on the calibration samples against the float model; the target picks among them by fidelity and
//! circuit cost.
//!
//! With 16-bit activations chosen, each layer that may hold them goes back to int8 in turn while the fidelity stays
//! within the target: 16 bits only where a layer needs them.
//!
//! Fidelity is the top-1 agreement with the float model for a classifier (several outputs) and the R² of the
//! dequantized outputs against the float outputs for a regression model (one output). Cost is the planner's
//! estimate for the cheapest layout (committed polynomials × rows).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zkinfer_circuits::layout::{self, Goal};
use zkinfer_circuits::QuantizedModel;

use zkinfer_circuits::model::ACT_BITS;

use super::{dequantize_output, quantize_input, quantize_with, wide_layers, InputScales, Precision};
use crate::accuracy::{argmax, row_agreement};
use crate::error::{ProverError, Result};
use crate::graph::FloatModel;
use crate::infer::IntegerEngine;
use crate::regression::r_squared;

/// What the precision search optimises.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// The highest fidelity; among equals the smallest output error, then the cheapest circuit.
    Accuracy,
    /// The cheapest circuit within half a point (0.005) of the highest fidelity.
    Balanced,
    /// The cheapest circuit within two points (0.02) of the highest fidelity.
    Resources,
    /// The cheapest circuit whose fidelity reaches this value (0 to 1); the most faithful one when none does.
    Fidelity(f64),
}

impl Default for Target {
    /// [`Target::Balanced`].
    fn default() -> Self {
        Target::Balanced
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "accuracy" => Ok(Target::Accuracy),
            "balanced" => Ok(Target::Balanced),
            "resources" => Ok(Target::Resources),
            number => match number.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(Target::Fidelity(v)),
                _ => Err(format!(
                    "`{s}`: use accuracy, balanced, resources, or a fidelity between 0 and 1 (0.98: 98 % top-1 \
                     agreement with the float model, or R² 0.98 for one output)"
                )),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Accuracy => write!(f, "accuracy"),
            Target::Balanced => write!(f, "balanced"),
            Target::Resources => write!(f, "resources"),
            Target::Fidelity(v) => write!(f, "fidelity ≥ {v}"),
        }
    }
}

/// One precision the search tried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// The precision.
    pub precision: Precision,
    /// Its fidelity to the float model on the calibration samples.
    pub fidelity: f64,
    /// `Σ|q − f| / Σ|f|` over the dequantized outputs on the calibration samples: what tells candidates of equal
    /// fidelity apart for the `accuracy` target (top-1 agreement saturates at 100 % on easy samples).
    pub output_error: f64,
    /// Circuit size of its cheapest layout (log2 rows).
    pub k: u32,
    /// Advice columns of that layout.
    pub advice_columns: usize,
    /// The planner's cost estimate of that layout.
    pub estimated_cost: u64,
    /// Proof size of that layout, in bytes.
    pub proof_bytes: usize,
    /// What the planner's goal minimises, for that layout: the estimated cost (time), the proof bytes (size) or the
    /// estimated memory (memory). The targets pick the cheapest candidate by this.
    pub objective: u64,
}

/// What the search tried and what it chose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The target.
    pub target: Target,
    /// What fidelity measures for this model: top-1 agreement or R² against the float outputs.
    pub metric: String,
    /// Every distinct candidate, in the order tried.
    pub tried: Vec<Tried>,
    /// Index of the chosen one in `tried`.
    pub chosen: usize,
    /// Why the choice departs from the target, when it does.
    pub note: Option<String>,
}

/// The precisions the search tries, the int8 default first (ties go to the earlier one): weights of 8, 4, 12, 16
/// bits × outputs of 8 or 16 bits × activations of 8 or 16 bits with input scales per channel, then the int8
/// activations with one input scale.
pub fn candidates() -> Vec<Precision> {
    let mut out = vec![];
    for (input, activation_bits) in [
        (InputScales::PerChannel, 8),
        (InputScales::PerChannel, 16),
        (InputScales::PerTensor, 8),
    ] {
        for weight_bits in [8, 4, 12, 16] {
            for output_bits in [8, 16] {
                out.push(Precision {
                    weight_bits,
                    output_bits,
                    input,
                    activation_bits,
                    int8_layers: Default::default(),
                    clip_ranges: false,
                });
            }
        }
    }
    out
}

/// Fidelity of `model` to the float outputs `float_out` on `samples` (top-1 agreement for several outputs, R² for
/// one) and its relative output error `Σ|q − f| / Σ|f|`.
fn fidelity(model: &QuantizedModel, samples: &[Vec<f32>], float_out: &[Vec<f32>]) -> Result<(f64, f64)> {
    let engine = IntegerEngine::new(model)?;
    let run = |x: &Vec<f32>| Ok(dequantize_output(model, &engine.infer(&quantize_input(model, x)?)?));
    let out = samples.par_iter().map(run).collect::<Result<Vec<Vec<f32>>>>()?;
    let pairs = out.iter().flatten().zip(float_out.iter().flatten());
    let (error, magnitude) = pairs.fold((0f64, 0f64), |(e, m), (&q, &f)| {
        (e + (q as f64 - f as f64).abs(), m + (f as f64).abs())
    });
    let output_error = if magnitude > 0.0 { error / magnitude } else { error };
    if model.output_len() == 1 {
        let exact = out == float_out;
        let r2 = r_squared(float_out, &out).unwrap_or(if exact { 1.0 } else { 0.0 });
        return Ok((r2, output_error));
    }
    // A sequence's output (`[T, V]`: a prediction per position) is compared row by row, as it is read.
    let shape = model.layers.last().map_or(&[][..], |l| l.output_shape.as_slice());
    if let [rows @ .., row_len] = shape {
        if rows.iter().product::<usize>() > 1 {
            return Ok((row_agreement(float_out, &out, *row_len).agreement, output_error));
        }
    }
    let agree = out
        .iter()
        .zip(float_out)
        .filter(|(q, f)| argmax(q) == argmax(f))
        .count();
    Ok((agree as f64 / samples.len().max(1) as f64, output_error))
}

/// `model` (quantized at `precision`) planned and run on the calibration samples; `None` when the planner finds no
/// layout.
fn measure(
    model: &QuantizedModel,
    precision: Precision,
    calibration: &[Vec<f32>],
    float_out: &[Vec<f32>],
    goal: &Goal,
    seed: &mut Option<BTreeSet<usize>>,
) -> Result<Option<Tried>> {
    // A precision whose every layout breaks the goal's proof-size cap is skipped with the planner's reason (which
    // names the smallest proof there is), as one it cannot lay out. A model whose Freivalds layers the planner
    // walks over (many candidates: minutes per plan) is walked once; the other precisions keep the walk's set.
    let planned = match seed.as_ref() {
        Some(layers) if layout::walks_freivalds_sets(model) => layout::choose_with_layers(model, goal, layers),
        _ => layout::choose_for(model, goal),
    };
    let (params, layouts) = planned.map_err(|reason| ProverError::Layout { reason })?;
    if seed.is_none() && layout::walks_freivalds_sets(model) {
        *seed = Some(params.freivalds_layers.clone());
    }
    let Some((_, best)) = layouts.first() else {
        return Ok(None);
    };
    let (fidelity, output_error) = fidelity(model, calibration, float_out)?;
    Ok(Some(Tried {
        precision,
        fidelity,
        output_error,
        k: best.k,
        advice_columns: best.advice_columns,
        estimated_cost: best.estimated_cost(),
        objective: goal.objective_of(best),
        proof_bytes: best.proof_bytes,
    }))
}

/// Quantizes `float` at every candidate precision, measures each on the `calibration` samples, and returns the
/// model the `target` picks with the report.
pub fn search(
    float: &FloatModel,
    calibration: &[Vec<f32>],
    target: Target,
    goal: &Goal,
) -> Result<(QuantizedModel, SearchReport)> {
    let float_out = calibration
        .par_iter()
        .map(|x| float.forward(x))
        .collect::<Result<Vec<_>>>()?;
    let mut models: Vec<QuantizedModel> = vec![];
    let mut tried: Vec<Tried> = vec![];
    let mut skipped = vec![];
    let mut seed = None;
    for precision in candidates() {
        // A precision the circuit cannot hold (16-bit activations times wide weights over many inputs can exceed
        // the accumulator bound) is skipped and named.
        let model = match quantize_with(float, calibration, precision.clone()) {
            Ok(model) => model,
            Err(e) if precision != Precision::default() => {
                skipped.push(format!("{precision}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        // Precisions that make the same model (16-bit outputs after a ReLU, channel scales of a one-channel input)
        // are tried once.
        if models.contains(&model) {
            continue;
        }
        // Likewise a candidate the planner cannot lay out (wider values can need more rows than the largest k).
        match measure(&model, precision.clone(), calibration, &float_out, goal, &mut seed) {
            Ok(Some(t)) => {
                tried.push(t);
                models.push(model);
            }
            Ok(None) => {}
            Err(e) if precision != Precision::default() => skipped.push(format!("{precision}: {e}")),
            Err(e) => return Err(e),
        }
    }
    let (mut chosen, mut note) = choose(&tried, target).ok_or_else(|| ProverError::Layout {
        reason: format!("the planner found no layout for any precision: {}", skipped.join("; ")),
    })?;
    // 16-bit activations only where a layer needs them: with 16 bits chosen, each eligible layer in turn goes back
    // to int8 while the fidelity stays within the target (not for the accuracy target, which keeps the most faithful).
    if tried[chosen].precision.activation_bits != ACT_BITS && target != Target::Accuracy {
        let floor = floor(&tried, target).0;
        let mut narrowest = tried[chosen].precision.clone();
        for layer in wide_layers(float) {
            let mut narrower = narrowest.clone();
            narrower.int8_layers.insert(layer);
            let Ok(model) = quantize_with(float, calibration, narrower.clone()) else {
                continue;
            };
            if fidelity(&model, calibration, &float_out)?.0 >= floor - 1e-12 {
                narrowest = narrower;
            }
        }
        if narrowest != tried[chosen].precision {
            let model = quantize_with(float, calibration, narrowest.clone())?;
            if let Ok(Some(narrowed)) = measure(&model, narrowest, calibration, &float_out, goal, &mut seed) {
                if narrowed.objective <= tried[chosen].objective {
                    chosen = tried.len();
                }
                tried.push(narrowed);
                models.push(model);
            }
        }
    }
    // The chosen precision with clipped activation ranges, where that is more faithful on the calibration samples
    // (at a cost within 5 %: the layout barely changes).
    let mut clipped = tried[chosen].precision.clone();
    clipped.clip_ranges = true;
    if let Ok(model) = quantize_with(float, calibration, clipped.clone()) {
        if !models.contains(&model) {
            if let Ok(Some(t)) = measure(&model, clipped, calibration, &float_out, goal, &mut seed) {
                let current = &tried[chosen];
                if t.fidelity > current.fidelity && t.objective as f64 <= current.objective as f64 * 1.05 {
                    chosen = tried.len();
                }
                tried.push(t);
                models.push(model);
            }
        }
    }
    if !skipped.is_empty() {
        let line = format!("not tried: {}", skipped.join("; "));
        note = Some(note.map_or(line.clone(), |n| format!("{n}; {line}")));
    }
    let metric = if float.output_len() == 1 {
        "R² against the float outputs"
    } else {
        "top-1 agreement with the float model"
    };
    let report = SearchReport {
        target,
        metric: metric.into(),
        tried,
        chosen,
        note,
    };
    Ok((models.swap_remove(chosen), report))
}

/// The fidelity `target` asks for among `tried`, and a note when no candidate reaches a numeric target.
fn floor(tried: &[Tried], target: Target) -> (f64, Option<String>) {
    let best = tried.iter().map(|t| t.fidelity).fold(f64::NEG_INFINITY, f64::max);
    match target {
        Target::Accuracy => (best, None),
        Target::Balanced => (best - 0.005, None),
        Target::Resources => (best - 0.02, None),
        Target::Fidelity(v) if v <= best => (v, None),
        Target::Fidelity(v) => (
            best,
            Some(format!(
                "no precision reaches fidelity {v} on the calibration samples (best {best:.4}); the most faithful was chosen"
            )),
        ),
    }
}

/// The index `target` picks among `tried`, and a note when no candidate reaches a numeric target.
fn choose(tried: &[Tried], target: Target) -> Option<(usize, Option<String>)> {
    let (floor, mut note) = floor(tried, target);
    let eligible = tried.iter().enumerate().filter(|(_, t)| t.fidelity >= floor - 1e-12);
    let chosen = if target == Target::Accuracy {
        // Among the most faithful: the smallest output error, then the cheapest.
        let key = |t: &Tried| (t.output_error, t.objective as f64);
        eligible.min_by(|(i, a), (j, b)| key(a).partial_cmp(&key(b)).unwrap_or(Ordering::Equal).then(i.cmp(j)))
    } else {
        // The cheapest; at equal cost the most faithful (16-bit logits cost nothing where the layout does not
        // change, and keep near ties apart), then the earlier.
        eligible.min_by(|(i, a), (j, b)| {
            (a.objective.cmp(&b.objective))
                .then(b.fidelity.partial_cmp(&a.fidelity).unwrap_or(Ordering::Equal))
                .then(i.cmp(j))
        })
    }
    .map(|(i, _)| i)?;
    if tried[chosen].precision.weight_bits == 4 {
        note.get_or_insert_with(|| "int4 weights were as faithful as wider ones on the calibration samples".into());
    }
    Some((chosen, note))
}

impl fmt::Display for SearchReport {
    /// A table of the candidates (fidelity and cost), the chosen one marked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "precision search (target {}; fidelity = {} on the calibration samples):",
            self.target, self.metric
        )?;
        writeln!(
            f,
            "      weights  activations  outputs  input scales  fidelity  output error    k  advice  est. cost  proof bytes"
        )?;
        for (i, t) in self.tried.iter().enumerate() {
            let input = match t.precision.input {
                InputScales::PerChannel => "channel",
                InputScales::PerTensor => "tensor",
            };
            writeln!(
                f,
                "  {} {:>7}  {:>11}  {:>7}  {input:>12}  {:>8.4}  {:>11.3}%  {:>3}  {:>6}  {:>9}  {:>11}",
                if i == self.chosen { "->" } else { "  " },
                t.precision.weight_bits,
                t.precision.activation_bits,
                t.precision.output_bits,
                t.fidelity,
                100.0 * t.output_error,
                t.k,
                t.advice_columns,
                t.estimated_cost,
                t.proof_bytes
            )?;
        }
        match &self.note {
            Some(note) => write!(f, "  note: {note}"),
            None => write!(f, "  chosen: {}", self.tried[self.chosen].precision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tried(weight_bits: u32, fidelity: f64, estimated_cost: u64) -> Tried {
        Tried {
            precision: Precision {
                weight_bits,
                ..Precision::default()
            },
            fidelity,
            output_error: 1.0 / weight_bits as f64,
            k: 10,
            advice_columns: 8,
            estimated_cost,
            proof_bytes: 2000,
            objective: estimated_cost,
        }
    }

    #[test]
    fn each_target_picks_by_fidelity_then_cost() {
        let t = vec![
            tried(8, 0.990, 100),
            tried(4, 0.980, 90),
            tried(16, 0.995, 120),
            tried(12, 0.995, 110),
        ];
        // Among the most faithful (16 and 12 bits), the smaller output error (16 bits), whatever the cost.
        assert_eq!(choose(&t, Target::Accuracy), Some((2, None)));
        assert_eq!(choose(&t, Target::Balanced), Some((0, None)));
        let (i, note) = choose(&t, Target::Resources).unwrap();
        assert_eq!(i, 1);
        assert!(note.unwrap().contains("int4"));
        assert_eq!(choose(&t, Target::Fidelity(0.99)), Some((0, None)));
        let (i, note) = choose(&t, Target::Fidelity(0.999)).unwrap();
        assert_eq!(i, 3);
        assert!(note.unwrap().contains("no precision reaches"));
        assert_eq!(choose(&[], Target::Balanced), None);
    }

    /// `x → h = [1000·x, x] → g = [h_1, h_1] → y = [g_0, −g_1]`: the argmax is the sign of `x`, which an int8 `h`
    /// (scale 1000/127) loses and a 16-bit `h` keeps; `g` is fine at int8.
    fn needs_16_bits_in_one_layer() -> (FloatModel, Vec<Vec<f32>>) {
        use crate::graph::{Dense, FloatOp};
        let dense = |name: &str, input: usize, i: usize, o: usize, weights: Vec<f32>| {
            let op = FloatOp::Dense(Dense {
                positions: 1,
                in_features: i,
                out_features: o,
                weights,
                bias: vec![0.0; o],
            });
            crate::quantize::tests::node(name, vec![input], vec![1, o], op, false)
        };
        let float = FloatModel {
            name: "needs16".into(),
            input_shape: vec![1, 1],
            nodes: vec![
                dense("h", 0, 1, 2, vec![1000.0, 1.0]),
                dense("g", 1, 2, 2, vec![0.0, 1.0, 0.0, 1.0]),
                dense("y", 2, 2, 2, vec![1.0, 0.0, 0.0, -1.0]),
            ],
        };
        let calibration = (0..64).map(|i| vec![(i as f32 - 31.5) / 32.0]).collect();
        (float, calibration)
    }

    #[test]
    fn sixteen_bit_activations_stay_only_where_a_layer_needs_them() {
        let (float, calibration) = needs_16_bits_in_one_layer();
        let (model, report) = search(&float, &calibration, Target::Balanced, &Goal::default()).unwrap();
        let chosen = &report.tried[report.chosen];
        assert_eq!(chosen.precision.activation_bits, 16, "{report}");
        assert_eq!(chosen.precision.int8_layers, [1].into_iter().collect(), "{report}");
        assert!(chosen.fidelity >= 0.99, "{report}");
        let bits: Vec<u32> = (1..=model.layers.len()).map(|t| model.tensor_bits(t)).collect();
        assert_eq!(bits, vec![16, 8, 8], "{report}");
        // The int8 candidates lose the sign of x on about half the samples.
        let int8 = report
            .tried
            .iter()
            .find(|t| t.precision == Precision::default())
            .unwrap();
        assert!(int8.fidelity < 0.75, "{report}");
    }

    #[test]
    fn targets_parse() {
        assert_eq!("balanced".parse::<Target>(), Ok(Target::Balanced));
        assert_eq!("0.98".parse::<Target>(), Ok(Target::Fidelity(0.98)));
        assert!("1.5".parse::<Target>().unwrap_err().contains("between 0 and 1"));
        assert!("fast".parse::<Target>().is_err());
    }
}
