//! Linear layers applied to every token of a sequence (`MatMul` of a `[1, T, F]` tensor by a constant weight, the
//! projections and MLPs of a transformer), end to end: import next to tract, one shared kernel set over `T`
//! positions (a matrix product that Freivalds' test checks with `P = T`), int8 accuracy against float per token,
//! the circuit bit-exact with the native engine with and without Freivalds, every kind of tampered cell rejected,
//! a real proof that verifies and one for another nonce that does not; and the shapes that stay refused. Also
//! `ReduceMean` (over the tokens, over the features, over everything; `axes` as an attribute or an input), and
//! `Split`/`Slice`, the data movement of attention heads; Add, Sub and Mul of two computed tensors, broadcast;
//! and the decomposed layer norm of older exporters (Pow by 2, Sqrt, Div of two tensors through a reciprocal).

mod common;
#[path = "../prover/tests/onnx/mod.rs"]
mod onnx;

use std::collections::BTreeSet;

use onnx::{attr_int, attr_ints, model, model_at, node, random_inputs, random_values, tensor, tensor_i64, write};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::assign::CellKind;
use zkinfer_circuits::chips::freivalds::product_shape;
use zkinfer_circuits::model::{Op, QuantizedModel};
use zkinfer_circuits::{layout, CircuitParams, Fr};
use zkinfer_prover::{
    accuracy_report, dequantize_output, float_reference, import_onnx, infer_batch, quantize, quantize_input, setup,
    Dataset, FloatModel, FloatOp, ProverError, SrsSource,
};
use zkinfer_verifier::{verify_bundle, Expectations};

/// Tokens.
const T: usize = 8;
/// Features in.
const F: usize = 16;
/// Hidden width.
const H: usize = 24;
/// Features out.
const O: usize = 6;

/// `x [1, T, F] → MatMul(F→H)+Add → Relu → MatMul(H→12)+Add → Sigmoid → MatMul(12→O)+Add → y [1, T, O]`, a
/// token-wise MLP as `torch.onnx` exports `nn.Linear` on a `[batch, seq, features]` tensor.
fn token_mlp(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nodes = vec![
        node("MatMul", "fc1", &["x", "w1"], &["h1"], vec![]),
        node("Add", "fc1_bias", &["h1", "b1"], &["a1"], vec![]),
        node("Relu", "act1", &["a1"], &["r1"], vec![]),
        node("MatMul", "fc2", &["r1", "w2"], &["h2"], vec![]),
        node("Add", "fc2_bias", &["h2", "b2"], &["a2"], vec![]),
        node("Sigmoid", "act2", &["a2"], &["s2"], vec![]),
        node("MatMul", "fc3", &["s2", "w3"], &["h3"], vec![]),
        node("Add", "fc3_bias", &["h3", "b3"], &["y"], vec![]),
    ];
    let (f, h, o) = (F as i64, H as i64, O as i64);
    let inits = vec![
        tensor("w1", &[f, h], &random_values(&mut rng, F * H, 0.5)),
        tensor("b1", &[h], &random_values(&mut rng, H, 0.3)),
        tensor("w2", &[h, 12], &random_values(&mut rng, H * 12, 0.5)),
        tensor("b2", &[12], &random_values(&mut rng, 12, 0.3)),
        tensor("w3", &[12, o], &random_values(&mut rng, 12 * O, 0.8)),
        tensor("b3", &[o], &random_values(&mut rng, O, 0.3)),
    ];
    model(nodes, inits, &[1, T as i64, f])
}

/// The index of the largest value of each token's `O` outputs.
fn argmax_per_token(y: &[f32]) -> Vec<usize> {
    y.chunks_exact(O).map(zkinfer_prover::accuracy::argmax).collect()
}

/// The quantized model of `float` (calibrated on random inputs), one random input and its native outputs.
fn quantized_sample(float: &FloatModel, seed: u64) -> (QuantizedModel, Vec<f32>, Vec<i64>, Vec<i64>) {
    let model = quantize(float, &random_inputs(seed, 100, T * F, 2.0)).expect("quantize");
    let x = random_inputs(seed + 1, 1, T * F, 2.0).remove(0);
    let input = quantize_input(&model, &x).unwrap();
    let expected = infer_batch(&model, std::slice::from_ref(&input))
        .expect("native")
        .remove(0);
    (model, x, input, expected)
}

