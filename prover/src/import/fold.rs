//! Folding affine nodes (`y = a·x + b` per element, from Sub/Div/Mul/Add by constants) into their neighbours, where
//! the result is exactly the same float function:
//!
//! - into the Dense or Conv layer that produced `x` (`W' = a·W`, `b' = a·b + shift` per output channel), when the
//!   affine node is its only reader and the layer has no ReLU;
//! - into the one Dense or Conv layer that reads `y` (`W' = W·diag(a)`, `b' = b + W·shift`); a convolution needs
//!   `a` and `shift` constant per input channel, and no padding where `shift ≠ 0` (padding is zero in `y`, not in
//!   `x`);
//! - into the one affine node that reads `y` (a `Sub` then a `Div`, as scalers export).
//!
//! A prelude that normalises raw features before the first layer thus costs nothing in the circuit: the first
//! layer's weights absorb it, and the input keeps its own scales. An affine node left over lowers to a one-tap
//! linear layer per element.

use crate::graph::{Conv, Dense, FloatModel, FloatNode, FloatOp, FloatTensorId};

/// `model` with every foldable affine node folded away.
pub(super) fn fold_affines(mut model: FloatModel) -> FloatModel {
    while let Some(i) = (0..model.nodes.len()).find(|&i| fold_one(&mut model, i)) {
        remove_node(&mut model, i);
    }
    model
}

/// The nodes reading tensor `t` (the model output counts as a reader, `usize::MAX`).
pub(super) fn readers(model: &FloatModel, t: FloatTensorId) -> Vec<usize> {
    let mut r: Vec<usize> = (model.nodes.iter().enumerate())
        .filter(|(_, n)| n.inputs.contains(&t))
        .map(|(i, _)| i)
        .collect();
    if t == model.nodes.len() {
        r.push(usize::MAX);
    }
    r
}

/// Folds affine node `i` into a neighbour when exact; true when done (node `i` is then to be removed).
fn fold_one(model: &mut FloatModel, i: usize) -> bool {
    let FloatOp::Affine { scale, shift } = model.nodes[i].op.clone() else {
        return false;
    };
    let node = model.nodes[i].clone();
    let (input, output) = (node.inputs[0], i + 1);
    // Into the producer.
    if let Some(p) = input.checked_sub(1) {
        if readers(model, input) == [i]
            && !model.nodes[p].relu
            && fold_into_producer(&mut model.nodes[p], &scale, &shift)
        {
            let producer = &mut model.nodes[p];
            producer.relu = node.relu;
            // The affine's op type names a ReLU the importer fused into it.
            producer.op_type = format!("{}+{}", producer.op_type, node.op_type);
            return true;
        }
    }
    // Into the only reader.
    if node.relu {
        return false;
    }
    let [r] = readers(model, output)[..] else {
        return false;
    };
    if r == usize::MAX {
        return false;
    }
    let reader = &mut model.nodes[r];
    let folded = match &mut reader.op {
        FloatOp::Dense(d) => fold_into_dense_input(d, &scale, &shift),
        FloatOp::Conv(c) => fold_into_conv_input(c, &scale, &shift),
        FloatOp::Affine { scale: a2, shift: b2 } => {
            for ((s2, t2), (&s1, &t1)) in a2.iter_mut().zip(b2.iter_mut()).zip(scale.iter().zip(&shift)) {
                *t2 = (*s2 as f64 * t1 as f64 + *t2 as f64) as f32;
                *s2 = (*s2 as f64 * s1 as f64) as f32;
            }
            true
        }
        _ => false,
    };
    if folded {
        reader.inputs = vec![input];
        reader.op_type = format!("{}+{}", node.op_type, reader.op_type);
    }
    folded
}

/// `a·(W·x + b) + shift` per output element, when `a` and `shift` are constant over each output channel (a
/// Dense layer's features, the same at every position; a convolution's channels).
fn fold_into_producer(node: &mut FloatNode, scale: &[f32], shift: &[f32]) -> bool {
    let (weights, bias, constants) = match &mut node.op {
        FloatOp::Dense(d) => (&mut d.weights, &mut d.bias, per_feature(scale, shift, d.out_features)),
        FloatOp::Conv(c) => (&mut c.weights, &mut c.bias, per_channel(scale, shift, c.out_channels)),
        _ => return false,
    };
    let Some((a, s)) = constants else {
        return false;
    };
    let channels = a.len();
    let per = weights.len() / channels.max(1);
    for (o, row) in weights.chunks_exact_mut(per.max(1)).enumerate() {
        row.iter_mut().for_each(|w| *w = (*w as f64 * a[o]) as f32);
        bias[o] = (bias[o] as f64 * a[o] + s[o]) as f32;
    }
    true
}

