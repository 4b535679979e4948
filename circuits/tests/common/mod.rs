//! Small deterministic models for the chip tests, built directly in the IR, and a straightforward reference
//! inference to compare the circuit with; `forge` runs forged witnesses as a cheating prover would, `checker` is
//! the independent checker of every assigned cell, `structure` records a synthesis's fixed columns, selectors and
//! copy constraints. The workspace's `tests/circuit_audit` includes this module too.

#![allow(dead_code)]

pub mod checker;
pub mod forge;
pub mod structure;

use zkinfer_circuits::model::{
    Activation, ArgMax, Kernel, Layer, LayerNorm, Linear, LinearGroup, MatMul, MaxPool, Mul, Op, QuantizedModel,
    Softmax, Source, Table, MODEL_FORMAT_VERSION,
};
use zkinfer_circuits::params::Chip;
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit, PublicInputs, Witness};

fn pseudo_random(seed: &mut u64) -> i64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 33) % 255) as i64 - 127
}

/// A kernel over `taps` inputs; multipliers and shifts vary with `variant` so that outputs saturate at both ends as
/// well as land inside the range.
fn kernel(taps: usize, variant: usize, shift_variant: usize, seed: &mut u64) -> Kernel {
    Kernel {
        weights: (0..taps).map(|_| pseudo_random(seed)).collect(),
        bias: pseudo_random(seed) * 40,
        multiplier: [9_000_000, 40_000, 3_000_000][variant % 3],
        shift: if shift_variant.is_multiple_of(2) { 24 } else { 32 },
    }
}

fn layer(name: &str, op_type: &str, output_shape: Vec<usize>, op: Op) -> Layer {
    Layer {
        name: name.into(),
        op_type: op_type.into(),
        output_shape,
        output_scale: 0.05,
        op,
    }
}

/// A fully connected layer from tensor `input` (`inputs` long) to `outputs` channels.
fn dense(name: &str, input: usize, inputs: usize, outputs: usize, activation: Activation, seed: &mut u64) -> Layer {
    let kernels = (0..outputs).map(|c| kernel(inputs, c + outputs, c, seed)).collect();
    let taps = (0..inputs).map(|index| Some(Source { tensor: input, index })).collect();
    let group = LinearGroup {
        taps,
        outputs: (0..outputs).map(|c| (c, c)).collect(),
    };
    layer(
        name,
        "Gemm",
        vec![outputs],
        Op::Linear(Linear {
            kernels,
            groups: vec![group],
            activation,
            output_bits: 8,
        }),
    )
}

fn model(name: &str, input_shape: Vec<usize>, layers: Vec<Layer>) -> QuantizedModel {
    QuantizedModel {
        format_version: MODEL_FORMAT_VERSION,
        name: name.into(),
        input_shape,
        input: zkinfer_circuits::model::InputQuantization::per_tensor(0.05),
        layers,
    }
}

/// 6 inputs → 5 (ReLU) → 3.
pub fn small_model() -> QuantizedModel {
    let mut seed = 7;
    let l1 = dense("fc1", 0, 6, 5, Activation::Relu, &mut seed);
    let l2 = dense("fc2", 1, 5, 3, Activation::Identity, &mut seed);
    model("small", vec![1, 6], vec![l1, l2])
}

/// The MLP with 16-bit outputs: its last layer's multipliers scaled up, so that outputs land beyond int8 as well
/// as saturate at the 16-bit bounds.
pub fn small_wide_model() -> QuantizedModel {
    let mut model = small_model();
    model.name = "small-wide".into();
    let last = model.layers.last_mut().expect("layers");
    let Op::Linear(lin) = &mut last.op else {
        unreachable!("the MLP ends with a dense layer")
    };
    lin.output_bits = 16;
    for (kernel, factor) in lin.kernels.iter_mut().zip([256, 256, 16]) {
        kernel.multiplier *= factor;
    }
    model
}

