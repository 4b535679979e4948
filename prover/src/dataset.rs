//! Sample inputs in EZKL's `input.json` layout: `{"input_data": [[f32, ...], ...], "labels": [int, ...]}`, or
//! `"targets": [[f32, ...], ...]` instead of labels for a regression model.
//!
//! Each row of `input_data` is one sample, the model's input tensor flattened in row-major order; `labels`
//! (optional) holds the class index of each sample, or, for a sequence model whose output has a row per position
//! (`[T, V]` next-token logits), a list per sample of the class expected at each position (the next token);
//! `targets` (optional) the real-valued outputs expected of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ProverError, Result};

/// A set of float input samples, optionally labelled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// One flattened input per sample; all rows have the same length.
    pub inputs: Vec<Vec<f32>>,
    /// The class of each sample, when known.
    pub labels: Option<Vec<usize>>,
    /// The real-valued outputs expected of each sample (regression), when known.
    #[serde(default)]
    pub targets: Option<Vec<Vec<f32>>>,
    /// For a sequence model, the class expected at each position of each sample (the next token), when known.
    #[serde(default)]
    pub row_labels: Option<Vec<Vec<usize>>>,
}

/// `labels` as a file gives them: one class per sample, or one per position of each sample.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawLabels {
    PerSample(Vec<i64>),
    PerPosition(Vec<Vec<i64>>),
}

/// The file layout, before the checks.
#[derive(Deserialize)]
struct RawDataset {
    input_data: Vec<Vec<f64>>,
    #[serde(default)]
    labels: Option<RawLabels>,
    #[serde(default)]
    targets: Option<Vec<Vec<f64>>>,
}

impl Dataset {
    /// Reads and checks a dataset file.
    pub fn load(path: impl AsRef<Path>) -> Result<Dataset> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ProverError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks dataset JSON held in memory.
    pub fn from_json(text: &str) -> Result<Dataset> {
        Self::parse(text, Path::new("<memory>"))
    }

