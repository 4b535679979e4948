//! The matrix product of two computed tensors (attention's `Q·Kᵀ` and `A·V`): both operands are activations, so
//! neither is a constant the verifying key could fix.

use serde::{Deserialize, Serialize};

use super::{Activation, OutputRange, Rescale, Source, MAX_INT8_PRODUCT};

/// Matrix products of two int8 tensors, requantized: for each product `b` (a batch of heads, say),
/// `out_b[i, j] = clamp((Σ_k A_b[i, k] · B_b[k, j] · M + 2^(s−1)) >> s)`. The operands are listed element by element
/// (so a transposed or broadcast operand is only another order of sources); the outputs are the products one after
/// another, each `rows × columns` row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMul {
    /// Rows `m` of each left operand and product.
    pub rows: usize,
    /// Columns `n` of each left operand, rows of each right operand.
    pub inner: usize,
    /// Columns `p` of each right operand and product.
    pub columns: usize,
    /// The left operands, `m × n` sources each, row-major, one product after another.
    pub lhs: Vec<Source>,
    /// The right operands, `n × p` sources each, row-major, one product after another.
    pub rhs: Vec<Source>,
    /// Requantization multiplier `M` (positive, below 2^32).
    pub multiplier: i64,
    /// Requantization shift `s` in `[1, MAX_SHIFT]`.
    pub shift: u32,
    /// Activation fused into the clamp.
    pub activation: Activation,
    /// Width of the outputs: 8, or 16 (the model's output).
    pub output_bits: u32,
}

/// One product of a [`MatMul`], by reference: `A` (`m × n`) and `B` (`n × p`), row-major.
#[derive(Clone, Copy, Debug)]
pub struct MatrixProduct<'a> {
    /// The left operand's sources.
    pub lhs: &'a [Source],
    /// The right operand's sources.
    pub rhs: &'a [Source],
}

impl MatMul {
    /// Number of products: the left operands' sources over `m · n` (0 for an empty shape or one whose size
    /// overflows).
    pub fn products(&self) -> usize {
        (self.rows.checked_mul(self.inner)).map_or(0, |size| self.lhs.len().checked_div(size).unwrap_or(0))
    }

    /// Number of outputs: `products · m · p` (saturating).
    pub fn output_len(&self) -> usize {
        self.products().saturating_mul(self.rows).saturating_mul(self.columns)
    }

    /// Each product's operands, in order (as many as both operand lists hold whole).
    pub fn each(&self) -> impl Iterator<Item = MatrixProduct<'_>> {
        let a = self.rows.saturating_mul(self.inner).max(1);
        let b = self.inner.saturating_mul(self.columns).max(1);
        self.lhs
            .chunks_exact(a)
            .zip(self.rhs.chunks_exact(b))
            .map(|(lhs, rhs)| MatrixProduct { lhs, rhs })
    }

    /// The range the requantized outputs are clamped to.
    pub fn output_range(&self) -> OutputRange {
        OutputRange::of(self.output_bits, self.activation)
    }

    /// The requantization of every output: no bias, sums of `n` products of two int8 values.
    pub fn rescale(&self) -> Rescale {
        Rescale {
            multiplier: self.multiplier,
            shift: self.shift,
            bias: 0,
            accumulator_bound: i128::from(MAX_INT8_PRODUCT) * self.inner as i128,
        }
    }

    /// The accumulators `Σ_k A[i, k] · B[k, j]` of every output, in output order, reading each source with `get`.
    pub fn accumulators(&self, get: impl Fn(&Source) -> i64) -> Vec<i64> {
        let (m, n, p) = (self.rows, self.inner, self.columns);
        let mut out = Vec::with_capacity(self.output_len());
        for product in self.each() {
            let a: Vec<i64> = product.lhs.iter().map(&get).collect();
            let b: Vec<i64> = product.rhs.iter().map(&get).collect();
            for i in 0..m {
                for j in 0..p {
                    // Wrapping: exact for a validated model (|acc| ≤ n · 2^14), and no panic on one that is not.
                    let dot = (0..n).fold(0i64, |sum, k| sum.wrapping_add(a[i * n + k].wrapping_mul(b[k * p + j])));
                    out.push(dot);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputQuantization, Layer, Op, QuantizedModel, MODEL_FORMAT_VERSION};

    /// Input `[[1, 2], [3, 4]]` (4 values) times its transpose, requantized by `1/2` (`M = 2^23`, `s = 24`).
    fn gram() -> QuantizedModel {
        let s = |index| Source { tensor: 0, index };
        QuantizedModel {
            format_version: MODEL_FORMAT_VERSION,
            name: "gram".into(),
            input_shape: vec![1, 2, 2],
            input: InputQuantization::per_tensor(0.1),
            layers: vec![Layer {
                name: "gram".into(),
                op_type: "MatMul".into(),
                output_shape: vec![2, 2],
                output_scale: 0.1,
                op: Op::MatMul(MatMul {
                    rows: 2,
                    inner: 2,
                    columns: 2,
                    lhs: vec![s(0), s(1), s(2), s(3)],
                    rhs: vec![s(0), s(2), s(1), s(3)],
                    multiplier: 1 << 23,
                    shift: 24,
                    activation: Activation::Identity,
                    output_bits: 8,
                }),
            }],
        }
    }

    /// A change to the product or its layer.
    type Change = Box<dyn FnOnce(&mut MatMul, &mut Layer)>;

    fn with(change: impl FnOnce(&mut MatMul, &mut Layer)) -> Result<(), String> {
        let mut model = gram();
        let mut layer = model.layers.remove(0);
        let Op::MatMul(mut matmul) = layer.op.clone() else {
            unreachable!("a matrix product")
        };
        change(&mut matmul, &mut layer);
        layer.op = Op::MatMul(matmul);
        model.layers.push(layer);
        model.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn a_product_of_two_activations_computes_the_matrix_product() {
        let tensors = gram().eval_reference(&[1, 2, 3, 4]).expect("valid");
        // [[1, 2], [3, 4]] · [[1, 3], [2, 4]] = [[5, 11], [11, 25]], halved and rounded half up.
        assert_eq!(tensors[1], [3, 6, 6, 13]);
        let values = gram().layers[0].eval(&tensors[..1]);
        assert_eq!(values.accumulators, [5, 11, 11, 25]);
    }

    #[test]
    fn operands_and_outputs_of_the_wrong_sizes_are_refused() {
        assert_eq!(with(|_, _| {}), Ok(()));
        let source = Source { tensor: 0, index: 0 };
        let cases: [(&str, Change); 6] = [
            ("a short left operand", Box::new(|m, _| m.lhs.truncate(3))),
            ("a long right operand", Box::new(move |m, _| m.rhs.push(source))),
            ("an output too many", Box::new(|_, l| l.output_shape = vec![5])),
            ("an empty inner size", Box::new(|m, _| m.inner = 0)),
            ("rows that overflow", Box::new(|m, _| m.rows = usize::MAX)),
            (
                "an inner size beyond the bound",
                Box::new(|m, _| m.inner = crate::model::validate::MAX_INNER + 1),
            ),
        ];
        for (what, change) in cases {
            let e = with(change).expect_err(what);
            assert!(e.contains("matrices"), "{what}: {e}");
        }
        let e = with(|m, _| m.multiplier = 0).expect_err("a zero multiplier");
        assert!(e.contains("multiplier"), "{e}");
        let e = with(|m, _| m.lhs[0] = Source { tensor: 1, index: 0 }).expect_err("a source read before it exists");
        assert!(e.contains("does not exist"), "{e}");
    }
}