/// The MLP with 16-bit hidden activations: the first layer's ReLU outputs are 16-bit (multipliers scaled up so that
/// they land beyond int8 and saturate at 32767), and the second layer reads them (one channel scaled down to match,
/// the others saturating at both ends).
pub fn small_wide_hidden_model() -> QuantizedModel {
    let mut model = small_model();
    model.name = "small-wide-hidden".into();
    let scale = |layer: &mut Layer, bits: Option<u32>, factors: [i64; 5], divide: bool| {
        let Op::Linear(lin) = &mut layer.op else {
            unreachable!("the MLP's layers are dense")
        };
        if let Some(bits) = bits {
            lin.output_bits = bits;
        }
        for (kernel, f) in lin.kernels.iter_mut().zip(factors) {
            if divide {
                kernel.shift += f.trailing_zeros();
            } else {
                kernel.multiplier *= f;
            }
        }
    };
    // Three channels negated, so that the ReLU passes them on this witness (the other two it cuts).
    if let Op::Linear(lin) = &mut model.layers[0].op {
        for kernel in &mut lin.kernels[..3] {
            kernel.weights.iter_mut().for_each(|w| *w = -*w);
            kernel.bias = -kernel.bias;
        }
    }
    scale(&mut model.layers[0], Some(16), [256, 256, 4096, 16, 256], false);
    scale(&mut model.layers[1], None, [256, 1, 1, 1, 1], true);
    model
}

/// 1×4×4 → Conv(2, 3×3, pad 1) + ReLU → MaxPool 2×2 → Sigmoid-like table → residual Add(pool, table) →
/// Transpose-like gather → Gemm(3).
pub fn small_cnn() -> QuantizedModel {
    let mut seed = 11;
    // Conv: one group per position, one kernel per output channel, taps in (kh, kw) order, None off the edge.
    let kernels = (0..2).map(|c| kernel(9, c, c, &mut seed)).collect();
    let mut groups = Vec::new();
    for y in 0..4i64 {
        for x in 0..4i64 {
            let taps = (0..9)
                .map(|t| {
                    let (iy, ix) = (y + t / 3 - 1, x + t % 3 - 1);
                    ((0..4).contains(&iy) && (0..4).contains(&ix)).then(|| Source {
                        tensor: 0,
                        index: (iy * 4 + ix) as usize,
                    })
                })
                .collect();
            let position = (y * 4 + x) as usize;
            groups.push(LinearGroup {
                taps,
                outputs: vec![(position, 0), (16 + position, 1)],
            });
        }
    }
    let conv = layer(
        "conv",
        "Conv+Relu",
        vec![2, 4, 4],
        Op::Linear(Linear {
            kernels,
            groups,
            activation: Activation::Relu,
            output_bits: 8,
        }),
    );
    let windows = (0..2)
        .flat_map(|c| (0..2).flat_map(move |py| (0..2).map(move |px| (c, py, px))))
        .map(|(c, py, px)| {
            (0..4)
                .map(|t| Source {
                    tensor: 1,
                    index: c * 16 + (2 * py + t / 2) * 4 + 2 * px + t % 2,
                })
                .collect()
        })
        .collect();
    let pool = layer("pool", "MaxPool", vec![2, 2, 2], Op::MaxPool(MaxPool { windows }));
    let values = (-128i64..=127)
        .map(|x| (127.0 / (1.0 + (-(x as f64) / 16.0).exp())).round() as i8)
        .collect();
    let mut sigmoid = layer(
        "act",
        "Sigmoid",
        vec![2, 2, 2],
        Op::Table(Table {
            input: 2,
            function: "Sigmoid".into(),
            values,
        }),
    );
    sigmoid.output_scale = 0.008;
    let add_kernel = Kernel {
        weights: vec![4096, 655],
        bias: 0,
        multiplier: 40_000,
        shift: 24,
    };
    let add_groups = (0..8)
        .map(|i| LinearGroup {
            taps: vec![
                Some(Source { tensor: 2, index: i }),
                Some(Source { tensor: 3, index: i }),
            ],
            outputs: vec![(i, 0)],
        })
        .collect();
    let add = layer(
        "add",
        "Add",
        vec![2, 2, 2],
        Op::Linear(Linear {
            kernels: vec![add_kernel],
            groups: add_groups,
            activation: Activation::Identity,
            output_bits: 8,
        }),
    );
    let gather = layer(
        "transpose",
        "Transpose",
        vec![8],
        Op::Gather(
            (0..8)
                .map(|i| Source {
                    tensor: 4,
                    index: (i % 2) * 4 + i / 2,
                })
                .collect(),
        ),
    );
    let fc = dense("fc", 5, 8, 3, Activation::Identity, &mut seed);
    model(
        "small-cnn",
        vec![1, 1, 4, 4],
        vec![conv, pool, sigmoid, add, gather, fc],
    )
}

