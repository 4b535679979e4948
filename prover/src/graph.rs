//! The float model the importer builds: a graph of layers over flat NCHW tensors (batch of one), in topological
//! order, with a reference forward pass in f64 accumulators (used for calibration and tests).
//!
//! Tensor ids follow the quantized IR: tensor 0 is the model input, tensor `i + 1` the output of node `i`, the last
//! tensor the output. Every tensor is stored flat in row-major order of its ONNX shape (batch dimension included).
//! BatchNormalization and constant bias additions are already folded into the linear layer before them, and a ReLU
//! that is the only reader of a linear layer's output is fused into it.

use serde::{Deserialize, Serialize};

use crate::error::{ProverError, Result};

/// Index of a float tensor: 0 is the input, `i + 1` the output of node `i`.
pub type FloatTensorId = usize;

/// An elementwise activation function.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActFn {
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x ≥ 0`, `alpha · x` below.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `min(max(x, min), max)` (Relu6 is `Clip(0, 6)`).
    Clip {
        /// Lower bound (may be −∞).
        min: f32,
        /// Upper bound (may be +∞).
        max: f32,
    },
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x · min(max(x/6 + 1/2, 0), 1)`.
    HardSwish,
    /// `x · Φ(x)`, exactly with erf, or the tanh approximation.
    Gelu {
        /// Whether the tanh approximation is used (ONNX `approximate = "tanh"`).
        tanh: bool,
    },
    /// `√x`, taken as 0 below 0 (where ONNX gives NaN; only rounding brings a variance there).
    Sqrt,
    /// `1 / x` (±∞ at 0, which the table clamps to its largest output).
    Reciprocal,
}

impl ActFn {
    /// The ONNX name of the function (recorded in the quantized table).
    pub fn name(&self) -> &'static str {
        match self {
            ActFn::Relu => "Relu",
            ActFn::LeakyRelu { .. } => "LeakyRelu",
            ActFn::Clip { .. } => "Clip",
            ActFn::Sigmoid => "Sigmoid",
            ActFn::Tanh => "Tanh",
            ActFn::HardSwish => "HardSwish",
            ActFn::Gelu { .. } => "Gelu",
            ActFn::Sqrt => "Sqrt",
            ActFn::Reciprocal => "Reciprocal",
        }
    }

    /// The function at `x`, in f64.
    pub fn eval(&self, x: f64) -> f64 {
        match *self {
            ActFn::Relu => x.max(0.0),
            ActFn::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            ActFn::Clip { min, max } => x.max(min as f64).min(max as f64),
            ActFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActFn::Tanh => x.tanh(),
            ActFn::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            ActFn::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            ActFn::Gelu { tanh: true } => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            ActFn::Sqrt => x.max(0.0).sqrt(),
            ActFn::Reciprocal => 1.0 / x,
        }
    }
}

/// The error function, to about 1e-14 (series near 0, continued fraction for erfc beyond).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(a) = 2/√π · Σ (−1)^n a^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a < 6.0 {
        // erfc(a) = e^(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …)))), evaluated from the tail.
        let mut f = a;
        for k in (1..=60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else {
        1.0
    };
    r.copysign(x)
}

/// A 2-D sliding window over an NCHW tensor: kernel, strides and explicit zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window2d {
    /// Input height and width.
    pub input_hw: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal strides.
    pub strides: [usize; 2],
    /// Padding `[top, left, bottom, right]` (ONNX `pads` order).
    pub pads: [usize; 4],
}

impl Window2d {
    /// Output height and width (floor mode); 0 where the kernel does not fit.
    pub fn output_hw(&self) -> [usize; 2] {
        let dim = |i: usize| {
            let padded = self.input_hw[i] + self.pads[i] + self.pads[i + 2];
            match (padded.checked_sub(self.kernel[i]), self.strides[i]) {
                (Some(room), s) if s > 0 => room / s + 1,
                _ => 0,
            }
        };
        [dim(0), dim(1)]
    }

