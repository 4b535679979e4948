//! The trained digits CNNs in `models/digits-cnn/` (Conv → Relu → Conv → Relu → Flatten → Gemm) and
//! `models/digits-resnet/` (Conv → BatchNormalization → Relu, a residual block with a Sigmoid branch, AveragePool,
//! Flatten → Gemm): import against tract, and int8 accuracy against float on the 360 test digits.
//!
//! Bounds: int8 and float agree on the top-1 class of at least 95% of the test digits, and int8 accuracy is within
//! 2 points of float accuracy. With per-channel int8 weights and 15-bit multipliers the int8 logits are within a few
//! output steps of the float ones, so only digits whose two best float logits are that close can flip; the trained
//! models leave far fewer than 5% of the test digits that close.

use std::path::{Path, PathBuf};

use zkinfer_circuits::model::Op;
use zkinfer_prover::accuracy::argmax;
use zkinfer_prover::{
    accuracy_report, dequantize_output, float_reference, import_onnx, infer, load_model, quantize, quantize_input,
    save_model, Dataset,
};

fn file(model: &str, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(model)
        .join(name);
    assert!(
        path.exists(),
        "{} is missing; run models/train_digits_cnn.py (see models/README.md)",
        path.display()
    );
    path
}

/// Imports, checks the float graph against tract, quantizes, and checks accuracy; returns the op types of the
/// quantized layers.
fn check(model: &str) -> Vec<String> {
    let onnx = file(model, "model.onnx");
    let float = import_onnx(&onnx).unwrap();
    assert_eq!(float.input_shape, [1, 1, 8, 8]);
    let calibration = Dataset::load(file(model, "calibration.json")).unwrap();
    let test = Dataset::load(file(model, "test.json")).unwrap();
    assert_eq!((test.len(), test.input_len()), (360, 64));

    let reference = float_reference(&onnx).unwrap();
    for x in test.inputs.iter().take(50) {
        let (ours, tract) = (float.forward(x).unwrap(), reference.run(x).unwrap());
        for (a, b) in ours.iter().zip(&tract) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{model}: {ours:?} vs tract {tract:?}"
            );
        }
    }

    let q = quantize(&float, &calibration.inputs).unwrap();
    let report = accuracy_report(&onnx, &q, &test).unwrap();
    println!("{model}\n{report}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file(model, "metrics.json")).unwrap()).unwrap();
    let float_top1 = report.float_top1.unwrap();
    let expected = metrics["float_test_accuracy"].as_f64().unwrap();
    assert!(
        (float_top1 - expected).abs() < 1e-5,
        "{model}: metrics say {expected}; {report}"
    );
    assert!(report.top1_agreement >= 0.95, "{model}: {report}");
    assert!(
        (report.int8_top1.unwrap() - float_top1).abs() <= 0.02,
        "{model}: {report}"
    );

    // The single-sample input agrees with the float model, and the model survives a .zkm round trip.
    let one = Dataset::load(file(model, "input.json")).unwrap();
    let y = infer(&q, &quantize_input(&q, &one.inputs[0]).unwrap()).unwrap();
    assert_eq!(
        argmax(&dequantize_output(&q, &y)),
        argmax(&reference.run(&one.inputs[0]).unwrap())
    );
    let zkm = std::env::temp_dir().join(format!("zkinfer-{model}-{}.zkm", std::process::id()));
    save_model(&zkm, &q).unwrap();
    assert_eq!(load_model(&zkm).unwrap(), q);
    std::fs::remove_file(&zkm).unwrap();
    q.layers.iter().map(|l| l.op_type.clone()).collect()
}

#[test]
fn digits_cnn_int8_keeps_float_accuracy() {
    let ops = check("digits-cnn");
    // The Flatten folds into the Gemm's taps; both ReLUs fuse into their convolutions.
    assert_eq!(ops, ["Conv+Relu", "Conv+Relu", "Gemm"]);
}

#[test]
fn digits_resnet_int8_keeps_float_accuracy() {
    let ops = check("digits-resnet");
    assert_eq!(
        ops[0], "Conv+BatchNormalization+Relu",
        "BatchNormalization folds into the first Conv"
    );
    assert!(
        ops.iter().any(|o| o == "Sigmoid") && ops.iter().any(|o| o.starts_with("Add")),
        "{ops:?}"
    );
    assert!(
        ops.iter().any(|o| o == "AveragePool") && ops.last().is_some_and(|o| o == "Gemm"),
        "{ops:?}"
    );
    let q = quantize(
        &import_onnx(file("digits-resnet", "model.onnx")).unwrap(),
        &[vec![0.5; 64]],
    )
    .unwrap();
    assert!(q
        .layers
        .iter()
        .any(|l| matches!(&l.op, Op::Table(t) if t.function == "Sigmoid")));
}