/// Largest |dequantized int8 output − float output| on `x`, relative to the largest float output.
fn relative_error(float: &FloatModel, model: &QuantizedModel, x: &[f32], q: &[i64]) -> f32 {
    let (want, got) = (float.forward(x).unwrap(), dequantize_output(model, q));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn a_token_wise_mlp_imports_quantizes_proves_and_verifies() {
    let path = write("token-mlp.onnx", &token_mlp(11));
    let float = import_onnx(&path).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["MatMul+Add+Relu", "MatMul+Add", "Sigmoid", "MatMul+Add"]);
    for n in &float.nodes {
        if let FloatOp::Dense(d) = &n.op {
            assert_eq!(d.positions, T, "{}: one weight matrix applied to every token", n.name);
        }
    }
    let reference = float_reference(&path).expect("tract");
    for x in random_inputs(12, 10, T * F, 2.0) {
        onnx::assert_close(
            &float.forward(&x).expect("forward"),
            &reference.run(&x).expect("tract"),
            1e-4,
        );
    }

    let model = quantize(&float, &random_inputs(13, 200, T * F, 2.0)).expect("quantize");
    let products: Vec<usize> = (model.layers.iter().enumerate())
        .filter_map(|(i, l)| match &l.op {
            Op::Linear(lin) => {
                let shape = product_shape(lin).expect("a token-wise layer is a matrix product");
                assert_eq!(shape.positions, T, "layer {i}");
                Some(i)
            }
            _ => None,
        })
        .collect();
    assert_eq!(products.len(), 3, "three linear layers");

    // Int8 against float, per token: the same argmax on nearly every token, a small output error.
    let test = random_inputs(14, 100, T * F, 2.0);
    let inputs: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&model, x).unwrap()).collect();
    let native = infer_batch(&model, &inputs).expect("native");
    let (mut agree, mut tokens) = (0, 0);
    for (x, q) in test.iter().zip(&native) {
        let want = float.forward(x).unwrap();
        let got = dequantize_output(&model, q);
        agree += (argmax_per_token(&want).iter().zip(argmax_per_token(&got)))
            .filter(|(a, b)| **a == *b)
            .count();
        tokens += T;
    }
    let agreement = agree as f64 / tokens as f64;
    eprintln!("token-wise MLP: per-token top-1 agreement {agreement:.4} on {tokens} tokens");
    assert!(agreement >= 0.9, "per-token agreement {agreement}");
    // `compile`'s report gives the same per-row figure (against tract's float outputs).
    let dataset = Dataset {
        inputs: test.clone(),
        labels: None,
        targets: None,
        row_labels: None,
    };
    let report = accuracy_report(&path, &model, &dataset).expect("accuracy");
    let rows = report
        .row_top1_agreement
        .expect("a per-row agreement for a [T, O] output");
    assert_eq!((rows.rows, rows.row_len), (tokens, O));
    assert!((rows.agreement - agreement).abs() <= 0.01, "{report}");

    // Bit-exact, through the planner's layout and with every token-wise layer checked by Freivalds' test; every
    // kind of cell tampered with is rejected.
    let planned = CircuitParams::for_model(&model);
    let freivalds = CircuitParams {
        freivalds_layers: products.iter().copied().collect::<BTreeSet<_>>(),
        freivalds_widths: layout::window_widths(&model, &products.iter().copied().collect()),
        ..planned.clone()
    };
    let mac_only = CircuitParams {
        freivalds_layers: BTreeSet::new(),
        freivalds_widths: BTreeSet::new(),
        ..planned.clone()
    };
    for (name, params) in [
        ("planned", planned),
        ("freivalds", freivalds),
        ("multiply-accumulate", mac_only),
    ] {
        let kinds = common::assert_bit_exact(name, &model, params.clone(), (&inputs[0], &native[0]), &[]);
        assert!(kinds.contains(&CellKind::Output), "{name}: {kinds:?}");
        if name == "freivalds" {
            assert!(
                kinds.contains(&CellKind::FreivaldsSum),
                "{name}: no Freivalds check in {kinds:?}"
            );
        }
        for (input, expected) in inputs.iter().zip(&native).skip(1).take(2) {
            let s = common::synthesize_with(&model, params.clone(), input, expected);
            assert_eq!(&s.outputs, expected, "{name}: circuit and native inference differ");
        }
    }

    // A real proof verifies; one for another nonce, or claiming another output, does not.
    let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
    let (proven, expect) = common::prove_and_check("token-wise MLP", &model, &keys, &test[0], &inputs[0], &native[0]);
    let other_nonce = Expectations {
        nonce: Some(expect.nonce.expect("pinned") + Fr::from(1u64)),
        ..expect.clone()
    };
    assert!(
        verify_bundle(&keys.verifier, &proven.bundle, &other_nonce).is_err(),
        "another nonce accepted"
    );
}