    /// The input positions `(y, x)` under the window at output `(oy, ox)`, in kernel row-major order; `None` for
    /// padding.
    pub fn taps(&self, oy: usize, ox: usize) -> impl Iterator<Item = Option<(usize, usize)>> + '_ {
        let [kh, kw] = self.kernel;
        (0..kh * kw).map(move |k| {
            let y = (oy * self.strides[0] + k / kw).checked_sub(self.pads[0])?;
            let x = (ox * self.strides[1] + k % kw).checked_sub(self.pads[1])?;
            (y < self.input_hw[0] && x < self.input_hw[1]).then_some((y, x))
        })
    }

    fn valid(&self) -> bool {
        self.kernel.iter().chain(&self.strides).all(|&v| v > 0) && self.output_hw().iter().all(|&v| v > 0)
    }
}

/// A fully connected layer: `y = W·x + b`, applied to each of `positions` rows of the input (a `[positions,
/// in_features]` tensor, row-major: one sample, or every token of a sequence) with the same weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Rows the layer is applied to (1 for a plain fully connected layer, the sequence length for a token-wise one).
    pub positions: usize,
    /// Number of inputs.
    pub in_features: usize,
    /// Number of outputs.
    pub out_features: usize,
    /// Weights, row-major `[out_features][in_features]`.
    pub weights: Vec<f32>,
    /// Bias per output.
    pub bias: Vec<f32>,
}

/// A 2-D convolution (ONNX `Conv`, cross-correlation), regular (group 1) or depthwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (equal to `in_channels` when depthwise).
    pub out_channels: usize,
    /// Whether each output channel reads only its own input channel (`group == C_in == C_out`).
    pub depthwise: bool,
    /// Spatial geometry.
    pub window: Window2d,
    /// Weights in ONNX OIHW order (`I = 1` when depthwise).
    pub weights: Vec<f32>,
    /// Bias per output channel.
    pub bias: Vec<f32>,
}

impl Conv {
    /// Weights per output channel (`I·kh·kw`).
    pub fn weights_per_channel(&self) -> usize {
        let i = if self.depthwise { 1 } else { self.in_channels };
        i * self.window.kernel[0] * self.window.kernel[1]
    }
}

/// What a pooling layer computes over each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    /// The largest value (padding never wins).
    Max,
    /// The mean.
    Average {
        /// Whether padding counts in the divisor (ONNX `count_include_pad`).
        count_include_pad: bool,
    },
}

/// A 2-D pooling layer, channel by channel (GlobalAveragePool is an average over the whole plane).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// Number of channels.
    pub channels: usize,
    /// Spatial geometry.
    pub window: Window2d,
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FloatOp {
    /// Gemm or MatMul (+ bias), with BatchNormalization folded in.
    Dense(Dense),
    /// Conv, with BatchNormalization folded in.
    Conv(Conv),
    /// MaxPool, AveragePool, GlobalAveragePool.
    Pool(Pool),
    /// Elementwise sum of the two inputs (same shape: the importer expands a broadcast operand first).
    Add,
    /// Elementwise difference `a − b` of the two inputs (same shape, as for `Add`).
    Sub,
    /// Elementwise product of the two inputs (same shape).
    Mul,
    /// Matrix products of the two inputs (attention's `Q·Kᵀ`, `A·V`): both hold the same number of matrices, the
    /// first `rows × inner` each, the second `inner × columns` (the importer expands broadcast batch dimensions).
    MatMul {
        /// Rows `m` of each left matrix and product.
        rows: usize,
        /// Columns of each left matrix, rows of each right one.
        inner: usize,
        /// Columns `p` of each right matrix and product.
        columns: usize,
    },
    /// Elementwise `y_i = scale_i · x_i + shift_i` (Sub/Div/Mul/Add by constants, broadcast to the input's shape).
    Affine {
        /// The factor of each element.
        scale: Vec<f32>,
        /// The offset of each element.
        shift: Vec<f32>,
    },
    /// Elementwise activation of the single input.
    Activation(ActFn),
    /// The index of the largest element of each row of `row_len` consecutive elements (the last axis) of the
    /// single input, ties to the first (or, with `select_last_index`, the last) of them.
    ArgMax {
        /// Elements per row.
        row_len: usize,
        /// Whether ties go to the last maximum.
        select_last_index: bool,
    },
    /// Softmax over rows of `row_len` consecutive elements (the last axis) of the single input, each element kept
    /// or masked out (a causal mask: its output is 0 and it takes no part in the row's maximum and sum).
    Softmax {
        /// Elements per row.
        row_len: usize,
        /// Whether each element takes part (one flag per element of the input).
        keep: Vec<bool>,
    },
    /// Layer normalization without γ and β: `(x − mean) / √(var + ε)` over rows of `row_len` consecutive elements
    /// (the normalized axes) of the single input.
    LayerNorm {
        /// Elements per row.
        row_len: usize,
        /// ε.
        epsilon: f32,
    },
    /// Data movement (Flatten, Reshape, Transpose, Concat): output `i` is element `.1` of input `.0`.
    Move(Vec<(usize, usize)>),
    /// Rows of a constant table picked by the integer token ids of the single input (ONNX `Gather` of an embedding
    /// matrix by the model's integer input): `out[p · width + j] = table[id_p · width + j]`.
    Embedding {
        /// Elements per row.
        width: usize,
        /// The table, row-major `[vocabulary][width]`.
        table: Vec<f32>,
    },
}

