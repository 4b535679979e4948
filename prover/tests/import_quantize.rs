//! Import → quantize → infer on real ONNX files: tiny graphs written byte by byte here, and the trained
//! digits MLP in `models/digits-mlp/`.

mod onnx;

use std::path::{Path, PathBuf};

use onnx::{assert_close, attr_float, attr_int, model, node, tensor, tensor_i64, write, Msg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::model::{Op, QuantizedModel};
use zkinfer_prover::import::FloatModel;
use zkinfer_prover::{
    accuracy_report, dequantize_output, float_reference, import_onnx, infer, load_model, quantize, quantize_input,
    save_model, Dataset, FloatNode, FloatOp, ProverError,
};

/// Weights of a 6 → 4 (ReLU) → 3 MLP.
struct Weights {
    w1: Vec<f32>, // [6][4] (in, out)
    b1: Vec<f32>,
    w2: Vec<f32>, // [3][4] (out, in)
    b2: Vec<f32>,
}

fn weights(seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = |n: usize| (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    Weights {
        w1: v(24),
        b1: v(4),
        w2: v(12),
        b2: v(3),
    }
}

/// `x [batch,2,3] → Flatten → Gemm (B as [in,out]) → Relu → Dropout → Gemm (transB=1) → Identity → y`.
fn gemm_model(w: &Weights) -> Vec<u8> {
    let nodes = vec![
        node("Flatten", "flat", &["x"], &["f"], vec![]),
        node(
            "Gemm",
            "fc1",
            &["f", "w1", "b1"],
            &["h"],
            vec![attr_float("alpha", 1.0)],
        ),
        node("Relu", "relu", &["h"], &["r"], vec![]),
        node("Dropout", "drop", &["r"], &["d"], vec![]),
        node("Gemm", "fc2", &["d", "w2", "b2"], &["o"], vec![attr_int("transB", 1)]),
        node("Identity", "", &["o"], &["y"], vec![]),
    ];
    let inits = vec![
        tensor("w1", &[6, 4], &w.w1),
        tensor("b1", &[4], &w.b1),
        tensor("w2", &[3, 4], &w.w2),
        tensor("b2", &[1, 3], &w.b2),
    ];
    model(nodes, inits, &[-1, 2, 3])
}

/// The same function as `Reshape → MatMul → Add → Relu → MatMul → Add(bias, h)`.
fn matmul_model(w: &Weights) -> Vec<u8> {
    let w2_t: Vec<f32> = (0..4)
        .flat_map(|i| (0..3).map(move |o| (o, i)))
        .map(|(o, i)| w.w2[o * 4 + i])
        .collect();
    let nodes = vec![
        node("Reshape", "reshape", &["x", "shape"], &["f"], vec![]),
        node("MatMul", "mm1", &["f", "w1"], &["m1"], vec![]),
        node("Add", "add1", &["m1", "b1"], &["h"], vec![]),
        node("Relu", "relu", &["h"], &["r"], vec![]),
        node("MatMul", "mm2", &["r", "w2t"], &["m2"], vec![]),
        node("Add", "add2", &["b2", "m2"], &["y"], vec![]),
    ];
    let inits = vec![
        tensor_i64("shape", &[1, -1]),
        tensor("w1", &[6, 4], &w.w1),
        tensor("b1", &[4], &w.b1),
        tensor("w2t", &[4, 3], &w2_t),
        tensor("b2", &[3], &w.b2),
    ];
    model(nodes, inits, &[1, 2, 3])
}

fn random_inputs(seed: u64, n: usize, len: usize) -> Vec<Vec<f32>> {
    onnx::random_inputs(seed, n, len, 2.0)
}

/// `(name, in, out, relu)` of each Dense node, with its weights and bias.
type DenseSummary<'a> = ((&'a str, usize, usize, bool), &'a [f32], &'a [f32]);

fn dense_layers(m: &FloatModel) -> Vec<DenseSummary<'_>> {
    fn dense(n: &FloatNode) -> Option<DenseSummary<'_>> {
        match &n.op {
            FloatOp::Dense(d) => Some(((&n.name, d.in_features, d.out_features, n.relu), &d.weights, &d.bias)),
            _ => None,
        }
    }
    m.nodes.iter().filter_map(dense).collect()
}

