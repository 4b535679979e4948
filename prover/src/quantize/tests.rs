use super::lower::ir_shape;
use super::*;
use crate::graph::{ActFn, Conv, Dense, FloatNode, FloatOp, Pool, PoolKind, Window2d};
use crate::infer::infer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::model::{Activation, LayerNorm, Linear, Op, QuantizedModel};

/// A float node named (and typed) `name`.
pub(crate) fn node(name: &str, inputs: Vec<usize>, shape: Vec<usize>, op: FloatOp, relu: bool) -> FloatNode {
    FloatNode {
        name: name.into(),
        op_type: name.into(),
        inputs,
        output_shape: shape,
        op,
        relu,
    }
}

fn values(rng: &mut ChaCha8Rng, n: usize, r: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-r..r)).collect()
}

/// A random 3-layer MLP (16 → 12 → 8 → 4, ReLU on the hidden layers) and 64 random inputs.
pub(crate) fn random_model(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = [16usize, 12, 8, 4];
    let nodes = (dims.windows(2).enumerate())
        .map(|(i, d)| {
            let dense = Dense {
                positions: 1,
                in_features: d[0],
                out_features: d[1],
                weights: values(&mut rng, d[0] * d[1], 0.5),
                bias: values(&mut rng, d[1], 0.2),
            };
            node(&format!("fc{i}"), vec![i], vec![1, d[1]], FloatOp::Dense(dense), i < 2)
        })
        .collect();
    let model = FloatModel {
        name: "random".into(),
        input_shape: vec![1, 16],
        nodes,
    };
    let inputs = (0..64).map(|_| values(&mut rng, 16, 1.0)).collect();
    (model, inputs)
}

/// Attention's two products on `[1, 4, 6]` inputs `X`, and 64 random inputs: `Q = X·Wq` (token-wise),
/// `S = Q·Xᵀ` (`Xᵀ` a free move) with a fused ReLU, `Z = S·X`, then a token-wise projection to 3.
pub(crate) fn random_attention(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dense = |rng: &mut ChaCha8Rng, inputs: usize, outputs: usize| Dense {
        positions: 4,
        in_features: inputs,
        out_features: outputs,
        weights: values(rng, inputs * outputs, 0.5),
        bias: values(rng, outputs, 0.2),
    };
    let transposed = (0..24).map(|o| (0, (o % 4) * 6 + o / 4)).collect();
    let matmul = |rows, inner, columns| FloatOp::MatMul { rows, inner, columns };
    let nodes = vec![
        node(
            "q",
            vec![0],
            vec![1, 4, 6],
            FloatOp::Dense(dense(&mut rng, 6, 6)),
            false,
        ),
        node("x_t", vec![0], vec![1, 6, 4], FloatOp::Move(transposed), false),
        node("scores", vec![1, 2], vec![1, 4, 4], matmul(4, 6, 4), true),
        node("mix", vec![3, 0], vec![1, 4, 6], matmul(4, 4, 6), false),
        node(
            "out",
            vec![4],
            vec![1, 4, 3],
            FloatOp::Dense(dense(&mut rng, 6, 3)),
            false,
        ),
    ];
    let model = FloatModel {
        name: "attention".into(),
        input_shape: vec![1, 4, 6],
        nodes,
    };
    let inputs = (0..64).map(|_| values(&mut rng, 24, 1.0)).collect();
    (model, inputs)
}

/// A random pre-norm block on `[1, 4, 6]` inputs (4 positions of 6 features) and 64 random inputs: a token-wise
/// Dense(6→8), a LayerNorm over the 8 features (ε = 1e-5), γ and β (an affine node), then Dense(8→3).
pub(crate) fn random_norm(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dense = |rng: &mut ChaCha8Rng, inputs: usize, outputs: usize| Dense {
        positions: 4,
        in_features: inputs,
        out_features: outputs,
        weights: values(rng, inputs * outputs, 0.5),
        bias: values(rng, outputs, 0.2),
    };
    let gamma: Vec<f32> = values(&mut rng, 8, 1.0).iter().map(|g| 1.0 + g / 2.0).collect();
    let beta = values(&mut rng, 8, 0.3);
    let nodes = vec![
        node(
            "up",
            vec![0],
            vec![1, 4, 8],
            FloatOp::Dense(dense(&mut rng, 6, 8)),
            false,
        ),
        node(
            "ln",
            vec![1],
            vec![1, 4, 8],
            FloatOp::LayerNorm {
                row_len: 8,
                epsilon: 1e-5,
            },
            false,
        ),
        node(
            "ln/affine",
            vec![2],
            vec![1, 4, 8],
            FloatOp::Affine {
                scale: gamma.repeat(4),
                shift: beta.repeat(4),
            },
            false,
        ),
        node(
            "out",
            vec![3],
            vec![1, 4, 3],
            FloatOp::Dense(dense(&mut rng, 8, 3)),
            false,
        ),
    ];
    let model = FloatModel {
        name: "norm".into(),
        input_shape: vec![1, 4, 6],
        nodes,
    };
    let inputs = (0..64).map(|_| values(&mut rng, 24, 1.0)).collect();
    (model, inputs)
}

