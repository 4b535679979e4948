//! `Mul`: the elementwise product of two computed tensors of equal shape (a gate, an attention weight), or the start
//! of PyTorch's erf form of GELU, which fuses into one activation.

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::FloatOp;

impl Walker<'_> {
    /// `Mul` of two tensors of equal shape; a product by a constant is refused unless it starts a GELU.
    pub(super) fn mul(&mut self, n: &Node) -> Result<()> {
        if self.match_gelu(n).is_some() {
            return self.gelu_pattern(n);
        }
        let (a, b) = (n.input(0)?, n.input(1)?);
        if self.is_const(a) || self.is_const(b) {
            bail_graph!(
                "Mul `{}` by a constant is not supported: only the product of two computed tensors of equal shape \
                 (or the erf form of GELU); fold a constant scale into the layer before it when exporting",
                n.label
            );
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