#[test]
fn gemm_relu_gemm_imports_and_matches_tract() {
    let w = weights(1);
    let path = write("gemm.onnx", &gemm_model(&w));
    let m = import_onnx(&path).unwrap();
    assert_eq!((m.name.as_str(), m.input_shape.as_slice()), ("tiny", &[1, 2, 3][..]));
    let layers = dense_layers(&m);
    let names: Vec<_> = layers.iter().map(|l| l.0).collect();
    assert_eq!(names, [("fc1", 6, 4, true), ("fc2", 4, 3, false)]);
    assert_eq!(
        layers[0].1[..6],
        [w.w1[0], w.w1[4], w.w1[8], w.w1[12], w.w1[16], w.w1[20]]
    );
    assert_eq!(layers[1].1, w.w2);
    // Flatten is a data move; Relu fused into fc1; Dropout and Identity are aliases.
    let ops: Vec<_> = m.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Flatten", "Gemm+Relu", "Gemm"]);
    let reference = float_reference(&path).unwrap();
    for x in random_inputs(2, 20, 6) {
        assert_close(&m.forward(&x).unwrap(), &reference.run(&x).unwrap(), 1e-5);
    }
    assert!(matches!(
        reference.run(&[0.0; 5]),
        Err(ProverError::WrongInputLength { expected: 6, found: 5 })
    ));
    assert!(matches!(
        m.forward(&[0.0; 7]),
        Err(ProverError::WrongInputLength { expected: 6, found: 7 })
    ));
}

#[test]
fn matmul_add_form_imports_to_the_same_layers() {
    let w = weights(3);
    let gemm = import_onnx(write("g.onnx", &gemm_model(&w))).unwrap();
    let path = write("mm.onnx", &matmul_model(&w));
    let mm = import_onnx(&path).unwrap();
    let (g, m) = (dense_layers(&gemm), dense_layers(&mm));
    assert_eq!(m.iter().map(|l| l.0 .0).collect::<Vec<_>>(), ["mm1", "mm2"]);
    assert_eq!(mm.nodes[1].op_type, "MatMul+Add+Relu");
    for (a, b) in g.iter().zip(&m) {
        assert_eq!((a.1, a.2, a.0 .3), (b.1, b.2, b.0 .3));
    }
    let reference = float_reference(&path).unwrap();
    for x in random_inputs(4, 10, 6) {
        assert_close(&mm.forward(&x).unwrap(), &reference.run(&x).unwrap(), 1e-5);
    }
}

fn import_err(nodes: Vec<Msg>, inits: Vec<Msg>) -> ProverError {
    import_onnx(write("bad.onnx", &model(nodes, inits, &[1, 2]))).unwrap_err()
}

fn dense_inits() -> Vec<Msg> {
    vec![
        tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
        tensor("b", &[2], &[0.5, -0.5]),
    ]
}

#[test]
fn unsupported_operators_are_named_with_their_node() {
    let gemm = || node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![]);
    let err = import_err(
        vec![gemm(), node("Sin", "my_sin", &["h"], &["y"], vec![])],
        dense_inits(),
    );
    assert!(
        matches!(&err, ProverError::UnsupportedOperator { op, node } if op == "Sin" && node == "my_sin"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("supported: Gemm, MatMul (by a constant weight, +Add; every token of a sequence), Conv"));
    let err = import_err(
        vec![gemm(), node("LSTM", "", &["h", "w"], &["y"], vec![])],
        dense_inits(),
    );
    assert!(
        matches!(&err, ProverError::UnsupportedOperator { op, node } if op == "LSTM" && node == "#1 LSTM -> y"),
        "{err}"
    );
    // Pow is accepted as a square (a constant exponent of 2), not by a computed exponent.
    let err = import_err(
        vec![gemm(), node("Pow", "power", &["h", "h"], &["y"], vec![])],
        dense_inits(),
    );
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("Pow `power`: only a constant exponent of 2")),
        "{err}"
    );
    let mut custom = node("Gemm", "fc", &["x", "w", "b"], &["y"], vec![]);
    custom = custom.str(7, "com.example");
    let err = import_err(vec![custom], dense_inits());
    assert!(
        matches!(&err, ProverError::UnsupportedOperator { op, .. } if op == "com.example.Gemm"),
        "{err}"
    );
}

