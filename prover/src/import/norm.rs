//! `LayerNormalization` (opset 17) over the trailing axes from `axis`, expanded into the layers the decomposed
//! form older exporters write already imports into: the mean (an average over each row), the centred values (a
//! `Sub` of the broadcast mean), their square, its mean (the variance), `+ ε`, `Sqrt` and `Reciprocal` tables, the
//! product of the centred values by the broadcast reciprocal, then scale and bias (an affine node). The tables
//! give int8 precision, as for the decomposed form (the exact integer square root is still to come).

use super::{bail_graph, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::{ActFn, FloatOp, FloatTensorId, Pool, PoolKind, Window2d};

impl Walker<'_> {
    /// Pushes `new`, built from `n`, as the value `name` that no name in the graph reads: counted as read `reads`
    /// times, by the nodes pushed next.
    fn push_inner(&mut self, n: &Node, name: &str, new: NewNode, reads: usize) -> Result<FloatTensorId> {
        let t = self.push_as(name, n, new)?;
        self.uses[t] += reads;
        Ok(t)
    }

    /// The mean of every row of `row` consecutive elements of `t`, of shape `shape` (the rows' shape with a last
    /// dimension of 1).
    fn row_mean(
        &mut self,
        n: &Node,
        name: &str,
        t: FloatTensorId,
        row: usize,
        shape: Vec<usize>,
    ) -> Result<FloatTensorId> {
        let rows: usize = self.shape(t).iter().product::<usize>() / row;
        let pool = Pool {
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            channels: rows,
            window: Window2d {
                input_hw: [row, 1],
                kernel: [row, 1],
                strides: [1, 1],
                pads: [0; 4],
            },
        };
        let new = NewNode {
            op_type: "ReduceMean".into(),
            inputs: vec![t],
            shape,
            op: FloatOp::Pool(pool),
        };
        self.push_inner(n, name, new, 1)
    }

    pub(super) fn layer_norm(&mut self, n: &Node) -> Result<()> {
        let t = self.tensor(n, 0)?;
        let shape = self.shape(t).to_vec();
        let rank = shape.len() as i64;
        let axis = n.int("axis", -1)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(n.bad_attr("axis", axis));
        }
        n.expect_int("stash_type", 1, &[1])?;
        let epsilon = n.float("epsilon", 1e-5)?;
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(n.bad_attr("epsilon", epsilon));
        }
        if n.pb.output.iter().skip(1).any(|o| !o.is_empty()) {
            bail_graph!(
                "LayerNormalization `{}`: only the normalized output is supported, not the mean or inverse standard \
                 deviation outputs",
                n.label
            );
        }
        let axis = axis as usize;
        let row: usize = shape[axis..].iter().product();
        if row == 0 {
            bail_graph!("LayerNormalization `{}` of an empty shape {shape:?}", n.label);
        }
        let reduced: Vec<usize> = shape[..axis]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1, shape.len() - axis))
            .collect();
        let (scale, bias) = (n.input(1)?, n.opt_input(2));
        let constant_row = |w: &Walker, name: &str| -> Result<Vec<f32>> {
            let (cshape, values) = w.constant(name, n)?;
            let Some(row_values) = super::affine::broadcast(&values, &cshape, &shape[axis..]) else {
                bail_graph!(
                    "LayerNormalization `{}`: `{name}` of shape {cshape:?} does not broadcast to the normalized shape \
                     {:?}",
                    n.label,
                    &shape[axis..]
                );
            };
            if row_values.iter().any(|v| !v.is_finite()) {
                bail_graph!(
                    "LayerNormalization `{}`: `{name}` holds a value that is not finite",
                    n.label
                );
            }
            Ok(row_values)
        };
        let gamma = constant_row(self, scale)?;
        let beta = match bias {
            Some(b) => constant_row(self, b)?,
            None => vec![0.0; row],
        };
        let out = n.output()?.to_string();
        let name = |part: &str| format!("{out}/{part}");
        let move_of = |w: &mut Walker, label: &str, from: FloatTensorId| -> Result<FloatTensorId> {
            // A row's one value repeated over its elements: element `i` reads row `i / row`.
            let size: usize = shape.iter().product();
            let map = (0..size).map(|i| (0, i / row)).collect();
            w.push_inner_move(n, &name(label), "Expand", from, shape.clone(), map)
        };
        let elementwise = |op: FloatOp, op_type: &str, inputs: Vec<FloatTensorId>| NewNode {
            op_type: op_type.into(),
            inputs,
            shape: shape.clone(),
            op,
        };
        let mean = self.row_mean(n, &name("mean"), t, row, reduced.clone())?;
        let mean_wide = move_of(self, "mean-broadcast", mean)?;
        let centred = self.push_inner(
            n,
            &name("centred"),
            elementwise(FloatOp::Sub, "Sub", vec![t, mean_wide]),
            3,
        )?;
        let square = elementwise(FloatOp::Mul, "Mul", vec![centred, centred]);
        let square = self.push_inner(n, &name("square"), square, 1)?;
        let variance = self.row_mean(n, &name("variance"), square, row, reduced.clone())?;
        let rows: usize = reduced.iter().product();
        let plus_epsilon = NewNode {
            op_type: "Add".into(),
            inputs: vec![variance],
            shape: reduced.clone(),
            op: FloatOp::Affine {
                scale: vec![1.0; rows],
                shift: vec![epsilon; rows],
            },
        };
        let plus_epsilon = self.push_inner(n, &name("variance-epsilon"), plus_epsilon, 1)?;
        let deviation = self.push_activation_as(&name("deviation"), "Sqrt", n, plus_epsilon, ActFn::Sqrt)?;
        self.uses[deviation] += 1;
        let inverse = self.push_activation_as(&name("inverse"), "Reciprocal", n, deviation, ActFn::Reciprocal)?;
        self.uses[inverse] += 1;
        let inverse_wide = move_of(self, "inverse-broadcast", inverse)?;
        let normed = elementwise(FloatOp::Mul, "Mul", vec![centred, inverse_wide]);
        let normed = self.push_inner(n, &name("normalized"), normed, 1)?;
        let rows_total: usize = shape[..axis].iter().product();
        let affine = FloatOp::Affine {
            scale: gamma.iter().copied().cycle().take(rows_total * row).collect(),
            shift: beta.iter().copied().cycle().take(rows_total * row).collect(),
        };
        let new = elementwise(affine, n.op(), vec![normed]);
        self.push(n, new).map(drop)
    }
}
