//! How far the int8 model is from the float one: top-1 agreement and output error on a dataset.
//!
//! The float side is tract running the original ONNX file ([`FloatReference`]), not our own import, so the
//! report also catches import mistakes. The int8 side is [`IntegerEngine`], dequantized with the output scale.

use std::fmt;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::{
    tvec, Arc, Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, Tensor, TractResult,
    TypedRunnableModel,
};
use zkinfer_circuits::model::QuantizedModel;

use crate::dataset::Dataset;
use crate::error::{ProverError, Result};
use crate::import::{at_path, data_input, guarded, read_onnx_proto, InputKind};
use crate::infer::IntegerEngine;
use crate::next_token::{next_token_report, NextTokenReport};
use crate::quantize::{dequantize_output, quantize_input};
use crate::regression::{regression_report, RegressionReport};

/// The float model run by tract: the reference ONNX semantics.
pub struct FloatReference {
    plan: Arc<TypedRunnableModel>,
    input_shape: Vec<usize>,
    input_kind: InputKind,
}

impl fmt::Debug for FloatReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FloatReference");
        s.field("input_shape", &self.input_shape).finish_non_exhaustive()
    }
}

/// Builds tract's optimized runnable plan for the ONNX model at `path`.
pub fn float_reference(path: impl AsRef<Path>) -> Result<FloatReference> {
    let path = path.as_ref();
    FloatReference::from_proto(&read_onnx_proto(path)?).map_err(at_path(path))
}

impl FloatReference {
    /// Builds the plan from a decoded model, its input fixed to the graph's input shape (batch of one).
    pub fn from_proto(proto: &pb::ModelProto) -> Result<FloatReference> {
        let graph = proto.graph.as_ref();
        let graph = graph.ok_or_else(|| ProverError::malformed("", "the model holds no graph"))?;
        let (_, input_shape, input_kind) = data_input(graph)?;
        let datum = match input_kind {
            InputKind::Float => f32::datum_type(),
            InputKind::Tokens { int32: true } => i32::datum_type(),
            InputKind::Tokens { int32: false } => i64::datum_type(),
        };
        let fact = InferenceFact::dt_shape(datum, input_shape.clone());
        let build = || -> TractResult<Arc<TypedRunnableModel>> {
            let model = tract_onnx::onnx().model_for_proto_model(proto)?;
            model.with_input_fact(0, fact)?.into_optimized()?.into_runnable()
        };
        let plan = guarded(build)
            .map_err(|reason| ProverError::malformed("", reason))?
            .map_err(|e| ProverError::malformed("", format!("tract cannot run the model: {e:#}")))?;
        Ok(FloatReference {
            plan,
            input_shape,
            input_kind,
        })
    }

    /// Shape of the input tensor.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Runs one flattened input and returns the flattened first output.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let expected: usize = self.input_shape.iter().product();
        if input.len() != expected {
            return Err(ProverError::WrongInputLength {
                expected,
                found: input.len(),
            });
        }
        let run = || -> TractResult<Vec<f32>> {
            let x = match self.input_kind {
                InputKind::Float => Tensor::from_shape(&self.input_shape, input)?,
                InputKind::Tokens { int32: true } => {
                    let ids: Vec<i32> = input.iter().map(|&v| v as i32).collect();
                    Tensor::from_shape(&self.input_shape, &ids)?
                }
                InputKind::Tokens { int32: false } => {
                    let ids: Vec<i64> = input.iter().map(|&v| v as i64).collect();
                    Tensor::from_shape(&self.input_shape, &ids)?
                }
            };
            let outputs = self.plan.run(tvec!(x.into_tvalue()))?;
            let mut values = Vec::new();
            if let Some(first) = outputs.first() {
                values.extend(first.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter());
            }
            Ok(values)
        };
        guarded(run)
            .map_err(|reason| ProverError::FloatReference { reason })?
            .map_err(|e| ProverError::FloatReference {
                reason: format!("tract failed to run the model: {e:#}"),
            })
    }
}