#[test]
fn unsupported_attributes_and_structures_are_refused() {
    let gemm = |attrs| vec![node("Gemm", "fc", &["x", "w", "b"], &["y"], attrs)];
    let err = import_err(gemm(vec![attr_float("alpha", 2.0)]), dense_inits());
    assert!(
        matches!(&err, ProverError::UnsupportedAttribute { op, node, attr, value }
            if op == "Gemm" && node == "fc" && attr == "alpha" && value == "2"),
        "{err}"
    );
    let err = import_err(gemm(vec![attr_int("transA", 1)]), dense_inits());
    assert!(
        matches!(&err, ProverError::UnsupportedAttribute { attr, .. } if attr == "transA"),
        "{err}"
    );
    let err = import_err(gemm(vec![attr_int("alpha", 1)]), dense_inits());
    assert!(
        matches!(&err, ProverError::UnsupportedAttribute { attr, .. } if attr == "alpha"),
        "{err}"
    );

    let graph = |nodes| import_err(nodes, dense_inits());
    let dead_branch = vec![
        node("Gemm", "fc1", &["x", "w", "b"], &["h"], vec![]),
        node("Gemm", "fc2", &["x", "w", "b"], &["y"], vec![]),
    ];
    let err = graph(dead_branch);
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("`fc1` is never used")),
        "{err}"
    );
    let bn_after_relu = vec![
        node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![]),
        node("Relu", "r", &["h"], &["r"], vec![]),
        node("BatchNormalization", "bn", &["r", "b", "b", "b", "b"], &["y"], vec![]),
    ];
    let err = graph(bn_after_relu);
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("BatchNormalization `bn`")),
        "{err}"
    );
    let add_after_relu = vec![
        node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![]),
        node("Relu", "r", &["h"], &["r"], vec![]),
        node("Add", "add", &["r", "b"], &["y"], vec![]),
    ];
    // A constant added after a ReLU is no bias of the Gemm: an affine node of its own.
    let float = import_onnx(write(
        "add-after-relu.onnx",
        &model(add_after_relu, dense_inits(), &[1, 2]),
    ))
    .expect("an Add of a constant after a ReLU imports");
    assert_eq!(float.nodes.len(), 2);
    assert!(matches!(float.nodes[1].op, zkinfer_prover::FloatOp::Affine { .. }));
    // A product of two computed tensors whose dimensions do not chain: [1, 2] · [1, 2].
    let not_chained = vec![node("MatMul", "mm", &["x", "x"], &["y"], vec![])];
    assert!(
        matches!(graph(not_chained), ProverError::UnsupportedGraph { reason } if reason.contains("last dimension"))
    );
    let wrong_width = vec![node("Gemm", "fc", &["x", "w3", "b"], &["y"], vec![])];
    let mut inits = dense_inits();
    inits.push(tensor("w3", &[3, 2], &[0.0; 6]));
    assert!(matches!(
        import_err(wrong_width, inits),
        ProverError::UnsupportedGraph { .. }
    ));
    let dangling = vec![node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![])];
    assert!(matches!(graph(dangling), ProverError::UnsupportedGraph { reason } if reason.contains("output")));
}

#[test]
fn garbage_truncated_and_missing_files_are_errors_not_panics() {
    let good = gemm_model(&weights(5));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let garbage: Vec<u8> = (0..500).map(|_| rng.gen()).collect();
    let mut cases = vec![
        ("garbage", garbage),
        ("empty", vec![]),
        ("text", b"not an onnx file\n".to_vec()),
    ];
    for cut in (0..good.len()).step_by(37).chain([good.len() - 1]) {
        cases.push(("truncated", good[..cut].to_vec()));
    }
    for (what, bytes) in cases {
        let path = write("broken.onnx", &bytes);
        let err = import_onnx(&path).unwrap_err();
        assert!(
            matches!(&err, ProverError::MalformedOnnx { path: p, .. } if *p == path),
            "{what} ({} bytes): {err}",
            bytes.len()
        );
        assert!(
            matches!(float_reference(&path), Err(ProverError::MalformedOnnx { .. })),
            "{what}"
        );
    }
    let missing = Path::new("/nonexistent/model.onnx");
    assert!(matches!(import_onnx(missing), Err(ProverError::Io { .. })));
}