fn window(hw: usize, k: usize, stride: usize, pads: [usize; 4]) -> Window2d {
    Window2d {
        input_hw: [hw, hw],
        kernel: [k, k],
        strides: [stride, stride],
        pads,
    }
}

/// A random CNN with every op kind, on `[1, 2, 6, 6]` inputs, and 64 random inputs:
/// conv(2→4, 3x3, pad 1)+ReLU → depthwise conv(3x3, pad 1) → Add(conv, depthwise)+ReLU → MaxPool(2, stride 2)
/// → {Sigmoid, AveragePool(2, stride 1, pad bottom/right)} → Concat (channels) → Transpose(NHWC) → Flatten → Gemm(5).
pub(crate) fn random_cnn(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let conv = Conv {
        in_channels: 2,
        out_channels: 4,
        depthwise: false,
        window: window(6, 3, 1, [1; 4]),
        weights: values(&mut rng, 4 * 2 * 9, 0.5),
        bias: values(&mut rng, 4, 0.2),
    };
    let dw = Conv {
        in_channels: 4,
        out_channels: 4,
        depthwise: true,
        window: window(6, 3, 1, [1; 4]),
        weights: values(&mut rng, 4 * 9, 0.5),
        bias: values(&mut rng, 4, 0.2),
    };
    let max = Pool {
        kind: PoolKind::Max,
        channels: 4,
        window: window(6, 2, 2, [0; 4]),
    };
    let avg = Pool {
        kind: PoolKind::Average {
            count_include_pad: false,
        },
        channels: 4,
        window: window(3, 2, 1, [0, 0, 1, 1]),
    };
    let concat = (0..2).flat_map(|j| (0..36).map(move |k| (j, k))).collect();
    // [1, 8, 3, 3] → [1, 3, 3, 8]: output (y, x, c) reads input (c, y, x).
    let nhwc = (0..72).map(|o| (0, (o % 8) * 9 + o / 8)).collect();
    let dense = Dense {
        positions: 1,
        in_features: 72,
        out_features: 5,
        weights: values(&mut rng, 72 * 5, 0.3),
        bias: values(&mut rng, 5, 0.1),
    };
    let nodes = vec![
        node("conv", vec![0], vec![1, 4, 6, 6], FloatOp::Conv(conv), true),
        node("dw", vec![1], vec![1, 4, 6, 6], FloatOp::Conv(dw), false),
        node("add", vec![1, 2], vec![1, 4, 6, 6], FloatOp::Add, true),
        node("maxpool", vec![3], vec![1, 4, 3, 3], FloatOp::Pool(max), false),
        node(
            "sigmoid",
            vec![4],
            vec![1, 4, 3, 3],
            FloatOp::Activation(ActFn::Sigmoid),
            false,
        ),
        node("avgpool", vec![4], vec![1, 4, 3, 3], FloatOp::Pool(avg), false),
        node("concat", vec![5, 6], vec![1, 8, 3, 3], FloatOp::Move(concat), false),
        node("transpose", vec![7], vec![1, 3, 3, 8], FloatOp::Move(nhwc), false),
        node(
            "flatten",
            vec![8],
            vec![1, 72],
            FloatOp::Move((0..72).map(|i| (0, i)).collect()),
            false,
        ),
        node("fc", vec![9], vec![1, 5], FloatOp::Dense(dense), false),
    ];
    let model = FloatModel {
        name: "cnn".into(),
        input_shape: vec![1, 2, 6, 6],
        nodes,
    };
    let inputs = (0..64).map(|_| values(&mut rng, 72, 1.0)).collect();
    (model, inputs)
}

fn linear(op: &Op) -> &Linear {
    match op {
        Op::Linear(l) => l,
        other => panic!("expected a linear layer, got {other:?}"),
    }
}

#[test]
fn multiplier_has_output_bits_plus_4_bits_at_the_smallest_shift() {
    assert_eq!(choose_multiplier(0.5, 8), Ok((1 << 12, 13)));
    assert_eq!(choose_multiplier(0.5, 16), Ok((1 << 20, 21)));
    assert_eq!(choose_multiplier(5000.0, 8), Ok((10_000, 1)));
    let (m, s) = choose_multiplier(0.003, 8).unwrap();
    assert_eq!(s, 21, "0.003 · 2^20 < 2^12 ≤ 0.003 · 2^21");
    assert_eq!(m, (0.003f64 * (1u64 << 21) as f64).round() as i64);
    assert_eq!(choose_multiplier(1e-30, 8), Ok((1, 48)));
    assert!(choose_multiplier(3e9, 8).is_err());
    assert!(choose_multiplier(0.0, 8).is_err());
    assert!(choose_multiplier(f64::NAN, 8).is_err());
}

