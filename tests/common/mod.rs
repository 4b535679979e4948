//! Shared fixtures for the workspace tests: the shipped digits model, compiled once per test binary, and its keys.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zkinfer_circuits::{CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{import_onnx, quantize, setup, Dataset, KeyPair, SrsSource};

/// Path of a file in the shipped digits model directory.
pub fn digits(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/digits-mlp")
        .join(file)
}

/// The digits model quantized with its calibration set.
pub fn digits_model() -> &'static QuantizedModel {
    static MODEL: OnceLock<QuantizedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let float = import_onnx(digits("model.onnx")).expect("import");
        let calibration = Dataset::load(digits("calibration.json")).expect("calibration");
        quantize(&float, &calibration.inputs).expect("quantize")
    })
}

/// The digits test split.
pub fn digits_test() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| Dataset::load(digits("test.json")).expect("test set"))
}

/// Keys of the digits model (insecure development SRS).
pub fn digits_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| {
        setup(
            digits_model(),
            CircuitParams::for_model(digits_model()),
            &SrsSource::InsecureDev,
        )
        .expect("setup")
    })
}

/// A fixed salt and nonce.
pub fn salt_and_nonce() -> (Fr, Fr) {
    (Fr::from(0xa11ce_u64), Fr::from(0x0bad_cafe_u64))
}

/// A fresh temporary directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
