//! `Mul`: the elementwise product of two computed tensors (a gate, an attention weight; broadcast), the start
//! of PyTorch's erf form of GELU, which fuses into one activation, or a product by a constant (see `affine.rs`);
//! and what reduces to a product: `Pow(x, 2)` (`x · x`) and `Div` of two tensors (`a · (1 / b)`, the reciprocal an
//! activation table on `b`'s int8 values); and `MatMul` of two computed tensors (attention's `Q·Kᵀ` and `A·V`).

use super::shape::broadcast_shape;
use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::{ActFn, FloatOp};

impl Walker<'_> {
    /// `Mul` of two tensors (broadcast), the start of the erf form of GELU, or a product by a constant (an
    /// affine node).
    pub(super) fn mul(&mut self, n: &Node) -> Result<()> {
        if self.match_gelu(n).is_some() {
            return self.gelu_pattern(n);
        }
        let (a, b) = (n.input(0)?, n.input(1)?);
        if self.is_const(a) || self.is_const(b) {
            return self.affine(n);
        }
        self.elementwise(n, FloatOp::Mul)
    }

    /// `Pow` by the constant 2: the product of the tensor with itself (the variance of a decomposed layer norm);
    /// by 1, the tensor itself.
    pub(super) fn pow(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        match self.scalar(n.input(1)?) {
            Some(2.0) => self.elementwise_of(n, t, t, FloatOp::Mul),
            Some(1.0) => self.rebind(n, t),
            other => bail_graph!(
                "Pow `{}`: only a constant exponent of 2 (a square) or 1 is supported, not {}",
                n.label,
                other.map_or("a computed tensor or a tensor of exponents".into(), |e| e.to_string())
            ),
        }
    }

    /// `Div` of two computed tensors: `a · (1 / b)`, with the reciprocal a table activation on `b`'s int8 values
    /// (so `b` should keep away from 0, as a standard deviation plus ε does), broadcast as `Mul` is.
    pub(super) fn quotient(&mut self, n: &Node) -> Result<()> {
        let (ta, tb) = (self.tensor(n, 0)?, self.tensor(n, 1)?);
        let name = format!("{}/reciprocal", n.output()?);
        let reciprocal = self.push_activation_as(&name, "Reciprocal", n, tb, ActFn::Reciprocal)?;
        // Read by the product below, which no name in the graph says.
        self.uses[reciprocal] += 1;
        self.elementwise_of(n, ta, reciprocal, FloatOp::Mul)
    }

    /// `MatMul` of two computed tensors of rank ≥ 2: the matrices of the last two dimensions multiplied, the
    /// leading (batch) dimensions broadcast as ONNX says (a head dimension, say); a broadcast operand is first
    /// expanded by a free data movement.
    pub(super) fn matmul_of_tensors(&mut self, n: &Node) -> Result<()> {
        let (ta, tb) = (self.tensor(n, 0)?, self.tensor(n, 1)?);
        let (a, b) = (self.shape(ta).to_vec(), self.shape(tb).to_vec());
        let (&[.., m, k], &[.., k2, p]) = (a.as_slice(), b.as_slice()) else {
            bail_graph!(
                "MatMul `{}` of shapes {a:?} and {b:?}: a product of two computed tensors needs both of rank 2 or \
                 more (reshape a vector to a matrix first)",
                n.label
            );
        };
        if k != k2 || k == 0 || m == 0 || p == 0 {
            bail_graph!(
                "MatMul `{}` of shapes {a:?} and {b:?}: the first's last dimension must equal the second's \
                 next-to-last one (and none be empty)",
                n.label
            );
        }
        let Some(batch) = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2]) else {
            bail_graph!(
                "MatMul `{}` of shapes {a:?} and {b:?}: the leading dimensions do not broadcast",
                n.label
            );
        };
        let shape_with = |x: usize, y: usize| batch.iter().copied().chain([x, y]).collect::<Vec<_>>();
        let ta = self.expanded(n, ta, &shape_with(m, k), "a")?;
        let tb = self.expanded(n, tb, &shape_with(k, p), "b")?;
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![ta, tb],
            shape: shape_with(m, p),
            op: FloatOp::MatMul {
                rows: m,
                inner: k,
                columns: p,
            },
        };
        self.push(n, new).map(drop)
    }
}
