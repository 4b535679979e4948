//! `Softmax` over the last axis, and the causal masks exporters write before it: `Add` of a constant that is 0
//! where a position is kept and −∞ (or any value ≤ −10⁴: −1e9, the dtype's minimum) where it is masked, or `Where`
//! of a constant condition choosing between the scores and such a constant. A mask is not a tensor of its own: the
//! masked value may only be read by a `Softmax`, which takes the mask as which positions of each row take part.

use super::shape::{broadcast_shape, strides};
use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::{FloatOp, FloatTensorId};

/// At or below this a mask value masks its position out.
const MASKED_AT_OR_BELOW: f32 = -1e4;

/// Whether a mask value masks its position out.
fn masks_out(v: f32) -> bool {
    v <= MASKED_AT_OR_BELOW
}

/// `values` of shape `shape` repeated along its dimensions of 1 (and leading ones it lacks) to shape `out`, when
/// the two broadcast to `out` itself.
fn broadcast_to(shape: &[usize], values: &[f32], out: &[usize]) -> Option<Vec<f32>> {
    if broadcast_shape(out, shape).as_deref() != Some(out) {
        return None;
    }
    let aligned: Vec<usize> = std::iter::repeat_n(1, out.len() - shape.len())
        .chain(shape.iter().copied())
        .collect();
    let (in_strides, out_strides) = (strides(&aligned), strides(out));
    let size: usize = out.iter().product();
    (0..size)
        .map(|o| {
            let src: usize = (0..out.len())
                .filter(|&a| aligned[a] != 1)
                .map(|a| (o / out_strides[a]) % out[a] * in_strides[a])
                .sum();
            values.get(src).copied()
        })
        .collect()
}

impl Walker<'_> {
    /// The tensor input `i` names and the mask already applied to it (all kept when none).
    fn maybe_masked(&self, n: &Node, i: usize) -> Result<(FloatTensorId, Option<Vec<bool>>)> {
        match self.masks.get(n.input(i)?) {
            Some((t, keep)) => Ok((*t, Some(keep.clone()))),
            None => Ok((self.tensor(n, i)?, None)),
        }
    }

    /// Records the node's output as tensor `t` masked by `keep` (and by a mask `t` already had).
    fn push_mask(&mut self, n: &Node, t: FloatTensorId, prior: Option<Vec<bool>>, keep: Vec<bool>) -> Result<()> {
        let keep = match prior {
            Some(prior) => prior.iter().zip(&keep).map(|(a, b)| *a && *b).collect(),
            None => keep,
        };
        self.masks.insert(n.output()?.to_string(), (t, keep));
        Ok(())
    }

    /// `Add` of the tensor at input `data` and the constant `constant`, when the constant is a mask (0 where kept,
    /// ≤ −10⁴ where masked, some masked) that broadcasts onto the tensor: records the mask and returns true.
    pub(super) fn masked_add(&mut self, n: &Node, data: usize, constant: &str) -> Result<bool> {
        let (t, prior) = self.maybe_masked(n, data)?;
        let (shape, values) = self.constant(constant, n)?;
        let is_mask = values.iter().all(|&v| v == 0.0 || masks_out(v)) && values.iter().any(|&v| masks_out(v));
        let Some(values) = is_mask.then(|| broadcast_to(&shape, &values, self.shape(t))).flatten() else {
            return Ok(false);
        };
        let keep = values.iter().map(|&v| !masks_out(v)).collect();
        self.push_mask(n, t, prior, keep)?;
        Ok(true)
    }

    /// `Where(condition, a, b)` as a mask: a constant condition, one branch the scores and the other a constant at
    /// −∞ (≤ −10⁴); the scores are kept where the condition picks them.
    pub(super) fn where_mask(&mut self, n: &Node) -> Result<()> {
        let (condition, a, b) = (n.input(0)?, n.input(1)?, n.input(2)?);
        let (data, fill, keep_when) = match (self.is_const(condition), self.is_const(a), self.is_const(b)) {
            (true, false, true) => (1, b, true),
            (true, true, false) => (2, a, false),
            _ => bail_graph!(
                "Where `{}`: only a mask is supported (a constant condition choosing between a tensor and a constant \
                 of −∞)",
                n.label
            ),
        };
        let (_, fill_values) = self.constant(fill, n)?;
        if !fill_values.iter().all(|&v| masks_out(v)) {
            bail_graph!(
                "Where `{}`: the constant branch `{fill}` must be −∞ (≤ −1e4) everywhere: a mask before a Softmax",
                n.label
            );
        }
        let (t, prior) = self.maybe_masked(n, data)?;
        let (shape, condition) = self.constant(condition, n)?;
        let Some(condition) = broadcast_to(&shape, &condition, self.shape(t)) else {
            bail_graph!(
                "Where `{}`: the condition of shape {shape:?} does not broadcast to the scores' {:?}",
                n.label,
                self.shape(t)
            );
        };
        let keep = condition.iter().map(|&c| (c != 0.0) == keep_when).collect();
        self.push_mask(n, t, prior, keep)
    }

    /// `Softmax` over the last axis (or, before opset 13, over the flattened axes from `axis` on, which is the same
    /// rows), with the mask applied to its input if there is one.
    pub(super) fn softmax(&mut self, n: &Node) -> Result<()> {
        let (t, keep) = self.maybe_masked(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len() as i64;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = n.int("axis", default)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(n.bad_attr("axis", axis));
        }
        let axis = axis as usize;
        if axis + 1 != shape.len() && self.opset >= 13 {
            bail_graph!(
                "Softmax `{}` over axis {axis} of shape {shape:?}: only the last axis is supported (transpose it last \
                 first)",
                n.label
            );
        }
        let row_len: usize = shape[axis..].iter().product();
        let size: usize = shape.iter().product();
        let keep = keep.unwrap_or_else(|| vec![true; size]);
        if row_len == 0 || keep.chunks(row_len).any(|row| !row.contains(&true)) {
            bail_graph!(
                "Softmax `{}`: a row is masked out entirely (or empty), where softmax is undefined",
                n.label
            );
        }
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape,
            op: FloatOp::Softmax { row_len, keep },
        };
        self.push(n, new).map(drop)
    }

    /// `ArgMax` over the last axis (`keepdims` either way, `select_last_index` either way): the index of each row's
    /// largest element.
    pub(super) fn argmax(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len() as i64;
        let axis = n.int("axis", 0)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(n.bad_attr("axis", axis));
        }
        if axis + 1 != rank {
            bail_graph!(
                "ArgMax `{}` over axis {axis} of shape {shape:?}: only the last axis is supported (transpose it last \
                 first)",
                n.label
            );
        }
        let keep_dims = n.expect_int("keepdims", 1, &[0, 1])? == 1;
        let select_last_index = n.expect_int("select_last_index", 0, &[0, 1])? == 1;
        let row_len = shape[shape.len() - 1];
        let mut out = shape[..shape.len() - 1].to_vec();
        if keep_dims || out.is_empty() {
            out.push(1);
        }
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape: out,
            op: FloatOp::ArgMax {
                row_len,
                select_last_index,
            },
        };
        self.push(n, new).map(drop)
    }
}