#[test]
fn a_prelude_that_changes_from_token_to_token_becomes_its_own_layer() {
    // `x · c` with `c` different at every element of `[T, F]`: it cannot fold into the shared weights of the
    // token-wise MatMul after it, so it stays an affine node (and is still computed exactly in float).
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (f, h) = (F as i64, H as i64);
    let bytes = model(
        vec![
            node("Mul", "scale", &["x", "c"], &["xs"], vec![]),
            node("MatMul", "fc", &["xs", "w"], &["y"], vec![]),
        ],
        vec![
            tensor("c", &[1, T as i64, f], &random_values(&mut rng, T * F, 1.0)),
            tensor("w", &[f, h], &random_values(&mut rng, F * H, 0.5)),
        ],
        &[1, T as i64, f],
    );
    let path = write("token-prelude.onnx", &bytes);
    let float = import_onnx(&path).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        ["Mul", "MatMul"],
        "a per-element prelude must not fold into shared weights"
    );
    let reference = float_reference(&path).expect("tract");
    for x in random_inputs(22, 5, T * F, 2.0) {
        onnx::assert_close(&float.forward(&x).unwrap(), &reference.run(&x).unwrap(), 1e-4);
    }
    // The same prelude constant at every token folds away.
    let per_feature = random_values(&mut rng, F, 1.0);
    let bytes = model(
        vec![
            node("Mul", "scale", &["x", "c"], &["xs"], vec![]),
            node("MatMul", "fc", &["xs", "w"], &["y"], vec![]),
        ],
        vec![
            tensor("c", &[f], &per_feature),
            tensor("w", &[f, h], &random_values(&mut rng, F * H, 0.5)),
        ],
        &[1, T as i64, f],
    );
    let path = write("token-prelude-shared.onnx", &bytes);
    let float = import_onnx(&path).expect("import");
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Mul+MatMul"]);
    let reference = float_reference(&path).expect("tract");
    for x in random_inputs(23, 5, T * F, 2.0) {
        onnx::assert_close(&float.forward(&x).unwrap(), &reference.run(&x).unwrap(), 1e-4);
    }
}

#[test]
fn a_matmul_whose_features_do_not_match_is_refused_with_its_name() {
    let bytes = model(
        vec![node("MatMul", "proj", &["x", "w"], &["y"], vec![])],
        vec![tensor("w", &[F as i64 + 1, 4], &vec![0.5; (F + 1) * 4])],
        &[1, T as i64, F as i64],
    );
    match import_onnx(write("token-mismatch.onnx", &bytes)) {
        Err(ProverError::UnsupportedGraph { reason }) => {
            assert!(
                reason.contains("`proj`") && reason.contains("expects 17 features"),
                "{reason}"
            );
        }
        other => panic!("expected an unsupported-graph error, got {other:?}"),
    }
}

