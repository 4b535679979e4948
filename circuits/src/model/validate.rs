//! The invariants of a quantized model that the native engine, the circuit and the planner rely on, checked in one
//! place ([`QuantizedModel::validate`]) and reported as a typed [`ModelError`] that names the failing layer.

use thiserror::Error;

use super::{
    Activation, Layer, LayerNorm, MatMul, Op, QuantizedModel, Softmax, Source, ACT_BITS, EXP_TABLE_LEN, MAX_ARGMAX_ROW,
    MAX_BATCH, MAX_EMBEDDING_ENTRIES, MAX_EXP_VALUE, MAX_NORM_EPSILON, MAX_NORM_PRODUCT_BITS, MAX_NORM_ROW,
    MAX_NORM_VARIANCE, MAX_OUTPUT_BITS, MAX_ROOT_SHIFT, MAX_SOFTMAX_ROW, MAX_WEIGHT, MODEL_FORMAT_VERSION,
};
use crate::arith::MAX_SHIFT;

/// Largest |accumulator| a kernel may reach (exclusive): every accumulator stays far below the field modulus and
/// fits the native engine's `i64` arithmetic.
pub const MAX_ACCUMULATOR: i128 = 1 << 40;

/// Why a model cannot be run or proven.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ModelError {
    /// The model was written by another version of zkinfer.
    #[error("model format version {found}, this build reads version {MODEL_FORMAT_VERSION}; compile the model again")]
    FormatVersion {
        /// The version the model carries.
        found: u32,
    },
    /// A model needs at least one layer.
    #[error("the model has no layers")]
    NoLayers,
    /// The input shape's element count overflows.
    #[error("input shape {shape:?}: too many elements")]
    InputShape {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The batch (the input shape's leading dimension) is out of range or does not divide the inputs and outputs.
    #[error("a batch of {batch} inputs: give 1 to {max} that divide the {inputs} inputs and {outputs} outputs")]
    Batch {
        /// The batch.
        batch: usize,
        /// The largest batch.
        max: usize,
        /// The number of inputs.
        inputs: usize,
        /// The number of outputs.
        outputs: usize,
    },
    /// The input's scales are malformed (empty, not positive numbers, channels that do not tile the input).
    #[error("input quantization: {reason}")]
    InputQuantization {
        /// What is wrong.
        reason: String,
    },
    /// One layer breaks an invariant.
    #[error("layer {layer}: {problem}")]
    Layer {
        /// The layer's name.
        layer: String,
        /// What is wrong with it.
        problem: LayerProblem,
    },
    /// An input of the wrong length was given to [`QuantizedModel::eval_reference`].
    #[error("the input has {found} values, the model reads {expected}")]
    InputLength {
        /// The model's input length.
        expected: usize,
        /// The given length.
        found: usize,
    },
    /// An input value outside the input's range (int8, or the vocabulary of a token input) was given to
    /// [`QuantizedModel::eval_reference`].
    #[error("input value {value} at index {index} is outside the input's range [{lo}, {hi}]")]
    InputValue {
        /// Its position.
        index: usize,
        /// The value.
        value: i64,
        /// The smallest value the input holds.
        lo: i64,
        /// The largest value the input holds.
        hi: i64,
    },
}

/// What is wrong with one layer.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum LayerProblem {
    /// The output shape's element count overflows.
    #[error("output shape {0:?}: too many elements")]
    OutputShape(Vec<usize>),
    /// The output scale is zero, negative or not a number.
    #[error("output scale {0} is not a positive number")]
    OutputScale(f32),
    /// A source refers to a tensor or element that does not exist before the layer.
    #[error("source {0:?} does not exist before it")]
    MissingSource(Source),
    /// A layer other than a linear one or a layer norm reads a tensor wider than int8.
    #[error("source {0:?} is wider than int8 (only linear layers and layer norms read 16-bit tensors)")]
    WideSource(Source),
    /// A layer norm declares an input width other than its input tensor's.
    #[error("source {read:?} is not {declared}-bit, the input width the layer declares")]
    SourceWidth {
        /// The tensor read.
        read: Source,
        /// The width the layer declares.
        declared: u32,
    },
    /// The linear groups do not list the layer's outputs.
    #[error("the groups do not list its {0} outputs")]
    GroupOutputs(usize),
    /// A linear group has no non-padding tap.
    #[error("a group reads only padding (padding as large as the kernel)")]
    PaddingOnlyGroup,
    /// A group refers to a kernel that does not exist.
    #[error("kernel {0} missing")]
    MissingKernel(usize),
    /// A kernel's weight count differs from its group's tap count.
    #[error("kernel {kernel} has {weights} weights for {taps} taps")]
    KernelTaps {
        /// The kernel.
        kernel: usize,
        /// Its weights.
        weights: usize,
        /// The group's taps.
        taps: usize,
    },
    /// An output index is out of range or computed twice.
    #[error("output {0} missing or written twice")]
    OutputTwice(usize),
    /// Some output is never computed.
    #[error("some outputs are never computed")]
    OutputNeverComputed,
    /// The output width has no requantization gate.
    #[error("{bits}-bit outputs with {activation:?} are not supported (int8 or {MAX_OUTPUT_BITS}-bit)")]
    OutputWidth {
        /// The width.
        bits: u32,
        /// The activation.
        activation: Activation,
    },
    /// A requantization multiplier outside `(0, 2^32)`.
    #[error("kernel {kernel}: multiplier {value} outside (0, 2^32)")]
    Multiplier {
        /// The kernel.
        kernel: usize,
        /// The multiplier.
        value: i64,
    },
    /// A requantization shift outside `[1, MAX_SHIFT]`.
    #[error("kernel {kernel}: shift {value} outside [1, {MAX_SHIFT}]")]
    Shift {
        /// The kernel.
        kernel: usize,
        /// The shift.
        value: u32,
    },
    /// A weight above [`MAX_WEIGHT`] or an accumulator bound at or above [`MAX_ACCUMULATOR`].
    #[error("kernel {0}: weights or accumulator too large")]
    AccumulatorTooLarge(usize),
    /// A max pool needs one non-empty window per output.
    #[error("one non-empty window per output expected")]
    Windows,
    /// A max pool or a data movement changes the scale of what it reads.
    #[error("data movement and max pools keep the scale of their input; rescale with a linear layer")]
    ScaleChanged,
    /// A layer other than a linear one reads an input whose scales differ per channel.
    #[error("reads the input, whose scales differ per channel; only linear layers may read it")]
    PerChannelInput,
    /// A table reads a tensor wider than int8.
    #[error("a table reads int8 values only")]
    TableInputWidth,
    /// A table needs 256 entries and keeps its input's shape.
    #[error("a table has 256 entries and keeps the shape of its input")]
    TableShape,
    /// A matrix product's operands and outputs do not have the sizes its shape gives (or the shape is empty or
    /// too large).
    #[error(
        "a product of {rows}×{inner} by {inner}×{columns} matrices with {lhs} and {rhs} operand sources for {outputs} \
         outputs (whole products expected, at least one, inner size at most {MAX_INNER})"
    )]
    MatrixShape {
        /// Rows of the left operand.
        rows: usize,
        /// The shared size.
        inner: usize,
        /// Columns of the right operand.
        columns: usize,
        /// Sources of the left operands.
        lhs: usize,
        /// Sources of the right operands.
        rhs: usize,
        /// The layer's outputs.
        outputs: usize,
    },
    /// An ArgMax whose rows do not tile its input into its outputs.
    #[error("ArgMax rows of {row_len} (1 to 32768) must tile its {inputs} inputs into its {outputs} outputs")]
    ArgMaxRows {
        /// Elements per row.
        row_len: usize,
        /// Elements of the input.
        inputs: usize,
        /// Outputs of the layer.
        outputs: usize,
    },
    /// A layer other than an embedding reads token ids, or an embedding reads anything else.
    #[error("token ids are read by embeddings only, and embeddings read token ids only")]
    TokenInput,
    /// An embedding whose table or ids do not fit its outputs.
    #[error(
        "an embedding of {ids} ids into rows of {width} needs {outputs} outputs and a table of the input's {vocab} rows \
         (at most {MAX_EMBEDDING_ENTRIES} entries)"
    )]
    EmbeddingShape {
        /// Ids listed.
        ids: usize,
        /// Elements per row.
        width: usize,
        /// The layer's outputs.
        outputs: usize,
        /// The token input's vocabulary (0 when the input is not tokens).
        vocab: usize,
    },
    /// A softmax whose rows, mask or exponential table are malformed.
    #[error("softmax: {0}")]
    Softmax(&'static str),
    /// A layer normalization whose rows or constants are out of bounds.
    #[error("layer normalization: {0}")]
    LayerNorm(&'static str),
    /// An operand count differs from the output count.
    #[error("{found} sources for {expected} outputs")]
    SourceCount {
        /// The layer's outputs.
        expected: usize,
        /// The sources listed.
        found: usize,
    },
}

/// A requantizing layer's outputs are int8 or 16-bit, with or without a fused ReLU.
fn check_output_width(bits: u32, activation: Activation) -> Result<(), LayerProblem> {
    match bits {
        ACT_BITS | MAX_OUTPUT_BITS => Ok(()),
        bits => Err(LayerProblem::OutputWidth { bits, activation }),
    }
}

/// Largest inner size of a matrix product of two activations: its accumulators (`n · 2^14` at most) stay below
/// [`MAX_ACCUMULATOR`].
pub const MAX_INNER: usize = 1 << 24;

/// Whole products of `m × n` by `n × p` matrices, at least one, whose operand lists and outputs (`len`) have the
/// sizes the shape gives; the inner size at most [`MAX_INNER`].
fn check_matrix_shape(matmul: &MatMul, len: usize) -> Result<(), LayerProblem> {
    let (m, n, p) = (matmul.rows, matmul.inner, matmul.columns);
    let products = matmul.products();
    let sizes = || {
        let lhs = products.checked_mul(m)?.checked_mul(n)?;
        let rhs = products.checked_mul(n)?.checked_mul(p)?;
        let out = products.checked_mul(m)?.checked_mul(p)?;
        Some((lhs, rhs, out))
    };
    let whole = sizes() == Some((matmul.lhs.len(), matmul.rhs.len(), len));
    if whole && products > 0 && m > 0 && p > 0 && (1..=MAX_INNER).contains(&n) {
        return Ok(());
    }
    Err(LayerProblem::MatrixShape {
        rows: m,
        inner: n,
        columns: p,
        lhs: matmul.lhs.len(),
        rhs: matmul.rhs.len(),
        outputs: len,
    })
}

/// Rows of `1..=MAX_SOFTMAX_ROW` elements that tile the input (`input_len`, the output's `len` too), a mask of one
/// flag per element keeping one in every row at least, and an exponential table of 256 values in
/// `[0, MAX_EXP_VALUE]` whose value at 0 is positive.
fn check_softmax(softmax: &Softmax, input_len: usize, len: usize) -> Result<(), &'static str> {
    let n = softmax.row_len;
    if !(1..=MAX_SOFTMAX_ROW).contains(&n) || !input_len.is_multiple_of(n) || len != input_len {
        return Err("rows must tile the input, keep its shape and hold 1 to 65536 elements");
    }
    if softmax.keep.len() != input_len || softmax.keep.chunks(n).any(|row| !row.contains(&true)) {
        return Err("the mask needs one flag per element and one kept element in every row");
    }
    let exp = &softmax.exp;
    if exp.len() != EXP_TABLE_LEN
        || exp.iter().any(|e| !(0..=MAX_EXP_VALUE).contains(e))
        || exp.last().is_none_or(|&e| e < 1)
    {
        return Err("the exponential table needs 256 values in [0, 65536], positive at 0");
    }
    Ok(())
}

