//! CNN operators end to end on small ONNX graphs written here: the imported float graph against tract (within
//! 1e-4), its quantization (layer structure, scales), and the int8 engine against the float graph.

mod onnx;

use std::path::PathBuf;

use onnx::{
    assert_close, attr_float, attr_int, attr_ints, attr_str, model, model_at, node, random_inputs, random_values,
    scalar, tensor, tensor_i64, write, Msg,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::model::{Activation, Linear, Op, QuantizedModel};
use zkinfer_prover::{
    accuracy_report, dequantize_output, float_reference, import_onnx, infer_batch, quantize, quantize_input, ActFn,
    Dataset, FloatModel, FloatOp,
};

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Writes the model, imports it, and checks the float forward against tract on 20 random inputs (within 1e-4).
fn import_and_check(name: &str, bytes: &[u8], input_len: usize) -> (PathBuf, FloatModel) {
    let path = write(name, bytes);
    let float = import_onnx(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = float_reference(&path).unwrap();
    for x in random_inputs(100, 20, input_len, 2.0) {
        assert_close(&float.forward(&x).unwrap(), &reference.run(&x).unwrap(), 1e-4);
    }
    (path, float)
}

/// Quantizes on 200 random inputs and returns the model with the largest |int8 − float| error on those inputs,
/// relative to the output range `127 · output_scale`. (On the calibration inputs no tensor leaves its calibrated
/// range, so the error measures rounding alone, not clamping of outliers.)
fn quantize_and_compare(float: &FloatModel, input_len: usize) -> (QuantizedModel, f32) {
    let test = random_inputs(1, 200, input_len, 2.0);
    let q = quantize(float, &test).unwrap();
    let xq: Vec<Vec<i64>> = test.iter().map(|x| quantize_input(&q, x).unwrap()).collect();
    let yq = infer_batch(&q, &xq).unwrap();
    let mut worst = 0f32;
    for (x, y) in test.iter().zip(&yq) {
        let (want, got) = (float.forward(x).unwrap(), dequantize_output(&q, y));
        worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    let range = q.output_scale() * 127.0;
    (q, worst / range)
}

fn ops(float: &FloatModel) -> Vec<&str> {
    float.nodes.iter().map(|n| n.op_type.as_str()).collect()
}

fn linear(op: &Op) -> &Linear {
    match op {
        Op::Linear(l) => l,
        other => panic!("expected a linear layer, got {other:?}"),
    }
}

fn conv_inits(rng: &mut ChaCha8Rng, name: &str, dims: [i64; 4], r: f32) -> Vec<Msg> {
    let n = dims.iter().product::<i64>() as usize;
    vec![
        tensor(&format!("{name}.w"), &dims, &random_values(rng, n, r)),
        tensor(
            &format!("{name}.b"),
            &[dims[0]],
            &random_values(rng, dims[0] as usize, 0.2),
        ),
    ]
}

#[test]
fn conv_with_strides_and_asymmetric_padding_matches_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let attrs = vec![
        attr_ints("strides", &[2, 2]),
        attr_ints("pads", &[1, 0, 2, 1]),
        attr_ints("kernel_shape", &[3, 3]),
    ];
    let nodes = vec![node("Conv", "conv", &["x", "conv.w", "conv.b"], &["y"], attrs)];
    let bytes = model(nodes, conv_inits(&mut rng, "conv", [3, 2, 3, 3], 0.5), &[1, 2, 7, 7]);
    let (_, float) = import_and_check("conv.onnx", &bytes, 98);
    // H: (7 + 1 + 2 − 3) / 2 + 1 = 4; W: (7 + 0 + 1 − 3) / 2 + 1 = 3.
    assert_eq!(float.nodes[0].output_shape, [1, 3, 4, 3]);
    let (q, err) = quantize_and_compare(&float, 98);
    assert!(err < 0.03, "int8 error {err} of the output range");
    let conv = linear(&q.layers[0].op);
    assert_eq!((conv.groups.len(), conv.kernels.len()), (12, 3));
    // Output (0, 0) reads rows −1..1 and columns 0..2 of each channel: the first kernel row is padding.
    assert_eq!(conv.groups[0].taps.iter().filter(|t| t.is_none()).count(), 2 * 3);
    assert_eq!(q.layers[0].output_shape, [3, 4, 3]);
}

#[test]
fn depthwise_conv_fuses_relu_and_matches_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let attrs = vec![attr_int("group", 3), attr_ints("pads", &[1, 1, 1, 1])];
    let nodes = vec![
        node("Conv", "dw", &["x", "dw.w", "dw.b"], &["h"], attrs),
        node("Relu", "relu", &["h"], &["y"], vec![]),
    ];
    let bytes = model(nodes, conv_inits(&mut rng, "dw", [3, 1, 3, 3], 0.5), &[1, 3, 5, 5]);
    let (_, float) = import_and_check("dw.onnx", &bytes, 75);
    assert_eq!(ops(&float), ["Conv(depthwise)+Relu"]);
    let FloatOp::Conv(c) = &float.nodes[0].op else { panic!() };
    assert!(c.depthwise && float.nodes[0].relu);
    let (q, err) = quantize_and_compare(&float, 75);
    assert!(err < 0.03, "int8 error {err}");
    let dw = linear(&q.layers[0].op);
    assert_eq!((dw.groups.len(), dw.activation), (75, Activation::Relu));
    assert!(dw.groups.iter().all(|g| g.taps.len() == 9 && g.outputs.len() == 1));
}

#[test]
fn batch_norm_folds_into_conv_and_gemm() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut inits = conv_inits(&mut rng, "conv", [4, 1, 3, 3], 0.5);
    let mut bn = |name: &str, c: usize| {
        let mut v = |name: String, lo: f32, hi: f32| {
            let vals: Vec<f32> = random_values(&mut rng, c, 1.0)
                .iter()
                .map(|r| lo + (hi - lo) * (r + 1.0) / 2.0)
                .collect();
            tensor(&name, &[c as i64], &vals)
        };
        vec![
            v(format!("{name}.gamma"), 0.5, 2.0),
            v(format!("{name}.beta"), -0.5, 0.5),
            v(format!("{name}.mean"), -0.3, 0.3),
            v(format!("{name}.var"), 0.2, 3.0),
        ]
    };
    inits.extend(bn("bn1", 4));
    inits.extend(bn("bn2", 5));
    inits.push(tensor(
        "fc.w",
        &[5, 36],
        &random_values(&mut ChaCha8Rng::seed_from_u64(4), 180, 0.3),
    ));
    let bn_inputs = |x: &'static str, n: &str| -> Vec<String> {
        [x.to_string()]
            .into_iter()
            .chain(["gamma", "beta", "mean", "var"].map(|p| format!("{n}.{p}")))
            .collect()
    };
    let (i1, i2) = (bn_inputs("c", "bn1"), bn_inputs("g", "bn2"));
    let nodes = vec![
        node("Conv", "conv", &["x", "conv.w", "conv.b"], &["c"], vec![]),
        node(
            "BatchNormalization",
            "bn1",
            &refs(&i1),
            &["n"],
            vec![attr_float("epsilon", 1e-3)],
        ),
        node("Relu", "relu", &["n"], &["r"], vec![]),
        node("Flatten", "flat", &["r"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "fc.w"], &["g"], vec![attr_int("transB", 1)]),
        node("BatchNormalization", "bn2", &refs(&i2), &["y"], vec![]),
    ];
    let (_, float) = import_and_check("bn.onnx", &model(nodes, inits, &[1, 1, 5, 5]), 25);
    assert_eq!(
        ops(&float),
        ["Conv+BatchNormalization+Relu", "Flatten", "Gemm+BatchNormalization"]
    );
    let (_, err) = quantize_and_compare(&float, 25);
    assert!(err < 0.03, "int8 error {err}");
}

