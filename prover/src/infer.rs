//! Native integer inference: the bit-exact reference for the circuit.
//!
//! Each layer computes `acc = W·x + b` in i64 (no overflow: `QuantizedModel::validate` bounds every accumulator
//! below 2^40) and rounds with [`DenseLayer::requantize`], the one rounding function shared with the circuit.

use ndarray::linalg::general_mat_vec_mul;
use ndarray::{s, Array1, Array2, ArrayView1};
use rayon::prelude::*;
use zkinfer_circuits::model::{DenseLayer, QuantizedModel, ACT_MAX, ACT_MIN};

use crate::error::{ProverError, Result};

/// What one layer computed for one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTrace {
    /// The layer's name.
    pub name: String,
    /// `W·x + b` per output channel, before requantization.
    pub accumulators: Vec<i64>,
    /// The requantized (and clamped) int8 outputs.
    pub outputs: Vec<i64>,
}

/// A quantized model prepared for repeated inference: weights widened to i64 matrices once.
#[derive(Clone, Debug)]
pub struct IntegerEngine {
    model: QuantizedModel,
    weights: Vec<Array2<i64>>,
    biases: Vec<Array1<i64>>,
    max_width: usize,
}

/// Reusable buffers for one inference (one set per thread).
struct Scratch {
    x: Vec<i64>,
    y: Vec<i64>,
    acc: Array1<i64>,
}

impl IntegerEngine {
    /// Validates `model` and widens its weights.
    pub fn new(model: &QuantizedModel) -> Result<IntegerEngine> {
        model
            .validate()
            .map_err(|reason| ProverError::Quantization { reason })?;
        let mut weights = Vec::with_capacity(model.layers.len());
        let mut biases = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let w: Vec<i64> = l.weights.iter().map(|&w| w as i64).collect();
            let w = Array2::from_shape_vec((l.out_features, l.in_features), w)
                .map_err(|e| ProverError::Other(format!("layer {}: {e}", l.name)))?;
            weights.push(w);
            biases.push(Array1::from(l.bias.clone()));
        }
        let max_width = model
            .layers
            .iter()
            .map(|l| l.in_features.max(l.out_features))
            .max()
            .unwrap_or(0);
        Ok(IntegerEngine {
            model: model.clone(),
            weights,
            biases,
            max_width,
        })
    }

    /// The model this engine runs.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            x: vec![0; self.max_width],
            y: vec![0; self.max_width],
            acc: Array1::zeros(self.max_width),
        }
    }

    /// Checks that `input_q` has the model's input length and holds int8 values.
    pub fn check_input(&self, input_q: &[i64]) -> Result<()> {
        let expected = self.model.input_len();
        if input_q.len() != expected {
            return Err(ProverError::WrongInputLength {
                expected,
                found: input_q.len(),
            });
        }
        match input_q.iter().position(|v| !(ACT_MIN..=ACT_MAX).contains(v)) {
            Some(index) => Err(ProverError::InputOutOfRange {
                index,
                value: input_q[index],
            }),
            None => Ok(()),
        }
    }

    /// Runs the layers, calling `visit(layer, accumulators, outputs)` after each; returns the output length.
    fn run(
        &self,
        input_q: &[i64],
        buf: &mut Scratch,
        mut visit: impl FnMut(&DenseLayer, ArrayView1<i64>, &[i64]),
    ) -> Result<usize> {
        self.check_input(input_q)?;
        buf.x[..input_q.len()].copy_from_slice(input_q);
        let mut width = input_q.len();
        for ((layer, w), b) in self.model.layers.iter().zip(&self.weights).zip(&self.biases) {
            let out = layer.out_features;
            let mut acc = buf.acc.slice_mut(s![..out]);
            acc.assign(b);
            general_mat_vec_mul(1, w, &ArrayView1::from(&buf.x[..width]), 1, &mut acc);
            for (c, (y, a)) in buf.y[..out].iter_mut().zip(acc.iter()).enumerate() {
                *y = layer.requantize(c, *a).y;
            }
            visit(layer, acc.view(), &buf.y[..out]);
            std::mem::swap(&mut buf.x, &mut buf.y);
            width = out;
        }
        Ok(width)
    }

    /// The int8 outputs for one int8 input.
    pub fn infer(&self, input_q: &[i64]) -> Result<Vec<i64>> {
        let mut buf = self.scratch();
        let n = self.run(input_q, &mut buf, |_, _, _| {})?;
        Ok(buf.x[..n].to_vec())
    }

    /// The int8 outputs for many inputs, in parallel; fails on the first bad input.
    pub fn infer_batch(&self, inputs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        inputs
            .par_iter()
            .map_init(
                || self.scratch(),
                |buf, x| {
                    let n = self.run(x, buf, |_, _, _| {})?;
                    Ok(buf.x[..n].to_vec())
                },
            )
            .collect()
    }

    /// Every layer's accumulators and outputs for one input.
    pub fn trace(&self, input_q: &[i64]) -> Result<Vec<LayerTrace>> {
        let mut buf = self.scratch();
        let mut trace = Vec::with_capacity(self.model.layers.len());
        self.run(input_q, &mut buf, |layer, acc, y| {
            trace.push(LayerTrace {
                name: layer.name.clone(),
                accumulators: acc.to_vec(),
                outputs: y.to_vec(),
            })
        })?;
        Ok(trace)
    }
}

