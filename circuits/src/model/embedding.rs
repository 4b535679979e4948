//! An embedding: rows of a constant int8 table looked up by the model's token ids (ONNX `Gather` of a constant
//! embedding matrix by an integer input). The ids are the input the commitment binds; the table is part of the
//! circuit (a fixed lookup table), so a prover can neither pick another row nor change a value.

use serde::{Deserialize, Serialize};

use super::eval::read;
use super::Source;

/// Largest vocabulary: token ids are committed as 16-bit words.
pub const MAX_VOCAB: usize = 1 << 16;

/// Most table entries (`vocabulary × width`) an embedding may hold: the table lives in the circuit's lookup table,
/// whose rows are bounded by the circuit size.
pub const MAX_EMBEDDING_ENTRIES: usize = 1 << 22;

/// Row `ids[p]` of `table` for each position `p`: `out[p · width + j] = table[ids[p] · width + j]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// The token id of each position (elements of the token input).
    pub ids: Vec<Source>,
    /// Elements per row (the embedding width).
    pub width: usize,
    /// The table, row-major: `vocabulary × width` int8 values.
    pub table: Vec<i8>,
}

impl Embedding {
    /// Rows of the table: the vocabulary it covers.
    pub fn vocab(&self) -> usize {
        self.table.len().checked_div(self.width).unwrap_or(0)
    }

    /// Element `j` of row `id` (0 outside the table, which a checked input never reaches).
    pub fn entry(&self, id: i64, j: usize) -> i64 {
        let at = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(self.width)?.checked_add(j));
        at.filter(|_| j < self.width)
            .and_then(|i| self.table.get(i))
            .map_or(0, |&v| i64::from(v))
    }

    /// The layer's outputs for the tensors computed before it.
    pub fn eval(&self, tensors: &[Vec<i64>]) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.ids.len() * self.width);
        for s in &self.ids {
            let id = read(tensors, s);
            out.extend((0..self.width).map(|j| self.entry(id, j)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_position_reads_the_row_of_its_id() {
        let e = Embedding {
            ids: (0..3).map(|index| Source { tensor: 0, index }).collect(),
            width: 2,
            table: vec![1, 2, -3, 4, 127, -128],
        };
        assert_eq!(e.vocab(), 3);
        assert_eq!(e.eval(&[vec![2, 0, 2]]), [127, -128, 1, 2, 127, -128]);
        // Outside the table (which validation and the input check rule out) reads 0 and never panics.
        assert_eq!((e.entry(3, 0), e.entry(-1, 0), e.entry(0, 2)), (0, 0, 0));
    }
}