#[test]
fn precision_widens_weights_and_the_last_layer_only() {
    let (float, calib) = random_model(1);
    let precision = Precision {
        weight_bits: 12,
        output_bits: 16,
        ..Precision::default()
    };
    let q = quantize_with(&float, &calib, precision).unwrap();
    let last = q.layers.len() - 1;
    for (i, l) in q.layers.iter().enumerate() {
        let lin = linear(&l.op);
        assert_eq!(lin.output_bits, if i == last { 16 } else { 8 }, "layer {i}");
        for k in &lin.kernels {
            assert_eq!(
                k.weights.iter().map(|w| w.abs()).max(),
                Some(2047),
                "channel max maps to 2^11 − 1"
            );
        }
    }
    let maxima = calibrate(&float, &calib).unwrap();
    assert_eq!(q.output_scale(), scale_for_bits(maxima[last + 1], 16));
    // The native engine runs it, and its outputs use the 16-bit range.
    let outputs = infer(&q, &quantize_input(&q, &calib[0]).unwrap()).unwrap();
    assert!(outputs.iter().any(|y| y.abs() > 127), "{outputs:?}");
    for bad in [
        Precision {
            weight_bits: 1,
            output_bits: 8,
            ..Precision::default()
        },
        Precision {
            weight_bits: 17,
            output_bits: 8,
            ..Precision::default()
        },
        Precision {
            weight_bits: 8,
            output_bits: 12,
            ..Precision::default()
        },
    ] {
        let e = quantize_with(&float, &calib, bad).unwrap_err().to_string();
        assert!(e.contains("not supported; use"), "{e}");
    }
}

#[test]
fn dense_layers_follow_the_scheme() {
    let (float, calib) = random_model(1);
    let per_tensor = Precision {
        input: InputScales::PerTensor,
        ..Precision::default()
    };
    let q = quantize_with(&float, &calib, per_tensor).unwrap();
    assert_eq!(q.format_version, MODEL_FORMAT_VERSION);
    assert_eq!(q.layers.len(), 3);
    let in_max = calib.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    assert!((q.input.max_scale() - in_max / 127.0).abs() < 1e-7);
    let maxima = calibrate(&float, &calib).unwrap();
    let mut s_in = q.input.max_scale() as f64;
    for (i, (fl, l)) in float.nodes.iter().zip(&q.layers).enumerate() {
        let FloatOp::Dense(d) = &fl.op else { unreachable!() };
        let lin = linear(&l.op);
        assert_eq!(
            lin.activation,
            if i < 2 { Activation::Relu } else { Activation::Identity }
        );
        assert_eq!(
            (l.output_shape.as_slice(), l.output_scale),
            (&[d.out_features][..], scale_for(maxima[i + 1]))
        );
        assert_eq!(lin.groups.len(), 1);
        assert_eq!(lin.groups[0].taps.len(), d.in_features);
        assert_eq!(
            lin.groups[0].outputs,
            (0..d.out_features).map(|c| (c, c)).collect::<Vec<_>>()
        );
        for (c, k) in lin.kernels.iter().enumerate() {
            let row = &d.weights[c * d.in_features..(c + 1) * d.in_features];
            assert_eq!(
                k.weights.iter().map(|w| w.abs()).max(),
                Some(127),
                "channel max maps to 127"
            );
            let s_w = row.iter().fold(0f32, |m, w| m.max(w.abs())) as f64 / 127.0;
            assert!((k.bias as f64 - d.bias[c] as f64 / (s_in * s_w)).abs() <= 0.5 + 1e-3);
            let m = s_in * s_w / l.output_scale as f64;
            let effective = k.multiplier as f64 / f64::powi(2.0, k.shift as i32);
            assert!(
                (1 << 12..1 << 13).contains(&k.multiplier),
                "M = {} at shift {}",
                k.multiplier,
                k.shift
            );
            assert!((effective - m).abs() <= m / 8192.0, "M/2^s = {effective} for m = {m}");
        }
        s_in = l.output_scale as f64;
    }
}

/// `|dequantized int8 − float| < tol · output range` on every output of every sample.
fn assert_tracks(float: &FloatModel, calib: &[Vec<f32>], tol: f32) {
    let q = quantize(float, calib).unwrap();
    let range = q.output_scale() * 127.0;
    for x in calib {
        let want = float.forward(x).unwrap();
        let got = dequantize_output(&q, &infer(&q, &quantize_input(&q, x).unwrap()).unwrap());
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < tol * range, "float {a} vs int8 {b} (range {range})");
        }
    }
}

#[test]
fn integer_outputs_track_the_float_model() {
    assert_tracks(&random_model(2).0, &random_model(2).1, 0.05);
    for seed in [3, 4, 5] {
        let (float, calib) = random_cnn(seed);
        assert_tracks(&float, &calib, 0.08);
    }
}