/// 6 inputs → fc(4) → gate = Mul of pairs of inputs (int8) → out = Mul of pairs of gate and fc outputs (16-bit
/// outputs): products of activations as GLU-style blocks and attention use them, an operand read twice, the
/// largest product `(−128)²`, and a product of a product. On [`witness_for`]'s input some products saturate high,
/// some low and some land inside the range, in both layers.
pub fn small_gated_model() -> QuantizedModel {
    let mut seed = 23;
    let fc = dense("fc", 0, 6, 4, Activation::Identity, &mut seed);
    let source = |tensor: usize, index: usize| Source { tensor, index };
    let product = |name: &str, operands: Vec<[Source; 2]>, multiplier: i64, output_bits: u32| {
        layer(
            name,
            "Mul",
            vec![operands.len()],
            Op::Mul(Mul {
                operands,
                multiplier,
                shift: 24,
                activation: Activation::Identity,
                output_bits,
            }),
        )
    };
    let pairs = |lhs: usize, rhs: usize, indices: &[(usize, usize)]| -> Vec<[Source; 2]> {
        indices.iter().map(|&(i, j)| [source(lhs, i), source(rhs, j)]).collect()
    };
    // Inputs 127, −128, 0, −55, 3, −100: products 16129, 16384, −16256, −165, 0, 3025, scaled by 1/64.
    let gate = product(
        "gate",
        pairs(0, 0, &[(0, 0), (1, 1), (0, 1), (3, 4), (4, 2), (3, 3)]),
        1 << 18,
        8,
    );
    // Gate outputs 127, 127, −128, −3, 0, 47: products scaled by 4 into 16 bits.
    let mut out_operands = pairs(2, 2, &[(0, 1), (0, 2), (3, 5), (5, 5)]);
    out_operands.extend(pairs(2, 1, &[(5, 0), (4, 3)]));
    let out = product("out", out_operands, 1 << 26, 16);
    model("small-gated", vec![1, 6], vec![fc, gate, out])
}

/// Attention's matrix products of two activations, on a `4 × 6` input `X`: scores `S = X·Y` (`4×6` by `6×4`, `Y`
/// a transposed, rotated view of `X` itself), `Z = S·X` (`4×4` by `4×6`), then two products of `2×3` by `3×2`
/// blocks of `Z` at once (heads: columns 0–2 times the transpose of columns 3–5), with 16-bit outputs. Each layer's
/// outputs saturate at both ends and land inside the range.
pub fn small_attention_model() -> QuantizedModel {
    let source = |tensor: usize, index: usize| Source { tensor, index };
    let matmul = |name: &str, [m, n, p]: [usize; 3], lhs: Vec<Source>, rhs: Vec<Source>, multiplier, bits| {
        let products = lhs.len() / (m * n);
        layer(
            name,
            "MatMul",
            vec![products, m, p],
            Op::MatMul(MatMul {
                rows: m,
                inner: n,
                columns: p,
                lhs,
                rhs,
                multiplier,
                shift: 24,
                activation: Activation::Identity,
                output_bits: bits,
            }),
        )
    };
    let x = |i: usize, k: usize| source(0, i * 6 + k);
    let whole = |t: usize, len: usize| (0..len).map(|i| source(t, i)).collect::<Vec<_>>();
    let rotated: Vec<Source> = (0..6)
        .flat_map(|k| (0..4).map(move |j| x(j, (k + 1 + j) % 6)))
        .collect();
    let scores = matmul("scores", [4, 6, 4], whole(0, 24), rotated, 1 << 17, 8);
    let mixed = matmul("mix", [4, 4, 6], whole(1, 16), whole(0, 24), 1 << 17, 8);
    let z = |i: usize, k: usize| source(2, i * 6 + k);
    let (mut lhs, mut rhs) = (Vec::new(), Vec::new());
    for head in 0..2 {
        lhs.extend((0..2).flat_map(|i| (0..3).map(move |k| z(2 * head + i, k))));
        rhs.extend((0..3).flat_map(|k| (0..2).map(move |j| z(2 * head + j, 3 + k))));
    }
    let heads = matmul("heads", [2, 3, 2], lhs, rhs, 1 << 28, 16);
    model("small-attention", vec![1, 4, 6], vec![scores, mixed, heads])
}

