//! What each IR op computes, on plain integers: the one definition that the native engine, the GPU path and the
//! tests are checked against, and that the circuit's chips constrain.
//!
//! Every function here expects the tensors of a model that passed [`QuantizedModel::validate`] (every source
//! exists, every accumulator fits); [`QuantizedModel::eval_reference`] validates first. A source that does not exist
//! reads 0 instead of panicking.

use super::{Layer, Linear, ModelError, Op, QuantizedModel, Source};

/// What one layer computes for one input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerValues {
    /// What each output requantizes: `Σ w·x + bias` of a linear layer, `a·b` of a product, `Σ a·b` of a matrix
    /// product, the exponentials of a softmax, the products `c_j · q` of a layer normalization; empty for other ops.
    pub accumulators: Vec<i64>,
    /// The layer's outputs.
    pub outputs: Vec<i64>,
}

/// The value of `s` among `tensors` (0 where it does not exist, which validation rules out).
pub fn read(tensors: &[Vec<i64>], s: &Source) -> i64 {
    tensors.get(s.tensor).and_then(|t| t.get(s.index)).copied().unwrap_or(0)
}

impl Linear {
    /// `Σ w·x + bias` of each of the layer's `output_len` outputs, padding taps reading 0.
    pub fn accumulators(&self, output_len: usize, tensors: &[Vec<i64>]) -> Vec<i64> {
        let mut acc = vec![0; output_len];
        let mut taps = Vec::new();
        for g in &self.groups {
            taps.clear();
            taps.extend(g.taps.iter().map(|t| t.as_ref().map_or(0, |s| read(tensors, s))));
            for &(o, k) in &g.outputs {
                if let (Some(kernel), Some(slot)) = (self.kernels.get(k), acc.get_mut(o)) {
                    // Wrapping: identical for a validated model (|acc| < 2^40), and no panic on one that is not.
                    let dot = (kernel.weights.iter().zip(&taps))
                        .fold(0i64, |sum, (w, x)| sum.wrapping_add(w.wrapping_mul(*x)));
                    *slot = dot.wrapping_add(kernel.bias);
                }
            }
        }
        acc
    }

    /// The outputs for the accumulators `acc` (bias included): each requantized by its kernel and clamped to the
    /// layer's output range.
    pub fn requantize_accumulators(&self, acc: &[i64]) -> Vec<i64> {
        let mut out = vec![0; acc.len()];
        for g in &self.groups {
            for &(o, k) in &g.outputs {
                if let (Some(kernel), Some(&a), Some(slot)) = (self.kernels.get(k), acc.get(o), out.get_mut(o)) {
                    *slot = kernel.requantize(a, self.output_range()).y;
                }
            }
        }
        out
    }
}

impl Layer {
    /// The layer on the tensors computed before it (tensor 0 the input).
    pub fn eval(&self, tensors: &[Vec<i64>]) -> LayerValues {
        self.eval_with(tensors, None)
    }

    /// [`Layer::eval`], taking a linear layer's accumulators from `accumulators` when given (computed elsewhere,
    /// on a GPU) instead of computing them.
    pub fn eval_with(&self, tensors: &[Vec<i64>], accumulators: Option<Vec<i64>>) -> LayerValues {
        let get = |s: &Source| read(tensors, s);
        match &self.op {
            Op::Linear(lin) => {
                let accumulators = accumulators.unwrap_or_else(|| lin.accumulators(self.output_len(), tensors));
                let outputs = lin.requantize_accumulators(&accumulators);
                LayerValues { accumulators, outputs }
            }
            Op::MaxPool(pool) => LayerValues {
                accumulators: Vec::new(),
                outputs: pool
                    .windows
                    .iter()
                    .map(|w| w.iter().map(get).max().unwrap_or(0))
                    .collect(),
            },
            Op::Table(table) => LayerValues {
                accumulators: Vec::new(),
                outputs: tensors
                    .get(table.input)
                    .map_or_else(Vec::new, |t| t.iter().map(|&x| table.apply(x)).collect()),
            },
            Op::Gather(sources) => LayerValues {
                accumulators: Vec::new(),
                outputs: sources.iter().map(get).collect(),
            },
            Op::Mul(mul) => {
                let accumulators: Vec<i64> = mul.operands.iter().map(|[a, b]| get(a).wrapping_mul(get(b))).collect();
                let rescale = mul.rescale();
                let outputs = (accumulators.iter())
                    .map(|&acc| rescale.requantize(acc, mul.output_range()).y)
                    .collect();
                LayerValues { accumulators, outputs }
            }
            Op::Embedding(embedding) => LayerValues {
                accumulators: Vec::new(),
                outputs: embedding.eval(tensors),
            },
            Op::ArgMax(argmax) => LayerValues {
                accumulators: Vec::new(),
                outputs: argmax.eval(tensors.get(argmax.input).map_or(&[][..], Vec::as_slice)),
            },
            Op::Softmax(softmax) => {
                let input = tensors.get(softmax.input).map_or(&[][..], Vec::as_slice);
                let rows = softmax.eval_rows(input);
                LayerValues {
                    accumulators: rows.iter().flat_map(|r| r.exps.iter().copied()).collect(),
                    outputs: rows.into_iter().flat_map(|r| r.outputs).collect(),
                }
            }
            Op::LayerNorm(norm) => {
                let input = tensors.get(norm.input).map_or(&[][..], Vec::as_slice);
                let rows = norm.eval_rows(input);
                LayerValues {
                    accumulators: rows.iter().flat_map(|r| r.products.iter().copied()).collect(),
                    outputs: rows.into_iter().flat_map(|r| r.outputs).collect(),
                }
            }
            Op::MatMul(matmul) => {
                let accumulators = matmul.accumulators(get);
                let (rescale, range) = (matmul.rescale(), matmul.output_range());
                let outputs = (accumulators.iter())
                    .map(|&acc| rescale.requantize(acc, range).y)
                    .collect();
                LayerValues { accumulators, outputs }
            }
        }
    }
}

impl QuantizedModel {
    /// Checks that `input` has the model's input length and holds int8 values (token ids in the vocabulary for a
    /// token input).
    pub fn check_input(&self, input: &[i64]) -> Result<(), ModelError> {
        let expected = self.input_len();
        if input.len() != expected {
            return Err(ModelError::InputLength {
                expected,
                found: input.len(),
            });
        }
        let (lo, hi) = self.input.value_range();
        match input.iter().position(|v| !(lo..=hi).contains(v)) {
            Some(index) => Err(ModelError::InputValue {
                index,
                value: input[index],
                lo,
                hi,
            }),
            None => Ok(()),
        }
    }

    /// Every tensor of the model for one int8 input, input first and output last: the reference the native
    /// engine, the GPU path and the circuit are compared with. Validates the model and the input first.
    pub fn eval_reference(&self, input: &[i64]) -> Result<Vec<Vec<i64>>, ModelError> {
        self.validate()?;
        self.check_input(input)?;
        let mut tensors = Vec::with_capacity(self.layers.len() + 1);
        tensors.push(input.to_vec());
        for layer in &self.layers {
            let values = layer.eval(&tensors);
            tensors.push(values.outputs);
        }
        Ok(tensors)
    }
}
