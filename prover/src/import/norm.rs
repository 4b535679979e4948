//! `LayerNormalization` (opset 17) over the trailing axes from `axis`: one layer-norm node (the exact integer
//! normalization of [`zkinfer_circuits::model::LayerNorm`]: mean, variance and an inverse square root with
//! range-checked bounds) followed by γ and β as an affine node, which folds into the linear layer that reads it.
//! The decomposed form older exporters write (ReduceMean, Sub, Pow, …, Sqrt, Div) imports op by op and is then
//! recognised as the same node (`norm_pattern.rs`).

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::{FloatOp, FloatTensorId};

impl Walker<'_> {
    /// Pushes `new`, built from `n`, as the value `name` that no name in the graph reads: counted as read `reads`
    /// times, by the nodes pushed next.
    fn push_inner(&mut self, n: &Node, name: &str, new: NewNode, reads: usize) -> Result<FloatTensorId> {
        let t = self.push_as(name, n, new)?;
        self.uses[t] += reads;
        Ok(t)
    }

    pub(super) fn layer_norm(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len() as i64;
        let axis = n.int("axis", -1)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(n.bad_attr("axis", axis));
        }
        n.expect_int("stash_type", 1, &[1])?;
        let epsilon = n.float("epsilon", 1e-5)?;
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(n.bad_attr("epsilon", epsilon));
        }
        if n.pb.output.iter().skip(1).any(|o| !o.is_empty()) {
            bail_graph!(
                "LayerNormalization `{}`: only the normalized output is supported, not the mean or inverse standard \
                 deviation outputs",
                n.label
            );
        }
        let axis = axis as usize;
        let row: usize = shape[axis..].iter().product();
        if row == 0 {
            bail_graph!("LayerNormalization `{}` of an empty shape {shape:?}", n.label);
        }
        let (scale, bias) = (n.input(1)?, n.opt_input(2));
        let constant_row = |w: &Walker, name: &str| -> Result<Vec<f32>> {
            let (cshape, values) = w.constant(name, n)?;
            let Some(row_values) = super::affine::broadcast(&values, &cshape, &shape[axis..]) else {
                bail_graph!(
                    "LayerNormalization `{}`: `{name}` of shape {cshape:?} does not broadcast to the normalized shape \
                     {:?}",
                    n.label,
                    &shape[axis..]
                );
            };
            if row_values.iter().any(|v| !v.is_finite()) {
                bail_graph!(
                    "LayerNormalization `{}`: `{name}` holds a value that is not finite",
                    n.label
                );
            }
            Ok(row_values)
        };
        let gamma = constant_row(self, scale)?;
        let beta = match bias {
            Some(b) => constant_row(self, b)?,
            None => vec![0.0; row],
        };
        let out = n.output()?.to_string();
        let normed = NewNode {
            op_type: "LayerNormalization".into(),
            inputs: vec![t],
            shape: shape.clone(),
            op: FloatOp::LayerNorm { row_len: row, epsilon },
        };
        let normed = self.push_inner(n, &format!("{out}/normalized"), normed, 1)?;
        let rows_total: usize = shape[..axis].iter().product();
        let affine = FloatOp::Affine {
            scale: gamma.iter().copied().cycle().take(rows_total * row).collect(),
            shift: beta.iter().copied().cycle().take(rows_total * row).collect(),
        };
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![normed],
            shape,
            op: affine,
        };
        self.push(n, new).map(drop)
    }
}