#[test]
fn cnn_lowering_uses_each_layer_kind_and_folds_data_moves() {
    let (float, calib) = random_cnn(6);
    let q = quantize(&float, &calib).unwrap();
    let kinds: Vec<String> = q
        .layers
        .iter()
        .map(|l| format!("{}:{}", l.name, op_kind(&l.op)))
        .collect();
    // Concat rescales its lower-scale input; Concat, Transpose and Flatten become sources of the Gemm.
    let rescaled = if q.layers[4].output_scale < q.layers[5].output_scale {
        "sigmoid"
    } else {
        "avgpool"
    };
    let want = [
        "conv:Linear",
        "dw:Linear",
        "add:Linear",
        "maxpool:MaxPool",
        "sigmoid:Table",
        "avgpool:Linear",
        &format!("concat/rescale{}:Linear", usize::from(rescaled == "avgpool")),
        "fc:Linear",
    ];
    assert_eq!(kinds, want);
    assert_eq!(q.layers[0].output_shape, [4, 6, 6]);
    assert_eq!(
        q.layers[3].output_scale, q.layers[2].output_scale,
        "max pool keeps its input scale"
    );
    // Conv: one group per position, 2·3·3 taps, padding as None at the corner, four outputs sharing kernels.
    let conv = linear(&q.layers[0].op);
    assert_eq!((conv.groups.len(), conv.kernels.len()), (36, 4));
    assert_eq!(conv.groups[0].taps.iter().filter(|t| t.is_none()).count(), 2 * 5);
    assert_eq!(conv.groups[7].outputs, [(7, 0), (43, 1), (79, 2), (115, 3)]);
    // Depthwise: one group per (position, channel), reading its own channel only.
    let dw = linear(&q.layers[1].op);
    assert_eq!((dw.groups.len(), dw.kernels.len()), (144, 4));
    let g = &dw.groups[4 * 7 + 2];
    assert_eq!(g.outputs, [(2 * 36 + 7, 2)]);
    assert!(g.taps.iter().flatten().all(|s| s.tensor == 1 && s.index / 36 == 2));
    // Add: taps [a_i, b_i], weights max(s_a, s_b)/s_acc = 4096 and round(s_min/s_acc) (the scales are within 4×).
    let add = linear(&q.layers[2].op);
    let (sa, sb) = (q.layers[0].output_scale as f64, q.layers[1].output_scale as f64);
    assert!(sa.max(sb) < 4.0 * sa.min(sb), "{sa} {sb}");
    let s_acc = sa.max(sb) / 4096.0;
    assert_eq!(
        add.kernels[0].weights,
        [(sa / s_acc).round() as i64, (sb / s_acc).round() as i64]
    );
    assert!(add.kernels[0].weights.contains(&4096) && add.kernels[0].bias == 0);
    assert_eq!(add.activation, Activation::Relu);
    // Average pool with padding excluded: counts 4 (inside), 2 (right/bottom edges), 1 (corner).
    let avg = linear(&q.layers[5].op);
    let counts: Vec<usize> = avg.kernels.iter().map(|k| k.weights.len()).collect();
    assert_eq!(counts, [4, 2, 1]);
    assert!(avg.kernels.iter().all(|k| k.weights.iter().all(|&w| w == 1)));
    // The Gemm reads the concatenation in NHWC order: tap 1 is channel 1 at (0, 0), from the second half.
    let fc = linear(&q.layers[7].op);
    let tap = |i: usize| fc.groups[0].taps[i].unwrap();
    let sigmoid = if rescaled == "sigmoid" { 7 } else { 5 };
    assert_eq!((tap(0).tensor, tap(0).index), (sigmoid, 0));
    assert_eq!((tap(1).tensor, tap(1).index), (sigmoid, 9));
    let avgpool = if rescaled == "avgpool" { 7 } else { 6 };
    assert_eq!(
        (tap(4).tensor, tap(4).index),
        (avgpool, 0),
        "channel 4 of the concatenation is the pool's 0"
    );
    assert_eq!(q.layers[7].output_shape, [5]);
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Linear(_) => "Linear",
        Op::MaxPool(_) => "MaxPool",
        Op::Table(_) => "Table",
        Op::Gather(_) => "Gather",
        Op::Mul(_) => "Mul",
        Op::MatMul(_) => "MatMul",
        Op::Softmax(_) => "Softmax",
        Op::ArgMax(_) => "ArgMax",
        Op::Embedding(_) => "Embedding",
        Op::LayerNorm(_) => "LayerNorm",
    }
}

#[test]
fn tables_tabulate_the_function_at_the_calibrated_scales() {
    for f in [
        ActFn::Sigmoid,
        ActFn::Tanh,
        ActFn::Gelu { tanh: false },
        ActFn::HardSwish,
        ActFn::LeakyRelu { alpha: 0.1 },
        ActFn::Clip { min: 0.0, max: 0.6 },
        ActFn::Relu,
    ] {
        let float = FloatModel {
            name: f.name().into(),
            input_shape: vec![1, 4],
            nodes: vec![node("act", vec![0], vec![1, 4], FloatOp::Activation(f), false)],
        };
        let calib = vec![vec![-2.0, -0.5, 0.5, 2.0], vec![-1.0, 0.0, 1.0, 1.5]];
        let q = quantize(&float, &calib).unwrap();
        let Op::Table(t) = &q.layers[0].op else {
            panic!("{f:?} is a table")
        };
        assert_eq!((t.input, t.function.as_str(), t.values.len()), (0, f.name(), 256));
        let (s_in, s_out) = (q.input.max_scale() as f64, q.output_scale() as f64);
        let out_max = calib
            .iter()
            .flatten()
            .map(|&x| f.eval(x as f64).abs())
            .fold(0.0, f64::max);
        assert!((s_out - out_max / 127.0).abs() < 1e-6);
        for (i, &v) in t.values.iter().enumerate() {
            let x = (i as f64 - 128.0) * s_in;
            let want = (f.eval(x) / s_out).clamp(-128.0, 127.0);
            assert!((v as f64 - want).abs() <= 0.5 + 1e-9, "{f:?}({x}) → {v}, want {want}");
        }
        let monotone = !matches!(f, ActFn::Gelu { .. } | ActFn::HardSwish);
        assert!(
            !monotone || t.values.windows(2).all(|w| w[0] <= w[1]),
            "{f:?} table is monotone"
        );
    }
}