/// The per-channel values of per-element `scale` and `shift` over `channels` equal blocks, when each block is
/// constant.
fn per_channel(scale: &[f32], shift: &[f32], channels: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    if channels == 0 || !scale.len().is_multiple_of(channels) {
        return None;
    }
    let block = scale.len() / channels;
    let constant = |v: &[f32]| {
        (v.chunks_exact(block))
            .map(|c| c.iter().all(|&x| x == c[0]).then_some(c[0] as f64))
            .collect::<Option<Vec<f64>>>()
    };
    Some((constant(scale)?, constant(shift)?))
}

/// The per-feature values of per-element `scale` and `shift` over rows of `features` elements (position-major),
/// when every position has the same ones.
fn per_feature(scale: &[f32], shift: &[f32], features: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    if features == 0 || scale.len() < features || !scale.len().is_multiple_of(features) {
        return None;
    }
    let periodic = |v: &[f32]| {
        (v.chunks_exact(features).all(|row| row == &v[..features]))
            .then(|| v[..features].iter().map(|&x| x as f64).collect())
    };
    Some((periodic(scale)?, periodic(shift)?))
}

/// `W·(a ⊙ x + shift) + b = (W·diag(a))·x + (b + W·shift)`, when `a` and `shift` are the same at every position.
fn fold_into_dense_input(d: &mut Dense, scale: &[f32], shift: &[f32]) -> bool {
    let Some((a, s)) = per_feature(scale, shift, d.in_features) else {
        return false;
    };
    for (o, row) in d.weights.chunks_exact_mut(d.in_features.max(1)).enumerate() {
        let mut extra = 0f64;
        for (j, w) in row.iter_mut().enumerate() {
            extra += *w as f64 * s[j];
            *w = (*w as f64 * a[j]) as f32;
        }
        d.bias[o] = (d.bias[o] as f64 + extra) as f32;
    }
    true
}

/// The convolution of `a ⊙ x + shift`, when `a` and `shift` are constant per input channel and the shift never
/// meets padding.
fn fold_into_conv_input(c: &mut Conv, scale: &[f32], shift: &[f32]) -> bool {
    let Some((a, s)) = per_channel(scale, shift, c.in_channels) else {
        return false;
    };
    if c.window.pads.iter().any(|&p| p > 0) && s.iter().any(|&v| v != 0.0) {
        return false;
    }
    let per = c.weights_per_channel();
    let taps = c.window.kernel[0] * c.window.kernel[1];
    for (o, kernel) in c.weights.chunks_exact_mut(per.max(1)).enumerate() {
        let mut extra = 0f64;
        for (k, w) in kernel.iter_mut().enumerate() {
            let ci = if c.depthwise { o } else { k / taps.max(1) };
            extra += *w as f64 * s[ci];
            *w = (*w as f64 * a[ci]) as f32;
        }
        c.bias[o] = (c.bias[o] as f64 + extra) as f32;
    }
    true
}

