//! `MatMul` of two computed tensors, end to end: attention's `Q·Kᵀ` and `A·V` over several heads (the heads a
//! Reshape and Transpose of the projections), and a multi-query block whose one key head broadcasts over the query
//! heads. Import next to tract, one matrix-product layer per product with the heads as its products, int8 error
//! against float, the circuit bit-exact with the native engine with every kind of tampered cell and a wrong output
//! rejected, a real proof that verifies and one for another nonce that does not; and the shapes that are refused,
//! by name.

mod common;
#[path = "../prover/tests/onnx/mod.rs"]
mod onnx;

use onnx::{attr_int, attr_ints, model, node, random_inputs, random_values, tensor, tensor_i64, write};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::assign::CellKind;
use zkinfer_circuits::model::{Op, QuantizedModel};
use zkinfer_circuits::params::Chip;
use zkinfer_circuits::{CircuitParams, Fr};
use zkinfer_prover::{
    dequantize_output, import_onnx, infer_batch, quantize, quantize_input, setup, FloatModel, FloatOp, ProverError,
    SrsSource,
};
use zkinfer_verifier::{verify_bundle, Expectations};

/// Tokens.
const T: usize = 6;
/// Width.
const D: usize = 8;
/// Heads.
const H: usize = 2;
/// Width of a head.
const DH: usize = D / H;

/// How the attention weights are made from the scaled scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Weights {
    /// `Sigmoid` (no normalization).
    Sigmoid,
    /// `Softmax` over the last axis.
    Softmax,
    /// `Add` of a causal mask constant (0 on and below the diagonal, −∞ above), then `Softmax`.
    CausalAdd,
    /// `Where` of a constant causal condition between the scores and −1e9, then `Softmax`.
    CausalWhere,
}