/// `x [1, T, F] → MatMul(F→H)+Add → Relu → ReduceMean → … → Gemm(→4) → y`, with the reduction given by `reduce`
/// (its nodes end in `m`) and `reduced` elements left for the head.
fn pooled(seed: u64, opset: i64, reduce: Vec<onnx::Msg>, mut extra: Vec<onnx::Msg>, reduced: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (f, h) = (F as i64, H as i64);
    let mut nodes = vec![
        node("MatMul", "fc1", &["x", "w1"], &["h1"], vec![]),
        node("Add", "fc1_bias", &["h1", "b1"], &["a1"], vec![]),
        node("Relu", "act1", &["a1"], &["r1"], vec![]),
    ];
    nodes.extend(reduce);
    nodes.push(node("Reshape", "flat", &["m", "flat_shape"], &["mf"], vec![]));
    nodes.push(node(
        "Gemm",
        "head",
        &["mf", "w2", "b2"],
        &["y"],
        vec![attr_int("transB", 1)],
    ));
    let mut inits = vec![
        tensor("w1", &[f, h], &random_values(&mut rng, F * H, 0.5)),
        tensor("b1", &[h], &random_values(&mut rng, H, 0.3)),
        tensor_i64("flat_shape", &[1, reduced as i64]),
        tensor("w2", &[4, reduced as i64], &random_values(&mut rng, 4 * reduced, 0.8)),
        tensor("b2", &[4], &random_values(&mut rng, 4, 0.3)),
    ];
    inits.append(&mut extra);
    model_at(opset, nodes, inits, &[1, T as i64, f])
}

#[test]
fn reduce_mean_over_tokens_features_or_everything_matches_tract_and_the_circuit() {
    let over_tokens = |keepdims| {
        node(
            "ReduceMean",
            "pool",
            &["r1"],
            &["m"],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", keepdims)],
        )
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("over the tokens", pooled(31, 17, vec![over_tokens(0)], vec![], H)),
        ("over the tokens, kept", pooled(32, 17, vec![over_tokens(1)], vec![], H)),
        (
            "over the features (axes as an input, opset 18)",
            pooled(
                33,
                18,
                vec![node("ReduceMean", "pool", &["r1", "axes"], &["m"], vec![])],
                vec![tensor_i64("axes", &[-1])],
                T,
            ),
        ),
        (
            "over everything",
            pooled(
                34,
                17,
                vec![node(
                    "ReduceMean",
                    "pool",
                    &["r1"],
                    &["m"],
                    vec![attr_int("keepdims", 0)],
                )],
                vec![],
                1,
            ),
        ),
    ];
    for (name, bytes) in cases {
        let float = onnx::import_checked(name, &bytes, T * F, 1e-4);
        let (model, x, input, expected) = quantized_sample(&float, 36);
        let params = CircuitParams::for_model(&model);
        common::assert_bit_exact(name, &model, params, (&input, &expected), &[CellKind::Output]);
        // Dequantized, the int8 model stays close to the float one.
        let error = relative_error(&float, &model, &x, &expected);
        assert!(error <= 0.1, "{name}: int8 output off by {error} of the largest output");
    }
}

#[test]
fn reduce_mean_with_an_axis_out_of_range_is_refused_with_its_name() {
    let bytes = model(
        vec![node(
            "ReduceMean",
            "pool",
            &["x"],
            &["y"],
            vec![attr_ints("axes", &[3])],
        )],
        vec![],
        &[1, T as i64, F as i64],
    );
    match import_onnx(write("reduce-mean-bad.onnx", &bytes)) {
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("pool") && message.contains("axes"), "{message}");
        }
        Ok(_) => panic!("an axis beyond the rank was accepted"),
    }
}

