//! Pooling: `MaxPool`, `AveragePool` and `GlobalAveragePool` over `[1, C, H, W]` tensors.

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
}