/// `x [1, T, D]` → Q, K, V projections → heads (`Reshape [1, T, H, DH]`, `Transpose` to `[1, H, T, DH]`, K to
/// `[1, H, DH, T]`) → scores `Q·Kᵀ [1, H, T, T]` → `Mul` by `1/√DH` → `weights` → `A·V [1, H, T, DH]` → heads back
/// to `[1, T, D]` → output projection. With `multi_query`, one key head `[1, DH, T]` (K projected to `DH`
/// features and transposed) serves every query head: `[1, H, T, DH] · [1, DH, T]` broadcasts.
fn attention(seed: u64, multi_query: bool, weights: Weights) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (t, d, h, dh) = (T as i64, D as i64, H as i64, DH as i64);
    let k_width = if multi_query { DH } else { D };
    let mut nodes = vec![
        node("MatMul", "q_proj", &["x", "wq"], &["q"], vec![]),
        node("MatMul", "k_proj", &["x", "wk"], &["k"], vec![]),
        node("MatMul", "v_proj", &["x", "wv"], &["v"], vec![]),
        node("Reshape", "q_heads", &["q", "heads_shape"], &["q4"], vec![]),
        node(
            "Transpose",
            "q_t",
            &["q4"],
            &["qh"],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        ),
        node("Reshape", "v_heads", &["v", "heads_shape"], &["v4"], vec![]),
        node(
            "Transpose",
            "v_t",
            &["v4"],
            &["vh"],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        ),
    ];
    if multi_query {
        nodes.push(node(
            "Transpose",
            "k_t",
            &["k"],
            &["kh"],
            vec![attr_ints("perm", &[0, 2, 1])],
        ));
    } else {
        nodes.push(node("Reshape", "k_heads", &["k", "heads_shape"], &["k4"], vec![]));
        nodes.push(node(
            "Transpose",
            "k_t",
            &["k4"],
            &["kh"],
            vec![attr_ints("perm", &[0, 2, 3, 1])],
        ));
    }
    nodes.extend([
        node("MatMul", "scores", &["qh", "kh"], &["s"], vec![]),
        node("Mul", "scale", &["s", "inv_sqrt"], &["s2"], vec![]),
    ]);
    let causal = |i: usize, j: usize| j <= i;
    let mut inits = Vec::new();
    match weights {
        Weights::Sigmoid => nodes.push(node("Sigmoid", "weights", &["s2"], &["a"], vec![])),
        Weights::Softmax => nodes.push(node("Softmax", "weights", &["s2"], &["a"], vec![attr_int("axis", -1)])),
        Weights::CausalAdd => {
            let mask: Vec<f32> = (0..T * T)
                .map(|e| if causal(e / T, e % T) { 0.0 } else { f32::NEG_INFINITY })
                .collect();
            inits.push(tensor("causal", &[t, t], &mask));
            nodes.push(node("Add", "mask", &["s2", "causal"], &["s3"], vec![]));
            nodes.push(node("Softmax", "weights", &["s3"], &["a"], vec![]));
        }
        Weights::CausalWhere => {
            let condition: Vec<f32> = (0..T * T).map(|e| f32::from(u8::from(causal(e / T, e % T)))).collect();
            inits.push(onnx::tensor_bool("causal", &[1, 1, t, t], &condition));
            inits.push(tensor("minus_inf", &[], &[-1e9]));
            nodes.push(node("Where", "mask", &["causal", "s2", "minus_inf"], &["s3"], vec![]));
            nodes.push(node("Softmax", "weights", &["s3"], &["a"], vec![]));
        }
    }
    nodes.extend([
        node("MatMul", "mix", &["a", "vh"], &["o"], vec![]),
        node(
            "Transpose",
            "o_t",
            &["o"],
            &["o4"],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        ),
        node("Reshape", "o_merge", &["o4", "merge_shape"], &["om"], vec![]),
        node("MatMul", "out_proj", &["om", "wo"], &["y"], vec![]),
    ]);
    let kw = k_width as i64;
    inits.extend([
        tensor("wq", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("wk", &[d, kw], &random_values(&mut rng, D * k_width, 0.6)),
        tensor("wv", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("wo", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("inv_sqrt", &[], &[1.0 / (DH as f32).sqrt()]),
        tensor_i64("heads_shape", &[1, t, h, dh]),
        tensor_i64("merge_shape", &[1, t, d]),
    ]);
    model(nodes, inits, &[1, t, d])
}

/// Imports `bytes`, checking the float graph against tract on random inputs.
fn import_checked(name: &str, bytes: &[u8]) -> FloatModel {
    onnx::import_checked(name, bytes, T * D, 1e-4)
}

/// The matrix-product layers of `model`: `(name, products, m, n, p)`.
fn matmuls(model: &QuantizedModel) -> Vec<(String, usize, usize, usize, usize)> {
    (model.layers.iter())
        .filter_map(|l| match &l.op {
            Op::MatMul(mm) => Some((l.name.clone(), mm.products(), mm.rows, mm.inner, mm.columns)),
            _ => None,
        })
        .collect()
}

/// Mean and largest |dequantized output − float output| over `inputs`, relative to the mean and largest |float
/// output|.
fn relative_errors(float: &FloatModel, model: &QuantizedModel, inputs: &[Vec<f32>], q: &[Vec<i64>]) -> (f32, f32) {
    let (mut worst, mut scale, mut error_sum, mut output_sum) = (0f32, 1e-3f32, 0f32, 1e-3f32);
    for (x, q) in inputs.iter().zip(q) {
        let (want, got) = (float.forward(x).unwrap(), dequantize_output(model, q));
        for (a, b) in want.iter().zip(&got) {
            scale = scale.max(a.abs());
            worst = worst.max((a - b).abs());
            error_sum += (a - b).abs();
            output_sum += a.abs();
        }
    }
    (error_sum / output_sum, worst / scale)
}

/// Prints the int8 output error of `model` against `float` on `test` (`native`: its int8 outputs) and checks it:
/// small on average, the worst case an int8 output saturating on a test input beyond the calibrated range.
fn assert_int8_error(name: &str, float: &FloatModel, model: &QuantizedModel, test: &[Vec<f32>], native: &[Vec<i64>]) {
    let (mean, worst) = relative_errors(float, model, test, native);
    eprintln!(
        "{name}: int8 output error {:.1} % on average, {:.1} % at worst (of the largest output)",
        100.0 * mean,
        100.0 * worst
    );
    assert!(
        mean < 0.05 && worst < 0.3,
        "{name}: int8 error {mean} on average, {worst} at worst"
    );
}

/// The circuit of `model` with the planner's layout, which must have `chip`: bit-exact with the native engine on
/// the first four inputs, every kind of cell of the first tampered with rejected, `kinds` among them.
fn assert_proves_bit_exact(
    name: &str,
    model: &QuantizedModel,
    chip: Chip,
    kinds: &[CellKind],
    inputs: &[Vec<i64>],
    native: &[Vec<i64>],
) {
    let params = CircuitParams::for_model(model);
    assert!(params.has(chip), "{name}: {params:?}");
    let tampered = common::assert_bit_exact(name, model, params.clone(), (&inputs[0], &native[0]), &[]);
    for kind in kinds {
        assert!(tampered.contains(kind), "{name}: no {kind:?} in {tampered:?}");
    }
    for (input, expected) in inputs.iter().zip(native).skip(1).take(3) {
        let s = common::synthesize_with(model, params.clone(), input, expected);
        assert_eq!(&s.outputs, expected, "{name}: circuit and native inference differ");
    }
}

#[test]
fn multi_head_attention_products_import_quantize_prove_and_verify() {
    for (name, multi_query) in [("multi-head", false), ("multi-query", true)] {
        let float = import_checked(name, &attention(21, multi_query, Weights::Sigmoid));
        let model = quantize(&float, &random_inputs(22, 100, T * D, 2.0)).expect("quantize");
        assert_eq!(
            matmuls(&model),
            [("scores".to_string(), H, T, DH, T), ("mix".to_string(), H, T, T, DH)],
            "{name}: one layer per MatMul of two tensors, a product per head"
        );
        let test = random_inputs(23, 50, T * D, 2.0);
        let inputs: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&model, x).unwrap()).collect();
        let native = infer_batch(&model, &inputs).expect("native");
        assert_int8_error(name, &float, &model, &test, &native);
        let kinds = [CellKind::FreivaldsOperand, CellKind::FreivaldsSum, CellKind::Output];
        assert_proves_bit_exact(name, &model, Chip::MatMul, &kinds, &inputs, &native);
    }
}