/// The exponential table of a softmax reading int8 values at `scale`: `round(2^14 · e^(scale · d))`.
pub fn exp_table(scale: f64) -> Vec<i64> {
    (-255i64..=0)
        .map(|d| (16384.0 * (scale * d as f64).exp()).round() as i64)
        .collect()
}

/// Softmax with masks on a `3 × 5` input `X`: row 0 whole, row 1 causal (the first two kept), row 2 with both ends
/// masked; then the probabilities times `Xᵀ` (`3×5` by `5×3`) and a second softmax over those rows, whole, with
/// another exponential table.
pub fn small_softmax_model() -> QuantizedModel {
    let keep = [
        [true; 5],
        [true, true, false, false, false],
        [false, true, true, true, false],
    ]
    .concat();
    let first = layer(
        "attn",
        "Softmax",
        vec![3, 5],
        Op::Softmax(Softmax {
            input: 0,
            row_len: 5,
            keep,
            exp: exp_table(0.05),
        }),
    );
    let source = |tensor: usize, index: usize| Source { tensor, index };
    let mix = layer(
        "mix",
        "MatMul",
        vec![3, 3],
        Op::MatMul(MatMul {
            rows: 3,
            inner: 5,
            columns: 3,
            lhs: (0..15).map(|i| source(1, i)).collect(),
            rhs: (0..5).flat_map(|k| (0..3).map(move |j| source(0, j * 5 + k))).collect(),
            multiplier: 1 << 18,
            shift: 24,
            activation: Activation::Identity,
            output_bits: 8,
        }),
    );
    let second = layer(
        "attn2",
        "Softmax",
        vec![3, 3],
        Op::Softmax(Softmax {
            input: 2,
            row_len: 3,
            keep: vec![true; 9],
            exp: exp_table(0.02),
        }),
    );
    model("small-softmax", vec![1, 3, 5], vec![first, mix, second])
}

/// The cell kinds of the layer-norm chip.
pub const NORM_KINDS: [zkinfer_circuits::assign::CellKind; 7] = {
    use zkinfer_circuits::assign::CellKind;
    [
        CellKind::NormInput,
        CellKind::NormSum,
        CellKind::NormCentred,
        CellKind::NormSquares,
        CellKind::NormRoot,
        CellKind::NormSlack,
        CellKind::NormProduct,
    ]
};

/// Two layer normalizations over rows of six: a gather of the input's 24 values and six copies of its first (a
/// constant row, whose variance is `E` alone: the largest inverse square root), normalized with `E = 3`; then those
/// normalized again with `E = 1000` and a fused ReLU.
pub fn small_layer_norm_model() -> QuantizedModel {
    let source = |index: usize| Source { tensor: 0, index };
    let gathered = (0..24).map(source).chain(std::iter::repeat_n(source(0), 6)).collect();
    let rows = layer("rows", "Gather", vec![5, 6], Op::Gather(gathered));
    let norm = |name: &str, input, epsilon, root_shift, multiplier, shift, activation| {
        layer(
            name,
            "LayerNormalization",
            vec![5, 6],
            Op::LayerNorm(LayerNorm {
                input,
                input_bits: 8,
                row_len: 6,
                epsilon,
                root_shift,
                root_bits: 20,
                multiplier,
                shift,
                activation,
                output_bits: 8,
            }),
        )
    };
    let first = norm("ln1", 1, 3, 20, 8192, 26, Activation::Identity);
    let second = norm("ln2", 2, 1000, 24, 8192, 30, Activation::Relu);
    model("small-layer-norm", vec![1, 24], vec![rows, first, second])
}