#[test]
fn output_of_a_data_move_is_gathered() {
    // x → Sigmoid → Transpose: the transposed tensor is the output, so it needs a Gather.
    let f = ActFn::Sigmoid;
    let perm = (0..6).map(|o| (0, (o % 2) * 3 + o / 2)).collect();
    let float = FloatModel {
        name: "t".into(),
        input_shape: vec![1, 2, 3],
        nodes: vec![
            node("sig", vec![0], vec![1, 2, 3], FloatOp::Activation(f), false),
            node("tr", vec![1], vec![1, 3, 2], FloatOp::Move(perm), false),
        ],
    };
    let calib = vec![vec![0.1, -0.2, 0.3, -0.4, 0.5, -0.6]];
    let q = quantize(&float, &calib).unwrap();
    assert_eq!(q.layers.len(), 2);
    let Op::Gather(src) = &q.layers[1].op else {
        panic!("expected a Gather")
    };
    assert_eq!(src.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 3, 1, 4, 2, 5]);
    assert_eq!(
        (q.layers[1].output_shape.as_slice(), q.layers[1].output_scale),
        (&[3, 2][..], q.layers[0].output_scale)
    );
    let y = infer(&q, &quantize_input(&q, &calib[0]).unwrap()).unwrap();
    let want = float.forward(&calib[0]).unwrap();
    for (a, b) in dequantize_output(&q, &y).iter().zip(&want) {
        assert!((a - b).abs() <= q.output_scale());
    }
    assert_eq!(ir_shape(&[1, 3, 2]), [3, 2]);
    assert_eq!(ir_shape(&[5]), [5]);
}

#[test]
fn degenerate_inputs_are_errors_not_panics() {
    let (mut float, calib) = random_model(3);
    assert!(matches!(quantize(&float, &[]), Err(ProverError::Quantization { .. })));
    assert!(matches!(
        quantize(&float, &[vec![0.0; 3]]),
        Err(ProverError::WrongInputLength { .. })
    ));
    assert!(matches!(
        quantize(&float, &[vec![f32::NAN; 16]]),
        Err(ProverError::Quantization { .. })
    ));
    let q = quantize(&float, &calib).unwrap();
    assert!(matches!(
        quantize_input(&q, &[1.0; 15]),
        Err(ProverError::WrongInputLength {
            expected: 16,
            found: 15
        })
    ));
    assert_eq!(quantize_input(&q, &[1e9; 16]).unwrap(), vec![127; 16]);
    // An all-zero channel gets scale 1 and zero weights; all-zero inputs give scale 1.
    let FloatOp::Dense(d) = &mut float.nodes[0].op else {
        unreachable!()
    };
    d.weights[..16].fill(0.0);
    let q = quantize(&float, &[vec![0.0; 16]]).unwrap();
    assert_eq!(q.input.max_scale(), 1.0);
    assert!(linear(&q.layers[0].op).kernels[0].weights.iter().all(|w| *w == 0));
    let FloatOp::Dense(d) = &mut float.nodes[0].op else {
        unreachable!()
    };
    d.weights[0] = f32::INFINITY;
    let err = quantize(&float, &calib).unwrap_err();
    assert!(
        matches!(&err, ProverError::Quantization { reason } if reason.contains("fc0")),
        "{err}"
    );
    let FloatOp::Dense(d) = &mut float.nodes[1].op else {
        unreachable!()
    };
    d.bias.pop();
    assert!(matches!(
        quantize(&float, &calib),
        Err(ProverError::UnsupportedGraph { .. })
    ));
}

/// A model over raw features of very different ranges (feature `j` spans about `10^(j − 2)`), with weights that
/// undo the ranges (as a folded scaler does), and its calibration inputs.
fn raw_feature_model() -> (FloatModel, Vec<Vec<f32>>) {
    let (mut float, calib) = random_model(7);
    let range = |j: usize| 10f32.powi(j as i32 % 5 - 2);
    let FloatOp::Dense(d) = &mut float.nodes[0].op else {
        unreachable!()
    };
    for (i, w) in d.weights.iter_mut().enumerate() {
        *w /= range(i % 16);
    }
    let raw = calib
        .iter()
        .map(|x| x.iter().enumerate().map(|(j, v)| v * range(j)).collect())
        .collect();
    (float, raw)
}