#[test]
fn an_attention_proof_verifies_and_binds_its_nonce() {
    let float = import_checked("attention-proof", &attention(31, false, Weights::CausalAdd));
    let model = quantize(&float, &random_inputs(32, 100, T * D, 2.0)).expect("quantize");
    let x = random_inputs(33, 1, T * D, 2.0).remove(0);
    let input = quantize_input(&model, &x).unwrap();
    let expected = infer_batch(&model, std::slice::from_ref(&input))
        .expect("native")
        .remove(0);
    let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
    let (proven, expect) = common::prove_and_check("attention", &model, &keys, &x, &input, &expected);
    let other_nonce = Expectations {
        nonce: Some(expect.nonce.expect("pinned") + Fr::from(1u64)),
        ..expect.clone()
    };
    assert!(
        verify_bundle(&keys.verifier, &proven.bundle, &other_nonce).is_err(),
        "another nonce accepted"
    );
}

/// Imports a model whose graph is `nodes` over `x [1, T, D]` (initializers `inits`); the error it must give.
fn refused(nodes: Vec<onnx::Msg>, inits: Vec<onnx::Msg>) -> String {
    let path = write("refused.onnx", &model(nodes, inits, &[1, T as i64, D as i64]));
    match import_onnx(&path) {
        Err(e @ ProverError::UnsupportedGraph { .. }) => e.to_string(),
        other => panic!("not refused as a graph error: {other:?}"),
    }
}

