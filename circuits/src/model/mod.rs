//! The quantized model IR shared by the prover (which builds and runs it) and the circuit (which proves it).
//!
//! A model is a list of layers in topological order over int8 tensors: tensor 0 is the input (int8 values, or token ids
//! that only [embeddings](Embedding) read), tensor `i + 1` the
//! output of layer `i`, the last tensor the output. Tensors are flat (row-major NCHW without the batch dimension;
//! a [batched](QuantizedModel::batched) model's tensors hold its samples one after another).
//! Numbers follow DESIGN.md: int8 activations (symmetric, per tensor), integer weights, integer bias at the
//! accumulator scale, gemmlowp-style requantization `y = clamp((acc · M + 2^(s−1)) >> s, lo, hi)` with
//! `hi = 127`, except that a linear layer may produce 16-bit values (`hi = 32767`): the model's output (16-bit
//! logits), or activations that only linear layers read.

use serde::{Deserialize, Serialize};

use crate::arith::{requantize, Requantized};

mod argmax;
mod batch;
mod causal;
mod embedding;
mod eval;
mod input;
mod matmul;
mod norm;
mod softmax;
mod validate;

pub use argmax::{ArgMax, MAX_ARGMAX_ROW};
pub use batch::{batch_of_shape, check_batch_size, MAX_BATCH, MAX_BATCHED_ELEMENTS, MAX_BATCHED_SOURCES};
pub use causal::CausalOutputs;
pub use embedding::{Embedding, MAX_EMBEDDING_ENTRIES, MAX_VOCAB};
pub use eval::LayerValues;
pub use input::{InputQuantization, MAX_INPUT_CHANNELS, TOKEN_BITS};
pub use matmul::{MatMul, MatrixProduct};
pub use norm::{
    LayerNorm, NormRow, MAX_NORM_EPSILON, MAX_NORM_PRODUCT_BITS, MAX_NORM_ROW, MAX_NORM_VARIANCE, MAX_ROOT_SHIFT,
};
pub use softmax::{
    Softmax, SoftmaxRow, EXP_TABLE_LEN, MAX_EXP_VALUE, MAX_SOFTMAX_ROW, PROBABILITY_BITS, PROBABILITY_ONE,
};
pub use validate::{LayerProblem, ModelError};

/// Version of the serialized quantized model (`.zkm`); bump on any change to these structs.
pub const MODEL_FORMAT_VERSION: u32 = 9;

/// The smallest int8 activation.
pub const ACT_MIN: i64 = -128;
/// The largest int8 activation.
pub const ACT_MAX: i64 = 127;
/// Bits of every tensor that a layer reads (int8 activations).
pub const ACT_BITS: u32 = 8;
/// Largest width of a model output: a final linear layer may produce up to 16-bit outputs.
pub const MAX_OUTPUT_BITS: u32 = 16;
/// Largest |weight| a linear layer may use (weights of up to 16 bits, and integer rescale factors of residual
/// additions).
pub const MAX_WEIGHT: i64 = 1 << 20;

/// Index of a tensor: 0 is the model input, `i + 1` the output of layer `i`.
pub type TensorId = usize;

/// Activation fused into a linear layer's requantization clamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// No activation: clamp to `[-128, 127]`.
    Identity,
    /// ReLU: clamp to `[0, 127]`.
    Relu,
}

/// The integers a requantization produces: signed `bits`-bit values, or non-negative ones after a fused ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputRange {
    /// Width of the outputs: 8 (int8 activations) or 16 (the logits of a model output).
    pub bits: u32,
    /// Whether the clamp's lower bound is 0 (fused ReLU) instead of `−2^(bits−1)`.
    pub relu: bool,
}

impl OutputRange {
    /// The int8 range of an activation: `[−128, 127]`, or `[0, 127]` with ReLU.
    pub fn int8(activation: Activation) -> Self {
        Self {
            bits: ACT_BITS,
            relu: activation == Activation::Relu,
        }
    }

