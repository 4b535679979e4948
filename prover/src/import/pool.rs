//! Pooling: `MaxPool`, `AveragePool` and `GlobalAveragePool` over `[1, C, H, W]` tensors, and `ReduceMean` over any
//! axes of any tensor (the same average).

use super::shape::permuted;
use super::{bail_graph, nchw, pads_2d, pair, plain_window, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::{FloatOp, Pool, PoolKind, Window2d};

impl Walker<'_> {
    pub(super) fn pool(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let [c, h, w] = nchw(self.shape(t), n)?;
        let (kind, window) = if n.op() == "GlobalAveragePool" {
            let window = Window2d {
                input_hw: [h, w],
                kernel: [h, w],
                strides: [1, 1],
                pads: [0; 4],
            };
            (
                PoolKind::Average {
                    count_include_pad: false,
                },
                window,
            )
        } else {
            plain_window(n)?;
            n.expect_int("ceil_mode", 0, &[0])?;
            let kind = if n.op() == "MaxPool" {
                n.expect_int("storage_order", 0, &[0, 1])?;
                if let Some(ix) = n.pb.output.get(1).filter(|s| !s.is_empty()) {
                    if self.name_uses.get(ix).is_some_and(|&u| u > 0) {
                        bail_graph!(
                            "MaxPool `{}`: its Indices output `{ix}` is used; it is not supported",
                            n.label
                        );
                    }
                }
                PoolKind::Max
            } else {
                let count_include_pad = n.expect_int("count_include_pad", 0, &[0, 1])? == 1;
                PoolKind::Average { count_include_pad }
            };
            let window = Window2d {
                input_hw: [h, w],
                kernel: pair(n, "kernel_shape", None)?,
                strides: pair(n, "strides", Some([1, 1]))?,
                pads: pads_2d(n)?,
            };
            (kind, window)
        };
        let [oh, ow] = window.output_hw();
        if oh == 0 || ow == 0 {
            bail_graph!(
                "{} `{}`: the window does not fit the padded {h}x{w} input",
                n.op(),
                n.label
            );
        }
        if (0..oh).any(|y| (0..ow).any(|x| window.taps(y, x).all(|tap| tap.is_none()))) {
            return Err(n.bad_attr("pads", format!("{:?} (a window covers only padding)", window.pads)));
        }
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape: vec![1, c, oh, ow],
            op: FloatOp::Pool(Pool {
                kind,
                channels: c,
                window,
            }),
        };
        self.push(n, new).map(drop)
    }

    /// `ReduceMean` over any axes (the `axes` attribute up to opset 17, the optional `axes` input from 18; none:
    /// every axis): the reduced axes moved last (a free data movement, skipped when they already are) and an
    /// average over each output's block, which lowers as an average pool does (weights 1, `M` the division).
    pub(super) fn reduce_mean(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len() as i64;
        let listed: Vec<i64> = match (n.ints("axes")?, n.opt_input(1)) {
            (Some(axes), _) => axes,
            (None, Some(name)) => self.constant(name, n)?.1.iter().map(|&v| v as i64).collect(),
            (None, None) => vec![],
        };
        let keep_dims = n.expect_int("keepdims", 1, &[0, 1])? == 1;
        if listed.is_empty() && n.expect_int("noop_with_empty_axes", 0, &[0, 1])? == 1 {
            return self.alias(n);
        }
        let mut reduced = vec![false; shape.len()];
        for &a in &listed {
            let axis = if a < 0 { a + rank } else { a };
            if !(0..rank).contains(&axis) || reduced[axis as usize] {
                return Err(n.bad_attr("axes", format!("{listed:?} (for an input of shape {shape:?})")));
            }
            reduced[axis as usize] = true;
        }
        if listed.is_empty() {
            reduced.iter_mut().for_each(|r| *r = true);
        }
        let kept: Vec<usize> = (0..shape.len()).filter(|&a| !reduced[a]).collect();
        let gone: Vec<usize> = (0..shape.len()).filter(|&a| reduced[a]).collect();
        let outputs: usize = kept.iter().map(|&a| shape[a]).product();
        let block: usize = gone.iter().map(|&a| shape[a]).product();
        let out_shape: Vec<usize> = if keep_dims {
            (0..shape.len())
                .map(|a| if reduced[a] { 1 } else { shape[a] })
                .collect()
        } else if kept.is_empty() {
            vec![1]
        } else {
            kept.iter().map(|&a| shape[a]).collect()
        };
        // The input with the kept axes first and the reduced ones last, row-major.
        let order: Vec<usize> = kept.iter().chain(&gone).copied().collect();
        let mut source = t;
        if order.iter().enumerate().any(|(i, &a)| i != a) {
            let (moved_shape, map) = permuted(&shape, &order);
            let moved = format!("{}/reduced-axes-last", n.output()?);
            source = self.push_inner_move(n, &moved, "Transpose", t, moved_shape, map)?;
        }
        let window = Window2d {
            input_hw: [block, 1],
            kernel: [block, 1],
            strides: [1, 1],
            pads: [0; 4],
        };
        let pool = Pool {
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            channels: outputs,
            window,
        };
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![source],
            shape: out_shape,
            op: FloatOp::Pool(pool),
        };
        self.push(n, new).map(drop)
    }
}
