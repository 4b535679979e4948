//! The structure of a synthesized circuit, as the mock prover records it: every fixed column (selectors
//! included, as the mock prover's compressed selector columns) and the copy-constraint permutation. Keygen fixes
//! these from a witness-free circuit; a prover's synthesis must lay out exactly the same, or the mock prover tests
//! check another circuit than the verifying key does (and honest proofs fail).

use halo2_proofs::dev::{CellValue, MockProver};
use halo2_proofs::plonk::Circuit;
use rayon::prelude::*;
use zkinfer_circuits::Fr;

/// Fixed columns (selectors included) and the permutation of one synthesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    /// `fixed[column][row]`, the mock prover's compressed selector columns last.
    pub fixed: Vec<Vec<CellValue<Fr>>>,
    /// For each equality-enabled column, the cell each cell maps to in the permutation.
    pub permutation: Vec<Vec<(usize, usize)>>,
}

/// Synthesizes `circuit` with the mock prover at size `k` (with `instance` as its one instance column) and records
/// its structure.
pub fn structure<C: Circuit<Fr>>(k: u32, circuit: &C, instance: Vec<Fr>) -> Structure {
    let prover = MockProver::run(k, circuit, vec![instance]).expect("synthesis");
    Structure {
        fixed: prover.fixed().clone(),
        permutation: prover
            .permutation()
            .mapping()
            .map(|column| column.collect::<Vec<_>>())
            .collect(),
    }
}

impl Structure {
    /// Where `self` and `other` differ (the first differing cells and how many differ), or `None`.
    pub fn diff(&self, other: &Structure) -> Option<String> {
        if self.fixed.len() != other.fixed.len() || self.permutation.len() != other.permutation.len() {
            return Some(format!(
                "{} vs {} fixed columns, {} vs {} permutation columns",
                self.fixed.len(),
                other.fixed.len(),
                self.permutation.len(),
                other.permutation.len()
            ));
        }
        let mut lines = Vec::new();
        let mut count = 0;
        let mut note = |what: &str, column: usize, row: usize, a: String, b: String| {
            count += 1;
            if lines.len() < 5 {
                lines.push(format!("{what} column {column} row {row}: {a} vs {b}"));
            }
        };
        for (c, (a, b)) in self.fixed.iter().zip(&other.fixed).enumerate() {
            for (r, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    note("fixed", c, r, format!("{x:?}"), format!("{y:?}"));
                }
            }
        }
        for (c, (a, b)) in self.permutation.iter().zip(&other.permutation).enumerate() {
            for (r, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    note("permutation", c, r, format!("{x:?}"), format!("{y:?}"));
                }
            }
        }
        (count > 0).then(|| format!("{count} cells differ, first:\n{}", lines.join("\n")))
    }
}
