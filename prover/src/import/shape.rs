//! Data movement: `Flatten`, `Reshape`, `Transpose`, `Concat`, `Slice`, `Split` and the broadcasting of an
//! elementwise operand become [`FloatOp::Move`] index maps.

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::{ProverError, Result};
use crate::graph::{FloatOp, FloatTensorId};

/// Row-major strides of `shape`.
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A tensor of shape `shape` with its axes in the order `perm` (output axis `i` is input axis `perm[i]`): the
/// output shape and, for each output element, the input element it is.
pub(super) fn permuted(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let out: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let (in_strides, out_strides) = (strides(shape), strides(&out));
    let size: usize = shape.iter().product();
    let map = (0..size)
        .map(|o| {
            let src = (0..out.len())
                .map(|i| (o / out_strides[i]) % out[i] * in_strides[perm[i]])
                .sum();
            (0, src)
        })
        .collect();
    (out, map)
}

/// The shape two operands broadcast to under ONNX's multidirectional broadcasting (aligned on the right, each
/// dimension equal or 1); `None` when they do not.
pub(super) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// An axis attribute in `[-rank, rank)` (or `[-rank, rank]` when `inclusive`) as a non-negative index.
fn axis(n: &Node, name: &str, default: Option<i64>, rank: usize, inclusive: bool) -> Result<usize> {
    let a = match (n.attr(name), default) {
        (None, None) => bail_graph!("{} `{}` lacks attribute `{name}`", n.op(), n.label),
        (_, d) => n.int(name, d.unwrap_or(0))?,
    };
    let r = rank as i64;
    let a2 = if a < 0 { a + r } else { a };
    let top = if inclusive { r } else { r - 1 };
    if (0..=top).contains(&a2) {
        Ok(a2 as usize)
    } else {
        Err(n.bad_attr(name, a))
    }
}