#[test]
fn pools_match_tract_and_lower_to_max_and_linear_layers() {
    let nodes = vec![
        node(
            "MaxPool",
            "max",
            &["x"],
            &["m"],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("strides", &[2, 2]),
                attr_ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        node(
            "AveragePool",
            "avg_in",
            &["m"],
            &["a"],
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("pads", &[1, 1, 0, 0]),
                attr_int("count_include_pad", 1),
            ],
        ),
        node(
            "AveragePool",
            "avg_ex",
            &["a"],
            &["b"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("pads", &[0, 0, 1, 1])],
        ),
        node("GlobalAveragePool", "gap", &["b"], &["y"], vec![]),
    ];
    let (_, float) = import_and_check("pools.onnx", &model(nodes, vec![], &[1, 2, 7, 7]), 98);
    let shapes: Vec<_> = float.nodes.iter().map(|n| n.output_shape.clone()).collect();
    assert_eq!(
        shapes,
        [vec![1, 2, 4, 4], vec![1, 2, 4, 4], vec![1, 2, 4, 4], vec![1, 2, 1, 1]]
    );
    let (q, err) = quantize_and_compare(&float, 98);
    assert!(err < 0.03, "int8 error {err}");
    assert!(matches!(&q.layers[0].op, Op::MaxPool(p) if p.windows[0].len() == 4 && p.windows[5].len() == 9));
    assert_eq!(
        q.layers[0].output_scale, q.input.scales[0],
        "max pool keeps the input scale"
    );
    // count_include_pad = 1: every window divides by 4, so windows of 1, 2 and 4 valid taps share nothing but
    // their multiplier; count_include_pad = 0: the multiplier follows the count.
    let (inc, exc) = (linear(&q.layers[1].op), linear(&q.layers[2].op));
    let m = |l: &Linear, n: usize| {
        let k = l.kernels.iter().find(|k| k.weights.len() == n).unwrap();
        (k.multiplier, k.shift)
    };
    assert_eq!(inc.kernels.len(), 3);
    assert!(m(inc, 1) == m(inc, 4) && m(inc, 2) == m(inc, 4));
    let real = |(m, s): (i64, u32)| m as f64 / f64::powi(2.0, s as i32);
    let (m1, m2, m4) = (real(m(exc, 1)), real(m(exc, 2)), real(m(exc, 4)));
    assert!(
        (m1 / m4 - 4.0).abs() < 1e-3 && (m2 / m4 - 2.0).abs() < 1e-3,
        "{m1} {m2} {m4}"
    );
    let gap = linear(&q.layers[3].op);
    assert_eq!((gap.groups.len(), gap.groups[0].taps.len()), (2, 16));
}

