//! Models nobody tuned for: scikit-learn MLPs on raw tabular features, exported as users export them (the scaler
//! folded into the first Gemm/MatMul, or written as `Sub`/`Div`/`Mul` nodes before it), and a regression model.
//! The default compile (input scales per channel, precision chosen to the balanced target) must keep the float
//! accuracy; the circuit must compute the native integers; a real proof of the shipped `cancer-mlp` must verify
//! against the commitment a client computes with the key's per-feature scales, and forgeries must not.

mod common;
#[path = "../prover/tests/onnx/mod.rs"]
mod onnx;

use std::path::PathBuf;

use onnx::{model, node, tensor, write};
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::model::{InputQuantization, Op};
use zkinfer_circuits::{poseidon, CircuitParams};
use zkinfer_prover::{
    compile, import_onnx, infer_batch, quantize_input, quantize_with, setup, Compiled, Dataset, FloatOp, InputScales,
    Precision, PrecisionChoice, SrsSource,
};
use zkinfer_verifier::{input_commitment, verify_bundle, Expectations};

/// The files of a tabular fixture (`tests/tabular/<name>`) or of a shipped model (`models/<name>`).
fn dir(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match name {
        "cancer-mlp" => root.join("models").join(name),
        _ => root.join("tests/tabular").join(name),
    }
}

fn compiled(name: &str, choice: PrecisionChoice) -> (Compiled, Dataset) {
    let d = dir(name);
    let calibration = Dataset::load(d.join("calibration.json")).expect("calibration");
    let test = Dataset::load(d.join("test.json")).expect("test set");
    let c = compile(
        &d.join("model.onnx"),
        &calibration,
        Some(&test),
        choice,
        &Default::default(),
        1,
    )
    .expect("compile");
    (c, test)
}

#[test]
fn the_default_compile_keeps_the_float_accuracy_on_raw_features() {
    for name in ["wine-gemm", "wine-normalize-mul", "cancer-matmul", "cancer-mlp"] {
        let (c, _) = compiled(name, PrecisionChoice::default());
        let a = c.accuracy.expect("a test set was given");
        eprintln!("{name}: {}\n{a}", c.precision);
        let (float, int8) = (a.float_top1.expect("labels"), a.int8_top1.expect("labels"));
        assert!(a.top1_agreement >= 0.98, "{name}: agreement {}", a.top1_agreement);
        assert!(int8 >= float - 0.01, "{name}: int8 top-1 {int8} against float {float}");
        assert!(c.model.input.scales.len() > 1, "{name}: input scales per feature");
        let search = c.search.expect("the default searches");
        assert!(search.tried.len() >= 8, "{name}: {} candidates", search.tried.len());
        assert!(
            search.tried.iter().any(|t| t.precision.weight_bits == 4),
            "{name}: int4 is a candidate"
        );
    }
}

#[test]
fn one_input_scale_is_what_loses_raw_features() {
    // The failure the per-feature scales fix: one int8 scale for features from 0.1 to 1680.
    let per_tensor = Precision {
        input: InputScales::PerTensor,
        ..Precision::default()
    };
    let (c, _) = compiled("wine-gemm", PrecisionChoice::Fixed(per_tensor));
    let a = c.accuracy.expect("a test set was given");
    assert!(a.top1_agreement < 0.9, "per tensor kept {}", a.top1_agreement);
    assert_eq!(c.model.input.scales.len(), 1);
}

#[test]
fn a_regression_model_keeps_its_r_squared() {
    let (c, _) = compiled("diabetes-regression", PrecisionChoice::default());
    let a = c.accuracy.expect("a test set was given");
    let r = a.regression.clone().expect("targets give regression figures");
    eprintln!("diabetes: {}\n{a}", c.precision);
    let (float, quantized) = (r.float_r2.expect("targets"), r.quantized_r2.expect("targets"));
    assert!((float - quantized).abs() <= 0.01, "R² float {float}, int8 {quantized}");
    assert!(r.fidelity_r2 > 0.99, "{r:?}");
    assert!(r.mean_relative_error < 0.02, "{r:?}");
    assert!(c.search.expect("searched").metric.contains("R²"));
}

#[test]
fn preludes_fold_into_the_first_layer() {
    // Sub → Div (unnamed nodes) before the first Gemm: no layer of their own.
    let float = import_onnx(dir("cancer-mlp").join("model.onnx")).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops[0], "Sub+Div+Gemm+Relu");
    assert!(!float.nodes.iter().any(|n| matches!(n.op, FloatOp::Affine { .. })));
}