/// Rows of `1..=MAX_NORM_ROW` elements that tile the input and keep its shape; `E` in `[1, MAX_NORM_EPSILON]`;
/// `F ≤ MAX_ROOT_SHIFT`; `V` below [`MAX_NORM_VARIANCE`] for every row of the input's width; every inverse square
/// root (the largest is at `V = E`) below `2^B`; and `|c_j · q|` below `2^MAX_NORM_PRODUCT_BITS`.
fn check_layer_norm(norm: &LayerNorm, input_len: usize, len: usize) -> Result<(), &'static str> {
    let n = norm.row_len;
    if !(1..=MAX_NORM_ROW).contains(&n) || !input_len.is_multiple_of(n) || len != input_len {
        return Err("rows must tile the input, keep its shape and hold 1 to 4096 elements");
    }
    if !(1..=MAX_NORM_EPSILON).contains(&norm.epsilon) || norm.root_shift > MAX_ROOT_SHIFT {
        return Err("ε must lie in [1, 2^52] and the root shift at most 62");
    }
    if norm.variance_bound() >= MAX_NORM_VARIANCE {
        return Err("rows this long of inputs this wide can reach a variance sum of 2^62: normalize int8 inputs");
    }
    let centred_bits = 64 - norm.centred_bound().leading_zeros();
    if norm.root_bits == 0 || norm.root_bits > MAX_NORM_PRODUCT_BITS.saturating_sub(centred_bits) {
        return Err("the inverse square root's width must be positive and keep |c·q| below 2^48");
    }
    if norm.root_of(norm.epsilon) >= 1i64 << norm.root_bits {
        return Err("the inverse square root at V = ε does not fit its width");
    }
    Ok(())
}