/// The int8 outputs of `model` for one int8 input (see [`IntegerEngine`] to run many).
pub fn infer(model: &QuantizedModel, input_q: &[i64]) -> Result<Vec<i64>> {
    IntegerEngine::new(model)?.infer(input_q)
}

/// The int8 outputs of `model` for many inputs, in parallel over samples.
pub fn infer_batch(model: &QuantizedModel, inputs: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
    IntegerEngine::new(model)?.infer_batch(inputs)
}

/// Every layer's accumulators and outputs for one input (for debugging and witness checks).
pub fn infer_trace(model: &QuantizedModel, input_q: &[i64]) -> Result<Vec<LayerTrace>> {
    IntegerEngine::new(model)?.trace(input_q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkinfer_circuits::arith::requantize;
    use zkinfer_circuits::model::{Activation, MODEL_FORMAT_VERSION};

    /// 3 → 2 (ReLU) → 2 with hand-checkable numbers.
    fn tiny() -> QuantizedModel {
        let layer = |name: &str, n_in, n_out, weights: Vec<i8>, bias, act| DenseLayer {
            name: name.into(),
            in_features: n_in,
            out_features: n_out,
            weights,
            bias,
            multiplier: vec![1 << 15; n_out],
            shift: vec![16; n_out],
            activation: act,
            weight_scales: vec![1.0; n_out],
            output_scale: 1.0,
        };
        QuantizedModel {
            format_version: MODEL_FORMAT_VERSION,
            name: "tiny".into(),
            input_shape: vec![1, 3],
            input_scale: 1.0,
            layers: vec![
                layer("a", 3, 2, vec![1, 2, 3, -1, -2, -3], vec![10, 0], Activation::Relu),
                layer("b", 2, 2, vec![127, 0, -1, 1], vec![0, 1], Activation::Identity),
            ],
        }
    }

    /// The textbook definition, one multiply-add at a time.
    fn naive(model: &QuantizedModel, x: &[i64]) -> Vec<i64> {
        let mut x = x.to_vec();
        for l in &model.layers {
            x = (0..l.out_features)
                .map(|o| {
                    let acc = l.bias[o] + (0..l.in_features).map(|i| l.weight(o, i) * x[i]).sum::<i64>();
                    requantize(acc, l.multiplier[o], l.shift[o], l.activation.lower_bound(), ACT_MAX).y
                })
                .collect();
        }
        x
    }

    #[test]
    fn hand_computed_example() {
        let m = tiny();
        // Layer a: acc = [10 + 1 + 4 + 9, -14] = [24, -14]; M/2^s = 1/2 → [12, 0 (ReLU)].
        // Layer b: acc = [127·12, -12 + 1] = [1524, -11] → [762 → 127, -5.5 → -5].
        let trace = infer_trace(&m, &[1, 2, 3]).unwrap();
        assert_eq!(trace[0].accumulators, vec![24, -14]);
        assert_eq!(trace[0].outputs, vec![12, 0]);
        assert_eq!(trace[1].accumulators, vec![1524, -11]);
        assert_eq!(trace[1].outputs, vec![127, -5]);
        assert_eq!(infer(&m, &[1, 2, 3]).unwrap(), vec![127, -5]);
    }

    #[test]
    fn matches_the_naive_definition_and_batches_agree() {
        let (float, calib) = crate::quantize::tests::random_model(7);
        let q = crate::quantize::quantize(&float, &calib).unwrap();
        let inputs: Vec<Vec<i64>> = calib
            .iter()
            .map(|x| crate::quantize::quantize_input(&q, x).unwrap())
            .collect();
        let batch = infer_batch(&q, &inputs).unwrap();
        for (x, y) in inputs.iter().zip(&batch) {
            assert_eq!(*y, naive(&q, x));
            assert_eq!(infer_trace(&q, x).unwrap().last().unwrap().outputs, *y);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let m = tiny();
        assert!(matches!(
            infer(&m, &[1, 2]),
            Err(ProverError::WrongInputLength { expected: 3, found: 2 })
        ));
        assert!(matches!(
            infer(&m, &[1, 200, 3]),
            Err(ProverError::InputOutOfRange { index: 1, value: 200 })
        ));
        assert!(infer_batch(&m, &[vec![1, 2, 3], vec![0; 4]]).is_err());
        let mut broken = m.clone();
        broken.layers[1].shift[0] = 7;
        assert!(matches!(
            infer(&broken, &[1, 2, 3]),
            Err(ProverError::Quantization { .. })
        ));
        broken.layers[1].weights.pop();
        assert!(IntegerEngine::new(&broken).is_err());
    }
}