/// The layer-norm model reading 16-bit values: instead of the gather, a one-tap linear layer per element writes the
/// same 30 elements times 200, 600 or −400 (one factor per row) as 16-bit values (`y = ⌊(x·w·400 + 1) / 2⌋`,
/// saturated at the 16-bit bounds where `|x·w|` is large), so the rows hold values far beyond int8 and the last is
/// still constant; the first layer norm reads them (`input_bits` 16, a variance sum up to 2^40, roots of 12–21
/// bits), the second its int8 outputs.
pub fn small_wide_layer_norm_model() -> QuantizedModel {
    let mut model = small_layer_norm_model();
    model.name = "small-wide-layer-norm".into();
    let Op::Gather(gathered) = model.layers[0].op.clone() else {
        unreachable!("the first layer is a gather")
    };
    let kernels = [1, 3, -2]
        .map(|w| Kernel {
            weights: vec![w],
            bias: 0,
            multiplier: 400,
            shift: 1,
        })
        .to_vec();
    let groups = (gathered.into_iter().enumerate())
        .map(|(i, source)| LinearGroup {
            taps: vec![Some(source)],
            outputs: vec![(i, (i / 6) % 3)],
        })
        .collect();
    model.layers[0] = layer(
        "widen",
        "Mul",
        vec![5, 6],
        Op::Linear(Linear {
            kernels,
            groups,
            activation: Activation::Identity,
            output_bits: 16,
        }),
    );
    let Op::LayerNorm(first) = &mut model.layers[1].op else {
        unreachable!("the second layer is a layer norm")
    };
    first.input_bits = 16;
    // |c_j| ≤ 5·65,535 < 2^19: a root of up to 48 − 19 = 29 bits; with F = 30 the root at V = E fits in 21.
    (first.epsilon, first.root_shift, first.root_bits) = (300_000, 30, 21);
    (first.multiplier, first.shift) = (8192, 36);
    model
}

/// ArgMax with ties: a gather of the input (`127, −128, 0, −55, …`) into three rows of four with repeated maxima
/// (`[127, 0, 127, −128]`, `[0, −55, 0, −128]`, `[3, −100, −55, 90]`), then the ArgMax of each row with ties to the
/// first maximum (read by nothing: its constraints hold all the same) and with ties to the last (the output).
pub fn small_argmax_model() -> QuantizedModel {
    let source = |index: usize| Source { tensor: 0, index };
    let gathered = [0, 2, 0, 1, 2, 3, 2, 1, 4, 5, 3, 6].map(source).to_vec();
    let rows = layer("rows", "Gather", vec![3, 4], Op::Gather(gathered));
    let argmax = |name: &str, select_last_index| {
        layer(
            name,
            "ArgMax",
            vec![3, 1],
            Op::ArgMax(ArgMax {
                input: 1,
                row_len: 4,
                select_last_index,
            }),
        )
    };
    let mut model = model(
        "small-argmax",
        vec![1, 8],
        vec![rows, argmax("first", false), argmax("last", true)],
    );
    // Indices are integers at scale 1 (the gather keeps the input's scale).
    for l in &mut model.layers[1..] {
        l.output_scale = 1.0;
    }
    model
}

/// The int8 function `round(127 · f(x / scale))` as a 256-entry table.
fn table_of(f: impl Fn(f64) -> f64, scale: f64) -> Vec<i8> {
    (-128i64..=127)
        .map(|x| (127.0 * f(x as f64 / scale)).round().clamp(-128.0, 127.0) as i8)
        .collect()
}

/// A table layer applying `values` to tensor `input` (`len` elements).
fn table_layer(name: &str, function: &str, input: usize, len: usize, values: Vec<i8>) -> Layer {
    layer(
        name,
        function,
        vec![len],
        Op::Table(Table {
            input,
            function: function.into(),
            values,
        }),
    )
}