    /// The range of `bits`-bit outputs clamped with `activation` (from 0 with a ReLU).
    pub fn of(bits: u32, activation: Activation) -> Self {
        Self {
            bits,
            relu: activation == Activation::Relu,
        }
    }

    /// The lower clamp bound.
    pub fn lo(self) -> i64 {
        if self.relu {
            0
        } else {
            -(1 << (self.bits - 1))
        }
    }

    /// The upper clamp bound `2^(bits−1) − 1`.
    pub fn hi(self) -> i64 {
        (1 << (self.bits - 1)) - 1
    }
}

/// One element of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The tensor.
    pub tensor: TensorId,
    /// Flat index in it.
    pub index: usize,
}

/// The largest |product| of two int8 values: `(−128)·(−128)`.
pub const MAX_INT8_PRODUCT: i64 = ACT_MIN * ACT_MIN;

/// What the requantization chip needs of one output: `y = clamp((acc + bias) · M + 2^(s−1)) >> s)` for a bare
/// accumulator `acc` whose magnitude (bias included) never exceeds `accumulator_bound`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rescale {
    /// Requantization multiplier `M` (positive, below 2^32).
    pub multiplier: i64,
    /// Requantization shift `s` in `[1, MAX_SHIFT]`.
    pub shift: u32,
    /// Bias added to the bare accumulator (fused into the requantization's offset).
    pub bias: i64,
    /// Largest possible `|acc + bias|`: sizes the clamp slack's range check.
    pub accumulator_bound: i128,
}

impl Rescale {
    /// Requantizes an accumulator (bias included), clamping to `range`.
    pub fn requantize(&self, acc: i64, range: OutputRange) -> Requantized {
        requantize(acc, self.multiplier, self.shift, range.lo(), range.hi())
    }
}

/// Weights, bias and requantization of one output channel of a linear layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    /// One weight per tap of the group using the kernel.
    pub weights: Vec<i64>,
    /// Bias at the accumulator scale.
    pub bias: i64,
    /// Requantization multiplier `M` (positive, below 2^32).
    pub multiplier: i64,
    /// Requantization shift `s` in `[1, MAX_SHIFT]`.
    pub shift: u32,
}

impl Kernel {
    /// Requantizes an accumulator of this kernel, clamping to the layer's output range.
    pub fn requantize(&self, acc: i64, range: OutputRange) -> Requantized {
        requantize(acc, self.multiplier, self.shift, range.lo(), range.hi())
    }

    /// The requantization of this kernel's outputs.
    pub fn rescale(&self) -> Rescale {
        Rescale {
            multiplier: self.multiplier,
            shift: self.shift,
            bias: self.bias,
            accumulator_bound: self.accumulator_bound(),
        }
    }

    /// Largest possible |accumulator| for int8 inputs: `Σ|w|·128 + |b|`.
    pub fn accumulator_bound(&self) -> i128 {
        self.accumulator_bound_for(ACT_BITS)
    }

    /// Largest possible |accumulator| for inputs of `input_bits` bits: `Σ|w|·2^(input_bits−1) + |b|`, computed in
    /// `i128` so that no weight or bias a file can hold (even `i64::MIN`) makes it wrap (every term is below 2^64,
    /// there are fewer than 2^63 of them, and inputs have at most 16 bits).
    pub fn accumulator_bound_for(&self, input_bits: u32) -> i128 {
        let weights: i128 = self.weights.iter().map(|w| i128::from(w.unsigned_abs())).sum();
        let input_max = 1i128 << (input_bits.clamp(1, MAX_OUTPUT_BITS) - 1);
        weights.saturating_mul(input_max) + i128::from(self.bias.unsigned_abs())
    }

    /// The requantization of this kernel's outputs when it reads `input_bits`-bit inputs.
    pub fn rescale_for(&self, input_bits: u32) -> Rescale {
        Rescale {
            accumulator_bound: self.accumulator_bound_for(input_bits),
            ..self.rescale()
        }
    }
}

