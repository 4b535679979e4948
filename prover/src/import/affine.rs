//! Elementwise arithmetic with a constant — `Sub`, `Div`, `Mul` and `Add` by constants, as scalers and
//! torchvision-style `Normalize` export them — read as one [`FloatOp::Affine`] node `y = a·x + b` per element.
//! [`super::fold`] then folds it into the linear layer before or after it where that is exact; what remains is a
//! one-tap linear layer per element.

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::FloatOp;

/// `values` of shape `from` broadcast (ONNX multidirectional, right-aligned) to shape `to`, when `from` does not
/// enlarge `to`.
pub(crate) fn broadcast(values: &[f32], from: &[usize], to: &[usize]) -> Option<Vec<f32>> {
    if from.len() > to.len() && from[..from.len() - to.len()].iter().any(|&d| d != 1) {
        return None;
    }
    let from: Vec<usize> = from.iter().copied().skip(from.len().saturating_sub(to.len())).collect();
    let offset = to.len() - from.len();
    if from.iter().zip(&to[offset..]).any(|(&f, &t)| f != 1 && f != t) || values.len() != from.iter().product::<usize>()
    {
        return None;
    }
    let len: usize = to.iter().product();
    let mut out = Vec::with_capacity(len);
    for flat in 0..len {
        // Coordinates of `flat` in `to`, mapped onto `from` (a dimension of 1 repeats).
        let (mut rest, mut index, mut stride) = (flat, 0, 1);
        for (axis, &dim) in to.iter().enumerate().rev() {
            let coord = rest % dim;
            rest /= dim;
            if axis >= offset {
                let f = from[axis - offset];
                if f != 1 {
                    index += coord * stride;
                }
                stride *= f;
            }
        }
        out.push(values[index]);
    }
    Some(out)
}

impl Walker<'_> {
    /// `Sub`, `Div`, `Mul` or `Add` of a computed tensor and a constant, as `y = a·x + b` per element.
    pub(super) fn affine(&mut self, n: &Node) -> Result<()> {
        let (a, b) = (n.input(0)?, n.input(1)?);
        let (data, constant, constant_first) = match (self.is_const(a), self.is_const(b)) {
            (false, true) => (0, b, false),
            (true, false) => (1, a, true),
            (true, true) => bail_graph!("{} `{}` of two constants is not supported", n.op(), n.label),
            (false, false) => unreachable!("the callers read two computed tensors themselves"),
        };
        let t = self.tensor(n, data)?;
        let shape = self.shape(t).to_vec();
        let (cshape, cvalues) = self.constant(constant, n)?;
        let Some(c) = broadcast(&cvalues, &cshape, &shape) else {
            bail_graph!(
                "{} `{}`: constant of shape {cshape:?} does not broadcast to the input's shape {shape:?}",
                n.op(),
                n.label
            );
        };
        if c.iter().any(|v| !v.is_finite()) {
            bail_graph!(
                "{} `{}`: the constant holds a value that is not finite",
                n.op(),
                n.label
            );
        }
        let len = c.len();
        let ones = || vec![1f32; len];
        let zeros = || vec![0f32; len];
        let (scale, shift) = match (n.op(), constant_first) {
            ("Add", _) => (ones(), c),
            ("Sub", false) => (ones(), c.iter().map(|v| -v).collect()),
            ("Sub", true) => (vec![-1f32; len], c),
            ("Mul", _) => (c, zeros()),
            ("Div", false) => {
                if c.contains(&0.0) {
                    bail_graph!("Div `{}` divides by zero", n.label);
                }
                (c.iter().map(|v| 1.0 / v).collect(), zeros())
            }
            (op, _) => bail_graph!(
                "{op} `{}`: a constant divided by a tensor is not supported (only a tensor divided by a constant)",
                n.label
            ),
        };
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape,
            op: FloatOp::Affine { scale, shift },
        };
        self.push(n, new).map(drop)
    }

    /// `Sub`: of two computed tensors (broadcast), or by a constant (an affine node).
    pub(super) fn sub(&mut self, n: &Node) -> Result<()> {
        if !self.is_const(n.input(0)?) && !self.is_const(n.input(1)?) {
            return self.elementwise(n, FloatOp::Sub);
        }
        self.affine(n)
    }

    /// `Div`: the start of PyTorch's erf form of GELU, a tensor divided by a constant, or by another tensor.
    pub(super) fn div(&mut self, n: &Node) -> Result<()> {
        if self.match_gelu(n).is_some() {
            return self.gelu_pattern(n);
        }
        if !self.is_const(n.input(0)?) && !self.is_const(n.input(1)?) {
            return self.quotient(n);
        }
        self.affine(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_broadcast_right_aligned() {
        let v = |n: usize| (0..n).map(|x| x as f32).collect::<Vec<f32>>();
        // Per feature of a [1, 3] input.
        assert_eq!(broadcast(&v(3), &[3], &[1, 3]), Some(v(3)));
        // A scalar.
        assert_eq!(broadcast(&[2.0], &[], &[1, 2]), Some(vec![2.0, 2.0]));
        // Per channel of a [1, 2, 2, 2] image: [2, 1, 1] and [1, 2, 1, 1].
        let per_channel = vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(broadcast(&v(2), &[2, 1, 1], &[1, 2, 2, 2]), Some(per_channel.clone()));
        assert_eq!(broadcast(&v(2), &[1, 2, 1, 1], &[1, 2, 2, 2]), Some(per_channel));
        // [2] runs along W, not C.
        assert_eq!(
            broadcast(&v(2), &[2], &[1, 2, 2, 2]),
            Some(vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
        );
        // A leading 1 beyond the input's rank is harmless; anything that enlarges the output is refused.
        assert_eq!(broadcast(&v(3), &[1, 1, 3], &[1, 3]), Some(v(3)));
        assert_eq!(broadcast(&v(6), &[2, 3], &[1, 3]), None);
        assert_eq!(broadcast(&v(4), &[4], &[1, 3]), None);
    }
}