/// One layer of the float graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatNode {
    /// The ONNX node name (of the main node, for fused patterns).
    pub name: String,
    /// The ONNX operator(s), e.g. `Conv+BatchNormalization+Relu`.
    pub op_type: String,
    /// The tensors read, all produced earlier.
    pub inputs: Vec<FloatTensorId>,
    /// ONNX shape of the output, batch dimension included.
    pub output_shape: Vec<usize>,
    /// The computation.
    pub op: FloatOp,
    /// Whether a ReLU is fused into the output (Dense, Conv and Add only).
    pub relu: bool,
}

impl FloatNode {
    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
}

/// A float model: a graph of [`FloatNode`]s over one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatModel {
    /// The ONNX graph name, or the file stem when the graph has none.
    pub name: String,
    /// Shape of the ONNX input tensor, batch dimension included (symbolic dimensions read as 1).
    pub input_shape: Vec<usize>,
    /// The nodes in topological order; the last one's output is the model output.
    pub nodes: Vec<FloatNode>,
}

fn bad(node: &FloatNode, what: impl std::fmt::Display) -> ProverError {
    ProverError::graph(format!("node `{}` ({}): {what}", node.name, node.op_type))
}

impl FloatModel {
    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Number of elements of tensor `t` (0 when it does not exist).
    pub fn tensor_len(&self, t: FloatTensorId) -> usize {
        match t {
            0 => self.input_len(),
            t => self.nodes.get(t - 1).map_or(0, FloatNode::output_len),
        }
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.tensor_len(self.nodes.len())
    }

    /// The vocabulary of a token input: `Some(V)` when embeddings read the input (its elements are then integer
    /// token ids, valid below the smallest vocabulary of those embeddings), `None` for a float input.
    pub fn token_vocab(&self) -> Option<usize> {
        (self.nodes.iter())
            .filter(|n| n.inputs == [0])
            .filter_map(|n| match &n.op {
                FloatOp::Embedding { width, table } => Some(table.len() / (*width).max(1)),
                _ => None,
            })
            .min()
    }