impl Walker<'_> {
    fn push_move(
        &mut self,
        n: &Node,
        inputs: Vec<FloatTensorId>,
        shape: Vec<usize>,
        map: Vec<(usize, usize)>,
    ) -> Result<()> {
        let new = NewNode {
            op_type: n.op().into(),
            inputs,
            shape,
            op: FloatOp::Move(map),
        };
        self.push(n, new).map(drop)
    }

    /// `Flatten` or `Reshape`: a relabelling of the same flat data, allowed when it keeps the number of elements.
    pub(super) fn reshape(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let size: usize = shape.iter().product();
        let new_shape = if n.op() == "Flatten" {
            let axis = axis(n, "axis", Some(1), shape.len(), true)?;
            let outer: usize = shape[..axis].iter().product();
            vec![outer, size / outer.max(1)]
        } else {
            let spec: Vec<i64> = match n.ints("shape")? {
                Some(s) => s,
                None => {
                    let (_, target) = self.constant(n.input(1)?, n)?;
                    target.iter().map(|v| *v as i64).collect()
                }
            };
            if n.int("allowzero", 0)? != 0 && spec.contains(&0) {
                return Err(n.bad_attr("allowzero", 1));
            }
            reshape_target(&shape, &spec, &n.label)?
        };
        if new_shape.iter().product::<usize>() != size {
            bail_graph!("{} `{}` turns shape {shape:?} into {new_shape:?}", n.op(), n.label);
        }
        self.push_move(n, vec![t], new_shape, (0..size).map(|i| (0, i)).collect())
    }

    /// `Transpose` by `perm` (default: reverse the axes).
    pub(super) fn transpose(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len();
        let perm: Vec<usize> = match n.ints("perm")? {
            None => (0..rank).rev().collect(),
            Some(p) => {
                let mut seen = vec![false; rank];
                let ok = p.len() == rank
                    && p.iter()
                        .all(|&a| (0..rank as i64).contains(&a) && !std::mem::replace(&mut seen[a as usize], true));
                if !ok {
                    return Err(n.bad_attr("perm", format!("{p:?} for rank {rank}")));
                }
                p.iter().map(|&a| a as usize).collect()
            }
        };
        let (out, map) = permuted(&shape, &perm);
        self.push_move(n, vec![t], out, map)
    }

    /// A constant list of integers read from input `i` or, in older opsets, from the attribute `attr`; `None` when
    /// neither is given.
    fn int_list(&self, n: &Node, i: usize, attr: &str) -> Result<Option<Vec<i64>>> {
        if let Some(name) = n.opt_input(i) {
            let (_, values) = self.constant(name, n)?;
            return Ok(Some(values.iter().map(|&v| v as i64).collect()));
        }
        n.ints(attr)
    }

    /// Pushes a move of `t` (shape `shape`) keeping, on each axis, the indices `kept[axis]`, as the value `output`.
    fn push_selection(&mut self, n: &Node, output: &str, t: FloatTensorId, kept: &[Vec<usize>]) -> Result<()> {
        let shape = self.shape(t).to_vec();
        let out: Vec<usize> = kept.iter().map(Vec::len).collect();
        if out.contains(&0) {
            bail_graph!(
                "{} `{}` selects nothing of shape {shape:?} (output {out:?})",
                n.op(),
                n.label
            );
        }
        let (in_strides, out_strides) = (strides(&shape), strides(&out));
        let size: usize = out.iter().product();
        let map = (0..size)
            .map(|o| {
                let src = (0..out.len())
                    .map(|a| kept[a][(o / out_strides[a]) % out[a]] * in_strides[a])
                    .sum();
                (0, src)
            })
            .collect();
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape: out,
            op: FloatOp::Move(map),
        };
        self.push_as(output, n, new).map(drop)
    }

    /// `Slice` by constant starts, ends, axes and steps (inputs from opset 10, attributes before), with ONNX's
    /// clamping of out-of-range bounds and negative steps.
    pub(super) fn slice(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len();
        let starts = self.int_list(n, 1, "starts")?;
        let ends = self.int_list(n, 2, "ends")?;
        let (Some(starts), Some(ends)) = (starts, ends) else {
            bail_graph!("Slice `{}` needs constant starts and ends", n.label);
        };
        let axes = self
            .int_list(n, 3, "axes")?
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = self.int_list(n, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            bail_graph!(
                "Slice `{}`: starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length",
                n.label
            );
        }
        let mut kept: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
        let mut seen = vec![false; rank];
        for (((&start, &end), &axis), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
            let a = if axis < 0 { axis + rank as i64 } else { axis };
            if !(0..rank as i64).contains(&a) || std::mem::replace(&mut seen[a as usize], true) {
                return Err(n.bad_attr("axes", format!("{axes:?} for an input of shape {shape:?}")));
            }
            if step == 0 {
                return Err(n.bad_attr("steps", format!("{steps:?} (a step of 0)")));
            }
            let dim = shape[a as usize] as i64;
            let wrap = |v: i64| if v < 0 { v + dim } else { v };
            let (start, end) = (wrap(start), wrap(end));
            let picked: Vec<usize> = if step > 0 {
                let (s, e) = (start.clamp(0, dim), end.clamp(0, dim));
                (s..e).step_by(step as usize).map(|i| i as usize).collect()
            } else {
                let (s, e) = (start.clamp(0, dim - 1), end.clamp(-1, dim - 1));
                let mut picked = vec![];
                let mut i = s;
                while i > e {
                    picked.push(i as usize);
                    i += step;
                }
                picked
            };
            kept[a as usize] = picked;
        }
        let output = n.output()?.to_string();
        self.push_selection(n, &output, t, &kept)
    }

    /// `Split` along `axis` into parts of the sizes given (the `split` input from opset 13, the attribute before),
    /// or into equal parts (the last smaller, opset 18's `num_outputs`); outputs nothing reads are left out.
    pub(super) fn split(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let a = axis(n, "axis", Some(0), shape.len(), false)?;
        let dim = shape[a];
        let parts = n.pb.output.len();
        let sizes: Vec<usize> = match self.int_list(n, 1, "split")? {
            Some(sizes) if sizes.len() == parts && sizes.iter().all(|&s| s >= 0) => {
                sizes.iter().map(|&s| s as usize).collect()
            }
            Some(sizes) => return Err(n.bad_attr("split", format!("{sizes:?} for {parts} outputs"))),
            None => {
                let each = dim.div_ceil(parts.max(1));
                (0..parts).map(|i| each.min(dim.saturating_sub(i * each))).collect()
            }
        };
        if sizes.iter().sum::<usize>() != dim {
            bail_graph!(
                "Split `{}`: parts {sizes:?} do not add up to {dim}, the size of axis {a} of {shape:?}",
                n.label
            );
        }
        let mut offset = 0;
        for (output, &size) in n.pb.output.iter().zip(&sizes) {
            let range = offset..offset + size;
            offset += size;
            if output.is_empty() || self.name_uses.get(output).is_none_or(|&u| u == 0) {
                continue;
            }
            let mut kept: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
            kept[a] = range.collect();
            self.push_selection(n, output, t, &kept)?;
        }
        Ok(())
    }

    /// The elementwise `op` (Add, Sub, Mul) of the node's two computed inputs under ONNX's multidirectional
    /// broadcasting: an operand of another shape is first expanded to the output's shape by a free data movement
    /// (a `[1, T, 1]` mean subtracted from every feature of `[1, T, F]`, say).
    pub(super) fn elementwise(&mut self, n: &Node, op: FloatOp) -> Result<()> {
        let (ta, tb) = (self.tensor(n, 0)?, self.tensor(n, 1)?);
        self.elementwise_of(n, ta, tb, op)
    }

    /// [`Self::elementwise`] of the tensors `ta` and `tb`, as node `n`'s output.
    pub(super) fn elementwise_of(&mut self, n: &Node, ta: FloatTensorId, tb: FloatTensorId, op: FloatOp) -> Result<()> {
        let (a, b) = (self.shape(ta).to_vec(), self.shape(tb).to_vec());
        let Some(out) = broadcast_shape(&a, &b) else {
            bail_graph!(
                "{} `{}` of shapes {a:?} and {b:?}: they do not broadcast (equal shapes, or dimensions of 1 that \
                 repeat)",
                n.op(),
                n.label
            );
        };
        let ta = self.expanded(n, ta, &out, "a")?;
        let tb = self.expanded(n, tb, &out, "b")?;
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![ta, tb],
            shape: out,
            op,
        };
        self.push(n, new).map(drop)
    }

    /// Tensor `t` repeated along its dimensions of 1 (and leading ones it lacks) to shape `out`: `t` itself when it
    /// has that many elements already, else a move named after the node's output and `which` operand.
    pub(super) fn expanded(&mut self, n: &Node, t: FloatTensorId, out: &[usize], which: &str) -> Result<FloatTensorId> {
        let shape = self.shape(t).to_vec();
        let size: usize = out.iter().product();
        if shape.iter().product::<usize>() == size {
            return Ok(t);
        }
        let lead = out.len() - shape.len();
        let aligned: Vec<usize> = std::iter::repeat_n(1, lead).chain(shape.iter().copied()).collect();
        let (in_strides, out_strides) = (strides(&aligned), strides(out));
        let map = (0..size)
            .map(|o| {
                let src = (0..out.len())
                    .filter(|&a| aligned[a] != 1)
                    .map(|a| (o / out_strides[a]) % out[a] * in_strides[a])
                    .sum();
                (0, src)
            })
            .collect();
        let name = format!("{}/broadcast-{which}", n.output()?);
        self.push_inner_move(n, &name, "Expand", t, out.to_vec(), map)
    }

    /// Pushes a move of `t` built from `n` as the value `name`, which no name in the graph reads: it is counted as
    /// read once, by the node the caller pushes next.
    pub(super) fn push_inner_move(
        &mut self,
        n: &Node,
        name: &str,
        op_type: &str,
        t: FloatTensorId,
        shape: Vec<usize>,
        map: Vec<(usize, usize)>,
    ) -> Result<FloatTensorId> {
        let new = NewNode {
            op_type: op_type.into(),
            inputs: vec![t],
            shape,
            op: FloatOp::Move(map),
        };
        let moved = self.push_as(name, n, new)?;
        self.uses[moved] += 1;
        Ok(moved)
    }

    /// `Concat` of tensors along `axis` (not the batch axis).
    pub(super) fn concat(&mut self, n: &Node) -> Result<()> {
        let inputs = (0..n.pb.input.len())
            .map(|i| self.tensor(n, i))
            .collect::<Result<Vec<_>>>()?;
        let Some(&first) = inputs.first() else {
            bail_graph!("Concat `{}` has no inputs", n.label);
        };
        let shape = self.shape(first).to_vec();
        let ax = axis(n, "axis", None, shape.len(), false)?;
        if ax == 0 && shape.len() > 1 {
            return Err(n.bad_attr("axis", "0 (the batch axis)"));
        }
        let mut out = shape.clone();
        out[ax] = 0;
        for &t in &inputs {
            let s = self.shape(t);
            let same_elsewhere = s.len() == shape.len() && (0..s.len()).all(|i| i == ax || s[i] == shape[i]);
            if !same_elsewhere {
                let reason = format!(
                    "Concat `{}`: shape {s:?} does not match {shape:?} off axis {ax}",
                    n.label
                );
                return Err(ProverError::graph(reason));
            }
            out[ax] += s[ax];
        }
        let outer: usize = shape[..ax].iter().product();
        let inner: usize = shape[ax + 1..].iter().product();
        let mut map = Vec::with_capacity(out.iter().product());
        for o in 0..outer {
            for (j, &t) in inputs.iter().enumerate() {
                let d = self.shape(t)[ax];
                map.extend((0..d * inner).map(|k| (j, o * d * inner + k)));
            }
        }
        self.push_move(n, inputs, out, map)
    }
}