    fn parse(text: &str, path: &Path) -> Result<Dataset> {
        let err = |reason: String| ProverError::Dataset {
            path: PathBuf::from(path),
            reason,
        };
        let raw: RawDataset = serde_json::from_str(text).map_err(|e| {
            err(format!(
                "not a valid input file ({e}); expected {{\"input_data\": [[numbers, ...], ...], \"labels\": [ints]}}"
            ))
        })?;
        if raw.input_data.is_empty() {
            return Err(err("`input_data` holds no samples".into()));
        }
        let width = raw.input_data[0].len();
        if width == 0 {
            return Err(err("sample 0 is empty".into()));
        }
        let mut inputs = Vec::with_capacity(raw.input_data.len());
        for (i, row) in raw.input_data.iter().enumerate() {
            if row.len() != width {
                return Err(err(format!(
                    "sample {i} has {} values, sample 0 has {width}; all samples must have the same length",
                    row.len()
                )));
            }
            let row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("sample {i} value {j} does not fit in an f32")));
            }
            inputs.push(row);
        }
        let label = |i: usize, l: i64| {
            usize::try_from(l).map_err(|_| err(format!("label {i} is {l}, labels are class indices >= 0")))
        };
        let count = |n: usize| {
            (n == inputs.len()).then_some(()).ok_or_else(|| {
                err(format!(
                    "{n} labels for {} samples; give one label (or one list of labels) per sample or none",
                    inputs.len()
                ))
            })
        };
        let (labels, row_labels) = match raw.labels {
            None => (None, None),
            Some(RawLabels::PerSample(labels)) => {
                count(labels.len())?;
                let checked = (labels.iter().enumerate()).map(|(i, &l)| label(i, l));
                (Some(checked.collect::<Result<Vec<usize>>>()?), None)
            }
            Some(RawLabels::PerPosition(rows)) => {
                count(rows.len())?;
                let mut checked = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    if row.len() != rows[0].len() || row.is_empty() {
                        return Err(err(format!(
                            "sample {i} has {} labels, sample 0 has {}; every sample needs one per position",
                            row.len(),
                            rows[0].len()
                        )));
                    }
                    checked.push(row.iter().map(|&l| label(i, l)).collect::<Result<Vec<usize>>>()?);
                }
                (None, Some(checked))
            }
        };
        let targets = match raw.targets {
            None => None,
            Some(targets) => {
                if targets.len() != inputs.len() {
                    return Err(err(format!(
                        "{} targets for {} samples; give one target row per sample or none",
                        targets.len(),
                        inputs.len()
                    )));
                }
                let width = targets.first().map_or(0, Vec::len);
                let mut rows = Vec::with_capacity(targets.len());
                for (i, row) in targets.iter().enumerate() {
                    if row.len() != width || width == 0 {
                        return Err(err(format!(
                            "target {i} has {} values, target 0 has {width}; every target row must have the same \
                             non-zero length",
                            row.len()
                        )));
                    }
                    let row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
                    if row.iter().any(|v| !v.is_finite()) {
                        return Err(err(format!("target {i} holds a value that does not fit in an f32")));
                    }
                    rows.push(row);
                }
                Some(rows)
            }
        };
        Ok(Dataset {
            inputs,
            labels,
            targets,
            row_labels,
        })
    }

    /// Writes the dataset in the same layout.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let labels = match &self.row_labels {
            Some(rows) => serde_json::json!(rows),
            None => serde_json::json!(self.labels),
        };
        let json = match &self.targets {
            Some(targets) => serde_json::json!({ "input_data": self.inputs, "labels": labels, "targets": targets }),
            None => serde_json::json!({ "input_data": self.inputs, "labels": labels }),
        };
        let text = serde_json::to_string(&json).map_err(|e| ProverError::Dataset {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|e| ProverError::io(path, e))
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Length of each sample (0 for an empty dataset).
    pub fn input_len(&self) -> usize {
        self.inputs.first().map_or(0, Vec::len)
    }

    /// Checks the invariants [`Dataset::load`] guarantees (for datasets built in code).
    pub fn check(&self) -> Result<()> {
        let err = |reason: String| ProverError::Dataset {
            path: PathBuf::from("<memory>"),
            reason,
        };
        if self.inputs.is_empty() {
            return Err(err("the dataset holds no samples".into()));
        }
        let width = self.input_len();
        if let Some(i) = self.inputs.iter().position(|r| r.len() != width) {
            return Err(err(format!(
                "sample {i} has {} values, sample 0 has {width}",
                self.inputs[i].len()
            )));
        }
        if let Some(labels) = &self.labels {
            if labels.len() != self.inputs.len() {
                return Err(err(format!(
                    "{} labels for {} samples",
                    labels.len(),
                    self.inputs.len()
                )));
            }
        }
        if let Some(rows) = &self.row_labels {
            if rows.len() != self.inputs.len() {
                return Err(err(format!(
                    "{} label lists for {} samples",
                    rows.len(),
                    self.inputs.len()
                )));
            }
        }
        if let Some(targets) = &self.targets {
            if targets.len() != self.inputs.len() {
                return Err(err(format!(
                    "{} targets for {} samples",
                    targets.len(),
                    self.inputs.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ezkl_layout_with_and_without_labels() {
        let d = Dataset::from_json(r#"{"input_data": [[1, 2.5, -3], [0, 0, 0.125]], "labels": [2, 0]}"#).unwrap();
        assert_eq!(d.inputs, vec![vec![1.0, 2.5, -3.0], vec![0.0, 0.0, 0.125]]);
        assert_eq!(d.labels, Some(vec![2, 0]));
        assert_eq!((d.len(), d.input_len()), (2, 3));
        let d = Dataset::from_json(r#"{"input_data": [[1, 2]]}"#).unwrap();
        assert_eq!(d.labels, None);
        d.check().unwrap();
        // A sequence model's labels: one class per position of each sample.
        let d = Dataset::from_json(r#"{"input_data": [[1, 2], [3, 4]], "labels": [[2, 3], [4, 0]]}"#).unwrap();
        assert_eq!((d.labels, d.row_labels), (None, Some(vec![vec![2, 3], vec![4, 0]])));
    }

    #[test]
    fn refuses_bad_files_with_clear_reasons() {
        let reason = |text: &str| match Dataset::from_json(text) {
            Err(ProverError::Dataset { reason, .. }) => reason,
            other => panic!("expected a Dataset error, got {other:?}"),
        };
        assert!(reason("not json").contains("not a valid input file"));
        assert!(reason(r#"{"input_data": [[1, 2], [3]]}"#).contains("sample 1 has 1 values"));
        assert!(reason(r#"{"input_data": [[1], [2]], "labels": [1]}"#).contains("1 labels for 2 samples"));
        assert!(reason(r#"{"input_data": [[1]], "labels": [-1]}"#).contains(">= 0"));
        assert!(reason(r#"{"input_data": []}"#).contains("no samples"));
        assert!(reason(r#"{"input_data": [[1], [2]], "labels": [[1, 2], [3]]}"#).contains("sample 1 has 1 labels"));
        assert!(reason(r#"{"input_data": [[1]], "labels": [[1, -2]]}"#).contains(">= 0"));
        assert!(reason(r#"{"input_data": [[1e300]]}"#).contains("f32"));
        assert!(reason(r#"{"input_data": [[1], [2]], "targets": [[1]]}"#).contains("1 targets for 2 samples"));
        assert!(reason(r#"{"input_data": [[1], [2]], "targets": [[1], [2, 3]]}"#).contains("target 1 has 2"));
        assert!(reason(r#"{"input_data": [[1]], "targets": [[1e300]]}"#).contains("f32"));
    }

    #[test]
    fn save_and_load_round_trip() {
        let path = std::env::temp_dir().join(format!("zkinfer-dataset-{}.json", std::process::id()));
        let d = Dataset {
            inputs: vec![vec![0.5, -1.0], vec![2.0, 3.0]],
            labels: Some(vec![1, 0]),
            targets: None,
            row_labels: None,
        };
        d.save(&path).unwrap();
        assert_eq!(Dataset::load(&path).unwrap(), d);
        let d = Dataset {
            labels: None,
            targets: Some(vec![vec![151.0], vec![-0.5]]),
            ..d
        };
        d.save(&path).unwrap();
        assert_eq!(Dataset::load(&path).unwrap(), d);
        let d = Dataset {
            targets: None,
            row_labels: Some(vec![vec![3, 1], vec![0, 2]]),
            ..d
        };
        d.save(&path).unwrap();
        assert_eq!(Dataset::load(&path).unwrap(), d);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(Dataset::load(&path), Err(ProverError::Io { .. })));
    }
}