/// `x [1, T, F] → MatMul(F→2·12) → Split(last axis: q, k) → Mul(q, k) → Slice(tokens 1.., every feature) →
/// Slice(the features backwards) → Reshape → Gemm(→4) → y`: the data movement of attention heads.
fn split_and_sliced(seed: u64, opset: i64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f = F as i64;
    let split = if opset >= 18 {
        node(
            "Split",
            "heads",
            &["h"],
            &["q", "k"],
            vec![attr_int("axis", -1), attr_int("num_outputs", 2)],
        )
    } else {
        node(
            "Split",
            "heads",
            &["h", "sizes"],
            &["q", "k"],
            vec![attr_int("axis", 2)],
        )
    };
    let nodes = vec![
        node("MatMul", "proj", &["x", "w1"], &["h"], vec![]),
        split,
        node("Mul", "gate", &["q", "k"], &["g"], vec![]),
        node(
            "Slice",
            "later_tokens",
            &["g", "s_start", "s_end", "s_axes"],
            &["g1"],
            vec![],
        ),
        node(
            "Slice",
            "backwards",
            &["g1", "b_start", "b_end", "b_axes", "b_steps"],
            &["g2"],
            vec![],
        ),
        node("Reshape", "flat", &["g2", "flat_shape"], &["gf"], vec![]),
        node("Gemm", "head", &["gf", "w2", "b2"], &["y"], vec![attr_int("transB", 1)]),
    ];
    let kept = (T - 1) * 12;
    let inits = vec![
        tensor("w1", &[f, 24], &random_values(&mut rng, F * 24, 0.5)),
        tensor_i64("sizes", &[12, 12]),
        tensor_i64("s_start", &[1]),
        tensor_i64("s_end", &[i64::MAX]),
        tensor_i64("s_axes", &[1]),
        tensor_i64("b_start", &[-1]),
        tensor_i64("b_end", &[i64::MIN]),
        tensor_i64("b_axes", &[-1]),
        tensor_i64("b_steps", &[-1]),
        tensor_i64("flat_shape", &[1, kept as i64]),
        tensor("w2", &[4, kept as i64], &random_values(&mut rng, 4 * kept, 0.3)),
        tensor("b2", &[4], &random_values(&mut rng, 4, 0.3)),
    ];
    model_at(opset, nodes, inits, &[1, T as i64, f])
}

#[test]
fn split_and_slice_move_data_as_tract_does_and_prove_bit_exact() {
    for opset in [17, 18] {
        let name = format!("opset {opset}");
        let float = onnx::import_checked(&name, &split_and_sliced(41, opset), T * F, 1e-4);
        let (model, _, input, expected) = quantized_sample(&float, 43);
        let kinds = [CellKind::MulOperand, CellKind::LayerInput];
        common::assert_bit_exact(
            &name,
            &model,
            CircuitParams::for_model(&model),
            (&input, &expected),
            &kinds,
        );
    }
}

#[test]
fn slices_and_splits_that_cannot_be_read_are_refused_with_their_names() {
    let shape = [1, T as i64, F as i64];
    let refused = |nodes, inits| match import_onnx(write("bad-slice.onnx", &model(nodes, inits, &shape))) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    // Starts computed by the graph, not constants.
    let message = refused(
        vec![node("Slice", "dynamic", &["x", "x", "end"], &["y"], vec![])],
        vec![tensor_i64("end", &[2])],
    );
    assert!(message.contains("dynamic"), "{message}");
    // A step of zero.
    let message = refused(
        vec![node("Slice", "stuck", &["x", "s", "e", "a", "st"], &["y"], vec![])],
        vec![
            tensor_i64("s", &[0]),
            tensor_i64("e", &[2]),
            tensor_i64("a", &[1]),
            tensor_i64("st", &[0]),
        ],
    );
    assert!(message.contains("stuck") && message.contains("steps"), "{message}");
    // Parts that do not add up to the axis.
    let message = refused(
        vec![node(
            "Split",
            "uneven",
            &["x", "sizes"],
            &["y", "z"],
            vec![attr_int("axis", 2)],
        )],
        vec![tensor_i64("sizes", &[3, 4])],
    );
    assert!(message.contains("uneven") && message.contains("add up"), "{message}");
}

/// A `ReduceMean` node over `axis`, keeping it (as 1) or not.
fn mean_node(name: &str, input: &str, output: &str, axis: i64, keep: i64) -> onnx::Msg {
    let attrs = vec![attr_ints("axes", &[axis]), attr_int("keepdims", keep)];
    node("ReduceMean", name, &[input], &[output], attrs)
}

/// `x [1, T, F] → MatMul(F→H)+Add → h → body → (its output `last`, [1, T, H]) → mean over the tokens → Gemm(H→4)
/// → y`, with `extra` constants for the body.
fn block(seed: u64, body: Vec<onnx::Msg>, last: &str, mut extra: Vec<onnx::Msg>) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (f, h) = (F as i64, H as i64);
    let mut nodes = vec![
        node("MatMul", "fc1", &["x", "w1"], &["h0"], vec![]),
        node("Add", "fc1_bias", &["h0", "b1"], &["h"], vec![]),
    ];
    nodes.extend(body);
    nodes.push(mean_node("pool", last, "pooled", 1, 0));
    nodes.push(node(
        "Gemm",
        "head",
        &["pooled", "w2", "b2"],
        &["y"],
        vec![attr_int("transB", 1)],
    ));
    let mut inits = vec![
        tensor("w1", &[f, h], &random_values(&mut rng, F * H, 0.5)),
        tensor("b1", &[h], &random_values(&mut rng, H, 0.3)),
        tensor("w2", &[4, h], &random_values(&mut rng, 4 * H, 0.8)),
        tensor("b2", &[4], &random_values(&mut rng, 4, 0.3)),
    ];
    inits.append(&mut extra);
    model(nodes, inits, &[1, T as i64, f])
}