#[test]
fn tiny_model_end_to_end() {
    let path = write("e2e.onnx", &gemm_model(&weights(7)));
    let float = import_onnx(&path).unwrap();
    let calibration = random_inputs(8, 200, 6);
    let q = quantize(&float, &calibration).unwrap();
    let zkm = path.with_extension("zkm");
    save_model(&zkm, &q).unwrap();
    assert_eq!(load_model(&zkm).unwrap(), q);
    let test = random_inputs(9, 100, 6);
    let labels = test.iter().map(|x| argmax(&float.forward(x).unwrap())).collect();
    let report = accuracy_report(
        &path,
        &q,
        &Dataset {
            inputs: test,
            labels: Some(labels),
            targets: None,
            row_labels: None,
        },
    )
    .unwrap();
    assert_eq!(report.samples, 100);
    assert_eq!(report.float_top1, Some(1.0));
    assert!(report.top1_agreement >= 0.9, "{report}");
    assert!(report.max_abs_error < 0.1 * q.output_scale() * 127.0, "{report}");
    let err = quantize_input(&q, &[0.0; 5]).unwrap_err();
    assert!(matches!(err, ProverError::WrongInputLength { expected: 6, found: 5 }));
}

fn argmax(v: &[f32]) -> usize {
    zkinfer_prover::accuracy::argmax(v)
}

// ---------------------------------------------------------------------------------- the trained digits MLP

fn digits(file: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/digits-mlp")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing; run models/train_digits_mlp.py (see models/README.md)",
        path.display()
    );
    path
}

/// The model with every name cleared, to compare the numbers of two exports.
fn unnamed(mut q: QuantizedModel) -> QuantizedModel {
    q.name.clear();
    q.layers.iter_mut().for_each(|l| {
        l.name.clear();
        l.op_type.clear();
    });
    q
}

#[test]
fn digits_mlp_gemm_and_matmul_exports_quantize_identically() {
    let calibration = Dataset::load(digits("calibration.json")).unwrap();
    let gemm: FloatModel = import_onnx(digits("model.onnx")).unwrap();
    let matmul = import_onnx(digits("model-matmul.onnx")).unwrap();
    assert_eq!(gemm.input_shape, [1, 64]);
    let shape: Vec<_> = dense_layers(&gemm).iter().map(|l| (l.0 .1, l.0 .2, l.0 .3)).collect();
    assert_eq!(shape, [(64, 32, true), (32, 10, false)]);
    assert_eq!(dense_layers(&gemm)[0].0 .0, "/fc1/Gemm");
    let q_gemm = quantize(&gemm, &calibration.inputs).unwrap();
    let q_matmul = quantize(&matmul, &calibration.inputs).unwrap();
    // The Flatten folds into the first layer's taps: two linear layers, 64 → 32 → 10.
    let linear = |op: &Op| matches!(op, Op::Linear(l) if l.groups.len() == 1);
    assert!(
        q_gemm.layers.iter().all(|l| linear(&l.op)),
        "{:?}",
        q_gemm.layers.iter().map(|l| &l.op_type).collect::<Vec<_>>()
    );
    assert_eq!(
        q_gemm.layers.iter().map(|l| l.output_len()).collect::<Vec<_>>(),
        [32, 10]
    );
    assert_eq!(unnamed(q_gemm), unnamed(q_matmul));
}

#[test]
fn digits_mlp_int8_keeps_float_accuracy() {
    let onnx = digits("model.onnx");
    let float = import_onnx(&onnx).unwrap();
    let calibration = Dataset::load(digits("calibration.json")).unwrap();
    let test = Dataset::load(digits("test.json")).unwrap();
    assert_eq!((test.len(), test.input_len()), (360, 64));

    let reference = float_reference(&onnx).unwrap();
    for x in test.inputs.iter().take(50) {
        assert_close(&float.forward(x).unwrap(), &reference.run(x).unwrap(), 1e-5);
    }

    let q = quantize(&float, &calibration.inputs).unwrap();
    let report = accuracy_report(&onnx, &q, &test).unwrap();
    println!("{report}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(digits("metrics.json")).unwrap()).unwrap();
    let float_top1 = report.float_top1.unwrap();
    assert!(
        (float_top1 - metrics["float_test_accuracy"].as_f64().unwrap()).abs() < 1e-9,
        "{report}"
    );
    assert!(report.top1_agreement >= 0.95, "{report}");
    assert!((report.int8_top1.unwrap() - float_top1).abs() <= 0.02, "{report}");

    // The first test sample (input.json) is a 7; the int8 model says so too.
    let one = Dataset::load(digits("input.json")).unwrap();
    let y = infer(&q, &quantize_input(&q, &one.inputs[0]).unwrap()).unwrap();
    assert_eq!(argmax(&dequantize_output(&q, &y)), 7);
    assert_eq!(argmax(&reference.run(&one.inputs[0]).unwrap()), 7);
}