/// The comparison of the int8 model with the float model on a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Number of samples compared.
    pub samples: usize,
    /// Fraction of samples whose float argmax equals the label (when the dataset has labels).
    pub float_top1: Option<f64>,
    /// Fraction of samples whose int8 argmax equals the label (when the dataset has labels).
    pub int8_top1: Option<f64>,
    /// Fraction of samples where the int8 and float argmax agree.
    pub top1_agreement: f64,
    /// Largest |dequantized int8 output − float output| over all samples and outputs.
    pub max_abs_error: f32,
    /// Mean |dequantized int8 output − float output| over all samples and outputs.
    pub mean_abs_error: f32,
    /// Regression figures (R², relative error), when the dataset has targets or the model has one output.
    #[serde(default)]
    pub regression: Option<RegressionReport>,
    /// For an output of several rows (a sequence's `[T, C]`: one prediction per token), the fraction of rows
    /// whose int8 and float argmax agree, each row taken on its own as a next-token prediction is read.
    #[serde(default)]
    pub row_top1_agreement: Option<RowAgreement>,
    /// For a sequence model with labels per position: next-token top-1 accuracy and perplexity, float and int8.
    #[serde(default)]
    pub next_token: Option<NextTokenReport>,
}

/// Per-row top-1 agreement of a multi-row output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowAgreement {
    /// Rows compared (samples × rows per sample).
    pub rows: usize,
    /// Values per row (the output's last dimension).
    pub row_len: usize,
    /// Fraction of rows whose int8 and float argmax agree.
    pub agreement: f64,
}

/// The per-row agreement of float and int8 outputs cut into rows of `row_len` values.
pub fn row_agreement(float_out: &[Vec<f32>], int8_out: &[Vec<f32>], row_len: usize) -> RowAgreement {
    let row_len = row_len.max(1);
    let (mut rows, mut agree) = (0usize, 0usize);
    for (f, q) in float_out.iter().zip(int8_out) {
        for (fr, qr) in f.chunks_exact(row_len).zip(q.chunks_exact(row_len)) {
            rows += 1;
            agree += usize::from(argmax(fr) == argmax(qr));
        }
    }
    RowAgreement {
        rows,
        row_len,
        agreement: agree as f64 / rows.max(1) as f64,
    }
}

/// Index of the largest value; the first one on ties, 0 for an empty slice (NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// Compares the int8 `model` with the float ONNX model at `onnx_path` on every sample of `dataset`.
pub fn accuracy_report(
    onnx_path: impl AsRef<Path>,
    model: &QuantizedModel,
    dataset: &Dataset,
) -> Result<AccuracyReport> {
    dataset.check()?;
    let reference = float_reference(onnx_path)?;
    let float_out = dataset.inputs.par_iter().map(|x| reference.run(x));
    let float_out = float_out.collect::<Result<Vec<_>>>()?;
    let engine = IntegerEngine::new(model)?;
    let int8 = |x: &Vec<f32>| Ok(dequantize_output(model, &engine.infer(&quantize_input(model, x)?)?));
    let int_out = dataset.inputs.par_iter().map(int8).collect::<Result<Vec<_>>>()?;
    let mut report = compare(&float_out, &int_out, dataset.labels.as_deref())?;
    let shape = model.layers.last().map_or(&[][..], |l| l.output_shape.as_slice());
    if let [rows @ .., row_len] = shape {
        if rows.iter().product::<usize>() > 1 {
            report.row_top1_agreement = Some(row_agreement(&float_out, &int_out, *row_len));
        }
        if let Some(labels) = &dataset.row_labels {
            report.next_token = Some(next_token_report(&float_out, &int_out, *row_len, labels)?);
        }
    }
    if dataset.targets.is_some() || model.output_len() == 1 {
        report.regression = Some(regression_report(&float_out, &int_out, dataset.targets.as_deref()));
    }
    Ok(report)
}

/// The report for given float and dequantized int8 outputs (one row per sample) and optional labels.
pub fn compare(float_out: &[Vec<f32>], int8_out: &[Vec<f32>], labels: Option<&[usize]>) -> Result<AccuracyReport> {
    let n = float_out.len();
    if n == 0 || int8_out.len() != n || labels.is_some_and(|l| l.len() != n) {
        return Err(ProverError::FloatReference {
            reason: format!(
                "cannot compare {n} float results with {} int8 results and {} labels",
                int8_out.len(),
                labels.map_or(0, <[usize]>::len)
            ),
        });
    }
    let (mut agree, mut float_hits, mut int8_hits) = (0usize, 0usize, 0usize);
    let (mut max_err, mut sum_err, mut count) = (0f64, 0f64, 0usize);
    for (i, (f, q)) in float_out.iter().zip(int8_out).enumerate() {
        if f.len() != q.len() {
            return Err(ProverError::FloatReference {
                reason: format!(
                "sample {i}: the float model gives {} outputs, the int8 model {}; the .zkm does not belong to this ONNX",
                f.len(),
                q.len()
            ),
            });
        }
        let (fa, qa) = (argmax(f), argmax(q));
        agree += usize::from(fa == qa);
        if let Some(labels) = labels {
            float_hits += usize::from(fa == labels[i]);
            int8_hits += usize::from(qa == labels[i]);
        }
        for (a, b) in f.iter().zip(q) {
            let e = (*a as f64 - *b as f64).abs();
            max_err = max_err.max(e);
            sum_err += e;
            count += 1;
        }
    }
    let frac = |k: usize| k as f64 / n as f64;
    Ok(AccuracyReport {
        samples: n,
        float_top1: labels.map(|_| frac(float_hits)),
        int8_top1: labels.map(|_| frac(int8_hits)),
        top1_agreement: frac(agree),
        max_abs_error: max_err as f32,
        mean_abs_error: (sum_err / count.max(1) as f64) as f32,
        regression: None,
        row_top1_agreement: None,
        next_token: None,
    })
}

