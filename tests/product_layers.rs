//! The elementwise product of two activations (ONNX `Mul`), end to end on a gated MLP of the kind GLU blocks and
//! attention are built from: import next to tract, int8 accuracy against float, bit-exact circuit, tampered product
//! cells rejected, a real proof that verifies and a forged output or nonce that does not; and the Mul forms the
//! importer refuses, with messages that say why.

mod common;
#[path = "../prover/tests/onnx/mod.rs"]
mod onnx;

use onnx::{attr_int, model, node, random_inputs, random_values, tensor, write};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::assign::{CellKind, Tamper};
use zkinfer_circuits::model::Op;
use zkinfer_circuits::{CircuitParams, Fr};
use zkinfer_prover::{
    accuracy_report, float_reference, import_onnx, infer_batch, quantize, quantize_input, setup, Dataset, ProverError,
    SrsSource,
};
use zkinfer_verifier::{verify_bundle, Expectations};

/// `x [1, 8] → a = Gemm(8→6), s = Sigmoid(Gemm(8→6)) → g = Mul(a, s) → Gemm(6→4) → y`.
fn gated_mlp(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nodes = vec![
        node("Gemm", "fc_a", &["x", "wa", "ba"], &["a"], vec![attr_int("transB", 1)]),
        node("Gemm", "fc_b", &["x", "wb", "bb"], &["b"], vec![attr_int("transB", 1)]),
        node("Sigmoid", "gate_act", &["b"], &["s"], vec![]),
        node("Mul", "gate", &["a", "s"], &["g"], vec![]),
        node(
            "Gemm",
            "fc_out",
            &["g", "wo", "bo"],
            &["y"],
            vec![attr_int("transB", 1)],
        ),
    ];
    let inits = vec![
        tensor("wa", &[6, 8], &random_values(&mut rng, 48, 1.0)),
        tensor("ba", &[6], &random_values(&mut rng, 6, 0.5)),
        tensor("wb", &[6, 8], &random_values(&mut rng, 48, 1.0)),
        tensor("bb", &[6], &random_values(&mut rng, 6, 0.5)),
        tensor("wo", &[4, 6], &random_values(&mut rng, 24, 1.0)),
        tensor("bo", &[4], &random_values(&mut rng, 4, 0.5)),
    ];
    model(nodes, inits, &[1, 8])
}

#[test]
fn a_gated_mlp_imports_quantizes_proves_and_verifies() {
    let path = write("gated.onnx", &gated_mlp(5));
    let float = import_onnx(&path).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Gemm", "Sigmoid", "Mul", "Gemm"]);
    let reference = float_reference(&path).expect("tract");
    for x in random_inputs(6, 20, 8, 2.0) {
        let (ours, tract) = (float.forward(&x).expect("forward"), reference.run(&x).expect("tract"));
        onnx::assert_close(&ours, &tract, 1e-4);
    }

    let model = quantize(&float, &random_inputs(7, 200, 8, 2.0)).expect("quantize");
    assert!(
        model.layers.iter().any(|l| matches!(l.op, Op::Mul(_))),
        "the product did not become a Mul layer"
    );
    let test = random_inputs(8, 200, 8, 2.0);
    let labels = test
        .iter()
        .map(|x| zkinfer_prover::accuracy::argmax(&float.forward(x).unwrap()))
        .collect();
    let report = accuracy_report(
        &path,
        &model,
        &Dataset {
            inputs: test.clone(),
            labels: Some(labels),
            targets: None,
            row_labels: None,
        },
    )
    .expect("accuracy");
    eprintln!("gated MLP, int8 against float: {report}");
    assert!(report.top1_agreement >= 0.9, "{report}");

    // Bit-exact: the circuit computes the native integers; tampered product cells are rejected.
    let inputs: Vec<Vec<i64>> = test
        .iter()
        .take(4)
        .map(|x| quantize_input(&model, x).unwrap())
        .collect();
    let native = infer_batch(&model, &inputs).expect("native");
    for (i, (input, expected)) in inputs.iter().zip(&native).enumerate() {
        let s = common::synthesize(&model, input, expected);
        assert_eq!(&s.outputs, expected, "input {i}: circuit and native inference differ");
        assert_eq!(s.prover.verify(), Ok(()), "input {i}: circuit not satisfied");
        if i == 0 {
            let counts = s.circuit.assigned_cell_counts();
            for kind in [CellKind::MulOperand, CellKind::MulProduct, CellKind::Output] {
                for index in [0, counts[&kind] / 2, counts[&kind] - 1] {
                    let tampered = s.circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
                    assert!(
                        !common::satisfied(&tampered, &s.public, s.k),
                        "tampered {kind:?} #{index} accepted"
                    );
                }
            }
        }
    }

    // A real proof verifies; a forged output, nonce or commitment does not.
    let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
    let (proven, expect) = common::prove_and_check("gated MLP", &model, &keys, &test[0], &inputs[0], &native[0]);
    let nonce = expect.nonce.expect("pinned");
    let other_nonce = Expectations {
        nonce: Some(nonce + Fr::from(1u64)),
        ..expect.clone()
    };
    assert!(
        verify_bundle(&keys.verifier, &proven.bundle, &other_nonce).is_err(),
        "another nonce accepted"
    );
}

