//! The quantized model IR shared by the prover (which builds and runs it) and the circuit (which proves it).
//!
//! Numbers follow DESIGN.md: int8 activations (symmetric, per tensor), int8 weights (symmetric, per output
//! channel), integer bias at the accumulator scale, and gemmlowp-style requantization
//! `y = clamp((acc · M + 2^(s−1)) >> s, lo, 127)` with `lo = 0` when a ReLU is fused, `−128` otherwise.

use serde::{Deserialize, Serialize};

use crate::arith::{requantize, Requantized};

/// Version of the serialized quantized model (`.zkm`); bump on any change to these structs.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// The smallest and largest int8 activation.
pub const ACT_MIN: i64 = -128;
/// The largest int8 activation.
pub const ACT_MAX: i64 = 127;

/// Activation fused into a layer's requantization clamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// No activation: clamp to `[-128, 127]`.
    Identity,
    /// ReLU: clamp to `[0, 127]`.
    Relu,
}

impl Activation {
    /// The lower clamp bound of the requantized output.
    pub fn lower_bound(self) -> i64 {
        match self {
            Activation::Identity => ACT_MIN,
            Activation::Relu => 0,
        }
    }
}

/// A fully connected layer `y = act(requant(W·x + b))`, in integers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseLayer {
    /// Name of the ONNX node this layer came from (for messages and reports).
    pub name: String,
    /// Number of inputs.
    pub in_features: usize,
    /// Number of outputs (channels).
    pub out_features: usize,
    /// int8 weights, row-major `[out_features][in_features]`.
    pub weights: Vec<i8>,
    /// Bias per output channel at the accumulator scale (`input_scale · weight_scale[c]`).
    pub bias: Vec<i64>,
    /// Integer requantization multiplier `M` per output channel (positive).
    pub multiplier: Vec<i64>,
    /// Requantization shift `s` per output channel (a positive multiple of 8, see `arith`).
    pub shift: Vec<u32>,
    /// Activation fused into the output clamp.
    pub activation: Activation,
    /// Float scale of each weight channel (metadata; not used by the integer engine).
    pub weight_scales: Vec<f32>,
    /// Float scale of this layer's int8 output.
    pub output_scale: f32,
}

impl DenseLayer {
    /// The weight of output `o` for input `i`.
    pub fn weight(&self, o: usize, i: usize) -> i64 {
        self.weights[o * self.in_features + i] as i64
    }

    /// Largest possible |accumulator| of channel `o` for any int8 input: `Σ|w|·128 + |b|`.
    pub fn accumulator_bound(&self, o: usize) -> i64 {
        let row = &self.weights[o * self.in_features..(o + 1) * self.in_features];
        row.iter().map(|w| (*w as i64).abs()).sum::<i64>() * 128 + self.bias[o].abs()
    }

    /// Requantizes the accumulator of channel `o`.
    pub fn requantize(&self, o: usize, acc: i64) -> Requantized {
        requantize(
            acc,
            self.multiplier[o],
            self.shift[o],
            self.activation.lower_bound(),
            ACT_MAX,
        )
    }
}

/// A quantized feed-forward model: an int8 input vector through a chain of dense layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModel {
    /// Format version, always [`MODEL_FORMAT_VERSION`] for models this build writes.
    pub format_version: u32,
    /// Human-readable model name (the ONNX graph name or the file stem).
    pub name: String,
    /// Shape of the float input tensor the ONNX model expects (batch dimension included).
    pub input_shape: Vec<usize>,
    /// Float scale of the int8 input: `x ≈ input_scale · q`.
    pub input_scale: f32,
    /// The layers, in order.
    pub layers: Vec<DenseLayer>,
}

impl QuantizedModel {
    /// Number of input elements (the flattened input tensor).
    pub fn input_len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_features)
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_features)
    }

    /// Float scale of the int8 outputs.
    pub fn output_scale(&self) -> f32 {
        self.layers.last().map_or(1.0, |l| l.output_scale)
    }

    /// Checks the structural invariants the circuit relies on (shapes chain, shifts are multiples of 8,
    /// no accumulator can wrap modulo p). Returns a message naming the layer on failure.
    pub fn validate(&self) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err("the model has no layers".into());
        }
        let mut width = self.input_len();
        for layer in &self.layers {
            let n = &layer.name;
            if layer.in_features != width {
                return Err(format!(
                    "layer {n}: expects {} inputs, previous layer gives {width}",
                    layer.in_features
                ));
            }
            let o = layer.out_features;
            if layer.weights.len() != o * layer.in_features
                || layer.bias.len() != o
                || layer.multiplier.len() != o
                || layer.shift.len() != o
            {
                return Err(format!("layer {n}: parameter lengths do not match its shape"));
            }
            for c in 0..o {
                let (m, s) = (layer.multiplier[c], layer.shift[c]);
                if m <= 0 || m >= 1 << 32 {
                    return Err(format!("layer {n} channel {c}: multiplier {m} outside (0, 2^32)"));
                }
                if s == 0 || s % 8 != 0 || s > crate::arith::MAX_SHIFT {
                    return Err(format!(
                        "layer {n} channel {c}: shift {s} must be a multiple of 8 in [8, {}]",
                        crate::arith::MAX_SHIFT
                    ));
                }
                if layer.accumulator_bound(c) >= 1 << 40 {
                    return Err(format!("layer {n} channel {c}: accumulator may exceed 2^40"));
                }
            }
            width = o;
        }
        Ok(())
    }
}