/// Resolves the `0` (copy) and `-1` (infer) entries of a Reshape target for an input of shape `shape`.
fn reshape_target(shape: &[usize], spec: &[i64], label: &str) -> Result<Vec<usize>> {
    let size: usize = shape.iter().product();
    let bad = || ProverError::graph(format!("Reshape `{label}` to {spec:?} misfits {shape:?}"));
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            0 => out.push(*shape.get(i).ok_or_else(bad)?),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            _ => return Err(bad()),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !size.is_multiple_of(known) {
            return Err(bad());
        }
        out[i] = size / known;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_as_onnx_says() {
        assert_eq!(broadcast_shape(&[1, 8, 16], &[1, 8, 1]), Some(vec![1, 8, 16]));
        assert_eq!(broadcast_shape(&[1, 1, 16], &[1, 8, 16]), Some(vec![1, 8, 16]));
        assert_eq!(broadcast_shape(&[1, 8, 16], &[16]), Some(vec![1, 8, 16]));
        assert_eq!(broadcast_shape(&[8, 1], &[1, 16]), Some(vec![8, 16]));
        assert_eq!(broadcast_shape(&[2, 3], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[1, 8, 16], &[1, 8]), None);
        assert_eq!(broadcast_shape(&[3], &[4]), None);
    }

    #[test]
    fn reshape_targets_copy_and_infer() {
        assert_eq!(reshape_target(&[1, 4, 2, 2], &[0, -1], "r").unwrap(), [1, 16]);
        assert_eq!(reshape_target(&[1, 16], &[1, 4, -1, 2], "r").unwrap(), [1, 4, 2, 2]);
        assert!(reshape_target(&[1, 16], &[-1, -1], "r").is_err());
        assert!(reshape_target(&[1, 16], &[3, -1], "r").is_err());
        assert_eq!(strides(&[2, 3, 4]), [12, 4, 1]);
    }
}
