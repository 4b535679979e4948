//! The layer norm older exporters decompose — `ReduceMean`, `Sub`, `Pow` 2, `ReduceMean`, `Add ε`, `Sqrt`, `Div` —
//! recognised in the imported float graph and replaced by one [`FloatOp::LayerNorm`] node, so that it proves as the
//! exact integer normalization of the opset-17 op instead of through int8 `Sqrt` and `Reciprocal` tables.
//!
//! Imported, the pattern reads (over rows of `n` consecutive elements of `x`, the last axis):
//! `m = avg_n(x)`, `d = x − expand(m)`, `v = avg_n(d · d)`, `e = v + ε`, `s = Sqrt(e)`, `r = Reciprocal(s)`,
//! `y = d · expand(r)` (the `Div` of two tensors). It is replaced only where every intermediate is read inside the
//! pattern alone (nothing else needs `d`, the mean or the variance), nothing before `y` has a fused ReLU, and `ε ≥ 0`
//! is one constant; then `y = LayerNorm_n,ε(x)` exactly as a float function, and the dead nodes are removed. γ and β
//! (a `Mul` and an `Add` by constants) stay affine nodes after it, which the affine folding takes next.

use super::fold::{readers, remove_node};
use crate::graph::{ActFn, FloatModel, FloatNode, FloatOp, FloatTensorId, PoolKind};

/// The node producing tensor `t` (none for the input), unless it has a fused ReLU.
fn producer(model: &FloatModel, t: FloatTensorId) -> Option<&FloatNode> {
    let node = model.nodes.get(t.checked_sub(1)?)?;
    (!node.relu).then_some(node)
}

/// `(x, n)` when `t` is the mean of every row of `n` consecutive elements of `x` (an average pool over `[n, 1]`).
fn row_mean(model: &FloatModel, t: FloatTensorId) -> Option<(FloatTensorId, usize)> {
    let node = producer(model, t)?;
    let FloatOp::Pool(p) = &node.op else { return None };
    let w = &p.window;
    let whole =
        matches!(p.kind, PoolKind::Average { .. }) && w.kernel == w.input_hw && w.input_hw[1] == 1 && w.pads == [0; 4];
    (whole && node.inputs.len() == 1).then_some((node.inputs[0], w.input_hw[0]))
}

/// `u` when `t` repeats each element of `u` over a row of `n` (element `i` reads `u[i / n]`).
fn expanded(model: &FloatModel, t: FloatTensorId, n: usize) -> Option<FloatTensorId> {
    let node = producer(model, t)?;
    let FloatOp::Move(map) = &node.op else { return None };
    let rows = map.iter().enumerate().all(|(i, &(j, k))| j == 0 && k == i / n);
    (rows && node.inputs.len() == 1).then_some(node.inputs[0])
}

/// The single input of the node producing `t` when it computes `f`.
fn activation_of(model: &FloatModel, t: FloatTensorId, f: ActFn) -> Option<FloatTensorId> {
    let node = producer(model, t)?;
    (node.op == FloatOp::Activation(f) && node.inputs.len() == 1).then_some(node.inputs[0])
}

/// `(v, ε)` when `t = v + ε` elementwise with one `ε ≥ 0`.
fn plus_epsilon(model: &FloatModel, t: FloatTensorId) -> Option<(FloatTensorId, f32)> {
    let node = producer(model, t)?;
    let FloatOp::Affine { scale, shift } = &node.op else {
        return None;
    };
    let epsilon = *shift.first()?;
    let constant = scale.iter().all(|&a| a == 1.0) && shift.iter().all(|&b| b == epsilon);
    (constant && epsilon >= 0.0 && epsilon.is_finite()).then_some((node.inputs[0], epsilon))
}

/// The pattern ending at node `y`: `(x, n, ε)` and the intermediate tensors, or none.
fn pattern(model: &FloatModel, y: usize) -> Option<(FloatTensorId, usize, f32, Vec<FloatTensorId>)> {
    let node = &model.nodes[y];
    if node.op != FloatOp::Mul || node.inputs.len() != 2 {
        return None;
    }
    let [a, b] = [node.inputs[0], node.inputs[1]];
    [(a, b), (b, a)].into_iter().find_map(|(d, wide_root)| {
        // d = x − expand(mean(x)).
        let sub = producer(model, d)?;
        if sub.op != FloatOp::Sub || sub.inputs.len() != 2 {
            return None;
        }
        let (x, wide_mean) = (sub.inputs[0], sub.inputs[1]);
        let mean = *producer(model, wide_mean)?.inputs.first()?;
        let (of, n) = row_mean(model, mean)?;
        if of != x || expanded(model, wide_mean, n)? != mean {
            return None;
        }
        // expand(1 / √(mean(d · d) + ε)).
        let root = expanded(model, wide_root, n)?;
        let deviation = activation_of(model, root, ActFn::Reciprocal)?;
        let shifted = activation_of(model, deviation, ActFn::Sqrt)?;
        let (variance, epsilon) = plus_epsilon(model, shifted)?;
        let (square, m) = row_mean(model, variance)?;
        let squared = producer(model, square)?;
        if m != n || squared.op != FloatOp::Mul || squared.inputs != [d, d] {
            return None;
        }
        let inner = vec![
            d, wide_mean, mean, square, variance, shifted, deviation, root, wide_root,
        ];
        Some((x, n, epsilon, inner))
    })
}

/// Whether every reader of the intermediate tensors is a node of the pattern (`y` or a producer of another one).
fn self_contained(model: &FloatModel, y: usize, inner: &[FloatTensorId]) -> bool {
    let inside = |r: usize| r == y || (r != usize::MAX && inner.contains(&(r + 1)));
    inner.iter().all(|&t| readers(model, t).into_iter().all(inside))
}

/// `model` with every decomposed layer norm replaced by a [`FloatOp::LayerNorm`] node and the nodes only it read
/// removed.
pub(super) fn recognise_layer_norms(mut model: FloatModel) -> FloatModel {
    let mut replaced = false;
    for y in 0..model.nodes.len() {
        let Some((x, n, epsilon, inner)) = pattern(&model, y) else {
            continue;
        };
        if !self_contained(&model, y, &inner) {
            continue;
        }
        let node = &mut model.nodes[y];
        node.inputs = vec![x];
        node.op = FloatOp::LayerNorm { row_len: n, epsilon };
        node.op_type = "LayerNormalization(decomposed)".into();
        replaced = true;
    }
    if replaced {
        // Dead nodes (read by nothing, not the output; any the graph had before go too) are removed from the last
        // back: removing node `i` renumbers only the tensors after it, whose readers were all seen already.
        let mut reads = vec![0usize; model.nodes.len() + 1];
        for node in &model.nodes {
            node.inputs.iter().for_each(|&t| reads[t] += 1);
        }
        for i in (0..model.nodes.len().saturating_sub(1)).rev() {
            if reads[i + 1] == 0 {
                model.nodes[i].inputs.iter().for_each(|&t| reads[t] -= 1);
                remove_node(&mut model, i);
            }
        }
    }
    model
}