#[test]
fn products_of_tensors_that_do_not_multiply_are_refused_with_their_names() {
    // [1, T, D] · [1, T, D]: D ≠ T, the key was not transposed.
    let message = refused(
        vec![node("MatMul", "untransposed", &["x", "x"], &["y"], vec![])],
        vec![],
    );
    assert!(
        message.contains("untransposed") && message.contains("last dimension"),
        "{message}"
    );
    // A vector operand: [1, T, D] · [D] (a mean over the tokens).
    let message = refused(
        vec![
            node(
                "ReduceMean",
                "mean",
                &["x"],
                &["m"],
                vec![attr_ints("axes", &[0, 1]), attr_int("keepdims", 0)],
            ),
            node("MatMul", "by_vector", &["x", "m"], &["y"], vec![]),
        ],
        vec![],
    );
    assert!(message.contains("by_vector") && message.contains("rank 2"), "{message}");
    // Batch dimensions that do not broadcast: [1, 2, T, 4] · [1, 3, 4, 3].
    let message = refused(
        vec![
            node("Reshape", "two", &["x", "s2"], &["a"], vec![]),
            node("Slice", "cut", &["x", "starts", "ends", "axes"], &["c"], vec![]),
            node("Reshape", "three", &["c", "s3"], &["b"], vec![]),
            node("MatMul", "heads_mismatch", &["a", "b"], &["y"], vec![]),
        ],
        vec![
            tensor_i64("s2", &[1, 2, T as i64, 4]),
            tensor_i64("starts", &[0]),
            tensor_i64("ends", &[6]),
            tensor_i64("axes", &[2]),
            tensor_i64("s3", &[1, 3, 4, 3]),
        ],
    );
    assert!(
        message.contains("heads_mismatch") && message.contains("broadcast"),
        "{message}"
    );
}

#[test]
fn softmax_attention_with_causal_masks_proves_bit_exact() {
    for (name, weights) in [
        ("softmax", Weights::Softmax),
        ("causal-add", Weights::CausalAdd),
        ("causal-where", Weights::CausalWhere),
    ] {
        let float = import_checked(name, &attention(41, false, weights));
        let softmax: Vec<&zkinfer_prover::FloatNode> = float
            .nodes
            .iter()
            .filter(|n| matches!(n.op, FloatOp::Softmax { .. }))
            .collect();
        assert_eq!(softmax.len(), 1, "{name}");
        let FloatOp::Softmax { row_len, keep } = &softmax[0].op else {
            unreachable!("a softmax")
        };
        assert_eq!(*row_len, T, "{name}");
        let masked = keep.iter().filter(|k| !**k).count();
        let expected = if weights == Weights::Softmax {
            0
        } else {
            H * T * (T - 1) / 2
        };
        assert_eq!(masked, expected, "{name}: masked positions");

        let model = quantize(&float, &random_inputs(42, 100, T * D, 2.0)).expect("quantize");
        let test = random_inputs(43, 50, T * D, 2.0);
        let inputs: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&model, x).unwrap()).collect();
        let native = infer_batch(&model, &inputs).expect("native");
        // Masked weights are exactly 0 and every row of weights sums to about 1 (127 at scale 1/127).
        let weights_layer = (model.layers.iter().position(|l| matches!(l.op, Op::Softmax(_)))).expect("softmax");
        let tensors = model.eval_reference(&inputs[0]).expect("reference");
        let Op::Softmax(sm) = &model.layers[weights_layer].op else {
            unreachable!("a softmax")
        };
        for (row, keep) in tensors[weights_layer + 1].chunks(T).zip(sm.keep.chunks(T)) {
            let total: i64 = row.iter().sum();
            assert!(
                (120..=134).contains(&total),
                "{name}: a row of weights sums to {total}/127"
            );
            assert!(
                row.iter().zip(keep).all(|(&p, &k)| k || p == 0),
                "{name}: a masked weight"
            );
        }
        assert_int8_error(name, &float, &model, &test, &native);
        let kinds = [CellKind::SoftmaxExp, CellKind::SoftmaxSum, CellKind::SoftmaxBound];
        assert_proves_bit_exact(name, &model, Chip::Softmax, &kinds, &inputs, &native);
    }
}

