//! Elementwise activations: `Relu` (fused into the layer before it when possible), `LeakyRelu`, `Clip`,
//! `Sigmoid`, `Tanh`, `HardSwish`, `Gelu`, `Sqrt`, `Reciprocal`, and PyTorch's erf form of GELU recognised as one
//! activation.

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::{ProverError, Result};
use crate::graph::{ActFn, FloatOp, FloatTensorId};

/// The pieces of `x · 0.5 · (1 + erf(x / √2))` as PyTorch exports it: `Div → Erf → Add → Mul → Mul`.
pub(super) struct GeluMatch {
    /// The tensor `x`.
    input: FloatTensorId,
    /// Indices of the `Erf`, `Add`, `Mul`, `Mul` nodes after the first.
    rest: [usize; 4],
    /// Output value name of the last `Mul`.
    output: String,
}

impl Walker<'_> {
    /// The activation node for `f` on tensor `t`, as node `n`'s output.
    fn push_activation(&mut self, n: &Node, t: FloatTensorId, f: ActFn) -> Result<()> {
        let output = n.output()?.to_string();
        self.push_activation_as(&output, n.op(), n, t, f).map(drop)
    }

    /// The activation node for `f` on tensor `t`, built from `n` with the op type `op_type`, as the value `output`.
    pub(super) fn push_activation_as(
        &mut self,
        output: &str,
        op_type: &str,
        n: &Node,
        t: FloatTensorId,
        f: ActFn,
    ) -> Result<FloatTensorId> {
        let new = NewNode {
            op_type: op_type.into(),
            inputs: vec![t],
            shape: self.shape(t).to_vec(),
            op: FloatOp::Activation(f),
        };
        self.push_as(output, n, new)
    }

    /// `Relu`: fused into a Gemm/MatMul/Conv/Add/Sub/Mul or an affine node (arithmetic with a constant) whose output only
    /// it reads, otherwise a separate activation.
    pub(super) fn relu(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let fusable = t.checked_sub(1).and_then(|i| self.nodes.get(i)).is_some_and(|node| {
            let fusing = matches!(
                node.op,
                FloatOp::Dense(_)
                    | FloatOp::Conv(_)
                    | FloatOp::Add
                    | FloatOp::Sub
                    | FloatOp::Mul
                    | FloatOp::Affine { .. }
            );
            fusing && !node.relu && self.uses[t] == 1
        });
        if !fusable {
            return self.push_activation(n, t, ActFn::Relu);
        }
        let node = &mut self.nodes[t - 1];
        node.relu = true;
        node.op_type += "+Relu";
        self.rebind(n, t)
    }

    /// The scalar constant named `name`, if it is one.
    pub(super) fn scalar(&self, name: &str) -> Option<f32> {
        let t = self.consts.get(name)?;
        let t = t.cast_to::<f32>().ok()?;
        let v = t.to_plain_array_view::<f32>().ok()?;
        (v.len() == 1).then(|| v.iter().copied().next()).flatten()
    }

    /// A bound of `Clip`: the constant input `i` (opset ≥ 11) or the attribute (opset 6), else `default`.
    fn clip_bound(&self, n: &Node, i: usize, attr: &str, default: f32) -> Result<f32> {
        match n.opt_input(i) {
            Some(name) => self.scalar(name).ok_or_else(|| {
                ProverError::graph(format!("Clip `{}`: bound `{name}` must be a scalar constant", n.label))
            }),
            None => n.float(attr, default),
        }
    }

    /// `LeakyRelu`, `Clip`, `Sigmoid`, `Tanh`, `HardSwish`, `Gelu`.
    pub(super) fn activation(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let f = match n.op() {
            "LeakyRelu" => ActFn::LeakyRelu {
                alpha: n.float("alpha", 0.01)?,
            },
            "Clip" => {
                let min = self.clip_bound(n, 1, "min", f32::NEG_INFINITY)?;
                let max = self.clip_bound(n, 2, "max", f32::INFINITY)?;
                if min.is_nan() || max.is_nan() || min > max {
                    bail_graph!("Clip `{}`: bounds [{min}, {max}] are not an interval", n.label);
                }
                ActFn::Clip { min, max }
            }
            "Sigmoid" => ActFn::Sigmoid,
            "Tanh" => ActFn::Tanh,
            "HardSwish" => ActFn::HardSwish,
            "Sqrt" => ActFn::Sqrt,
            "Reciprocal" => ActFn::Reciprocal,
            "Gelu" => match n.string("approximate", "none")?.as_str() {
                "none" => ActFn::Gelu { tanh: false },
                "tanh" => ActFn::Gelu { tanh: true },
                other => return Err(n.bad_attr("approximate", other)),
            },
            op => return Err(ProverError::operator(op, &n.label)),
        };
        self.push_activation(n, t, f)
    }

    /// The only node reading `name` (which is not a graph output), if its op is `op` in the default domain.
    fn sole_reader(&self, name: &str, op: &str) -> Option<usize> {
        let readers = self.readers.get(name)?;
        let node = &self.graph.node[*readers.first()?];
        let plain = node.domain.is_empty() || node.domain == "ai.onnx";
        (readers.len() == 1 && self.name_uses.get(name) == Some(&1) && plain && node.op_type == op).then(|| readers[0])
    }

    /// Whether the two-input node `ix` reads `name` and a scalar constant within 1e-4 of `value`.
    fn reads_with_scalar(&self, ix: usize, name: &str, value: f32) -> bool {
        let inputs = &self.graph.node[ix].input;
        match inputs.as_slice() {
            [a, b] if a == name => self.scalar(b).is_some_and(|v| (v - value).abs() < 1e-4),
            [a, b] if b == name => self.scalar(a).is_some_and(|v| (v - value).abs() < 1e-4),
            _ => false,
        }
    }

    /// Matches `Div(x, √2) | Mul(x, 1/√2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, 0.5)` starting at `n`.
    pub(super) fn match_gelu(&self, n: &Node) -> Option<GeluMatch> {
        let (x, first) = (n.pb.input.first()?, n.pb.output.first()?);
        let input = *self.names.get(x)?;
        let scale = if n.op() == "Div" {
            std::f32::consts::SQRT_2
        } else {
            std::f32::consts::FRAC_1_SQRT_2
        };
        if !self.reads_with_scalar(n.ix, x, scale) {
            return None;
        }
        let out = |ix: usize| self.graph.node[ix].output.first();
        let erf = self.sole_reader(first, "Erf")?;
        let add = self.sole_reader(out(erf)?, "Add")?;
        if !self.reads_with_scalar(add, out(erf)?, 1.0) {
            return None;
        }
        let sum = out(add)?;
        let mul = self.sole_reader(sum, "Mul")?;
        let other = self.graph.node[mul].input.iter().find(|i| *i != sum)?;
        if self.names.get(other) != Some(&input) {
            return None;
        }
        let half = self.sole_reader(out(mul)?, "Mul")?;
        if !self.reads_with_scalar(half, out(mul)?, 0.5) {
            return None;
        }
        Some(GeluMatch {
            input,
            rest: [erf, add, mul, half],
            output: out(half)?.clone(),
        })
    }

    /// `Div` or `Mul`: supported only as the start of PyTorch's erf form of GELU, fused into one activation.
    pub(super) fn gelu_pattern(&mut self, n: &Node) -> Result<()> {
        let Some(m) = self.match_gelu(n) else {
            return Err(ProverError::operator(n.op(), &n.label));
        };
        self.skip.extend(m.rest);
        // `x` is read twice by the pattern (by the Div and by the Mul); the fused activation reads it once.
        self.uses[m.input] = self.uses[m.input].saturating_sub(1);
        let new = NewNode {
            op_type: "Gelu".into(),
            inputs: vec![m.input],
            shape: self.shape(m.input).to_vec(),
            op: FloatOp::Activation(ActFn::Gelu { tanh: false }),
        };
        self.push_as(&m.output, n, new).map(drop)
    }
}
