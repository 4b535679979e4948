//! `Gather`: an embedding (a constant table indexed by the model's token ids), data movement (a tensor indexed by
//! constant indices: the last token's row, a head), or a constant folded at import (a table indexed by constant
//! positions: a positional embedding `wpe(arange(T))`).

use tract_onnx::prelude::Tensor;

use super::{bail_graph, malformed, InputKind, NewNode, Node, Walker};
use crate::error::Result;
use crate::graph::FloatOp;

/// What `Gather` along `axis` of a `data_shape` tensor by `indices` (of `indices_shape`) picks: the output shape and,
/// for each output element, the flat index of the data element it is. Negative indices count from the end.
pub(super) fn gather_map(
    data_shape: &[usize],
    axis: usize,
    indices: &[i64],
    indices_shape: &[usize],
) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
    let dim = data_shape[axis];
    let picked = (indices.iter())
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j).ok().filter(|&j| j < dim).ok_or(i)
        })
        .collect::<std::result::Result<Vec<usize>, i64>>()
        .map_err(|i| format!("index {i} is outside an axis of {dim}"))?;
    let outer: usize = data_shape[..axis].iter().product();
    let inner: usize = data_shape[axis + 1..].iter().product();
    let mut map = Vec::with_capacity(outer * picked.len() * inner);
    for o in 0..outer {
        for &j in &picked {
            map.extend((0..inner).map(|k| (o * dim + j) * inner + k));
        }
    }
    let shape = [&data_shape[..axis], indices_shape, &data_shape[axis + 1..]].concat();
    Ok((shape, map))
}

impl Walker<'_> {
    /// `Gather(data, indices, axis)`.
    pub(super) fn gather(&mut self, n: &Node) -> Result<()> {
        let (data, indices) = (n.input(0)?, n.input(1)?);
        if self.is_const(data) && !self.is_const(indices) {
            return self.embedding(n, data);
        }
        let rank = if self.is_const(data) {
            self.constant(data, n)?.0.len()
        } else {
            self.shape(self.tensor(n, 0)?).len()
        };
        let axis = n.int("axis", 0)?;
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        if !(0..rank as i64).contains(&a) {
            return Err(n.bad_attr("axis", axis));
        }
        let Some(_) = self.consts.get(indices) else {
            bail_graph!(
                "Gather `{}` indexes a computed tensor by computed indices; only constant indices, or the token ids \
                 of the input into a constant table, are supported",
                n.label
            );
        };
        let (indices_shape, index_values) = self.constant(indices, n)?;
        let index_values: Vec<i64> = index_values.iter().map(|&v| v as i64).collect();
        if self.is_const(data) {
            // A constant of constants (a positional embedding of fixed positions): fold it now.
            let (data_shape, values) = self.constant(data, n)?;
            let (shape, map) = gather_map(&data_shape, a as usize, &index_values, &indices_shape)
                .map_err(|e| malformed(format!("Gather `{}`: {e}", n.label)))?;
            let folded: Vec<f32> = map.iter().map(|&i| values[i]).collect();
            let tensor = Tensor::from_shape(&shape, &folded).map_err(|e| malformed(format!("{e:#}")))?;
            self.consts.insert(n.output()?.to_string(), tensor);
            return Ok(());
        }
        let t = self.tensor(n, 0)?;
        if t == 0 && self.input_kind != InputKind::Float {
            bail_graph!(
                "Gather `{}` indexes the token ids themselves; index a constant table by them",
                n.label
            );
        }
        let shape = self.shape(t).to_vec();
        let (out, map) = gather_map(&shape, a as usize, &index_values, &indices_shape)
            .map_err(|e| malformed(format!("Gather `{}`: {e}", n.label)))?;
        if out.iter().product::<usize>() == 0 {
            bail_graph!("Gather `{}` selects nothing of shape {shape:?}", n.label);
        }
        let new = NewNode {
            op_type: n.op().into(),
            inputs: vec![t],
            shape: out,
            op: FloatOp::Move(map.into_iter().map(|i| (0, i)).collect()),
        };
        self.push(n, new).map(drop)
    }

    /// `Gather(table, ids)` of a constant table by the model's token ids, along axis 0: an embedding.
    fn embedding(&mut self, n: &Node, table: &str) -> Result<()> {
        let ids = self.tensor(n, 1)?;
        if ids != 0 || self.input_kind == InputKind::Float {
            bail_graph!(
                "Gather `{}` indexes a constant table by a computed tensor; only the model's integer input (token \
                 ids) can index a table",
                n.label
            );
        }
        let (table_shape, values) = self.constant(table, n)?;
        if !matches!(n.int("axis", 0)?, 0 | -2) || table_shape.len() != 2 {
            bail_graph!(
                "Gather `{}`: an embedding is a [vocabulary, width] table indexed along axis 0, not {table_shape:?} \
                 along axis {}",
                n.label,
                n.int("axis", 0)?
            );
        }
        let (vocab, width) = (table_shape[0], table_shape[1]);
        if vocab == 0 || width == 0 || vocab > zkinfer_circuits::model::MAX_VOCAB {
            bail_graph!(
                "Gather `{}`: an embedding of {vocab} tokens of width {width}; give 1 to {} tokens",
                n.label,
                zkinfer_circuits::model::MAX_VOCAB
            );
        }
        let shape = [self.shape(ids), &[width][..]].concat();
        let new = NewNode {
            op_type: "Gather(embedding)".into(),
            inputs: vec![ids],
            shape,
            op: FloatOp::Embedding { width, table: values },
        };
        self.push(n, new).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_picks_along_any_axis_with_negative_indices() {
        // data [2, 3]: [[0, 1, 2], [3, 4, 5]].
        let (shape, map) = gather_map(&[2, 3], 1, &[2, -3], &[2]).unwrap();
        assert_eq!((shape, map), (vec![2, 2], vec![2, 0, 5, 3]));
        // A scalar index drops the axis: the last row.
        let (shape, map) = gather_map(&[2, 3], 0, &[-1], &[]).unwrap();
        assert_eq!((shape, map), (vec![3], vec![3, 4, 5]));
        // Indices of shape [1, 2] along axis 0 of a [4, 2] table: [1, 2, 2].
        let (shape, map) = gather_map(&[4, 2], 0, &[3, 0], &[1, 2]).unwrap();
        assert_eq!((shape, map), (vec![1, 2, 2], vec![6, 7, 0, 1]));
        assert!(gather_map(&[4, 2], 0, &[4], &[1]).unwrap_err().contains("index 4"));
        assert!(gather_map(&[4, 2], 0, &[-5], &[1]).is_err());
    }
}