#[test]
fn softmaxes_and_masks_that_cannot_be_proven_are_refused_with_their_names() {
    // Softmax over the tokens of [1, T, D] (axis 1) at opset 17.
    let message = refused(
        vec![node(
            "Softmax",
            "over_tokens",
            &["x"],
            &["y"],
            vec![attr_int("axis", 1)],
        )],
        vec![],
    );
    assert!(
        message.contains("over_tokens") && message.contains("last axis"),
        "{message}"
    );
    // A masked tensor read by anything but Softmax.
    let mask: Vec<f32> = (0..T * D)
        .map(|e| if e % 3 == 0 { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    let message = refused(
        vec![
            node("Add", "mask", &["x", "m"], &["xm"], vec![]),
            node("Relu", "after_mask", &["xm"], &["y"], vec![]),
        ],
        vec![tensor("m", &[1, T as i64, D as i64], &mask)],
    );
    assert!(message.contains("after_mask") && message.contains("only"), "{message}");
    // A row masked out entirely.
    let full: Vec<f32> = (0..T * D)
        .map(|e| if e < D { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    let message = refused(
        vec![
            node("Add", "mask", &["x", "m"], &["xm"], vec![]),
            node("Softmax", "empty_row", &["xm"], &["y"], vec![]),
        ],
        vec![tensor("m", &[1, T as i64, D as i64], &full)],
    );
    assert!(
        message.contains("empty_row") && message.contains("masked out entirely"),
        "{message}"
    );
    // Where with a condition computed from the input.
    let message = refused(
        vec![
            node("Relu", "r", &["x"], &["c"], vec![]),
            node("Where", "computed_condition", &["c", "x", "minus_inf"], &["y"], vec![]),
        ],
        vec![tensor("minus_inf", &[], &[f32::NEG_INFINITY])],
    );
    assert!(
        message.contains("computed_condition") && message.contains("mask"),
        "{message}"
    );
}

/// An encoder block as exporters write it at opset 17 on `x [1, T, D]`: `LayerNormalization` → one attention head
/// (Q, K, V projections, `Q·Kᵀ` scaled, `Softmax`, `·V`, output projection) → residual `Add` →
/// `LayerNormalization` → `MatMul`+bias to `2D` → PyTorch's erf GELU → `MatMul`+bias back to `D` → residual `Add` →
/// `ReduceMean` over the tokens → `Gemm` to 4 classes.
fn encoder_block(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (t, d) = (T as i64, D as i64);
    let nodes = vec![
        node(
            "LayerNormalization",
            "ln1",
            &["x", "g1", "b1"],
            &["n1"],
            vec![attr_int("axis", -1)],
        ),
        node("MatMul", "q_proj", &["n1", "wq"], &["q"], vec![]),
        node("MatMul", "k_proj", &["n1", "wk"], &["k"], vec![]),
        node("MatMul", "v_proj", &["n1", "wv"], &["v"], vec![]),
        node("Transpose", "k_t", &["k"], &["kt"], vec![attr_ints("perm", &[0, 2, 1])]),
        node("MatMul", "scores", &["q", "kt"], &["s"], vec![]),
        node("Mul", "scale", &["s", "inv_sqrt"], &["s2"], vec![]),
        node("Softmax", "weights", &["s2"], &["a"], vec![attr_int("axis", -1)]),
        node("MatMul", "mix", &["a", "v"], &["o"], vec![]),
        node("MatMul", "out_proj", &["o", "wo"], &["o2"], vec![]),
        node("Add", "residual1", &["x", "o2"], &["r1"], vec![]),
        node("LayerNormalization", "ln2", &["r1", "g2", "b2"], &["n2"], vec![]),
        node("MatMul", "fc1", &["n2", "w1"], &["h1"], vec![]),
        node("Add", "fc1_bias", &["h1", "c1"], &["h2"], vec![]),
        node("Div", "gelu_div", &["h2", "sqrt2"], &["g_a"], vec![]),
        node("Erf", "gelu_erf", &["g_a"], &["g_b"], vec![]),
        node("Add", "gelu_add", &["g_b", "one"], &["g_c"], vec![]),
        node("Mul", "gelu_mul", &["h2", "g_c"], &["g_d"], vec![]),
        node("Mul", "gelu_half", &["g_d", "half"], &["g"], vec![]),
        node("MatMul", "fc2", &["g", "w2"], &["h3"], vec![]),
        node("Add", "fc2_bias", &["h3", "c2"], &["h4"], vec![]),
        node("Add", "residual2", &["r1", "h4"], &["r2"], vec![]),
        node(
            "ReduceMean",
            "pool",
            &["r2"],
            &["p"],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
        ),
        node("Gemm", "head", &["p", "wh", "ch"], &["y"], vec![attr_int("transB", 1)]),
    ];
    let mut gains = |n: usize| -> Vec<f32> { random_values(&mut rng, n, 0.3).iter().map(|v| 1.0 + v).collect() };
    let (g1, g2) = (gains(D), gains(D));
    let inits = vec![
        tensor("g1", &[d], &g1),
        tensor("b1", &[d], &random_values(&mut rng, D, 0.2)),
        tensor("g2", &[d], &g2),
        tensor("b2", &[d], &random_values(&mut rng, D, 0.2)),
        tensor("wq", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("wk", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("wv", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("wo", &[d, d], &random_values(&mut rng, D * D, 0.6)),
        tensor("inv_sqrt", &[], &[1.0 / (D as f32).sqrt()]),
        tensor("w1", &[d, 2 * d], &random_values(&mut rng, 2 * D * D, 0.6)),
        tensor("c1", &[2 * d], &random_values(&mut rng, 2 * D, 0.2)),
        tensor("w2", &[2 * d, d], &random_values(&mut rng, 2 * D * D, 0.6)),
        tensor("c2", &[d], &random_values(&mut rng, D, 0.2)),
        tensor("sqrt2", &[], &[std::f32::consts::SQRT_2]),
        tensor("one", &[], &[1.0]),
        tensor("half", &[], &[0.5]),
        tensor("wh", &[4, d], &random_values(&mut rng, 4 * D, 0.6)),
        tensor("ch", &[4], &random_values(&mut rng, 4, 0.2)),
    ];
    let _ = t;
    model(nodes, inits, &[1, T as i64, d])
}

#[test]
fn an_encoder_block_with_layer_normalization_imports_quantizes_and_proves_bit_exact() {
    let float = import_checked("encoder", &encoder_block(51));
    let ops: Vec<&str> = float.nodes.iter().map(|n| n.op_type.as_str()).collect();
    for op in ["LayerNormalization", "Softmax", "Gelu", "ReduceMean"] {
        assert!(ops.iter().any(|o| o.contains(op)), "no {op} in {ops:?}");
    }
    let model = quantize(&float, &random_inputs(52, 100, T * D, 2.0)).expect("quantize");
    // Both layer norms are the exact integer normalization, not tables.
    let norms = (model.layers.iter()).filter(|l| matches!(l.op, Op::LayerNorm(_)));
    assert_eq!(norms.count(), 2);
    let test = random_inputs(53, 50, T * D, 2.0);
    let inputs: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&model, x).unwrap()).collect();
    let native = infer_batch(&model, &inputs).expect("native");
    let agree = (test.iter().zip(&native))
        .filter(|(x, q)| {
            let (want, got) = (float.forward(x).unwrap(), dequantize_output(&model, q));
            zkinfer_prover::accuracy::argmax(&want) == zkinfer_prover::accuracy::argmax(&got)
        })
        .count();
    let (mean, worst) = relative_errors(&float, &model, &test, &native);
    eprintln!(
        "encoder block: top-1 agreement {agree}/50, int8 output error {:.1} % on average, {:.1} % at worst",
        100.0 * mean,
        100.0 * worst
    );
    assert!(agree >= 40, "top-1 agreement {agree}/50");
    let params = CircuitParams::for_model(&model);
    for (input, expected) in inputs.iter().zip(&native).take(3) {
        let s = common::synthesize_with(&model, params.clone(), input, expected);
        assert_eq!(s.prover.verify(), Ok(()), "the honest circuit is not satisfied");
        assert_eq!(&s.outputs, expected, "circuit and native inference differ");
    }
}

/// `x [1, T, D]` → MatMul(D → 12) + bias → Relu → MatMul(12 → 10): token logits; with `argmax`, then `ArgMax` over
/// the last axis (`keepdims` 0): the next token at every position, as greedy decoding reads it.
fn token_logits(seed: u64, argmax: bool) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = D as i64;
    let mut nodes = vec![
        node("MatMul", "fc1", &["x", "w1"], &["h1"], vec![]),
        node("Add", "fc1_bias", &["h1", "b1"], &["h2"], vec![]),
        node("Relu", "act", &["h2"], &["h3"], vec![]),
        node(
            "MatMul",
            "logits",
            &["h3", "w2"],
            &[if argmax { "l" } else { "y" }],
            vec![],
        ),
    ];
    if argmax {
        nodes.push(node(
            "ArgMax",
            "next",
            &["l"],
            &["y"],
            vec![attr_int("axis", -1), attr_int("keepdims", 0)],
        ));
    }
    let inits = vec![
        tensor("w1", &[d, 12], &random_values(&mut rng, D * 12, 0.6)),
        tensor("b1", &[12], &random_values(&mut rng, 12, 0.2)),
        tensor("w2", &[12, 10], &random_values(&mut rng, 120, 0.6)),
    ];
    model(nodes, inits, &[1, T as i64, d])
}

#[test]
fn argmax_gives_each_tokens_next_token_and_proves_bit_exact() {
    let logits = import_onnx(write("logits.onnx", &token_logits(61, false))).expect("import");
    let float = import_onnx(write("argmax.onnx", &token_logits(61, true))).expect("import");
    assert!(matches!(
        float.nodes.last().map(|n| &n.op),
        Some(FloatOp::ArgMax { row_len: 10, .. })
    ));
    for x in random_inputs(62, 5, T * D, 2.0) {
        let want: Vec<f32> = (logits.forward(&x).unwrap().chunks(10))
            .map(|row| zkinfer_prover::accuracy::argmax(row) as f32)
            .collect();
        assert_eq!(float.forward(&x).unwrap(), want);
    }
    let model = quantize(&float, &random_inputs(63, 100, T * D, 2.0)).expect("quantize");
    let last = model.layers.last().expect("layers");
    assert!(
        matches!(last.op, Op::ArgMax(_)) && last.output_scale == 1.0,
        "{}",
        last.op_type
    );
    let inputs: Vec<Vec<i64>> = (random_inputs(64, 20, T * D, 2.0).iter())
        .map(|x| quantize_input(&model, x).unwrap())
        .collect();
    let native = infer_batch(&model, &inputs).expect("native");
    for (input, out) in inputs.iter().zip(&native) {
        let tensors = model.eval_reference(input).expect("reference");
        let logits = &tensors[tensors.len() - 2];
        let want: Vec<i64> = logits
            .chunks(10)
            .map(|row| {
                let max = *row.iter().max().unwrap();
                row.iter().position(|&v| v == max).unwrap() as i64
            })
            .collect();
        assert_eq!(out, &want, "the first maximum of each token's int8 logits");
    }
    let kinds = [CellKind::ArgMaxChoice, CellKind::ArgMaxGap, CellKind::ArgMaxIndex];
    assert_proves_bit_exact("argmax", &model, Chip::ArgMax, &kinds, &inputs, &native);
    let message = refused(
        vec![node("ArgMax", "over_tokens", &["x"], &["y"], vec![attr_int("axis", 1)])],
        vec![],
    );
    assert!(
        message.contains("over_tokens") && message.contains("last axis"),
        "{message}"
    );
}