#[test]
fn residual_add_of_two_scales_is_rescaled_in_integers() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut inits = conv_inits(&mut rng, "a", [2, 2, 3, 3], 0.3);
    inits.extend(conv_inits(&mut rng, "b", [2, 2, 3, 3], 4.0));
    let pad = || vec![attr_ints("pads", &[1, 1, 1, 1])];
    let nodes = vec![
        node("Conv", "a", &["x", "a.w", "a.b"], &["ha"], pad()),
        node("Relu", "ra", &["ha"], &["a"], vec![]),
        node("Conv", "b", &["a", "b.w", "b.b"], &["b"], pad()),
        node("Add", "res", &["a", "b"], &["s"], vec![]),
        node("Relu", "rs", &["s"], &["y"], vec![]),
    ];
    let (_, float) = import_and_check("res.onnx", &model(nodes, inits, &[1, 2, 5, 5]), 50);
    // `a` has two readers: its ReLU fuses (the Conv's only reader is the ReLU), the sum's ReLU fuses into the Add.
    assert_eq!(ops(&float), ["Conv+Relu", "Conv", "Add+Relu"]);
    let (q, err) = quantize_and_compare(&float, 50);
    assert!(err < 0.03, "int8 error {err}");
    let add = linear(&q.layers[2].op);
    let (sa, sb) = (q.layers[0].output_scale as f64, q.layers[1].output_scale as f64);
    assert!(sb > 4.0 * sa, "the two branches have different scales: {sa} vs {sb}");
    // At sb/4096 the finer branch's weight would fall below 2^10, so the sum accumulates at sa/1024 instead.
    let s_acc = (sb / 4096.0).min(sa / 1024.0);
    assert_eq!(add.kernels[0].weights, [1024, (sb / s_acc).round() as i64]);
    assert_eq!((add.activation, add.groups[3].taps.len()), (Activation::Relu, 2));
}