#[test]
fn circuit_and_native_inference_agree_and_tampering_is_rejected() {
    for name in ["cancer-mlp", "diabetes-regression"] {
        let (c, test) = compiled(name, PrecisionChoice::default());
        let model = &c.model;
        let inputs: Vec<Vec<i64>> = test
            .inputs
            .iter()
            .take(3)
            .map(|x| quantize_input(model, x).unwrap())
            .collect();
        let native = infer_batch(model, &inputs).expect("native");
        for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
            let s = common::synthesize(model, input, expected);
            assert_eq!(
                &s.outputs, expected,
                "{name} input {i}: circuit and native inference differ"
            );
            assert_eq!(s.prover.verify(), Ok(()), "{name} input {i}: circuit not satisfied");
            if i == 0 {
                let counts = s.circuit.assigned_cell_counts();
                for kind in [
                    CellKind::Input,
                    CellKind::LayerInput,
                    CellKind::Remainder,
                    CellKind::Output,
                ] {
                    for index in [0, counts[&kind] - 1] {
                        let tampered = s.circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                        assert!(
                            !common::satisfied(&tampered, &s.public, s.k),
                            "{name}: tampered {kind:?} #{index} accepted"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn an_affine_layer_that_cannot_fold_is_a_linear_layer_of_its_own() {
    // x [1, 4] → Sub(c) → Div(d) → Sigmoid → Gemm: the normalisation feeds a table, so it stays a one-tap linear
    // layer per element (the Sub and Div merge into one), which absorbs the per-feature input scales.
    let nodes = vec![
        node("Sub", "", &["x", "mean"], &["centered"], vec![]),
        node("Div", "", &["centered", "std"], &["z"], vec![]),
        node("Sigmoid", "act", &["z"], &["s"], vec![]),
        node(
            "Gemm",
            "fc",
            &["s", "w", "b"],
            &["y"],
            vec![onnx::attr_int("transB", 1)],
        ),
    ];
    let inits = vec![
        tensor("mean", &[4], &[0.5, 300.0, -2.0, 0.01]),
        tensor("std", &[4], &[0.1, 100.0, 3.0, 0.002]),
        tensor(
            "w",
            &[3, 4],
            &[1.0, -1.0, 0.5, 2.0, -0.5, 1.5, 1.0, -2.0, 0.25, 0.75, -1.25, 1.0],
        ),
        tensor("b", &[3], &[0.1, -0.2, 0.3]),
    ];
    let path = write("affine-table.onnx", &model(nodes, inits, &[1, 4]));
    let float = import_onnx(&path).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Sub+Div", "Sigmoid", "Gemm"]);
    let raw: Vec<Vec<f32>> = (0..64)
        .map(|i| {
            let t = i as f32 / 64.0 - 0.5;
            vec![0.5 + 0.3 * t, 300.0 - 250.0 * t, -2.0 + 6.0 * t, 0.01 + 0.005 * t]
        })
        .collect();
    let q = quantize_with(&float, &raw, Precision::default()).expect("quantize");
    assert_eq!(q.input.scales.len(), 4);
    assert!(matches!(q.layers[0].op, Op::Linear(_)) && matches!(q.layers[1].op, Op::Table(_)));
    let inputs: Vec<Vec<i64>> = raw.iter().take(2).map(|x| quantize_input(&q, x).unwrap()).collect();
    let native = infer_batch(&q, &inputs).expect("native");
    for (input, expected) in inputs.iter().zip(&native) {
        let s = common::synthesize(&q, input, expected);
        assert_eq!(&s.outputs, expected);
        assert_eq!(s.prover.verify(), Ok(()));
    }
    // int8 tracks the float model over the whole range of every feature.
    for x in &raw {
        let want = float.forward(x).unwrap();
        let got =
            zkinfer_prover::dequantize_output(&q, &infer_batch(&q, &[quantize_input(&q, x).unwrap()]).unwrap()[0]);
        onnx::assert_close(&got, &want, 0.15);
    }
}

#[test]
fn a_proof_binds_the_per_feature_quantized_input_the_client_commits_to() {
    let (c, test) = compiled("cancer-mlp", PrecisionChoice::default());
    let model = &c.model;
    let keys = setup(model, CircuitParams::for_model(model), &SrsSource::InsecureDev).expect("setup");
    assert_eq!(
        &keys.verifier.meta().input,
        &model.input,
        "the key carries the input scales"
    );
    let input = &test.inputs[0];
    let input_q = quantize_input(model, input).unwrap();
    let expected = &infer_batch(model, std::slice::from_ref(&input_q)).unwrap()[0];
    let (proven, expect) = common::prove_and_check("cancer-mlp", model, &keys, input, &input_q, expected);
    // The client quantizes with the key's scales and gets the proof's commitment.
    let (salt, _) = common::salt_and_nonce();
    let client = input_commitment(keys.verifier.meta(), input, salt).expect("commitment");
    assert_eq!(Some(client), expect.input_commitment);
    // A commitment made with one scale for the whole input (what a client ignoring the scales would compute) is
    // another input: rejected.
    let one_scale = InputQuantization::per_tensor(model.input.max_scale());
    let wrong = Expectations {
        input_commitment: Some(poseidon::commit_input(salt, &one_scale.quantize(input))),
        ..expect.clone()
    };
    assert_ne!(wrong.input_commitment, expect.input_commitment);
    assert!(verify_bundle(&keys.verifier, &proven.bundle, &wrong).is_err());
}
