//! Row accounting for chips that spread contiguous runs of rows over several interchangeable columns: each run goes
//! to the column with the fewest rows used so far (the first of equals). The range-check chip (one run per check)
//! and the Freivalds chip (one run per Horner evaluation or weight check) place their runs this way, and the layout
//! planner replays the same placement, so its row counts are exact.

/// Rows used so far in each column (or column pair) of a chip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnRows(Vec<usize>);

impl ColumnRows {
    /// `columns` columns (0 is taken as 1), each with its first `reserved` rows already used (a blank row).
    pub fn new(columns: usize, reserved: usize) -> Self {
        Self(vec![reserved; columns.max(1)])
    }

    /// Columns with the given rows already used (one entry per column; none is taken as one unused column).
    pub fn from_used(used: Vec<usize>) -> Self {
        if used.is_empty() {
            Self(vec![0])
        } else {
            Self(used)
        }
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.0.len()
    }

    /// Rows used in each column.
    pub fn used(&self) -> &[usize] {
        &self.0
    }

    /// Where the next run goes: the least used column (the first of equals) and its first free row.
    pub fn next(&self) -> (usize, usize) {
        // One pass; `min_by_key` keeps the first of equals.
        self.0
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, rows)| rows)
            .unwrap_or((0, 0))
    }

    /// Marks `rows` more rows of `column` as used.
    pub fn advance(&mut self, column: usize, rows: usize) {
        if let Some(used) = self.0.get_mut(column) {
            *used += rows;
        }
    }

    /// Reserves a run of `rows` rows where [`next`](Self::next) says; returns its column and first row.
    pub fn place(&mut self, rows: usize) -> (usize, usize) {
        let (column, start) = self.next();
        self.advance(column, rows);
        (column, start)
    }

    /// The most rows any column uses.
    pub fn max(&self) -> usize {
        self.0.iter().copied().max().unwrap_or(0)
    }

    /// Rows used in all columns together.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_go_to_the_least_used_column_first_of_equals() {
        let mut rows = ColumnRows::new(3, 1);
        assert_eq!(rows.place(5), (0, 1));
        assert_eq!(rows.place(2), (1, 1));
        assert_eq!(rows.place(2), (2, 1));
        assert_eq!(rows.place(1), (1, 3));
        assert_eq!(rows.used(), &[6, 4, 3]);
        assert_eq!((rows.max(), rows.total()), (6, 13));
        assert_eq!(ColumnRows::new(0, 0).columns(), 1);
    }
}