#[test]
fn concat_transpose_and_reshape_match_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut inits = conv_inits(&mut rng, "c", [2, 2, 1, 1], 3.0);
    inits.push(tensor("fc.w", &[16, 4], &random_values(&mut rng, 64, 0.5)));
    inits.push(tensor_i64("shape", &[1, -1]));
    let nodes = vec![
        node("Conv", "c", &["x", "c.w", "c.b"], &["c"], vec![]),
        node("Sigmoid", "sig", &["x"], &["s"], vec![]),
        node("Concat", "cat", &["c", "s"], &["k"], vec![attr_int("axis", 1)]),
        node(
            "Transpose",
            "nhwc",
            &["k"],
            &["t"],
            vec![attr_ints("perm", &[0, 2, 3, 1])],
        ),
        node("Reshape", "flat", &["t", "shape"], &["f"], vec![]),
        node("MatMul", "fc", &["f", "fc.w"], &["y"], vec![]),
    ];
    let (_, float) = import_and_check("cat.onnx", &model(nodes, inits, &[1, 2, 2, 2]), 8);
    assert_eq!(
        ops(&float),
        ["Conv", "Sigmoid", "Concat", "Transpose", "Reshape", "MatMul"]
    );
    assert_eq!(float.nodes[3].output_shape, [1, 2, 2, 4]);
    let (q, err) = quantize_and_compare(&float, 8);
    assert!(err < 0.03, "int8 error {err}");
    // Conv, Sigmoid table, one rescale of the lower-scale Concat input, MatMul reading through the moves.
    let kinds: Vec<_> = q.layers.iter().map(|l| l.op_type.as_str()).collect();
    assert_eq!(kinds, ["Conv", "Sigmoid", "Rescale", "MatMul"]);
    let fc = linear(&q.layers[3].op);
    let (conv_t, rescaled_sigmoid) = (1, 3);
    let taps: Vec<(usize, usize)> = fc.groups[0].taps[..4]
        .iter()
        .map(|t| t.map(|s| (s.tensor, s.index)).unwrap())
        .collect();
    // NHWC at (0, 0): conv channel 0, conv channel 1, sigmoid channel 0, sigmoid channel 1.
    assert_eq!(
        taps,
        [(conv_t, 0), (conv_t, 4), (rescaled_sigmoid, 0), (rescaled_sigmoid, 4)]
    );
}

fn activation_model(op_nodes: Vec<Msg>, mut inits: Vec<Msg>, opset: i64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    inits.push(tensor("fc.w", &[8, 8], &random_values(&mut rng, 64, 0.8)));
    inits.push(tensor("fc.b", &[8], &random_values(&mut rng, 8, 0.2)));
    let mut nodes = vec![node("Gemm", "fc", &["x", "fc.w", "fc.b"], &["h"], vec![])];
    nodes.extend(op_nodes);
    model_at(opset, nodes, inits, &[1, 8])
}