/// What a decomposed layer norm and a residual do with two computed tensors of different shapes, in a [`block`]:
/// `c = h − mean(h)` over the features (`[1, T, 1]` broadcast), `g = c · σ(mean)`, `r = g + h`,
/// `q = mean over tokens (`[1, 1, H]`) − r`.
fn broadcasting(seed: u64) -> Vec<u8> {
    let body = vec![
        mean_node("feature_mean", "h", "m", -1, 1),
        node("Sub", "centre", &["h", "m"], &["c"], vec![]),
        node("Sigmoid", "gate_act", &["m"], &["s"], vec![]),
        node("Mul", "gate", &["c", "s"], &["g"], vec![]),
        node("Add", "residual", &["g", "h"], &["r"], vec![]),
        mean_node("token_mean", "h", "p", 1, 1),
        node("Sub", "against_mean", &["p", "r"], &["q"], vec![]),
    ];
    block(seed, body, "q", vec![])
}

#[test]
fn add_sub_and_mul_of_two_tensors_broadcast_as_tract_does_and_prove_bit_exact() {
    let float = onnx::import_checked("broadcasting", &broadcasting(51), T * F, 1e-4);
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    for op in ["Sub", "Mul", "Add", "Expand"] {
        assert!(ops.contains(&op), "no {op} in {ops:?}");
    }
    let (model, x, input, expected) = quantized_sample(&float, 53);
    let kinds = [CellKind::LayerInput, CellKind::MulOperand, CellKind::Output];
    common::assert_bit_exact(
        "broadcasting",
        &model,
        CircuitParams::for_model(&model),
        (&input, &expected),
        &kinds,
    );
    // Dequantized, the int8 model stays close to the float one.
    let error = relative_error(&float, &model, &x, &expected);
    assert!(error <= 0.15, "int8 output off by {error} of the largest output");
}

#[test]
fn operands_that_do_not_broadcast_are_refused_with_the_node_and_shapes() {
    // `x − mean(x)` over `axis`, the mean not kept: `[1, T, F] − [1, F]` broadcasts (the mean over the tokens taken
    // from every token); `[1, T, F] − [1, T]` does not.
    let centred = |axis: i64| {
        let nodes = vec![
            mean_node("m", "x", "m", axis, 0),
            node("Sub", "misfit", &["x", "m"], &["y"], vec![]),
        ];
        model(nodes, vec![], &[1, T as i64, F as i64])
    };
    assert!(import_onnx(write("broadcast-ok.onnx", &centred(1))).is_ok());
    let bytes = centred(2);
    match import_onnx(write("broadcast-bad.onnx", &bytes)) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("misfit") && message.contains("do not broadcast") && message.contains("[1, 8]"),
                "{message}"
            );
        }
        Ok(_) => panic!("operands that do not broadcast were accepted"),
    }
}