impl fmt::Display for AccuracyReport {
    /// A small table: top-1 accuracy (float, int8), agreement, and output error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.2}%", 100.0 * v));
        let title = format!("accuracy on {} samples", self.samples);
        let (float, int8) = (pct(self.float_top1), pct(self.int8_top1));
        let agree = pct(Some(self.top1_agreement));
        writeln!(f, "{title:<28}{:>9}{:>9}", "float", "int8")?;
        writeln!(f, "{:<28}{float:>9}{int8:>9}", "  top-1 vs labels")?;
        writeln!(
            f,
            "{:<28}{:>9}{agree:>9}  (int8 argmax = float argmax)",
            "  top-1 agreement", ""
        )?;
        if let Some(r) = &self.row_top1_agreement {
            let per_row = pct(Some(r.agreement));
            writeln!(
                f,
                "{:<28}{:>9}{per_row:>9}  (each of {} rows of {} values, e.g. per token)",
                "  top-1 agreement per row", "", r.rows, r.row_len
            )?;
        }
        if let Some(n) = &self.next_token {
            writeln!(f, "{n}")?;
        }
        let (max, mean) = (self.max_abs_error, self.mean_abs_error);
        write!(
            f,
            "  output |error|            max {max:.5}, mean {mean:.5}  (dequantized int8 vs float)"
        )?;
        match &self.regression {
            Some(r) => write!(f, "\n{r}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[5.0, 5.0]), 0);
        assert_eq!(argmax(&[f32::NAN, -1.0, 0.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn compare_counts_agreement_accuracy_and_error() {
        let float = vec![vec![0.0, 1.0], vec![2.0, 0.0], vec![0.5, 0.25]];
        let int8 = vec![vec![0.0, 0.75], vec![2.0, 0.5], vec![0.25, 0.5]];
        let r = compare(&float, &int8, Some(&[1, 0, 1])).unwrap();
        assert_eq!(r.samples, 3);
        assert_eq!(r.top1_agreement, 2.0 / 3.0);
        assert_eq!(r.float_top1, Some(2.0 / 3.0));
        assert_eq!(r.int8_top1, Some(1.0));
        assert_eq!(r.max_abs_error, 0.5);
        assert_eq!(r.mean_abs_error, 1.25 / 6.0);
        let r = compare(&float, &int8, None).unwrap();
        assert_eq!((r.float_top1, r.int8_top1), (None, None));
        let table = r.to_string();
        assert!(
            table.contains("3 samples") && table.contains("66.67%") && table.contains("n/a"),
            "{table}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["samples"], 3);
    }

    #[test]
    fn row_agreement_takes_each_row_on_its_own() {
        // Two samples of two rows of three: rows agree, differ; differ, agree.
        let float = vec![vec![0.0, 1.0, 0.5, 3.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.2, 0.1, 0.0]];
        let int8 = vec![vec![0.0, 0.9, 0.1, 0.0, 2.0, 0.0], vec![1.0, 0.0, 0.0, 0.3, 0.0, 0.0]];
        let r = row_agreement(&float, &int8, 3);
        assert_eq!((r.rows, r.row_len, r.agreement), (4, 3, 0.5));
        let mut report = compare(&float, &int8, None).unwrap();
        report.row_top1_agreement = Some(r);
        assert!(report.to_string().contains("per row") && report.to_string().contains("50.00%"));
    }

    #[test]
    fn compare_refuses_mismatched_shapes() {
        assert!(compare(&[vec![1.0]], &[vec![1.0, 2.0]], None).is_err());
        assert!(compare(&[vec![1.0]], &[], None).is_err());
        assert!(compare(&[vec![1.0]], &[vec![1.0]], Some(&[0, 1])).is_err());
        assert!(compare(&[], &[], None).is_err());
    }
}