/// A requantization multiplier in `(0, 2^32)` and a shift in `[1, MAX_SHIFT]`; `kernel` names it in the error.
fn check_rescale(kernel: usize, m: i64, s: u32) -> Result<(), LayerProblem> {
    if m <= 0 || m >= 1 << 32 {
        return Err(LayerProblem::Multiplier { kernel, value: m });
    }
    if s == 0 || s > MAX_SHIFT {
        return Err(LayerProblem::Shift { kernel, value: s });
    }
    Ok(())
}

impl QuantizedModel {
    /// Checks the invariants the circuit relies on: the format version, positive finite scales, sources that exist
    /// and come before their reader, kernels that fit their groups, bounded shifts, multipliers and weights, no
    /// accumulator that can wrap modulo p, and int8 values in every tensor a layer reads (only the model output
    /// may be wider). The error names the failing layer.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::FormatVersion {
                found: self.format_version,
            });
        }
        if self.layers.is_empty() {
            return Err(ModelError::NoLayers);
        }
        let positive = |s: f32| s.is_finite() && s > 0.0;
        // Shapes first: everything below multiplies them out (a crafted file can claim any dimensions).
        let countable = |shape: &[usize]| shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_some();
        if !countable(&self.input_shape) {
            return Err(ModelError::InputShape {
                shape: self.input_shape.clone(),
            });
        }
        (self.input.check(self.input_len())).map_err(|reason| ModelError::InputQuantization { reason })?;
        let in_layer = |layer: &Layer, problem| ModelError::Layer {
            layer: layer.name.clone(),
            problem,
        };
        for layer in &self.layers {
            if !countable(&layer.output_shape) {
                return Err(in_layer(layer, LayerProblem::OutputShape(layer.output_shape.clone())));
            }
            if !positive(layer.output_scale) {
                return Err(in_layer(layer, LayerProblem::OutputScale(layer.output_scale)));
            }
        }
        let (batch, inputs, outputs) = (self.batch(), self.input_len(), self.output_len());
        if !(1..=MAX_BATCH).contains(&batch) || !inputs.is_multiple_of(batch) || !outputs.is_multiple_of(batch) {
            return Err(ModelError::Batch {
                batch,
                max: MAX_BATCH,
                inputs,
                outputs,
            });
        }
        for (i, layer) in self.layers.iter().enumerate() {
            self.check_layer(i, layer).map_err(|p| in_layer(layer, p))?;
        }
        Ok(())
    }

    /// Checks that `s` is an element of a tensor computed before layer `i`, int8 unless `wide` (a linear layer,
    /// which reads 16-bit tensors too).
    fn check_source(&self, i: usize, s: &Source, wide: bool) -> Result<(), LayerProblem> {
        if s.tensor > i || s.index >= self.tensor_len(s.tensor) {
            Err(LayerProblem::MissingSource(*s))
        } else if s.tensor == 0 && self.input.vocab.is_some() {
            Err(LayerProblem::TokenInput)
        } else if !wide && self.tensor_bits(s.tensor) != ACT_BITS {
            Err(LayerProblem::WideSource(*s))
        } else {
            Ok(())
        }
    }

    /// The invariants of layer `i`.
    fn check_layer(&self, i: usize, layer: &Layer) -> Result<(), LayerProblem> {
        let len = layer.output_len();
        let same_scale = |s: &Source| self.tensor_scale(s.tensor) == layer.output_scale;
        // An input with scales per channel has no one scale: only linear layers read it (their weights absorb the
        // scales).
        let one_scale = |s: &Source| match s.tensor == 0 {
            true if self.input.vocab.is_some() => Err(LayerProblem::TokenInput),
            true if !self.input.is_uniform() => Err(LayerProblem::PerChannelInput),
            _ => Ok(()),
        };
        match &layer.op {
            Op::Linear(lin) => {
                // The outputs are listed in the file: their count bounds `len` before anything is allocated.
                if lin.groups.iter().map(|g| g.outputs.len()).sum::<usize>() != len {
                    return Err(LayerProblem::GroupOutputs(len));
                }
                let mut seen = vec![false; len];
                for g in &lin.groups {
                    if g.taps.iter().all(Option::is_none) {
                        return Err(LayerProblem::PaddingOnlyGroup);
                    }
                    for s in g.taps.iter().flatten() {
                        self.check_source(i, s, true)?;
                    }
                    for &(o, k) in &g.outputs {
                        let kernel = lin.kernels.get(k).ok_or(LayerProblem::MissingKernel(k))?;
                        if kernel.weights.len() != g.taps.len() {
                            return Err(LayerProblem::KernelTaps {
                                kernel: k,
                                weights: kernel.weights.len(),
                                taps: g.taps.len(),
                            });
                        }
                        match seen.get_mut(o) {
                            Some(slot @ false) => *slot = true,
                            _ => return Err(LayerProblem::OutputTwice(o)),
                        }
                    }
                }
                if seen.iter().any(|s| !s) {
                    return Err(LayerProblem::OutputNeverComputed);
                }
                check_output_width(lin.output_bits, lin.activation)?;
                let input_bits = self.input_bits(lin);
                for (k, kernel) in lin.kernels.iter().enumerate() {
                    check_rescale(k, kernel.multiplier, kernel.shift)?;
                    if kernel.weights.iter().any(|w| w.unsigned_abs() > MAX_WEIGHT as u64)
                        || kernel.accumulator_bound_for(input_bits) >= MAX_ACCUMULATOR
                    {
                        return Err(LayerProblem::AccumulatorTooLarge(k));
                    }
                }
            }
            Op::Mul(mul) => {
                if mul.operands.len() != len {
                    return Err(LayerProblem::SourceCount {
                        expected: len,
                        found: mul.operands.len(),
                    });
                }
                for s in mul.operands.iter().flatten() {
                    self.check_source(i, s, false)?;
                    one_scale(s)?;
                }
                check_output_width(mul.output_bits, mul.activation)?;
                check_rescale(0, mul.multiplier, mul.shift)?;
            }
            Op::MatMul(matmul) => {
                check_matrix_shape(matmul, len)?;
                for s in matmul.lhs.iter().chain(&matmul.rhs) {
                    self.check_source(i, s, false)?;
                    one_scale(s)?;
                }
                check_output_width(matmul.output_bits, matmul.activation)?;
                check_rescale(0, matmul.multiplier, matmul.shift)?;
            }
            Op::ArgMax(argmax) => {
                let input = Source {
                    tensor: argmax.input,
                    index: 0,
                };
                if argmax.input > i {
                    return Err(LayerProblem::MissingSource(input));
                }
                if self.tensor_bits(argmax.input) != ACT_BITS {
                    return Err(LayerProblem::WideSource(input));
                }
                one_scale(&input)?;
                let n = argmax.row_len;
                let input_len = self.tensor_len(argmax.input);
                if !(1..=MAX_ARGMAX_ROW).contains(&n) || !input_len.is_multiple_of(n) || len != input_len / n {
                    return Err(LayerProblem::ArgMaxRows {
                        row_len: n,
                        inputs: input_len,
                        outputs: len,
                    });
                }
            }
            Op::Softmax(softmax) => {
                let input = Source {
                    tensor: softmax.input,
                    index: 0,
                };
                if softmax.input > i {
                    return Err(LayerProblem::MissingSource(input));
                }
                if self.tensor_bits(softmax.input) != ACT_BITS {
                    return Err(LayerProblem::WideSource(input));
                }
                one_scale(&input)?;
                check_softmax(softmax, self.tensor_len(softmax.input), len).map_err(LayerProblem::Softmax)?;
            }
            Op::LayerNorm(norm) => {
                let input = Source {
                    tensor: norm.input,
                    index: 0,
                };
                if norm.input > i {
                    return Err(LayerProblem::MissingSource(input));
                }
                if self.tensor_bits(norm.input) != norm.input_bits {
                    return Err(LayerProblem::SourceWidth {
                        read: input,
                        declared: norm.input_bits,
                    });
                }
                one_scale(&input)?;
                check_layer_norm(norm, self.tensor_len(norm.input), len).map_err(LayerProblem::LayerNorm)?;
                check_output_width(norm.output_bits, norm.activation)?;
                check_rescale(0, norm.multiplier, norm.shift)?;
            }
            Op::Embedding(embedding) => {
                let vocab = self.input.vocab.unwrap_or(0);
                let entries = vocab.checked_mul(embedding.width);
                let fits = embedding.ids.len().checked_mul(embedding.width) == Some(len)
                    && embedding.width > 0
                    && entries == Some(embedding.table.len())
                    && embedding.table.len() <= MAX_EMBEDDING_ENTRIES;
                if !fits {
                    return Err(LayerProblem::EmbeddingShape {
                        ids: embedding.ids.len(),
                        width: embedding.width,
                        outputs: len,
                        vocab,
                    });
                }
                for s in &embedding.ids {
                    if s.tensor != 0 || vocab == 0 {
                        return Err(LayerProblem::TokenInput);
                    }
                    if s.index >= self.input_len() {
                        return Err(LayerProblem::MissingSource(*s));
                    }
                }
            }
            Op::MaxPool(pool) => {
                if pool.windows.len() != len || pool.windows.iter().any(|w| w.is_empty()) {
                    return Err(LayerProblem::Windows);
                }
                for s in pool.windows.iter().flatten() {
                    self.check_source(i, s, false)?;
                    one_scale(s)?;
                    if !same_scale(s) {
                        return Err(LayerProblem::ScaleChanged);
                    }
                }
            }
            Op::Table(table) => {
                if table.input <= i && self.tensor_bits(table.input) != ACT_BITS {
                    return Err(LayerProblem::TableInputWidth);
                }
                one_scale(&Source {
                    tensor: table.input,
                    index: 0,
                })?;
                if table.values.len() != 256 || table.input > i || len != self.tensor_len(table.input) {
                    return Err(LayerProblem::TableShape);
                }
            }
            Op::Gather(sources) => {
                if sources.len() != len {
                    return Err(LayerProblem::SourceCount {
                        expected: len,
                        found: sources.len(),
                    });
                }
                for s in sources {
                    self.check_source(i, s, false)?;
                    one_scale(s)?;
                    if !same_scale(s) {
                        return Err(LayerProblem::ScaleChanged);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputQuantization, Kernel, Linear, LinearGroup, TensorId};

    /// input(2) → dense(2) with the given output width and activation → dense(1) reading it when `read_by_next`.
    fn two_layers(bits: u32, activation: Activation, read_by_next: bool) -> QuantizedModel {
        let kernel = Kernel {
            weights: vec![1, -1],
            bias: 0,
            multiplier: 1 << 20,
            shift: 24,
        };
        let dense = |input: TensorId, outputs: usize, bits: u32, activation: Activation| Layer {
            name: format!("fc{input}"),
            op_type: "Gemm".into(),
            output_shape: vec![outputs],
            output_scale: 0.1,
            op: Op::Linear(Linear {
                kernels: vec![kernel.clone()],
                groups: vec![LinearGroup {
                    taps: (0..2).map(|index| Some(Source { tensor: input, index })).collect(),
                    outputs: (0..outputs).map(|o| (o, 0)).collect(),
                }],
                activation,
                output_bits: bits,
            }),
        };
        let mut layers = vec![dense(0, 2, bits, activation)];
        if read_by_next {
            layers.push(dense(1, 1, ACT_BITS, Activation::Identity));
        }
        QuantizedModel {
            format_version: MODEL_FORMAT_VERSION,
            name: "two".into(),
            input_shape: vec![1, 2],
            input: InputQuantization::per_tensor(0.1),
            layers,
        }
    }

    #[test]
    fn linear_layers_read_and_write_16_bit_values_and_nothing_else_reads_them() {
        assert!(two_layers(16, Activation::Identity, false).validate().is_ok());
        assert!(two_layers(8, Activation::Relu, true).validate().is_ok());
        // 16-bit activations (with or without ReLU) read by a linear layer.
        assert!(two_layers(16, Activation::Identity, true).validate().is_ok());
        assert!(two_layers(16, Activation::Relu, true).validate().is_ok());
        // The reader's accumulator bound counts 2^15 per input: a kernel that fits for int8 inputs may not.
        let mut big = two_layers(16, Activation::Relu, true);
        let Op::Linear(lin) = &mut big.layers[1].op else {
            unreachable!("the second layer is linear")
        };
        lin.kernels[0].weights = vec![MAX_WEIGHT, MAX_WEIGHT];
        lin.kernels[0].bias = (1 << 40) - (1 << 30);
        assert!(lin.kernels[0].accumulator_bound() < MAX_ACCUMULATOR);
        assert!(lin.kernels[0].accumulator_bound_for(16) >= MAX_ACCUMULATOR);
        let e = big.validate().unwrap_err().to_string();
        assert!(e.contains("accumulator"), "{e}");
        // Anything but a linear layer refuses a 16-bit source.
        let mut pooled = two_layers(16, Activation::Relu, false);
        pooled.layers.push(Layer {
            name: "pool".into(),
            op_type: "MaxPool".into(),
            output_shape: vec![1],
            output_scale: 0.1,
            op: Op::MaxPool(crate::model::MaxPool {
                windows: vec![vec![Source { tensor: 1, index: 0 }, Source { tensor: 1, index: 1 }]],
            }),
        });
        let e = pooled.validate().unwrap_err().to_string();
        assert!(e.contains("wider than int8"), "{e}");
        let odd = two_layers(12, Activation::Identity, false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(odd.contains("12-bit outputs"), "{odd}");
    }

    /// Weights and biases a crafted file can hold must not wrap the accumulator bound into an accepted value.
    #[test]
    fn crafted_weights_and_biases_cannot_wrap_the_accumulator_bound() {
        assert!(two_layers(8, Activation::Identity, false).validate().is_ok());
        let with_kernel = |weights: Vec<i64>, bias: i64| {
            let mut model = two_layers(8, Activation::Identity, false);
            let Op::Linear(lin) = &mut model.layers[0].op else {
                unreachable!("the first layer is linear")
            };
            lin.kernels[0].weights = weights;
            lin.kernels[0].bias = bias;
            model.validate().map_err(|e| e.to_string())
        };
        for bias in [i64::MAX, i64::MIN, i64::MAX - 100, 1 << 40, -(1 << 40)] {
            let err = with_kernel(vec![1, -1], bias).unwrap_err();
            assert!(err.contains("accumulator too large"), "bias {bias}: {err}");
        }
        for weights in [vec![i64::MIN, 0], vec![i64::MAX, i64::MAX], vec![MAX_WEIGHT + 1, 0]] {
            let err = with_kernel(weights.clone(), 0).unwrap_err();
            assert!(err.contains("accumulator too large"), "weights {weights:?}: {err}");
        }
        // The bound itself is exact where it is accepted.
        assert!(with_kernel(vec![MAX_WEIGHT, -MAX_WEIGHT], (1 << 40) - 1 - 2 * MAX_WEIGHT * 128).is_ok());
        let kernel = Kernel {
            weights: vec![i64::MIN; 3],
            bias: i64::MIN,
            multiplier: 1,
            shift: 1,
        };
        assert_eq!(kernel.accumulator_bound(), 3 * (1i128 << 63) * 128 + (1i128 << 63));
    }

    #[test]
    fn a_16_bit_layer_norm_row_whose_variance_could_reach_2_62_is_refused() {
        let norm = |row_len: usize, input_bits: u32| LayerNorm {
            input: 0,
            input_bits,
            row_len,
            epsilon: 1 << 20,
            root_shift: 20,
            root_bits: 14,
            multiplier: 1 << 20,
            shift: 40,
            activation: Activation::Identity,
            output_bits: 8,
        };
        // 768 features (BERT) of 16 bits: V < 2^61; 4,096 of them: V up to 2^68, beyond the engine's i64.
        assert_eq!(check_layer_norm(&norm(768, 16), 768 * 4, 768 * 4), Ok(()));
        let too_long = check_layer_norm(&norm(4096, 16), 4096, 4096).unwrap_err();
        assert!(too_long.contains("2^62"), "{too_long}");
        // The same row of int8 values is fine (V < 2^53).
        assert_eq!(check_layer_norm(&norm(4096, 8), 4096, 4096), Ok(()));
    }
}

#[cfg(test)]
mod product_tests {
    use super::*;
    use crate::model::{InputQuantization, Mul};

    /// input(2) → Mul(x0·x1, x1·x1) with the given output width.
    fn product(operands: Vec<[Source; 2]>, multiplier: i64, shift: u32, bits: u32) -> QuantizedModel {
        let s = |index| Source { tensor: 0, index };
        let mut layers = vec![Layer {
            name: "mul".into(),
            op_type: "Mul".into(),
            output_shape: vec![operands.len()],
            output_scale: 0.1,
            op: Op::Mul(Mul {
                operands,
                multiplier,
                shift,
                activation: Activation::Identity,
                output_bits: bits,
            }),
        }];
        if bits == 32 {
            // A second product reading the first: the first's outputs must then be int8.
            layers[0].op = match layers[0].op.clone() {
                Op::Mul(m) => Op::Mul(Mul { output_bits: 16, ..m }),
                op => op,
            };
            layers.push(Layer {
                name: "square".into(),
                op_type: "Mul".into(),
                output_shape: vec![1],
                output_scale: 0.1,
                op: Op::Mul(Mul {
                    operands: vec![[Source { tensor: 1, index: 0 }, s(0)]],
                    multiplier,
                    shift,
                    activation: Activation::Identity,
                    output_bits: 8,
                }),
            });
        }
        QuantizedModel {
            format_version: MODEL_FORMAT_VERSION,
            name: "product".into(),
            input_shape: vec![1, 2],
            input: InputQuantization::per_tensor(0.1),
            layers,
        }
    }

    fn problem(model: &QuantizedModel) -> LayerProblem {
        match model.validate() {
            Err(ModelError::Layer { problem, .. }) => problem,
            other => panic!("expected a layer problem, got {other:?}"),
        }
    }

    #[test]
    fn products_are_checked_like_requantizing_layers() {
        let s = |tensor, index| Source { tensor, index };
        let pairs = vec![[s(0, 0), s(0, 1)], [s(0, 1), s(0, 1)]];
        assert_eq!(product(pairs.clone(), 1 << 20, 24, 8).validate(), Ok(()));
        assert_eq!(product(pairs.clone(), 1 << 20, 24, 16).validate(), Ok(()));
        let mut short = product(pairs.clone(), 1 << 20, 24, 8);
        short.layers[0].output_shape = vec![3];
        assert_eq!(problem(&short), LayerProblem::SourceCount { expected: 3, found: 2 });
        assert_eq!(
            problem(&product(vec![[s(0, 0), s(0, 2)], [s(0, 1), s(0, 1)]], 1 << 20, 24, 8)),
            LayerProblem::MissingSource(s(0, 2))
        );
        assert_eq!(
            problem(&product(vec![[s(1, 0), s(0, 0)], [s(0, 1), s(0, 1)]], 1 << 20, 24, 8)),
            LayerProblem::MissingSource(s(1, 0)),
            "a product may not read its own output"
        );
        assert_eq!(
            problem(&product(pairs.clone(), 0, 24, 8)),
            LayerProblem::Multiplier { kernel: 0, value: 0 }
        );
        assert_eq!(
            problem(&product(pairs.clone(), 1 << 32, 24, 8)),
            LayerProblem::Multiplier {
                kernel: 0,
                value: 1 << 32
            }
        );
        assert_eq!(
            problem(&product(pairs.clone(), 1 << 20, 0, 8)),
            LayerProblem::Shift { kernel: 0, value: 0 }
        );
        assert_eq!(
            problem(&product(pairs.clone(), 1 << 20, 24, 12)),
            LayerProblem::OutputWidth {
                bits: 12,
                activation: Activation::Identity
            }
        );
        // A 16-bit product read by another layer.
        assert_eq!(
            problem(&product(pairs, 1 << 20, 24, 32)),
            LayerProblem::WideSource(s(1, 0))
        );
    }
}
