//! The `.zkm` quantized-model file: the zkinfer header (`FileKind::Model`, version [`MODEL_FILE_VERSION`])
//! followed by bincode 2 (serde, standard configuration) of the [`QuantizedModel`] and, when `compile` wrote it,
//! the circuit layout it chose for the planner's goal (which `setup` then uses).
//!
//! Loading refuses files of another kind or version, truncated or padded files, and models that fail
//! `QuantizedModel::validate` (which also checks the model's own format version and its scales), each with a
//! message that says what was found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zkinfer_circuits::model::QuantizedModel;
use zkinfer_circuits::CircuitParams;
use zkinfer_verifier::decode::{decode_exact, encode, DecodeFailure};
use zkinfer_verifier::envelope::{open, seal, FileKind};

use crate::error::{ProverError, Result};

/// Version of the `.zkm` layout (5: the model alone; 6: the model and the layout `compile` chose; 7: layouts with
/// range-check limb widths; 8: Freivalds window widths; 9: the clamp table's width; 10: token inputs, whose
/// vocabulary the model's input quantization holds; 11: layer normalizations with an exact integer inverse square
/// root).
pub const MODEL_FILE_VERSION: u16 = 12;

/// What a `.zkm` file holds.
#[derive(Serialize, Deserialize)]
struct ModelFile {
    model: QuantizedModel,
    layout: Option<CircuitParams>,
}

fn file_err(path: &Path, reason: impl Into<String>) -> ProverError {
    ProverError::ModelFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The bytes of a `.zkm` file for `model` without a layout (header + bincode); refuses a model that fails
/// validation.
pub fn model_to_bytes(model: &QuantizedModel) -> Result<Vec<u8>> {
    compiled_to_bytes(model, None)
}

/// The bytes of a `.zkm` file for `model` and the circuit layout chosen for it; refuses a model that fails
/// validation and parameters out of bounds.
pub fn compiled_to_bytes(model: &QuantizedModel, layout: Option<&CircuitParams>) -> Result<Vec<u8>> {
    model.validate()?;
    if let Some(Err(reason)) = layout.map(CircuitParams::validate) {
        return Err(ProverError::Layout { reason });
    }
    let payload = encode(&ModelFile {
        model: model.clone(),
        layout: layout.cloned(),
    });
    Ok(seal(FileKind::Model, MODEL_FILE_VERSION, &payload))
}

/// Parses and checks the bytes of a `.zkm` file; `path` only labels error messages.
pub fn model_from_bytes(bytes: &[u8], path: &Path) -> Result<QuantizedModel> {
    compiled_from_bytes(bytes, path).map(|(model, _)| model)
}

/// Parses and checks the bytes of a `.zkm` file: the model and the layout `compile` chose, if it wrote one.
pub fn compiled_from_bytes(bytes: &[u8], path: &Path) -> Result<(QuantizedModel, Option<CircuitParams>)> {
    let payload = open(FileKind::Model, MODEL_FILE_VERSION, bytes).map_err(|e| file_err(path, e.to_string()))?;
    let ModelFile { model, layout } = decode_exact(payload).map_err(|e| {
        let reason = match e {
            DecodeFailure::Truncated => "the file is truncated; copy or regenerate it (zkinfer compile)".to_string(),
            DecodeFailure::Trailing(n) => format!("{n} unexpected bytes after the model; the file is corrupt"),
            e => format!("the model data is corrupt ({e}); regenerate the file"),
        };
        file_err(path, reason)
    })?;
    model
        .validate()
        .map_err(|e| file_err(path, format!("invalid model: {e}")))?;
    if let Some(Err(reason)) = layout.as_ref().map(CircuitParams::validate) {
        return Err(file_err(path, format!("invalid layout: {reason}")));
    }
    Ok((model, layout))
}

/// Writes `model` to a `.zkm` file.
pub fn save_model(path: impl AsRef<Path>, model: &QuantizedModel) -> Result<()> {
    let path = path.as_ref();
    let bytes = model_to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|e| ProverError::io(path, e))
}

/// Writes `model` and the circuit layout chosen for it to a `.zkm` file.
pub fn save_compiled(path: impl AsRef<Path>, model: &QuantizedModel, layout: &CircuitParams) -> Result<()> {
    let path = path.as_ref();
    let bytes = compiled_to_bytes(model, Some(layout))?;
    std::fs::write(path, bytes).map_err(|e| ProverError::io(path, e))
}

/// Reads and checks a `.zkm` file.
pub fn load_model(path: impl AsRef<Path>) -> Result<QuantizedModel> {
    load_compiled(path).map(|(model, _)| model)
}

