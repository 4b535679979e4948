//! The compile step as one call: an ONNX model and its calibration samples → the quantized model at a precision,
//! its circuit plan (every layout the planner tried, cheapest first) and, given a labelled test set, its accuracy
//! against the float model. The CLI's `zkinfer compile` and `demo` are this plus printing and a `.zkm` file.

use std::path::Path;

use zkinfer_circuits::{layout, CircuitParams, QuantizedModel};

use crate::accuracy::{accuracy_report, AccuracyReport};
use crate::dataset::Dataset;
use crate::error::{ProverError, Result};
use crate::import::import_onnx;
use crate::quantize::{quantize_with, Precision};

/// What compiling produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The quantized model.
    pub model: QuantizedModel,
    /// The precision it was quantized at.
    pub precision: Precision,
    /// Its circuit layout (the planner's choice).
    pub layout: layout::Layout,
    /// Every layout the planner tried, cheapest (the one chosen) first.
    pub candidates: Vec<(CircuitParams, layout::Layout)>,
    /// The accuracy report, when a test set was given.
    pub accuracy: Option<AccuracyReport>,
}

impl Compiled {
    /// The circuit parameters the planner chose.
    pub fn params(&self) -> Option<&CircuitParams> {
        self.candidates.first().map(|(params, _)| params)
    }
}

/// Imports `onnx`, quantizes it at `precision` on the `calibration` samples, plans its circuit and, with a `test`
/// set, compares it with the float model.
pub fn compile(onnx: &Path, calibration: &Dataset, test: Option<&Dataset>, precision: Precision) -> Result<Compiled> {
    let float = import_onnx(onnx)?;
    let model = quantize_with(&float, &calibration.inputs, precision)?;
    let (_, candidates) = layout::choose(&model).map_err(|reason| ProverError::Layout { reason })?;
    let layout = candidates
        .first()
        .map(|(_, l)| l.clone())
        .ok_or_else(|| ProverError::Layout {
            reason: "the planner found no layout".into(),
        })?;
    let accuracy = test.map(|t| accuracy_report(onnx, &model, t)).transpose()?;
    Ok(Compiled {
        model,
        precision,
        layout,
        candidates,
        accuracy,
    })
}
