//! The quantized model IR shared by the prover (which builds and runs it) and the circuit (which proves it).
//!
//! A model is a list of layers in topological order over int8 tensors: tensor 0 is the input, tensor `i + 1` the
//! output of layer `i`, the last tensor the output. Tensors are flat (row-major NCHW without the batch dimension).
//! Numbers follow DESIGN.md: int8 activations (symmetric, per tensor), integer weights, integer bias at the
//! accumulator scale, gemmlowp-style requantization `y = clamp((acc · M + 2^(s−1)) >> s, lo, hi)` with
//! `hi = 127`, except that the layer producing the model's output may be wider (16-bit logits, `hi = 32767`).

use serde::{Deserialize, Serialize};

use crate::arith::{requantize, Requantized, MAX_SHIFT};

/// Version of the serialized quantized model (`.zkm`); bump on any change to these structs.
pub const MODEL_FORMAT_VERSION: u32 = 3;

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

/// Quantizes a float input to the int8 activations the model reads: `clamp(round(x / input_scale), -128, 127)`.
/// The prover and a client computing its own input commitment use this one definition.
pub fn quantize_input_values(input_scale: f32, x: &[f32]) -> Vec<i64> {
    let s = input_scale as f64;
    x.iter()
        .map(|&v| (v as f64 / s).round().clamp(ACT_MIN as f64, ACT_MAX as f64) as i64)
        .collect()
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The tensor.
    pub tensor: TensorId,
    /// Flat index in it.
    pub index: usize,
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

    /// Largest possible |accumulator| for int8 inputs: `Σ|w|·128 + |b|`, computed in `i128` so that no weight or
    /// bias a file can hold (even `i64::MIN`) makes it wrap (every term is below 2^64 and there are fewer than
    /// 2^63 of them).
    pub fn accumulator_bound(&self) -> i128 {
        let weights: i128 = self.weights.iter().map(|w| i128::from(w.unsigned_abs())).sum();
        weights * 128 + i128::from(self.bias.unsigned_abs())
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
    /// Width of the outputs: 8, or up to 16 for the layer that produces the model's output (nothing reads it).
    pub output_bits: u32,
}

impl Linear {
    /// The range the requantized outputs are clamped to.
    pub fn output_range(&self) -> OutputRange {
        OutputRange {
            bits: self.output_bits,
            relu: self.activation == Activation::Relu,
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
}

/// One layer of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// The ONNX node(s) it came from.
    pub name: String,
    /// The ONNX operator(s), for reports (e.g. `Conv+Relu`).
    pub op_type: String,
    /// Output shape without the batch dimension.
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
    /// Shape of the float input tensor the ONNX model expects (batch dimension included).
    pub input_shape: Vec<usize>,
    /// Float scale of the int8 input: `x ≈ input_scale · q`.
    pub input_scale: f32,
    /// Layers in topological order.
    pub layers: Vec<Layer>,
}

impl QuantizedModel {
    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape
            .iter()
            .skip(usize::from(self.input_shape.len() > 1))
            .product()
    }

    /// Number of elements of tensor `t`.
    pub fn tensor_len(&self, t: TensorId) -> usize {
        if t == 0 {
            self.input_len()
        } else {
            self.layers.get(t - 1).map_or(0, Layer::output_len)
        }
    }

    /// Float scale of tensor `t`.
    pub fn tensor_scale(&self, t: TensorId) -> f32 {
        if t == 0 {
            self.input_scale
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

    /// Bits of the values of tensor `t`: 8, except the output of a linear layer with wider outputs.
    pub fn tensor_bits(&self, t: TensorId) -> u32 {
        match t.checked_sub(1).and_then(|i| self.layers.get(i)).map(|l| &l.op) {
            Some(Op::Linear(lin)) => lin.output_bits,
            _ => ACT_BITS,
        }
    }

    /// Checks the invariants the circuit relies on: sources exist and come before their reader, kernels fit their
    /// groups, shifts, multipliers and weights are bounded, no accumulator can wrap modulo p,
    /// and every tensor a layer reads holds int8 values (only the model output may be wider).
    /// Returns a message naming the layer on failure.
    pub fn validate(&self) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err("the model has no layers".into());
        }
        // Shapes first: everything below multiplies them out (a crafted file can claim any dimensions).
        let countable = |shape: &[usize]| shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_some();
        if !countable(&self.input_shape) {
            return Err(format!("input shape {:?}: too many elements", self.input_shape));
        }
        if let Some(layer) = self.layers.iter().find(|l| !countable(&l.output_shape)) {
            return Err(format!(
                "layer {}: output shape {:?}: too many elements",
                layer.name, layer.output_shape
            ));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let n = &layer.name;
            let len = layer.output_len();
            let source_ok = |s: &Source| {
                s.tensor <= i && s.index < self.tensor_len(s.tensor) && self.tensor_bits(s.tensor) == ACT_BITS
            };
            let bad_source = |s: &Source| {
                if s.tensor <= i && self.tensor_bits(s.tensor) != ACT_BITS {
                    format!("layer {n}: source {s:?} is wider than int8 (only the model output may be)")
                } else {
                    format!("layer {n}: source {s:?} does not exist before it")
                }
            };
            match &layer.op {
                Op::Linear(lin) => {
                    // The outputs are listed in the file: their count bounds `len` before anything is allocated.
                    if lin.groups.iter().map(|g| g.outputs.len()).sum::<usize>() != len {
                        return Err(format!("layer {n}: the groups do not list its {len} outputs"));
                    }
                    let mut seen = vec![false; len];
                    for g in &lin.groups {
                        if g.taps.iter().all(Option::is_none) {
                            return Err(format!(
                                "layer {n}: a group reads only padding (padding as large as the kernel)"
                            ));
                        }
                        for s in g.taps.iter().flatten() {
                            if !source_ok(s) {
                                return Err(bad_source(s));
                            }
                        }
                        for &(o, k) in &g.outputs {
                            let kernel = lin.kernels.get(k).ok_or(format!("layer {n}: kernel {k} missing"))?;
                            if kernel.weights.len() != g.taps.len() {
                                return Err(format!(
                                    "layer {n}: kernel {k} has {} weights for {} taps",
                                    kernel.weights.len(),
                                    g.taps.len()
                                ));
                            }
                            match seen.get_mut(o) {
                                Some(slot @ false) => *slot = true,
                                _ => return Err(format!("layer {n}: output {o} missing or written twice")),
                            }
                        }
                    }
                    if seen.iter().any(|s| !s) {
                        return Err(format!("layer {n}: some outputs are never computed"));
                    }
                    match (lin.output_bits, lin.activation) {
                        (ACT_BITS, _) | (MAX_OUTPUT_BITS, Activation::Identity) => {}
                        (bits, activation) => {
                            return Err(format!(
                                "layer {n}: {bits}-bit outputs with {activation:?} are not supported (int8, or \
                                 {MAX_OUTPUT_BITS}-bit without a fused ReLU)"
                            ))
                        }
                    }
                    for (k, kernel) in lin.kernels.iter().enumerate() {
                        let (m, s) = (kernel.multiplier, kernel.shift);
                        if m <= 0 || m >= 1 << 32 {
                            return Err(format!("layer {n} kernel {k}: multiplier {m} outside (0, 2^32)"));
                        }
                        if s == 0 || s > MAX_SHIFT {
                            return Err(format!("layer {n} kernel {k}: shift {s} outside [1, {MAX_SHIFT}]"));
                        }
                        if kernel.weights.iter().any(|w| w.unsigned_abs() > MAX_WEIGHT as u64)
                            || kernel.accumulator_bound() >= 1 << 40
                        {
                            return Err(format!("layer {n} kernel {k}: weights or accumulator too large"));
                        }
                    }
                }
                Op::MaxPool(pool) => {
                    if pool.windows.len() != len || pool.windows.iter().any(|w| w.is_empty()) {
                        return Err(format!("layer {n}: one non-empty window per output expected"));
                    }
                    for s in pool.windows.iter().flatten() {
                        if !source_ok(s) {
                            return Err(bad_source(s));
                        }
                        if self.tensor_scale(s.tensor) != layer.output_scale {
                            return Err(format!("layer {n}: a max pool keeps the scale of its input"));
                        }
                    }
                }
                Op::Table(table) => {
                    if table.input <= i && self.tensor_bits(table.input) != ACT_BITS {
                        return Err(format!("layer {n}: a table reads int8 values only"));
                    }
                    if table.values.len() != 256 || table.input > i || len != self.tensor_len(table.input) {
                        return Err(format!(
                            "layer {n}: a table has 256 entries and keeps the shape of its input"
                        ));
                    }
                }
                Op::Gather(sources) => {
                    if sources.len() != len {
                        return Err(format!("layer {n}: {} sources for {len} outputs", sources.len()));
                    }
                    if let Some(s) = sources.iter().find(|s| !source_ok(s)) {
                        return Err(bad_source(s));
                    }
                    if sources
                        .iter()
                        .any(|s| self.tensor_scale(s.tensor) != layer.output_scale)
                    {
                        return Err(format!(
                            "layer {n}: data movement cannot change scales; rescale with a linear layer"
                        ));
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
            input_scale: 0.1,
            layers,
        }
    }

    #[test]
    fn only_an_unread_linear_output_may_be_16_bit_and_without_relu() {
        assert!(two_layers(16, Activation::Identity, false).validate().is_ok());
        assert!(two_layers(8, Activation::Relu, true).validate().is_ok());
        let read = two_layers(16, Activation::Identity, true).validate().unwrap_err();
        assert!(read.contains("wider than int8"), "{read}");
        let relu = two_layers(16, Activation::Relu, false).validate().unwrap_err();
        assert!(relu.contains("16-bit outputs with Relu"), "{relu}");
        let odd = two_layers(12, Activation::Identity, false).validate().unwrap_err();
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
            model.validate()
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