/// Layer norm over the features as older exporters decompose it, in a [`block`]:
/// `ReduceMean, Sub, Pow, ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β`; with `shared`, the centred values are also
/// added to the result (so they are read outside the pattern).
fn decomposed_layer_norm(seed: u64, shared: bool) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let body = vec![
        mean_node("ln_mean", "h", "mu", -1, 1),
        node("Sub", "ln_centre", &["h", "mu"], &["c"], vec![]),
        node("Pow", "ln_square", &["c", "two"], &["sq"], vec![]),
        mean_node("ln_var", "sq", "var", -1, 1),
        node("Add", "ln_eps", &["var", "eps"], &["ve"], vec![]),
        node("Sqrt", "ln_std", &["ve"], &["sd"], vec![]),
        node("Div", "ln_norm", &["c", "sd"], &["nrm"], vec![]),
        node("Mul", "ln_gamma", &["nrm", "gamma"], &["sc"], vec![]),
        node(
            "Add",
            "ln_beta",
            &["sc", "beta"],
            &[if shared { "lb" } else { "ln" }],
            vec![],
        ),
    ];
    let mut body = body;
    if shared {
        body.push(node("Add", "ln_shared", &["lb", "c"], &["ln"], vec![]));
    }
    let extra = vec![
        onnx::scalar("two", 2.0),
        onnx::scalar("eps", 1e-5),
        tensor("gamma", &[H as i64], &random_values(&mut rng, H, 1.0)),
        tensor("beta", &[H as i64], &random_values(&mut rng, H, 0.2)),
    ];
    block(seed, body, "ln", extra)
}

#[test]
fn a_decomposed_layer_norm_imports_as_the_exact_layer_norm_and_proves_bit_exact() {
    let float = onnx::import_checked("decomposed layer norm", &decomposed_layer_norm(61, false), T * F, 1e-3);
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert!(ops.contains(&"LayerNormalization(decomposed)"), "{ops:?}");
    for op in ["Pow", "Sqrt", "Reciprocal", "Div"] {
        assert!(!ops.iter().any(|o| o.contains(op)), "{op} left in {ops:?}");
    }
    let (model, ..) = quantized_sample(&float, 63);
    assert!(model.layers.iter().any(|l| matches!(l.op, Op::LayerNorm(_))));
    let test = random_inputs(64, 50, T * F, 2.0);
    let inputs: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&model, x).unwrap()).collect();
    let native = infer_batch(&model, &inputs).expect("native");
    let (mut worst, mut agree) = (0f32, 0);
    for (x, q) in test.iter().zip(&native) {
        worst = worst.max(relative_error(&float, &model, x, q));
        let (want, got) = (float.forward(x).unwrap(), dequantize_output(&model, q));
        agree += usize::from(zkinfer_prover::accuracy::argmax(&want) == zkinfer_prover::accuracy::argmax(&got));
    }
    eprintln!("decomposed layer norm: worst relative output error {worst:.3}, top-1 agreement {agree}/50");
    assert!(
        worst < 0.15 && agree >= 45,
        "worst relative error {worst}, agreement {agree}/50"
    );
    let kinds = [CellKind::NormRoot, CellKind::NormSlack, CellKind::NormProduct];
    let params = CircuitParams::for_model(&model);
    common::assert_bit_exact(
        "decomposed layer norm",
        &model,
        params,
        (&inputs[0], &native[0]),
        &kinds,
    );
}

/// Where something else also reads an intermediate of the decomposed layer norm (here the centred values), the
/// pattern is left as it is (int8 `Sqrt` and `Reciprocal` tables), and still imports and proves.
#[test]
fn a_decomposed_layer_norm_whose_centred_values_are_read_elsewhere_keeps_its_tables() {
    let float = onnx::import_checked("shared layer norm", &decomposed_layer_norm(71, true), T * F, 1e-3);
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    for op in ["Sqrt", "Reciprocal"] {
        assert!(ops.iter().any(|o| o.contains(op)), "no {op} in {ops:?}");
    }
    assert!(!ops.iter().any(|o| o.starts_with("LayerNormalization")), "{ops:?}");
    let (model, _, input, expected) = quantized_sample(&float, 73);
    let kinds = [CellKind::TableInput, CellKind::TableOutput, CellKind::MulProduct];
    common::assert_bit_exact(
        "shared layer norm",
        &model,
        CircuitParams::for_model(&model),
        (&input, &expected),
        &kinds,
    );
}

#[test]
fn powers_other_than_a_square_are_refused_with_the_node() {
    let bytes = model(
        vec![node("Pow", "cube", &["x", "three"], &["y"], vec![])],
        vec![onnx::scalar("three", 3.0)],
        &[1, T as i64, F as i64],
    );
    match import_onnx(write("pow-3.onnx", &bytes)) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("cube") && message.contains("exponent of 2"),
                "{message}"
            );
        }
        Ok(_) => panic!("a cube was accepted"),
    }
}