#[test]
fn per_channel_input_scales_fold_into_the_first_layer() {
    let (float, calib) = raw_feature_model();
    let per_tensor = Precision {
        input: InputScales::PerTensor,
        ..Precision::default()
    };
    let (q, qt) = (
        quantize(&float, &calib).unwrap(),
        quantize_with(&float, &calib, per_tensor).unwrap(),
    );
    assert_eq!((q.input.scales.len(), q.input.stride), (16, 1));
    assert_eq!(qt.input.scales.len(), 1);
    // No layer is added: the first layer's weights absorb the scales.
    assert_eq!(q.layers.len(), qt.layers.len());
    for (j, s) in q.input.scales.iter().enumerate() {
        let max = calib.iter().map(|x| x[j].abs()).fold(0f32, f32::max);
        assert!(
            (s - max / 127.0).abs() <= 1e-6 * s,
            "feature {j}: {s} vs {}",
            max / 127.0
        );
    }
    // Per channel, every sample's int8 outputs track the float ones; per tensor, the small features vanish.
    let error = |q: &QuantizedModel| {
        let mut worst = 0f64;
        for x in &calib {
            let want = float.forward(x).unwrap();
            let got = dequantize_output(q, &infer(q, &quantize_input(q, x).unwrap()).unwrap());
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            for (a, b) in want.iter().zip(&got) {
                worst = worst.max((*a as f64 - *b as f64).abs() / scale);
            }
        }
        worst
    };
    let (channel, tensor) = (error(&q), error(&qt));
    assert!(
        channel < 0.1 && tensor > 3.0 * channel,
        "per channel {channel}, per tensor {tensor}"
    );
}

#[test]
fn an_input_read_by_a_table_is_quantized_per_tensor() {
    let float = FloatModel {
        name: "t".into(),
        input_shape: vec![1, 2],
        nodes: vec![node(
            "act",
            vec![0],
            vec![1, 2],
            FloatOp::Activation(ActFn::Tanh),
            false,
        )],
    };
    let q = quantize(&float, &[vec![0.01, 100.0]]).unwrap();
    assert_eq!(q.input.scales.len(), 1, "a table cannot absorb channel scales");
    assert_eq!(q.layers.len(), 1);
}

#[test]
fn sixteen_bit_activations_go_where_only_linear_layers_read_and_layers_can_stay_int8() {
    // fc0 (ReLU) → fc1 (ReLU) → fc2: both hidden outputs may be 16-bit; the model output keeps its own width.
    let (float, calib) = random_model(3);
    assert_eq!(wide_layers(&float), vec![0, 1]);
    let bits = |p: Precision| {
        let q = quantize_with(&float, &calib, p).unwrap();
        q.layers.iter().map(|l| linear(&l.op).output_bits).collect::<Vec<u32>>()
    };
    let wide = Precision {
        activation_bits: 16,
        ..Precision::default()
    };
    assert_eq!(bits(wide.clone()), vec![16, 16, 8]);
    let first_narrow = Precision {
        int8_layers: [0].into_iter().collect(),
        ..wide.clone()
    };
    assert_eq!(bits(first_narrow.clone()), vec![8, 16, 8]);
    assert!(
        first_narrow.to_string().contains("int8 after layers {0}"),
        "{first_narrow}"
    );
    // 16-bit hidden values track the float ones at least as closely as int8 ones.
    let error = |p: Precision| {
        let q = quantize_with(&float, &calib, p).unwrap();
        calib
            .iter()
            .map(|x| {
                let want = float.forward(x).unwrap();
                let got = dequantize_output(&q, &infer(&q, &quantize_input(&q, x).unwrap()).unwrap());
                want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
            })
            .fold(0f32, f32::max)
    };
    assert!(error(wide) <= error(Precision::default()) * 1.01);
}

/// The relative RMS error of the normalized values (tensor 2) of `q` against `float`'s over `calib`.
fn norm_error(float: &FloatModel, q: &QuantizedModel, calib: &[Vec<f32>]) -> f64 {
    let scale = q.layers[1].output_scale as f64;
    let (mut error, mut magnitude) = (0f64, 0f64);
    for x in calib {
        let float_tensors = float.forward_all(x).unwrap();
        let tensors = q.eval_reference(&quantize_input(q, x).unwrap()).unwrap();
        for (&y, &f) in tensors[2].iter().zip(&float_tensors[2]) {
            error += (y as f64 * scale - f as f64).powi(2);
            magnitude += (f as f64).powi(2);
        }
    }
    (error / magnitude).sqrt()
}

/// The layer norm of `q` (its second layer).
fn second_layer_norm(q: &QuantizedModel) -> &LayerNorm {
    match &q.layers[1].op {
        Op::LayerNorm(norm) => norm,
        op => panic!("layer 1 is {op:?}"),
    }
}