#[test]
fn activations_become_tables_close_to_the_float_function() {
    let one = |op: &str, attrs: Vec<Msg>| vec![node(op, op, &["h"], &["y"], attrs)];
    let gelu_pattern = vec![
        node("Div", "/act/Div", &["h", "sqrt2"], &["d"], vec![]),
        node("Erf", "/act/Erf", &["d"], &["e"], vec![]),
        node("Add", "/act/Add", &["e", "one"], &["p"], vec![]),
        node("Mul", "/act/Mul", &["h", "p"], &["m"], vec![]),
        node("Mul", "/act/Mul_1", &["m", "half"], &["y"], vec![]),
    ];
    let consts = vec![
        scalar("sqrt2", std::f32::consts::SQRT_2),
        scalar("one", 1.0),
        scalar("half", 0.5),
    ];
    let cases: Vec<(&str, Vec<Msg>, Vec<Msg>, i64)> = vec![
        ("Sigmoid", one("Sigmoid", vec![]), vec![], 17),
        ("Tanh", one("Tanh", vec![]), vec![], 17),
        ("HardSwish", one("HardSwish", vec![]), vec![], 17),
        (
            "LeakyRelu",
            one("LeakyRelu", vec![attr_float("alpha", 0.2)]),
            vec![],
            17,
        ),
        (
            "Clip",
            vec![node("Clip", "relu6", &["h", "lo", "hi"], &["y"], vec![])],
            vec![scalar("lo", 0.0), scalar("hi", 0.6)],
            17,
        ),
        ("Gelu", one("Gelu", vec![]), vec![], 20),
        ("Gelu", one("Gelu", vec![attr_str("approximate", "tanh")]), vec![], 20),
        ("Gelu", gelu_pattern, consts, 17),
    ];
    for (function, nodes, inits, opset) in cases {
        let bytes = activation_model(nodes, inits, opset);
        let (_, float) = import_and_check(&format!("{function}.onnx"), &bytes, 8);
        assert_eq!(float.nodes.len(), 2, "{function}: one Gemm and one activation");
        assert!(
            matches!(&float.nodes[1].op, FloatOp::Activation(f) if f.name() == function),
            "{function}"
        );
        // Saturating functions (Tanh, Sigmoid) have an output range several times narrower than their input's, so
        // the input quantization step weighs more against the output range.
        let (q, err) = quantize_and_compare(&float, 8);
        assert!(err < 0.04, "{function}: int8 error {err}");
        assert!(matches!(&q.layers[1].op, Op::Table(t) if t.function == function && t.input == 1));
        if function == "Clip" {
            // The Gemm's output is read only by Clip(0, 0.6): its range stops at 0.6, where the clip saturates.
            assert!(
                q.layers[0].output_scale <= 0.6 / 127.0 * 1.000_001,
                "{}",
                q.layers[0].output_scale
            );
        }
    }
    // Opset 10 gives Clip its bounds as attributes.
    let attrs = vec![attr_float("min", -0.5), attr_float("max", 1.0)];
    let nodes = vec![node("Clip", "clip", &["x"], &["y"], attrs)];
    let (_, float) = import_and_check("clip10.onnx", &model_at(10, nodes, vec![], &[1, 8]), 8);
    let clip = ActFn::Clip { min: -0.5, max: 1.0 };
    assert!(matches!(&float.nodes[0].op, FloatOp::Activation(f) if *f == clip));
    // A ReLU that cannot fuse (it reads the input) is a table too.
    let nodes = vec![node("Relu", "r", &["x"], &["y"], vec![])];
    let (_, float) = import_and_check("relu.onnx", &model(nodes, vec![], &[1, 8]), 8);
    let (q, err) = quantize_and_compare(&float, 8);
    assert!(err < 0.02, "Relu table: int8 error {err}");
    assert!(matches!(&q.layers[0].op, Op::Table(t) if t.function == "Relu" && t.values[..128].iter().all(|&v| v == 0)));
}

