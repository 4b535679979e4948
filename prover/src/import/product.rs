//! `Mul`: the elementwise product of two computed tensors (a gate, an attention weight; broadcast), the start
//! of PyTorch's erf form of GELU, which fuses into one activation, or a product by a constant (see `affine.rs`).

use super::{Node, Walker};
use crate::error::Result;
use crate::graph::FloatOp;

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
}