    /// Checks that there are nodes, that every node reads earlier tensors of the right lengths, and that
    /// parameters have the lengths their shapes imply.
    pub fn check(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(ProverError::graph("the model has no layers"));
        }
        let tokens = self.token_vocab().is_some();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(t) = node.inputs.iter().find(|&&t| t > i) {
                return Err(bad(
                    node,
                    format_args!("reads tensor {t}, which is not computed before it"),
                ));
            }
            let embedding = matches!(node.op, FloatOp::Embedding { .. });
            if tokens && node.inputs.contains(&0) && !embedding {
                return Err(bad(
                    node,
                    "reads the token ids, which only embeddings (Gather of a constant table) read",
                ));
            }
            let lens: Vec<usize> = node.inputs.iter().map(|&t| self.tensor_len(t)).collect();
            let out = node.output_len();
            let arity = match &node.op {
                FloatOp::Add | FloatOp::Sub | FloatOp::Mul | FloatOp::MatMul { .. } => 2,
                FloatOp::Move(_) => node.inputs.len().max(1),
                _ => 1,
            };
            if node.inputs.len() != arity || out == 0 {
                return Err(bad(node, "wrong number of inputs or an empty output"));
            }
            if node.relu && !node.op.requantizes() {
                return Err(bad(
                    node,
                    "only Dense, Conv, Add, Sub, Mul, MatMul and affine layers fuse a ReLU",
                ));
            }
            let ok = match &node.op {
                FloatOp::Dense(d) => {
                    lens[0] == d.positions * d.in_features
                        && out == d.positions * d.out_features
                        && d.weights.len() == d.in_features * d.out_features
                        && d.bias.len() == d.out_features
                }
                FloatOp::Conv(c) => {
                    let [oh, ow] = c.window.output_hw();
                    let [h, w] = c.window.input_hw;
                    c.window.valid()
                        && (!c.depthwise || c.in_channels == c.out_channels)
                        && lens[0] == c.in_channels * h * w
                        && out == c.out_channels * oh * ow
                        && c.weights.len() == c.out_channels * c.weights_per_channel()
                        && c.bias.len() == c.out_channels
                }
                FloatOp::Pool(p) => {
                    let [oh, ow] = p.window.output_hw();
                    let [h, w] = p.window.input_hw;
                    let nonempty = (0..oh).all(|y| (0..ow).all(|x| p.window.taps(y, x).any(|t| t.is_some())));
                    p.window.valid() && lens[0] == p.channels * h * w && out == p.channels * oh * ow && nonempty
                }
                FloatOp::Add | FloatOp::Sub | FloatOp::Mul => lens[0] == out && lens[1] == out,
                &FloatOp::MatMul { rows, inner, columns } => {
                    let matrices = out.checked_div(rows * columns).unwrap_or(0);
                    matrices > 0
                        && out == matrices * rows * columns
                        && lens[0] == matrices * rows * inner
                        && lens[1] == matrices * inner * columns
                }
                FloatOp::Activation(_) => lens[0] == out,
                FloatOp::ArgMax { row_len, .. } => *row_len > 0 && lens[0] == out * row_len,
                FloatOp::Softmax { row_len, keep } => {
                    *row_len > 0
                        && lens[0] == out
                        && keep.len() == out
                        && out.is_multiple_of(*row_len)
                        && keep.chunks(*row_len).all(|row| row.contains(&true))
                }
                FloatOp::LayerNorm { row_len, epsilon } => {
                    *row_len > 0
                        && lens[0] == out
                        && out.is_multiple_of(*row_len)
                        && epsilon.is_finite()
                        && *epsilon >= 0.0
                }
                FloatOp::Affine { scale, shift } => {
                    lens[0] == out
                        && scale.len() == out
                        && shift.len() == out
                        && scale.iter().chain(shift).all(|v| v.is_finite())
                }
                FloatOp::Move(map) => map.len() == out && map.iter().all(|&(j, k)| j < lens.len() && k < lens[j]),
                FloatOp::Embedding { width, table } => {
                    *width > 0
                        && node.inputs == [0]
                        && out == lens[0] * width
                        && !table.is_empty()
                        && table.len().is_multiple_of(*width)
                        && table.iter().all(|v| v.is_finite())
                }
            };
            if !ok {
                return Err(bad(
                    node,
                    format_args!("parameters or input lengths {lens:?} do not match its shape"),
                ));
            }
        }
        Ok(())
    }

    /// Every tensor (input first, then each node's output) for one flattened input.
    pub fn forward_all(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.check()?;
        let expected = self.input_len();
        if x.len() != expected {
            return Err(ProverError::WrongInputLength {
                expected,
                found: x.len(),
            });
        }
        if let Some(vocab) = self.token_vocab() {
            let ids = zkinfer_circuits::model::InputQuantization::tokens(vocab);
            ids.check_floats(x).map_err(|reason| ProverError::BadInput { reason })?;
        }
        let mut tensors = Vec::with_capacity(self.nodes.len() + 1);
        tensors.push(x.to_vec());
        for node in &self.nodes {
            let inputs: Vec<&[f32]> = node.inputs.iter().map(|&t| tensors[t].as_slice()).collect();
            let mut y = node.op.apply(&inputs, node.output_len());
            if node.relu {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            tensors.push(y);
        }
        Ok(tensors)
    }

    /// The model's output for one flattened input.
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(self.forward_all(x)?.pop().unwrap_or_default())
    }
}

impl FloatOp {
    /// Whether the op lowers to a requantizing layer (a linear layer or a product), which can fuse a ReLU into
    /// its clamp and give the model wider outputs.
    pub fn requantizes(&self) -> bool {
        match self {
            FloatOp::Dense(_)
            | FloatOp::Conv(_)
            | FloatOp::Add
            | FloatOp::Sub
            | FloatOp::Mul
            | FloatOp::MatMul { .. }
            | FloatOp::LayerNorm { .. }
            | FloatOp::Affine { .. } => true,
            FloatOp::Pool(p) => !matches!(p.kind, PoolKind::Max),
            FloatOp::Activation(_)
            | FloatOp::Move(_)
            | FloatOp::Softmax { .. }
            | FloatOp::ArgMax { .. }
            | FloatOp::Embedding { .. } => false,
        }
    }