/// Outputs of a linear layer that read the same inputs (a whole dense layer, one position of a convolution).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearGroup {
    /// The inputs, in kernel-weight order; `None` is zero padding.
    pub taps: Vec<Option<Source>>,
    /// `(output index, kernel index)` for each output of the group.
    pub outputs: Vec<(usize, usize)>,
}

/// Weighted sums with requantization: Gemm/MatMul, Conv (grouped and depthwise), average pools, residual Add.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Distinct kernels (a convolution shares one per output channel across positions).
    pub kernels: Vec<Kernel>,
    /// Output groups.
    pub groups: Vec<LinearGroup>,
    /// Activation fused into the clamp.
    pub activation: Activation,
    /// Width of the outputs: 8, or 16 (the model's output, or activations that only linear layers read).
    pub output_bits: u32,
}

impl Linear {
    /// The range the requantized outputs are clamped to.
    pub fn output_range(&self) -> OutputRange {
        OutputRange::of(self.output_bits, self.activation)
    }
}

/// Elementwise product of two int8 tensors, requantized: `out[i] = clamp((a_i · b_i · M + 2^(s−1)) >> s)`, with
/// `a_i, b_i` the operands of output `i` (broadcasting is resolved when the model is lowered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mul {
    /// The two operands of each output.
    pub operands: Vec<[Source; 2]>,
    /// Requantization multiplier `M` (positive, below 2^32).
    pub multiplier: i64,
    /// Requantization shift `s` in `[1, MAX_SHIFT]`.
    pub shift: u32,
    /// Activation fused into the clamp.
    pub activation: Activation,
    /// Width of the outputs: 8, or 16 (the model's output, or activations that only linear layers read).
    pub output_bits: u32,
}

impl Mul {
    /// The range the requantized outputs are clamped to.
    pub fn output_range(&self) -> OutputRange {
        OutputRange::of(self.output_bits, self.activation)
    }

    /// The requantization of every output: no bias, products of two int8 values.
    pub fn rescale(&self) -> Rescale {
        Rescale {
            multiplier: self.multiplier,
            shift: self.shift,
            bias: 0,
            accumulator_bound: i128::from(MAX_INT8_PRODUCT),
        }
    }
}

/// Max over windows of one tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool {
    /// One window per output element.
    pub windows: Vec<Vec<Source>>,
}

/// An elementwise function on the int8 domain, as a 256-entry table: `out[i] = values[input[i] + 128]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The tensor the function is applied to.
    pub input: TensorId,
    /// The function's name (Sigmoid, Tanh, Gelu, LeakyRelu, HardSwish, Clip, Relu).
    pub function: String,
    /// Output for each input `-128..=127`.
    pub values: Vec<i8>,
}

impl Table {
    /// The table's output for an int8 input (inputs outside int8 are clamped first).
    pub fn apply(&self, x: i64) -> i64 {
        let i = (x.clamp(ACT_MIN, ACT_MAX) - ACT_MIN) as usize;
        self.values.get(i).map_or(0, |&v| v as i64)
    }
}

/// What a layer computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Weighted sums + requantization + clamp/ReLU.
    Linear(Linear),
    /// Window maxima.
    MaxPool(MaxPool),
    /// Lookup-table activation, elementwise.
    Table(Table),
    /// Data movement: `out[i] = sources[i]` (Reshape, Flatten, Transpose, Concat). No constraints.
    Gather(Vec<Source>),
    /// Elementwise product of two activations + requantization + clamp/ReLU.
    Mul(Mul),
    /// Matrix products of two activations + requantization + clamp/ReLU.
    MatMul(MatMul),
    /// Softmax over the last axis, with masked positions: int8 probabilities at scale 1/127.
    Softmax(Softmax),
    /// The index of each row's largest element (16-bit integers at scale 1).
    ArgMax(ArgMax),
    /// Rows of a constant int8 table looked up by the token ids of the input.
    Embedding(Embedding),
    /// Layer normalization over the last axis, with an exact integer inverse square root.
    LayerNorm(LayerNorm),
}