/// Removes node `i`, whose output is now computed by its input's tensor: readers of tensor `i + 1` read its input,
/// and later tensors move down by one.
pub(super) fn remove_node(model: &mut FloatModel, i: usize) {
    let removed = model.nodes.remove(i);
    let (gone, replacement) = (i + 1, removed.inputs[0]);
    for node in &mut model.nodes[i..] {
        for t in &mut node.inputs {
            *t = match *t {
                t if t == gone => replacement,
                t if t > gone => t - 1,
                t => t,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Window2d;

    fn dense(inputs: usize, outputs: usize) -> Dense {
        Dense {
            positions: 1,
            in_features: inputs,
            out_features: outputs,
            weights: (0..inputs * outputs).map(|v| (v as f32 - 2.5) * 0.3).collect(),
            bias: (0..outputs).map(|v| v as f32 * 0.1 - 0.2).collect(),
        }
    }

    fn node(name: &str, inputs: Vec<usize>, shape: Vec<usize>, op: FloatOp) -> FloatNode {
        crate::quantize::tests::node(name, inputs, shape, op, false)
    }

    fn affine(n: usize, k: f32) -> FloatOp {
        FloatOp::Affine {
            scale: (0..n).map(|i| k + i as f32).collect(),
            shift: (0..n).map(|i| 0.5 - i as f32).collect(),
        }
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    #[test]
    fn a_scaler_prelude_folds_into_the_first_layer_and_a_scale_into_the_last() {
        // Sub → Div (two affines) → Dense → Relu-less Dense → Mul by a constant.
        let model = FloatModel {
            name: "m".into(),
            input_shape: vec![1, 3],
            nodes: vec![
                node("sub", vec![0], vec![1, 3], affine(3, 1.0)),
                node("div", vec![1], vec![1, 3], affine(3, 0.25)),
                node("fc1", vec![2], vec![1, 4], FloatOp::Dense(dense(3, 4))),
                node("fc2", vec![3], vec![1, 2], FloatOp::Dense(dense(4, 2))),
                node("mul", vec![4], vec![1, 2], affine(2, 2.0)),
            ],
        };
        let folded = fold_affines(model.clone());
        assert_eq!(folded.nodes.len(), 2, "{:#?}", folded.nodes);
        assert_eq!(folded.nodes[0].op_type, "sub+div+fc1");
        assert_eq!(folded.nodes[1].op_type, "fc2+mul");
        folded.check().unwrap();
        for x in [[1.0, -2.0, 3.0], [0.0, 0.5, -7.0]] {
            let (a, b) = (model.forward(&x).unwrap(), folded.forward(&x).unwrap());
            assert!(close(&b, &a), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_shift_before_a_padded_convolution_is_not_folded() {
        let conv = |pads| Conv {
            in_channels: 2,
            out_channels: 1,
            depthwise: false,
            window: Window2d {
                input_hw: [2, 2],
                kernel: [2, 2],
                strides: [1, 1],
                pads,
            },
            weights: (0..8).map(|v| v as f32 * 0.1).collect(),
            bias: vec![0.3],
        };
        // Per channel: scale 2 and 3, shift −1 and 1.
        let prelude = FloatOp::Affine {
            scale: vec![2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
            shift: vec![-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0],
        };
        for (pads, folds, out) in [([0; 4], true, vec![1, 1, 1, 1]), ([1; 4], false, vec![1, 1, 3, 3])] {
            let model = FloatModel {
                name: "c".into(),
                input_shape: vec![1, 2, 2, 2],
                nodes: vec![
                    node("norm", vec![0], vec![1, 2, 2, 2], prelude.clone()),
                    node("conv", vec![1], out, FloatOp::Conv(conv(pads))),
                ],
            };
            let folded = fold_affines(model.clone());
            assert_eq!(folded.nodes.len() == 1, folds, "pads {pads:?}");
            let x: Vec<f32> = (0..8).map(|v| v as f32 * 0.7 - 2.0).collect();
            assert!(close(&folded.forward(&x).unwrap(), &model.forward(&x).unwrap()));
        }
    }

    #[test]
    fn an_affine_read_twice_or_by_the_output_stays() {
        let model = FloatModel {
            name: "m".into(),
            input_shape: vec![1, 2],
            nodes: vec![
                node("fc", vec![0], vec![1, 2], FloatOp::Dense(dense(2, 2))),
                node("scale", vec![1], vec![1, 2], affine(2, 1.0)),
                node("sum", vec![1, 2], vec![1, 2], FloatOp::Add),
            ],
        };
        // `fc` is read by the affine and by the sum: nothing folds.
        assert_eq!(fold_affines(model.clone()).nodes.len(), 3);
    }

    #[test]
    fn affines_fold_into_a_token_wise_layer_only_when_the_same_at_every_token() {
        // Three tokens of 2 features → 3 outputs each; an affine before and after, per feature or per element.
        let token_wise = || {
            let mut d = dense(2, 3);
            d.positions = 3;
            FloatOp::Dense(d)
        };
        let per_feature = |n: usize, features: usize| FloatOp::Affine {
            scale: (0..n).map(|i| 1.5 + (i % features) as f32).collect(),
            shift: (0..n).map(|i| 0.25 - (i % features) as f32).collect(),
        };
        for (name, before, after, nodes_left) in [
            ("per feature", per_feature(6, 2), per_feature(9, 3), 1),
            ("per element", affine(6, 1.0), affine(9, 1.0), 3),
        ] {
            let model = FloatModel {
                name: "tokens".into(),
                input_shape: vec![1, 3, 2],
                nodes: vec![
                    node("pre", vec![0], vec![1, 3, 2], before),
                    node("fc", vec![1], vec![1, 3, 3], token_wise()),
                    node("post", vec![2], vec![1, 3, 3], after),
                ],
            };
            let folded = fold_affines(model.clone());
            assert_eq!(folded.nodes.len(), nodes_left, "{name}: {:#?}", folded.nodes);
            folded.check().unwrap();
            let x: Vec<f32> = (0..6).map(|v| v as f32 * 0.7 - 2.0).collect();
            let (a, b) = (model.forward(&x).unwrap(), folded.forward(&x).unwrap());
            assert!(close(&b, &a), "{name}: {a:?} vs {b:?}");
        }
    }
}
