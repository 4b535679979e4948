//! `Mul`: the elementwise product of two computed tensors of equal shape (a gate, an attention weight), the start
//! of PyTorch's erf form of GELU, which fuses into one activation, or a product by a constant (see `affine.rs`).

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::FloatOp;

impl Walker<'_> {
    /// `Mul` of two tensors of equal shape, the start of the erf form of GELU, or a product by a constant (an
    /// affine node).
    pub(super) fn mul(&mut self, n: &Node) -> Result<()> {
        if self.match_gelu(n).is_some() {
            return self.gelu_pattern(n);
        }
        let (a, b) = (n.input(0)?, n.input(1)?);
        if self.is_const(a) || self.is_const(b) {
            return self.affine(n);
        }
        let (ta, tb) = (self.tensor(n, 0)?, self.tensor(n, 1)?);
        let shape = self.shape(ta).to_vec();
        if shape != self.shape(tb) {
            let other = self.shape(tb);
            bail_graph!(
                "Mul `{}` of shapes {shape:?} and {other:?}: only equal shapes are supported",
                n.label
            );
        }
        let new = NewNode {
            op_type: "Mul".into(),
            inputs: vec![ta, tb],
            shape,
            op: FloatOp::Mul,
        };
        self.push(n, new).map(drop)
    }
}