/// A random small CNN: Conv+BN+Relu → MaxPool → Conv+Relu → Add(residual) → GlobalAveragePool|AveragePool →
/// Flatten → Gemm.
fn random_cnn(seed: u64, gap: bool) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut inits = conv_inits(&mut rng, "c1", [4, 1, 3, 3], 0.6);
    inits.extend(conv_inits(&mut rng, "c2", [4, 4, 3, 3], 0.3));
    for (p, lo, hi) in [
        ("gamma", 0.5, 1.5),
        ("beta", -0.2, 0.2),
        ("mean", -0.2, 0.2),
        ("var", 0.5, 2.0),
    ] {
        let v: Vec<f32> = random_values(&mut rng, 4, 1.0)
            .iter()
            .map(|r| lo + (hi - lo) * (r + 1.0) / 2.0)
            .collect();
        inits.push(tensor(&format!("bn.{p}"), &[4], &v));
    }
    let features = if gap { 4 } else { 16 };
    inits.push(tensor(
        "fc.w",
        &[3, features],
        &random_values(&mut rng, 3 * features as usize, 0.8),
    ));
    inits.push(tensor("fc.b", &[3], &random_values(&mut rng, 3, 0.1)));
    let pool = if gap {
        node("GlobalAveragePool", "pool", &["s"], &["p"], vec![])
    } else {
        node(
            "AveragePool",
            "pool",
            &["s"],
            &["p"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
        )
    };
    let nodes = vec![
        node(
            "Conv",
            "c1",
            &["x", "c1.w", "c1.b"],
            &["h1"],
            vec![attr_ints("pads", &[1, 1, 1, 1])],
        ),
        node(
            "BatchNormalization",
            "bn",
            &["h1", "bn.gamma", "bn.beta", "bn.mean", "bn.var"],
            &["n1"],
            vec![],
        ),
        node("Relu", "r1", &["n1"], &["a1"], vec![]),
        node(
            "MaxPool",
            "mp",
            &["a1"],
            &["m"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
        ),
        node(
            "Conv",
            "c2",
            &["m", "c2.w", "c2.b"],
            &["h2"],
            vec![attr_ints("pads", &[1, 1, 1, 1])],
        ),
        node("Relu", "r2", &["h2"], &["a2"], vec![]),
        node("Add", "res", &["m", "a2"], &["s"], vec![]),
        pool,
        node("Flatten", "flat", &["p"], &["f"], vec![]),
        node(
            "Gemm",
            "fc",
            &["f", "fc.w", "fc.b"],
            &["y"],
            vec![attr_int("transB", 1)],
        ),
    ];
    model(nodes, inits, &[1, 1, 8, 8])
}

#[test]
fn random_cnns_int8_agree_with_float_and_tract() {
    for (seed, gap) in [(10, true), (11, false), (12, true)] {
        let (path, float) = import_and_check("rand-cnn.onnx", &random_cnn(seed, gap), 64);
        let (q, err) = quantize_and_compare(&float, 64);
        assert!(err < 0.03, "seed {seed}: int8 error {err}");
        // The accuracy report runs tract on the flattened rows reshaped to [1, 1, 8, 8]; on the calibration inputs
        // (labelled with the float argmax) it sees rounding only, no clamping of out-of-range activations.
        let inputs = random_inputs(1, 200, 64, 2.0);
        let labels = inputs
            .iter()
            .map(|x| zkinfer_prover::accuracy::argmax(&float.forward(x).unwrap()))
            .collect();
        let report = accuracy_report(
            &path,
            &q,
            &Dataset {
                inputs,
                labels: Some(labels),
                targets: None,
                row_labels: None,
            },
        )
        .unwrap();
        assert_eq!(report.float_top1, Some(1.0), "labels are the float argmax");
        // Random 3-class heads have close logits on a few inputs, where a 1% error can flip the argmax.
        assert!(report.top1_agreement >= 0.95, "seed {seed}: {report}");
        assert!(
            report.max_abs_error <= 0.03 * q.output_scale() * 127.0,
            "seed {seed}: {report}"
        );
        // On fresh inputs some activations exceed their calibrated range and clamp, so the bound is looser.
        let fresh = random_inputs(3, 200, 64, 2.0);
        let labels = fresh
            .iter()
            .map(|x| zkinfer_prover::accuracy::argmax(&float.forward(x).unwrap()))
            .collect();
        let report = accuracy_report(
            &path,
            &q,
            &Dataset {
                inputs: fresh,
                labels: Some(labels),
                targets: None,
                row_labels: None,
            },
        )
        .unwrap();
        assert!(report.top1_agreement >= 0.9, "seed {seed}: {report}");
    }
}