/// Reads and checks a `.zkm` file: the model and the layout `compile` chose, if it wrote one.
pub fn load_compiled(path: impl AsRef<Path>) -> Result<(QuantizedModel, Option<CircuitParams>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ProverError::io(PathBuf::from(path), e))?;
    compiled_from_bytes(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{quantize, tests::random_model};
    use zkinfer_circuits::model::Op;

    fn model() -> QuantizedModel {
        let (float, calib) = random_model(11);
        quantize(&float, &calib).unwrap()
    }

    fn reason(r: Result<QuantizedModel>) -> String {
        match r {
            Err(ProverError::ModelFile { reason, .. }) => reason,
            other => panic!("expected a ModelFile error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let m = model();
        let path = std::env::temp_dir().join(format!("zkinfer-model-{}.zkm", std::process::id()));
        save_model(&path, &m).unwrap();
        assert_eq!(load_model(&path).unwrap(), m);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(load_model(&path), Err(ProverError::Io { .. })));
    }

    #[test]
    fn the_layout_compile_chose_round_trips_and_a_bad_one_is_refused() {
        let m = model();
        let params = CircuitParams {
            requant_sets: 2,
            range_columns: 3,
            ..CircuitParams::with_chips_of(&m)
        };
        let p = Path::new("m.zkm");
        let bytes = compiled_to_bytes(&m, Some(&params)).unwrap();
        assert_eq!(
            compiled_from_bytes(&bytes, p).unwrap(),
            (m.clone(), Some(params.clone()))
        );
        assert_eq!(model_from_bytes(&bytes, p).unwrap(), m);
        assert_eq!(
            compiled_from_bytes(&model_to_bytes(&m).unwrap(), p).unwrap(),
            (m.clone(), None)
        );
        let absurd = CircuitParams {
            requant_sets: 99,
            ..params
        };
        assert!(matches!(
            compiled_to_bytes(&m, Some(&absurd)),
            Err(ProverError::Layout { .. })
        ));
        let payload = encode(&ModelFile {
            model: m,
            layout: Some(absurd),
        });
        let bytes = seal(FileKind::Model, MODEL_FILE_VERSION, &payload);
        assert!(reason(model_from_bytes(&bytes, p)).contains("requantization column sets"));
    }

    #[test]
    fn refuses_other_versions_kinds_and_damaged_files() {
        let m = model();
        let bytes = model_to_bytes(&m).unwrap();
        let p = Path::new("m.zkm");
        assert_eq!(model_from_bytes(&bytes, p).unwrap(), m);

        let mut other_version = bytes.clone();
        other_version[6..8].copy_from_slice(&(MODEL_FILE_VERSION + 1).to_le_bytes());
        assert!(reason(model_from_bytes(&other_version, p)).contains("format version"));

        let payload = &bytes[zkinfer_verifier::envelope::HEADER_LEN..];
        let key = seal(FileKind::VerifyingKey, MODEL_FILE_VERSION, payload);
        assert!(reason(model_from_bytes(&key, p)).contains("verifying key"));

        for cut in [0, 3, 8, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(model_from_bytes(&bytes[..cut], p).is_err(), "cut at {cut}");
        }
        assert!(reason(model_from_bytes(&bytes[..bytes.len() - 1], p)).contains("truncated"));

        let mut padded = bytes.clone();
        padded.push(0);
        assert!(reason(model_from_bytes(&padded, p)).contains("unexpected bytes"));

        assert!(reason(model_from_bytes(b"{\"not\": \"a model\"}", p)).contains("ZKINF"));

        // A name length of 2^40 or 2^64 − 1 in a small file is refused, not allocated (the format version is
        // the first byte of the payload, the name's length the next).
        let header = zkinfer_verifier::envelope::HEADER_LEN;
        for claimed in [1u64 << 40, u64::MAX] {
            let mut crafted = bytes[..header + 1].to_vec();
            crafted.push(253);
            crafted.extend_from_slice(&claimed.to_le_bytes());
            crafted.extend_from_slice(&bytes[header + 2..]);
            assert!(reason(model_from_bytes(&crafted, p)).contains("corrupt"), "{claimed}");
        }
    }

    #[test]
    fn refuses_older_versions_with_the_regenerate_message() {
        assert_eq!(MODEL_FILE_VERSION, 12);
        let bytes = model_to_bytes(&model()).unwrap();
        for old in [1u16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
            let mut file = bytes.clone();
            file[6..8].copy_from_slice(&old.to_le_bytes());
            let msg = reason(model_from_bytes(&file, Path::new("old.zkm")));
            assert!(
                msg.contains(&format!("version {old}")) && msg.contains("regenerate"),
                "{msg}"
            );
        }
    }

    #[test]
    fn refuses_models_that_fail_validation() {
        let mut bad = model();
        let Op::Linear(lin) = &mut bad.layers[0].op else {
            panic!("the first layer is linear")
        };
        lin.kernels[0].shift = 49;
        assert!(matches!(model_to_bytes(&bad), Err(ProverError::InvalidModel(_))));
        // A file written with a bad shift (bypassing the check) is refused on load.
        let payload = encode(&ModelFile {
            model: bad,
            layout: None,
        });
        let bytes = seal(FileKind::Model, MODEL_FILE_VERSION, &payload);
        assert!(reason(model_from_bytes(&bytes, Path::new("x"))).contains("shift 49"));
        let mut bad = model();
        bad.input.scales[0] = f32::NAN;
        let payload = encode(&ModelFile {
            model: bad,
            layout: None,
        });
        let bytes = seal(FileKind::Model, MODEL_FILE_VERSION, &payload);
        assert!(reason(model_from_bytes(&bytes, Path::new("x"))).contains("input scale"));
        let mut bad = model();
        bad.layers[1].output_scale = 0.0;
        assert!(
            matches!(model_to_bytes(&bad), Err(e @ ProverError::InvalidModel(_)) if e.to_string().contains("output scale"))
        );
    }
}