    /// The output of the op (before any fused ReLU) for inputs of the lengths [`FloatModel::check`] verified.
    fn apply(&self, x: &[&[f32]], out_len: usize) -> Vec<f32> {
        match self {
            FloatOp::Dense(d) => {
                let per = d.in_features.max(1);
                let position = |x: &[f32]| {
                    let dot = |(row, b): (&[f32], &f32)| {
                        let acc = row.iter().zip(x).map(|(w, v)| *w as f64 * *v as f64);
                        (*b as f64 + acc.sum::<f64>()) as f32
                    };
                    d.weights.chunks_exact(per).zip(&d.bias).map(dot).collect::<Vec<f32>>()
                };
                x[0].chunks_exact(per).flat_map(position).collect()
            }
            FloatOp::Conv(c) => conv(c, x[0]),
            FloatOp::Pool(p) => pool(p, x[0]),
            FloatOp::Add => x[0].iter().zip(x[1]).map(|(a, b)| a + b).collect(),
            FloatOp::Sub => x[0].iter().zip(x[1]).map(|(a, b)| a - b).collect(),
            FloatOp::Mul => x[0].iter().zip(x[1]).map(|(a, b)| a * b).collect(),
            &FloatOp::MatMul { rows, inner, columns } => matmul(x[0], x[1], [rows, inner, columns]),
            FloatOp::Activation(f) => x[0].iter().map(|&v| f.eval(v as f64) as f32).collect(),
            FloatOp::Softmax { row_len, keep } => softmax(x[0], *row_len, keep),
            &FloatOp::LayerNorm { row_len, epsilon } => layer_norm(x[0], row_len, epsilon),
            &FloatOp::ArgMax {
                row_len,
                select_last_index,
            } => x[0]
                .chunks(row_len.max(1))
                .map(|row| argmax(row, select_last_index) as f32)
                .collect(),
            FloatOp::Affine { scale, shift } => (x[0].iter().zip(scale).zip(shift))
                .map(|((&v, &a), &b)| (a as f64 * v as f64 + b as f64) as f32)
                .collect(),
            FloatOp::Move(map) => {
                debug_assert_eq!(map.len(), out_len);
                map.iter().map(|&(j, k)| x[j][k]).collect()
            }
            FloatOp::Embedding { width, table } => {
                let rows = table.len() / (*width).max(1);
                let row = |id: f32| (id.max(0.0) as usize).min(rows.saturating_sub(1)) * width;
                x[0].iter()
                    .flat_map(|&id| &table[row(id)..row(id) + width])
                    .copied()
                    .collect()
            }
        }
    }
}

/// The index of the largest value of `row` (the first of equal ones, or the last).
fn argmax(row: &[f32], last: bool) -> usize {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut at = row.iter().enumerate().filter(|(_, &v)| v == max).map(|(i, _)| i);
    (if last { at.next_back() } else { at.next() }).unwrap_or(0)
}

/// Softmax over rows of `n` elements of `x` (f64 sums), masked elements 0 and left out of each row.
fn softmax(x: &[f32], n: usize, keep: &[bool]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for (row, keep) in x.chunks(n.max(1)).zip(keep.chunks(n.max(1))) {
        let kept = || row.iter().zip(keep).filter(|(_, &k)| k).map(|(&v, _)| v as f64);
        let max = kept().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = kept().map(|v| (v - max).exp()).sum();
        out.extend((row.iter().zip(keep)).map(|(&v, &k)| if k { ((v as f64 - max).exp() / sum) as f32 } else { 0.0 }));
    }
    out
}

/// Layer normalization of rows of `n` elements of `x` (f64 sums), without γ and β.
fn layer_norm(x: &[f32], n: usize, epsilon: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n.max(1)) {
        let len = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / len;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len;
        let inv = 1.0 / (var + epsilon as f64).sqrt();
        out.extend(row.iter().map(|&v| ((v as f64 - mean) * inv) as f32));
    }
    out
}