/// One layer of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// The ONNX node(s) it came from.
    pub name: String,
    /// The ONNX operator(s), for reports (e.g. `Conv+Relu`).
    pub op_type: String,
    /// Output shape without the batch dimension (with it, leading, in a [batched](QuantizedModel::batched)
    /// model).
    pub output_shape: Vec<usize>,
    /// Float scale of the output.
    pub output_scale: f32,
    /// The computation.
    pub op: Op,
}

impl Layer {
    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
}

/// A quantized model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModel {
    /// Format version, always [`MODEL_FORMAT_VERSION`] for models this build writes.
    pub format_version: u32,
    /// Model name.
    pub name: String,
    /// Shape of the float input tensor the ONNX model expects (batch dimension included: 1, or `B` in a
    /// [batched](QuantizedModel::batched) model).
    pub input_shape: Vec<usize>,
    /// Scales of the int8 input, per channel or for the whole tensor.
    pub input: InputQuantization,
    /// Layers in topological order.
    pub layers: Vec<Layer>,
}

impl QuantizedModel {
    /// Number of input elements: the product of the input shape (whose leading dimension, when it has several,
    /// is the batch: 1 for an imported model, `B` for a [batched](Self::batched) one).
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Number of elements of tensor `t`.
    pub fn tensor_len(&self, t: TensorId) -> usize {
        if t == 0 {
            self.input_len()
        } else {
            self.layers.get(t - 1).map_or(0, Layer::output_len)
        }
    }

    /// Float scale of tensor `t` (of the input: its largest channel scale).
    pub fn tensor_scale(&self, t: TensorId) -> f32 {
        if t == 0 {
            self.input.max_scale()
        } else {
            self.layers.get(t - 1).map_or(1.0, |l| l.output_scale)
        }
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.tensor_len(self.layers.len())
    }

    /// Float scale of the outputs.
    pub fn output_scale(&self) -> f32 {
        self.tensor_scale(self.layers.len())
    }

    /// Bits of the widest tensor a linear layer reads (8 when it reads int8 tensors only): what bounds its
    /// accumulators.
    pub fn input_bits(&self, lin: &Linear) -> u32 {
        let sources = lin.groups.iter().flat_map(|g| g.taps.iter().flatten());
        sources.map(|s| self.tensor_bits(s.tensor)).fold(ACT_BITS, u32::max)
    }

    /// Bits of the values of tensor `t`: 8, except the output of a requantizing layer with wider outputs.
    pub fn tensor_bits(&self, t: TensorId) -> u32 {
        tensor_bits(&self.layers, t)
    }
}

/// Bits of the values of tensor `t` of a model made of `layers` (complete or still being built): 8, except the
/// output of a requantizing layer with wider outputs.
pub fn tensor_bits(layers: &[Layer], t: TensorId) -> u32 {
    match t.checked_sub(1).and_then(|i| layers.get(i)).map(|l| &l.op) {
        Some(Op::Linear(lin)) => lin.output_bits,
        Some(Op::Mul(mul)) => mul.output_bits,
        Some(Op::MatMul(matmul)) => matmul.output_bits,
        Some(Op::LayerNorm(norm)) => norm.output_bits,
        Some(Op::ArgMax(_)) => MAX_OUTPUT_BITS,
        _ => ACT_BITS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ranges_follow_the_width_and_the_activation() {
        let r = |bits, relu| {
            let o = OutputRange { bits, relu };
            (o.lo(), o.hi())
        };
        assert_eq!(r(8, false), (-128, 127));
        assert_eq!(r(8, true), (0, 127));
        assert_eq!(r(16, false), (-32768, 32767));
    }
}
