//! Data movement: `Flatten`, `Reshape`, `Transpose` and `Concat` become [`FloatOp::Move`] index maps.

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
        let out: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let (in_strides, out_strides) = (strides(&shape), strides(&out));
        let size: usize = shape.iter().product();
        let map = (0..size)
            .map(|o| {
                let src = (0..rank)
                    .map(|i| (o / out_strides[i]) % out[i] * in_strides[perm[i]])
                    .sum();
                (0, src)
            })
            .collect();
        self.push_move(n, vec![t], out, map)
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
    fn reshape_targets_copy_and_infer() {
        assert_eq!(reshape_target(&[1, 4, 2, 2], &[0, -1], "r").unwrap(), [1, 16]);
        assert_eq!(reshape_target(&[1, 16], &[1, 4, -1, 2], "r").unwrap(), [1, 4, 2, 2]);
        assert!(reshape_target(&[1, 16], &[-1, -1], "r").is_err());
        assert!(reshape_target(&[1, 16], &[3, -1], "r").is_err());
        assert_eq!(strides(&[2, 3, 4]), [12, 4, 1]);
    }
}