/// 6 inputs → fc1 (ReLU) → Sigmoid → fc2 → Tanh → Mul of pairs → Sigmoid → fc3 → Tanh, and out reads fc3 and
/// its Tanh. The first three tables are the only readers of a requantizing layer's int8 output (a dense layer with
/// and without a ReLU, a product), which a circuit with fused tables folds into the clamp table; the last shares
/// its input with `out`, so it keeps its own lookup. Multipliers keep every quotient within 9 bits, so a clamp
/// table of 10-bit quotients covers every int8 requantization at a small `k`; outputs saturate at both ends and
/// land inside.
pub fn small_activated_model() -> QuantizedModel {
    let mut seed = 31;
    let sigmoid = table_of(|x| 1.0 / (1.0 + (-x).exp()), 16.0);
    let tanh = table_of(f64::tanh, 32.0);
    let calm = |mut l: Layer| {
        if let Op::Linear(lin) = &mut l.op {
            for (c, kernel) in lin.kernels.iter_mut().enumerate() {
                kernel.multiplier = [40_000, 20_000, 60_000][c % 3];
                kernel.shift = 24;
            }
        }
        l
    };
    let fc1 = calm(dense("fc1", 0, 6, 5, Activation::Relu, &mut seed));
    let act1 = table_layer("act1", "Sigmoid", 1, 5, sigmoid.clone());
    let fc2 = calm(dense("fc2", 2, 5, 4, Activation::Identity, &mut seed));
    let act2 = table_layer("act2", "Tanh", 3, 4, tanh.clone());
    let source = |tensor: usize, index: usize| Source { tensor, index };
    let gate = layer(
        "gate",
        "Mul",
        vec![4],
        Op::Mul(Mul {
            operands: [(0, 1), (1, 2), (2, 3), (3, 3)]
                .into_iter()
                .map(|(i, j)| [source(4, i), source(4, j)])
                .collect(),
            multiplier: 1 << 18,
            shift: 24,
            activation: Activation::Identity,
            output_bits: 8,
        }),
    );
    let act3 = table_layer("act3", "Sigmoid", 5, 4, sigmoid);
    let fc3 = calm(dense("fc3", 6, 4, 4, Activation::Identity, &mut seed));
    let act4 = table_layer("act4", "Tanh", 7, 4, tanh);
    let mut out = calm(dense("out", 7, 8, 3, Activation::Identity, &mut seed));
    if let Op::Linear(lin) = &mut out.op {
        // Four taps from fc3 and four from its Tanh.
        lin.groups[0].taps = (0..8).map(|i| Some(source(if i < 4 { 7 } else { 8 }, i % 4))).collect();
    }
    model(
        "small-activated",
        vec![1, 6],
        vec![fc1, act1, fc2, act2, gate, act3, fc3, act4, out],
    )
}

/// Token ids `[1, 5]` (vocabulary 7) → an embedding of width 3 whose table holds both int8 extremes → a dense
/// layer of the 15 embedded values to 3 16-bit outputs.
pub fn small_token_model() -> QuantizedModel {
    let mut seed = 41;
    let table = (0..21).map(|i| [127, -128, 0, 64, -77, 5, 99][i % 7]).collect();
    let embedding = layer(
        "wte",
        "Gather(embedding)",
        vec![5, 3],
        Op::Embedding(zkinfer_circuits::model::Embedding {
            ids: (0..5).map(|index| Source { tensor: 0, index }).collect(),
            width: 3,
            table,
        }),
    );
    let mut head = dense("head", 1, 15, 3, Activation::Identity, &mut seed);
    if let Op::Linear(lin) = &mut head.op {
        lin.output_bits = 16;
    }
    QuantizedModel {
        input: zkinfer_circuits::model::InputQuantization::tokens(7),
        ..model("small-token", vec![1, 5], vec![embedding, head])
    }
}

/// A valid witness for `model` (inputs cycle through a fixed pattern that covers both int8 extremes; token ids
/// cycle through the vocabulary's first and last ids).
pub fn witness_for(model: &QuantizedModel) -> Witness {
    let pattern = [127, -128, 0, -55, 3, -100, 90, 17];
    let input = match model.input.vocab {
        Some(vocab) => (0..model.input_len()).map(|i| ((i * 5) % vocab) as i64).collect(),
        None => (0..model.input_len()).map(|i| pattern[i % pattern.len()]).collect(),
    };
    Witness {
        salt: Fr::from(1234u64),
        nonce: Fr::from(99u64),
        input,
    }
}

/// The circuit of `model` on its witness with the planner's layout, and the public inputs.
pub fn circuit_for(model: QuantizedModel) -> (ModelCircuit, PublicInputs) {
    let params = CircuitParams::for_model(&model);
    circuit_with(model, params)
}