#[test]
fn a_layer_norm_lowers_to_the_exact_integer_normalization_and_tracks_the_float_one() {
    let (float, calib) = random_norm(3);
    let q = quantize(&float, &calib).unwrap();
    let norm = second_layer_norm(&q);
    assert_eq!((norm.row_len, norm.input, norm.input_bits), (8, 1, 8));
    // The widest root |c·q| < 2^40 allows for int8 rows (|c| ≤ 7·255 needs 11 bits).
    assert_eq!(norm.root_bits, 29);
    assert!(norm.root_of(norm.epsilon) < 1 << norm.root_bits);
    let relative = norm_error(&float, &q, &calib);
    assert!(relative < 0.02, "normalized values off by {:.2} %", 100.0 * relative);
}

#[test]
fn a_layer_norm_reads_16_bit_rows_where_16_bit_activations_are_asked_for() {
    let (float, calib) = random_norm(3);
    // The Dense before the layer norm is read by it alone: it may be 16-bit.
    assert!(wide_layers(&float).contains(&0), "{:?}", wide_layers(&float));
    let wide = Precision {
        activation_bits: 16,
        ..Precision::default()
    };
    let q = quantize_with(&float, &calib, wide).unwrap();
    q.validate().unwrap();
    let norm = second_layer_norm(&q);
    assert_eq!((q.tensor_bits(1), norm.input_bits), (16, 16));
    // |c| ≤ 7·65,535 needs 19 bits: a root of 29, which still keeps 12 bits at the largest variance.
    assert_eq!(norm.root_bits, 29);
    assert!(norm.root_of(norm.epsilon) < 1 << norm.root_bits);
    assert!(norm.root_of(norm.variance_bound() as i64) >= 1 << 11);
    let narrow = norm_error(&float, &quantize(&float, &calib).unwrap(), &calib);
    let relative = norm_error(&float, &q, &calib);
    assert!(relative <= narrow, "16-bit rows: {relative}, int8 rows: {narrow}");
    // The native engine is the reference evaluation, whatever the input width.
    for x in &calib[..8] {
        let input = quantize_input(&q, x).unwrap();
        let tensors = q.eval_reference(&input).unwrap();
        assert_eq!(infer(&q, &input).unwrap(), *tensors.last().unwrap());
        for row in norm.eval_rows(&tensors[1]) {
            let (p, v, r) = (1u128 << (2 * norm.root_shift), row.variance as u128, row.root as u128);
            assert!(r * r * v <= p && (r + 1) * (r + 1) * v > p, "{row:?}");
        }
    }
}

#[test]
fn a_layer_norm_stays_int8_where_it_reads_through_a_move_or_its_rows_are_too_long() {
    assert!(lower::norm_reads_16_bit(768), "BERT's rows");
    assert!(!lower::norm_reads_16_bit(4096));
    // The same block with a transposing move between the Dense and the layer norm: the layer norm would read a
    // gathered copy, so the Dense stays int8 even at 16-bit activations.
    let (mut float, _) = random_norm(3);
    let swap: Vec<(usize, usize)> = (0..32).map(|i| (0, (i % 8) * 4 + i / 8)).collect();
    float
        .nodes
        .insert(1, node("swap", vec![1], vec![1, 8, 4], FloatOp::Move(swap), false));
    for (i, node) in float.nodes.iter_mut().enumerate().skip(2) {
        node.inputs = vec![i];
    }
    if let FloatOp::LayerNorm { row_len, .. } = &mut float.nodes[2].op {
        *row_len = 4;
    }
    float.nodes[2].output_shape = vec![1, 8, 4];
    assert!(!wide_layers(&float).contains(&0), "{:?}", wide_layers(&float));
}

