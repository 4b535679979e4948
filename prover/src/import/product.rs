//! `Mul`: the elementwise product of two computed tensors (a gate, an attention weight; broadcast), the start
//! of PyTorch's erf form of GELU, which fuses into one activation, or a product by a constant (see `affine.rs`);
//! and what reduces to a product: `Pow(x, 2)` (`x · x`) and `Div` of two tensors (`a · (1 / b)`, the reciprocal an
//! activation table on `b`'s int8 values).

use super::{bail_graph, Node, Walker};
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
}
