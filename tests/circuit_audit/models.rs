//! The shipped models, compiled as the other workspace tests compile them (int8, their calibration sets), once
//! per test binary.

use std::sync::OnceLock;

use zkinfer_circuits::QuantizedModel;
use zkinfer_prover::{import_onnx, quantize, Dataset};

use crate::common;

/// The shipped models, by directory name.
pub const SHIPPED: [&str; 3] = ["digits-mlp", "digits-cnn", "digits-resnet"];

/// The shipped model `name` quantized with its calibration set.
pub fn shipped(name: &str) -> &'static QuantizedModel {
    static MODELS: OnceLock<Vec<QuantizedModel>> = OnceLock::new();
    let models = MODELS.get_or_init(|| {
        SHIPPED
            .iter()
            .map(|name| {
                let float = import_onnx(common::model_file(name, "model.onnx")).expect("import");
                let calibration = Dataset::load(common::model_file(name, "calibration.json")).expect("calibration");
                quantize(&float, &calibration.inputs).expect("quantize")
            })
            .collect()
    });
    let i = SHIPPED.iter().position(|n| *n == name).expect("a shipped model");
    &models[i]
}

/// The shipped model `name`'s test split.
pub fn test_set(name: &str) -> Dataset {
    Dataset::load(common::model_file(name, "test.json")).expect("test set")
}
