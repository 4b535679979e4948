//! Linear layers: `Gemm`, `MatMul`, `Conv`, and what folds into them (`BatchNormalization`, `Add` of a constant
//! bias), plus `Add` of two tensors (a residual connection).

use super::{bail_graph, nchw, pads_2d, pair, plain_window, AttrType, NewNode, Node, Walker};
use crate::error::{ProverError, Result};
use crate::graph::{Conv, Dense, FloatOp, FloatTensorId, Window2d};

/// `[r][c]` row-major into `[c][r]` row-major.
fn transpose(m: &[f32], r: usize, c: usize) -> Vec<f32> {
    (0..c).flat_map(|j| (0..r).map(move |i| m[i * c + j])).collect()
}

/// A per-channel constant for an output of shape `out` whose channels lie on `axis`: a single value broadcast to
/// every channel, or one value per channel in a shape that broadcasts along that axis only.
fn per_channel((shape, values): &(Vec<usize>, Vec<f32>), out: &[usize], axis: usize) -> Option<Vec<f32>> {
    let channels = out[axis];
    if values.len() == 1 {
        return Some(vec![values[0]; channels]);
    }
    let offset = out.len().checked_sub(shape.len())?;
    let aligned = shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || (i + offset == axis && d == channels));
    (aligned && values.len() == channels).then(|| values.clone())
}

