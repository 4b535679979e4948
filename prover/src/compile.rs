//! The compile step as one call: an ONNX model and its calibration samples → the quantized model at a precision
//! (given, or chosen to a target by [`crate::quantize::search`]), its circuit plan (every layout the planner tried,
//! cheapest first), per-layer calibration diagnostics and, given a test set, its accuracy against the float model.
//! The CLI's `zkinfer compile` and `demo` are this plus printing and a `.zkm` file.

use std::path::Path;

use zkinfer_circuits::layout::{self, Goal};
use zkinfer_circuits::model::check_batch_size;
use zkinfer_circuits::{CircuitParams, QuantizedModel};

use crate::accuracy::{accuracy_report, AccuracyReport};
use crate::dataset::Dataset;
use crate::diagnostics::{diagnose, Diagnostics};
use crate::error::{ProverError, Result};
use crate::import::import_onnx;
use crate::quantize::search::{search, SearchReport, Target};
use crate::quantize::{quantize_traced, Precision};

/// How `compile` picks the precision.
#[derive(Clone, Debug, PartialEq)]
pub enum PrecisionChoice {
    /// Exactly this precision.
    Fixed(Precision),
    /// The candidate the target picks on the calibration samples.
    Target(Target),
}

impl Default for PrecisionChoice {
    /// The balanced target.
    fn default() -> Self {
        PrecisionChoice::Target(Target::default())
    }
}

/// What compiling produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The quantized model (batched when `compile` was asked for a batch; the diagnostics and the accuracy are of
    /// one sample).
    pub model: QuantizedModel,
    /// The precision it was quantized at.
    pub precision: Precision,
    /// The precision search, when a target chose the precision.
    pub search: Option<SearchReport>,
    /// Its circuit layout (the planner's choice).
    pub layout: layout::Layout,
    /// What the planner was asked for.
    pub goal: Goal,
    /// Every layout the planner tried, best for the goal (the one chosen) first.
    pub candidates: Vec<(CircuitParams, layout::Layout)>,
    /// Per-layer error and saturation on the calibration samples.
    pub diagnostics: Diagnostics,
    /// The accuracy report, when a test set was given.
    pub accuracy: Option<AccuracyReport>,
}

impl Compiled {
    /// The circuit parameters the planner chose.
    pub fn params(&self) -> Option<&CircuitParams> {
        self.candidates.first().map(|(params, _)| params)
    }
}

/// Imports `onnx`, quantizes it at the precision `choice` gives on the `calibration` samples, diagnoses it layer by
/// layer and, with a `test` set, compares it with the float model; then [batches](QuantizedModel::batched) it to
/// prove `batch` inputs at once (1: one) and plans that circuit for `goal` (the precision search measures
/// candidates' single-sample layouts for it too).
pub fn compile(
    onnx: &Path,
    calibration: &Dataset,
    test: Option<&Dataset>,
    choice: PrecisionChoice,
    goal: &Goal,
    batch: usize,
) -> Result<Compiled> {
    check_batch_size(batch).map_err(|reason| ProverError::Batch { reason })?;
    let float = import_onnx(onnx)?;
    let (precision, search) = match choice {
        PrecisionChoice::Fixed(p) => (p, None),
        PrecisionChoice::Target(target) => {
            let (_, report) = search(&float, &calibration.inputs, target, goal)?;
            (report.tried[report.chosen].precision.clone(), Some(report))
        }
    };
    let (single, sources) = quantize_traced(&float, &calibration.inputs, precision.clone())?;
    let model = single.batched(batch).map_err(|reason| ProverError::Batch { reason })?;
    let (_, candidates) = layout::choose_for(&model, goal).map_err(|reason| ProverError::Layout { reason })?;
    let layout = candidates
        .first()
        .map(|(_, l)| l.clone())
        .ok_or_else(|| ProverError::Layout {
            reason: "the planner found no layout".into(),
        })?;
    let diagnostics = diagnose(&float, &single, &sources, &calibration.inputs)?;
    let accuracy = test.map(|t| accuracy_report(onnx, &single, t)).transpose()?;
    Ok(Compiled {
        model,
        precision,
        search,
        layout,
        goal: *goal,
        candidates,
        diagnostics,
        accuracy,
    })
}