#[test]
fn clipped_ranges_saturate_rare_outliers_only() {
    // 64 samples of 4096 values through an identity affine node.
    let float = FloatModel {
        name: "identity".into(),
        input_shape: vec![1, 4096],
        nodes: vec![node(
            "id",
            vec![0],
            vec![1, 4096],
            FloatOp::Affine {
                scale: vec![1.0; 4096],
                shift: vec![0.0; 4096],
            },
            false,
        )],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut samples: Vec<Vec<f32>> = (0..64).map(|_| values(&mut rng, 4096, 1.0)).collect();
    // Uniform values have no tail: the range stays whole.
    let maxima = calibrate(&float, &samples).unwrap();
    let clipped = clipped_ranges(&float, &samples, &maxima).unwrap();
    for (c, m) in clipped.iter().zip(&maxima) {
        assert!(*c >= 0.9 * m && *c <= *m, "{c} of {m}");
    }
    // One value of 10 among 262,144 within ±1: saturating it costs less than a 10× coarser step for all the rest.
    samples[3][7] = 10.0;
    let maxima = calibrate(&float, &samples).unwrap();
    let clipped = clipped_ranges(&float, &samples, &maxima).unwrap();
    for (c, m) in clipped.iter().zip(&maxima) {
        assert!(*c <= 0.5 * m && *c >= 0.3 * m - 1e-9, "{c} of {m}");
    }
}

/// A BERT-sized layer norm (768 features) with BERT's ε = 1e-12: `ε·n³/s²` rounds to 0, so without a floor `E` would
/// be 1 and the root (`2^F/√V`, F limited by the root's width at `V = E`) would keep 2 bits at typical rows. The
/// lowering raises `E` so that every root keeps 12 bits, and the normalized values track the float ones.
#[test]
fn a_long_row_with_a_tiny_epsilon_keeps_the_roots_precise() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let node = |name: &str, inputs, op| crate::quantize::tests::node(name, inputs, vec![1, 4, 768], op, false);
    let float = FloatModel {
        name: "bert-norm".into(),
        input_shape: vec![1, 4, 768],
        nodes: vec![
            node(
                "ln",
                vec![0],
                FloatOp::LayerNorm {
                    row_len: 768,
                    epsilon: 1e-12,
                },
            ),
            node(
                "out",
                vec![1],
                FloatOp::Affine {
                    scale: vec![1.0; 4 * 768],
                    shift: vec![0.0; 4 * 768],
                },
            ),
        ],
    };
    let calib: Vec<Vec<f32>> = (0..16).map(|_| values(&mut rng, 4 * 768, 2.0)).collect();
    let q = quantize(&float, &calib).unwrap();
    let Op::LayerNorm(norm) = &q.layers[0].op else {
        panic!("layer 0 is {:?}", q.layers[0].op)
    };
    assert!(norm.epsilon > 1, "E = {}", norm.epsilon);
    let largest = norm.variance_bound() as i64;
    assert!(
        norm.root_of(largest) >= 1 << 12,
        "root {} at the largest variance",
        norm.root_of(largest)
    );
    let scale = q.layers[0].output_scale as f64;
    let (mut error, mut magnitude) = (0f64, 0f64);
    for x in &calib {
        let float_tensors = float.forward_all(x).unwrap();
        let tensors = q.eval_reference(&quantize_input(&q, x).unwrap()).unwrap();
        for (&y, &f) in tensors[1].iter().zip(&float_tensors[1]) {
            error += (y as f64 * scale - f as f64).powi(2);
            magnitude += (f as f64).powi(2);
        }
    }
    let relative = (error / magnitude).sqrt();
    assert!(relative < 0.03, "normalized values off by {:.2} %", 100.0 * relative);
}

/// A residual stream: `a = Dense(x)`, `b = Dense(a)`, `a + b`, LayerNorm, a Dense head (4 positions of 6 features).
fn random_residual(seed: u64) -> (FloatModel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut dense = |outputs: usize| {
        FloatOp::Dense(Dense {
            positions: 4,
            in_features: 6,
            out_features: outputs,
            weights: values(&mut rng, 6 * outputs, 0.5),
            bias: values(&mut rng, outputs, 0.2),
        })
    };
    let nodes = vec![
        node("a", vec![0], vec![1, 4, 6], dense(6), false),
        node("b", vec![1], vec![1, 4, 6], dense(6), false),
        node("Add", vec![1, 2], vec![1, 4, 6], FloatOp::Add, false),
        node(
            "ln",
            vec![3],
            vec![1, 4, 6],
            FloatOp::LayerNorm {
                row_len: 6,
                epsilon: 1e-5,
            },
            false,
        ),
        node("head", vec![4], vec![1, 4, 3], dense(3), false),
    ];
    let float = FloatModel {
        name: "residual".into(),
        input_shape: vec![1, 4, 6],
        nodes,
    };
    let inputs = (0..64).map(|_| values(&mut rng, 24, 1.0)).collect();
    (float, inputs)
}

#[test]
fn a_residual_stream_is_16_bit_through_its_additions_and_keeps_12_bit_weights() {
    let (float, calib) = random_residual(4);
    // Both Dense outputs, the sum and the normalized values: only linear layers and the layer norm read them.
    assert_eq!(wide_layers(&float), vec![0, 1, 2, 3]);
    let wide = Precision {
        activation_bits: 16,
        ..Precision::default()
    };
    let q = quantize_with(&float, &calib, wide).unwrap();
    q.validate().unwrap();
    let add = (q.layers.iter().position(|l| l.op_type == "Add")).expect("the addition");
    assert_eq!(q.tensor_bits(add + 1), 16);
    let Op::Linear(lin) = &q.layers[add].op else {
        panic!("an addition is linear")
    };
    // Neither weight loses precision to rounding: the coarser input's is 2^12 or more, the finer one's 2^10 or more.
    let weights = &lin.kernels[0].weights;
    assert!(weights.iter().max() >= Some(&4096), "{weights:?}");
    assert!(weights.iter().all(|&w| w >= 1024), "{weights:?}");
    // An int8 input beside a 16-bit one (scales ~256× apart): both weights keep 10 bits at least, within
    // MAX_WEIGHT.
    let narrow_b = Precision {
        int8_layers: [1].into_iter().collect(),
        activation_bits: 16,
        ..Precision::default()
    };
    let q = quantize_with(&float, &calib, narrow_b).unwrap();
    q.validate().unwrap();
    let Op::Linear(lin) = &q.layers[add].op else {
        panic!("an addition is linear")
    };
    assert_eq!((q.tensor_bits(1), q.tensor_bits(2)), (16, 8));
    let weights = &lin.kernels[0].weights;
    assert!(weights.iter().all(|&w| (1024..=1 << 20).contains(&w)), "{weights:?}");
}