/// The circuit of `model` on its witness with the layout `params`, and the public inputs.
pub fn circuit_with(model: QuantizedModel, params: CircuitParams) -> (ModelCircuit, PublicInputs) {
    let witness = witness_for(&model);
    let outputs = reference_outputs(&model, &witness.input).pop().unwrap_or_default();
    let public = PublicInputs {
        input_commitment: commitment_of(&model, &witness),
        nonce: witness.nonce,
        outputs,
    };
    (ModelCircuit::new(model, params, witness), public)
}

/// The input commitment of `witness` for `model` (int8 values, or 16-bit token ids).
pub fn commitment_of(model: &QuantizedModel, witness: &Witness) -> Fr {
    zkinfer_circuits::poseidon::commit_words(witness.salt, &witness.input, model.input.word_bits())
}

/// The MLP's circuit.
pub fn small_circuit() -> (ModelCircuit, PublicInputs) {
    circuit_for(small_model())
}

/// The witness of the MLP.
pub fn small_witness() -> Witness {
    witness_for(&small_model())
}

/// Every tensor of `model` on `input`, input first: the IR's reference evaluation.
pub fn reference_outputs(model: &QuantizedModel, input: &[i64]) -> Vec<Vec<i64>> {
    model.eval_reference(input).expect("a valid model and input")
}

/// Whether `circuit` satisfies its constraints with the instance column `instance` (the mock prover at the size
/// its plan says).
pub fn satisfied(circuit: &ModelCircuit, instance: Vec<Fr>) -> bool {
    use halo2_proofs::plonk::Circuit;
    let k = zkinfer_circuits::layout::plan(circuit.model(), &circuit.params())
        .expect("plan")
        .k;
    halo2_proofs::dev::MockProver::run(k, circuit, vec![instance])
        .expect("synthesis")
        .verify()
        .is_ok()
}

/// `model`'s layout with its table activations fused ([`Chip::FusedTables`]) into the narrowest clamp table that
/// covers every requantization a table could fuse into (a small `k`; the planner's table must cover 95 % of all).
pub fn fused_params(model: &QuantizedModel) -> CircuitParams {
    use zkinfer_circuits::chips::clamp_table::{MAX_CLAMP_BITS, MIN_CLAMP_BITS};
    use zkinfer_circuits::chips::fusion::{candidates, Fusion};
    let mut base = CircuitParams::with_chips_of(model);
    base.chips.insert(Chip::FusedTables);
    let fusable = candidates(model).len();
    assert!(fusable > 0, "{}: no table activation can fuse", model.name);
    (MIN_CLAMP_BITS..=MAX_CLAMP_BITS)
        .map(|clamp_bits| CircuitParams {
            clamp_bits,
            ..base.clone()
        })
        .find(|params| Fusion::of(model, params).tables().len() == fusable)
        .unwrap_or_else(|| panic!("{}: no clamp table covers every fusable requantization", model.name))
}

/// The narrowest clamp table (bits) through which `params` would send at least one of `model`'s requantizations:
/// a layout with rows of both requantization gates that stays at a small `k` (the planner's table, which must
/// cover 95 % of the outputs, needs `k` = 18 on the small MLP, where one mock proof takes seconds).
pub fn narrowest_used_clamp_bits(model: &QuantizedModel, params: &CircuitParams) -> u32 {
    use zkinfer_circuits::assign::CellKind;
    (zkinfer_circuits::chips::clamp_table::MIN_CLAMP_BITS..=zkinfer_circuits::chips::clamp_table::MAX_CLAMP_BITS)
        .find(|&clamp_bits| {
            let (circuit, public) = circuit_with(
                model.clone(),
                CircuitParams {
                    clamp_bits,
                    ..params.clone()
                },
            );
            assert!(
                satisfied(&circuit, public.to_instance()),
                "{}: honest witness rejected",
                model.name
            );
            circuit
                .assigned_cell_counts()
                .get(&CellKind::Quotient)
                .is_some_and(|&n| n > 0)
        })
        .unwrap_or_else(|| panic!("{}: no requantization fits any clamp table", model.name))
}