impl Walker<'_> {
    /// The constant `name`, which must be a vector of `len` values (Conv bias, BatchNormalization parameters).
    fn vector(&self, name: &str, len: usize, n: &Node) -> Result<Vec<f32>> {
        match self.constant(name, n)? {
            (shape, v) if shape == [len] => Ok(v),
            (shape, _) => bail_graph!("{} `{}`: `{name}` has shape {shape:?}, not [{len}]", n.op(), n.label),
        }
    }

    /// The 2-D constant weight at input 1: rows, columns, values.
    fn weight_2d(&self, n: &Node) -> Result<(usize, usize, Vec<f32>)> {
        let name = n.input(1)?;
        match self.constant(name, n)? {
            (shape, w) if shape.len() == 2 => Ok((shape[0], shape[1], w)),
            (shape, _) => bail_graph!("`{}`: weight `{name}` has shape {shape:?}, not 2-D", n.label),
        }
    }

    /// Appends a dense layer reading tensor `t`, whose last dimension must be `k`: applied to every row of it (one
    /// for a sample's features, the sequence length for a `[1, T, k]` or `[T, k]` tensor of tokens).
    fn push_dense(&mut self, n: &Node, t: FloatTensorId, (k, m): (usize, usize), weights: Vec<f32>) -> Result<()> {
        let shape = self.shape(t).to_vec();
        let (op, label) = (n.op(), &n.label);
        if shape.last() != Some(&k) || k == 0 {
            bail_graph!("{op} `{label}` expects {k} features, its input has shape {shape:?}");
        }
        let positions = shape.iter().product::<usize>() / k;
        let mut out = shape;
        if let Some(last) = out.last_mut() {
            *last = m;
        }
        let bias = match (n.op(), n.opt_input(2)) {
            ("Gemm", Some(c)) => {
                let c = self.constant(c, n)?;
                let axis = out.len() - 1;
                per_channel(&c, &out, axis).ok_or_else(|| {
                    ProverError::graph(format!(
                        "`{label}`: bias of shape {:?} does not broadcast to {m} outputs",
                        c.0
                    ))
                })?
            }
            _ => vec![0.0; m],
        };
        let dense = Dense {
            positions,
            in_features: k,
            out_features: m,
            weights,
            bias,
        };
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape: out,
            op: FloatOp::Dense(dense),
        };
        self.push(n, new).map(drop)
    }

    pub(super) fn gemm(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        for name in ["alpha", "beta"] {
            let v = n.attr_or(name, AttrType::Float, |a| a.f, 1.0)?;
            if v != 1.0 {
                return Err(n.bad_attr(name, v));
            }
        }
        n.expect_int("transA", 0, &[0])?;
        let trans_b = n.expect_int("transB", 0, &[0, 1])?;
        if self.shape(t).len() != 2 {
            bail_graph!("Gemm `{}` needs a 2-D input, not {:?}", n.label, self.shape(t));
        }
        let (r, c, b) = self.weight_2d(n)?;
        let (dims, w) = if trans_b == 1 {
            ((c, r), b)
        } else {
            ((r, c), transpose(&b, r, c))
        };
        self.push_dense(n, t, dims, w)
    }

    pub(super) fn matmul(&mut self, n: &Node) -> Result<()> {
        if !self.is_const(n.input(1)?) {
            return self.matmul_of_tensors(n);
        }
        let t = self.tensor(n, 0)?;
        let (r, c, b) = self.weight_2d(n)?;
        self.push_dense(n, t, (r, c), transpose(&b, r, c))
    }

    pub(super) fn conv(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let [c, h, w] = nchw(self.shape(t), n)?;
        plain_window(n)?;
        let (wshape, weights) = self.constant(n.input(1)?, n)?;
        let &[o, i, kh, kw] = wshape.as_slice() else {
            bail_graph!(
                "Conv `{}`: weight of shape {wshape:?} is not OIHW (only 2-D convolutions)",
                n.label
            );
        };
        if let Some(ks) = n.ints("kernel_shape")?.filter(|ks| *ks != [kh as i64, kw as i64]) {
            return Err(n.bad_attr("kernel_shape", format!("{ks:?}")));
        }
        let depthwise = match n.int("group", 1)? {
            1 if i == c => false,
            g if g > 1 && g as usize == c && o == c && i == 1 => true,
            1 => bail_graph!(
                "Conv `{}`: weight expects {i} input channels, the input has {c}",
                n.label
            ),
            g => return Err(n.bad_attr("group", g)),
        };
        let window = Window2d {
            input_hw: [h, w],
            kernel: [kh, kw],
            strides: pair(n, "strides", Some([1, 1]))?,
            pads: pads_2d(n)?,
        };
        let [oh, ow] = window.output_hw();
        if oh == 0 || ow == 0 {
            bail_graph!(
                "Conv `{}`: a {kh}x{kw} kernel does not fit the padded {h}x{w} input",
                n.label
            );
        }
        let out = vec![1, o, oh, ow];
        let bias = match n.opt_input(2) {
            None => vec![0.0; o],
            Some(b) => self.vector(b, o, n)?,
        };
        let conv = Conv {
            in_channels: c,
            out_channels: o,
            depthwise,
            window,
            weights,
            bias,
        };
        let op_type = if depthwise { "Conv(depthwise)" } else { "Conv" };
        let new = NewNode {
            op_type: op_type.into(),
            inputs: vec![t],
            shape: out,
            op: FloatOp::Conv(conv),
        };
        self.push(n, new).map(drop)
    }

    /// Channel axis, channel count and `(weights per channel, weights, bias)` of the foldable linear node `ix`.
    fn linear_params(&mut self, ix: usize) -> (usize, usize, usize, &mut Vec<f32>, &mut Vec<f32>) {
        let node = &mut self.nodes[ix];
        let rank = node.output_shape.len();
        match &mut node.op {
            FloatOp::Dense(d) => (rank - 1, d.out_features, d.in_features, &mut d.weights, &mut d.bias),
            FloatOp::Conv(c) => {
                let per = c.weights_per_channel();
                (1, c.out_channels, per, &mut c.weights, &mut c.bias)
            }
            _ => unreachable!("foldable_linear returns Dense and Conv nodes only"),
        }
    }

    /// `BatchNormalization` (inference) folded into the Conv or Gemm before it:
    /// `W'[c] = W[c]·γ/√(σ²+ε)`, `b'[c] = (b[c] − μ)·γ/√(σ²+ε) + β`.
    pub(super) fn batch_norm(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        n.expect_int("training_mode", 0, &[0])?;
        if n.pb
            .output
            .iter()
            .skip(1)
            .any(|o| self.name_uses.get(o).is_some_and(|&u| u > 0))
        {
            bail_graph!(
                "BatchNormalization `{}`: its running statistics outputs are used (training mode)",
                n.label
            );
        }
        let eps = n.float("epsilon", 1e-5)? as f64;
        let Some(ix) = self.foldable_linear(t) else {
            bail_graph!(
                "BatchNormalization `{}` must directly follow a Conv, Gemm or MatMul whose output only it reads",
                n.label
            );
        };
        let out = self.nodes[ix].output_shape.clone();
        let (axis, channels, ..) = self.linear_params(ix);
        if axis != 1 {
            bail_graph!(
                "BatchNormalization `{}`: channels are on axis 1, its input has shape {out:?}",
                n.label
            );
        }
        let params = (1..5)
            .map(|i| self.vector(n.input(i)?, channels, n))
            .collect::<Result<Vec<_>>>()?;
        let (_, _, per, weights, bias) = self.linear_params(ix);
        for c in 0..channels {
            let (gamma, beta, mean, var) = (params[0][c], params[1][c], params[2][c], params[3][c]);
            let f = gamma as f64 / (var as f64 + eps).sqrt();
            if !f.is_finite() {
                bail_graph!(
                    "BatchNormalization `{}`: channel {c} has variance {var} and epsilon {eps}",
                    n.label
                );
            }
            weights[c * per..(c + 1) * per]
                .iter_mut()
                .for_each(|w| *w = (*w as f64 * f) as f32);
            bias[c] = ((bias[c] as f64 - mean as f64) * f + beta as f64) as f32;
        }
        self.nodes[ix].op_type += "+BatchNormalization";
        self.rebind(n, t)
    }

    /// `Add`: of two tensors (a residual; broadcast), or of a constant folded into the bias of the linear layer
    /// before it.
    pub(super) fn add(&mut self, n: &Node) -> Result<()> {
        let (a, b) = (n.input(0)?, n.input(1)?);
        match (self.is_const(a), self.is_const(b)) {
            (false, false) => self.elementwise(n, FloatOp::Add),
            (true, true) => bail_graph!("Add `{}` of two constants is not supported", n.label),
            (a_const, _) => {
                let (data, constant) = if a_const { (1, a) } else { (0, b) };
                if self.masked_add(n, data, constant)? {
                    return Ok(());
                }
                let t = self.tensor(n, data)?;
                let Some(ix) = self.foldable_linear(t) else {
                    return self.affine(n);
                };
                let c = self.constant(constant, n)?;
                let out = self.nodes[ix].output_shape.clone();
                let (axis, ..) = self.linear_params(ix);
                let Some(values) = per_channel(&c, &out, axis) else {
                    // Not a bias of the layer's channels (a constant per element, say): an affine node.
                    return self.affine(n);
                };
                let (.., bias) = self.linear_params(ix);
                bias.iter_mut().zip(values).for_each(|(b, v)| *b += v);
                self.nodes[ix].op_type += "+Add";
                self.rebind(n, t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_constants_broadcast_on_the_channel_axis_only() {
        let c = |shape: &[usize], n: usize| (shape.to_vec(), (0..n).map(|v| v as f32).collect::<Vec<f32>>());
        let out = [1, 3, 4, 4];
        assert_eq!(per_channel(&c(&[3], 3), &[1, 3], 1), Some(vec![0.0, 1.0, 2.0]));
        assert_eq!(per_channel(&c(&[3, 1, 1], 3), &out, 1), Some(vec![0.0, 1.0, 2.0]));
        assert_eq!(per_channel(&c(&[1, 3, 1, 1], 3), &out, 1), Some(vec![0.0, 1.0, 2.0]));
        assert_eq!(per_channel(&c(&[], 1), &out, 1), Some(vec![0.0; 3]));
        assert_eq!(per_channel(&c(&[3], 3), &out, 1), None, "[3] broadcasts along W, not C");
        assert_eq!(per_channel(&c(&[1, 3, 4, 4], 48), &out, 1), None);
    }
}