#[test]
fn products_of_other_shapes_are_refused_with_a_reason_and_by_constants_are_affine() {
    let refused = |nodes, inits| match import_onnx(write("bad-mul.onnx", &model(nodes, inits, &[1, 4]))) {
        Err(ProverError::UnsupportedGraph { reason }) => reason,
        other => panic!("expected an unsupported-graph error, got {other:?}"),
    };
    // A product by a constant is an elementwise affine node `y = c·x`.
    let scaled = model(
        vec![node("Mul", "scale", &["x", "c"], &["y"], vec![])],
        vec![tensor("c", &[4], &[1.0, 2.0, 3.0, 4.0])],
        &[1, 4],
    );
    let float = import_onnx(write("mul-by-constant.onnx", &scaled)).expect("a product by a constant imports");
    assert_eq!(float.nodes.len(), 1);
    assert!(matches!(float.nodes[0].op, zkinfer_prover::FloatOp::Affine { .. }));
    assert_eq!(
        float.forward(&[1.0, 1.0, -2.0, 0.5]).unwrap(),
        vec![1.0, 2.0, -6.0, 2.0]
    );
    // After a Gemm, a product by a constant folds into it, and a ReLU after it fuses: one layer.
    let scaled_relu = model(
        vec![
            node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![attr_int("transB", 1)]),
            node("Mul", "scale", &["h", "c"], &["s"], vec![]),
            node("Relu", "act", &["s"], &["y"], vec![]),
        ],
        vec![
            tensor("w", &[2, 4], &[0.5, -1.0, 0.25, 2.0, -0.5, 1.0, 1.5, -2.0]),
            tensor("b", &[2], &[0.1, -0.1]),
            tensor("c", &[2], &[3.0, -2.0]),
        ],
        &[1, 4],
    );
    let float = import_onnx(write("gemm-scale-relu.onnx", &scaled_relu)).expect("imports");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm+Mul+Relu"]);
    let x = [1.0, -1.0, 0.5, 0.25];
    let h = [0.5 + 1.0 + 0.125 + 0.5 + 0.1, -0.5 - 1.0 + 0.75 - 0.5 - 0.1];
    let want: Vec<f32> = [h[0] * 3.0, h[1] * -2.0].iter().map(|v: &f32| v.max(0.0)).collect();
    onnx::assert_close(&float.forward(&x).unwrap(), &want, 1e-6);
    let shapes = refused(
        vec![
            node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![attr_int("transB", 1)]),
            node("Mul", "mix", &["x", "h"], &["y"], vec![]),
        ],
        vec![tensor("w", &[2, 4], &[0.5; 8]), tensor("b", &[2], &[0.0; 2])],
    );
    assert!(shapes.contains("`mix`") && shapes.contains("equal shapes"), "{shapes}");
}