/// The products of the matrices of `a` (`m × n` each) by those of `b` (`n × p` each), one after another, with f64
/// accumulators.
fn matmul(a: &[f32], b: &[f32], [m, n, p]: [usize; 3]) -> Vec<f32> {
    let lhs = a.chunks_exact((m * n).max(1));
    let rhs = b.chunks_exact((n * p).max(1));
    let mut out = Vec::with_capacity(lhs.len() * m * p);
    for (a, b) in lhs.zip(rhs) {
        for i in 0..m {
            for j in 0..p {
                let dot: f64 = (0..n).map(|k| a[i * n + k] as f64 * b[k * p + j] as f64).sum();
                out.push(dot as f32);
            }
        }
    }
    out
}

fn conv(c: &Conv, x: &[f32]) -> Vec<f32> {
    let [h, w] = c.window.input_hw;
    let [oh, ow] = c.window.output_hw();
    let per = c.weights_per_channel();
    let plane = h * w;
    let mut out = Vec::with_capacity(c.out_channels * oh * ow);
    for o in 0..c.out_channels {
        let kernel = &c.weights[o * per..(o + 1) * per];
        let channels = if c.depthwise { o..o + 1 } else { 0..c.in_channels };
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = c.bias[o] as f64;
                let mut k = 0;
                for ci in channels.clone() {
                    for tap in c.window.taps(oy, ox) {
                        if let Some((y, xx)) = tap {
                            acc += kernel[k] as f64 * x[ci * plane + y * w + xx] as f64;
                        }
                        k += 1;
                    }
                }
                out.push(acc as f32);
            }
        }
    }
    out
}

fn pool(p: &Pool, x: &[f32]) -> Vec<f32> {
    let [h, w] = p.window.input_hw;
    let [oh, ow] = p.window.output_hw();
    let area = p.window.kernel[0] * p.window.kernel[1];
    let mut out = Vec::with_capacity(p.channels * oh * ow);
    for c in 0..p.channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let values = p.window.taps(oy, ox).flatten().map(|(y, xx)| plane[y * w + xx]);
                out.push(match p.kind {
                    PoolKind::Max => values.fold(f32::NEG_INFINITY, f32::max),
                    PoolKind::Average { count_include_pad } => {
                        let (sum, n) = values.fold((0f64, 0usize), |(s, n), v| (s + v as f64, n + 1));
                        let divisor = if count_include_pad { area } else { n };
                        (sum / divisor as f64) as f32
                    }
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3) to 15 digits.
        for (x, want) in [
            (0.5, 0.520_499_877_813_047),
            (1.0, 0.842_700_792_949_715),
            (2.0, 0.995_322_265_018_953),
            (3.0, 0.999_977_909_503_001),
        ] {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-13);
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
    }

    #[test]
    fn activations_at_known_points() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-7;
        assert!(close(ActFn::Sigmoid.eval(0.0), 0.5));
        assert!(close(ActFn::HardSwish.eval(1.0), 1.0 * (1.0 / 6.0 + 0.5)));
        assert!(close(ActFn::HardSwish.eval(-4.0), 0.0) && close(ActFn::HardSwish.eval(4.0), 4.0));
        assert!(close(ActFn::LeakyRelu { alpha: 0.1 }.eval(-2.0), -0.2));
        assert!(close(ActFn::Clip { min: 0.0, max: 6.0 }.eval(7.0), 6.0));
        assert!((ActFn::Gelu { tanh: false }.eval(1.0) - 0.841_344_746_068_543).abs() < 1e-12);
        assert!((ActFn::Gelu { tanh: true }.eval(1.0) - 0.841_191_990_607_477).abs() < 1e-9);
    }

    #[test]
    fn window_taps_skip_padding_in_kernel_order() {
        let w = Window2d {
            input_hw: [3, 3],
            kernel: [2, 2],
            strides: [2, 2],
            pads: [1, 1, 0, 0],
        };
        assert_eq!(w.output_hw(), [2, 2]);
        let taps: Vec<_> = w.taps(0, 0).collect();
        assert_eq!(taps, [None, None, None, Some((0, 0))]);
        let taps: Vec<_> = w.taps(1, 1).collect();
        assert_eq!(taps, [Some((1, 1)), Some((1, 2)), Some((2, 1)), Some((2, 2))]);
    }
}
