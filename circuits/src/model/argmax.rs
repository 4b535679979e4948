//! ArgMax over the last axis of an int8 tensor: the index of each row's largest element, the first of equal ones
//! (ONNX's default) or the last (`select_last_index`). Indices are integers at scale 1, up to 16 bits.

use serde::{Deserialize, Serialize};

use super::TensorId;

/// Largest ArgMax row: its indices fit a 16-bit output.
pub const MAX_ARGMAX_ROW: usize = 1 << 15;

/// The index of the largest element of each row of `row_len` consecutive elements of tensor `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgMax {
    /// The tensor read, whole.
    pub input: TensorId,
    /// Elements per row (the last axis).
    pub row_len: usize,
    /// Whether a tie goes to the last of the equal maxima (the first otherwise).
    pub select_last_index: bool,
}

impl ArgMax {
    /// The index of the row's largest element, ties broken as the op says (0 for an empty row).
    pub fn index(&self, row: &[i64]) -> i64 {
        let max = row.iter().copied().max().unwrap_or(0);
        let mut at = row.iter().enumerate().filter(|(_, &v)| v == max).map(|(i, _)| i as i64);
        let index = if self.select_last_index {
            at.next_back()
        } else {
            at.next()
        };
        index.unwrap_or(0)
    }

    /// The index of every row of `input`.
    pub fn eval(&self, input: &[i64]) -> Vec<i64> {
        input.chunks(self.row_len.max(1)).map(|row| self.index(row)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first_or_the_last_maximum() {
        let first = ArgMax {
            input: 0,
            row_len: 4,
            select_last_index: false,
        };
        let last = ArgMax {
            select_last_index: true,
            ..first.clone()
        };
        let rows = [3, 9, -1, 9, -128, -128, -128, -128];
        assert_eq!(first.eval(&rows), [1, 0]);
        assert_eq!(last.eval(&rows), [3, 3]);
    }
}
