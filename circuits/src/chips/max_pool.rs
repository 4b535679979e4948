//! Max pooling as a chain of pairwise maxima, one row each.
//!
//! Row: `a`, `b` (copied in) and `m`. Gate: `q_max · (m − a) · (m − b) = 0`. Lookups (byte table):
//! `q_max · (m − a) ∈ [0, 256)`, `q_max · (m − b) ∈ [0, 256)`. So `m ≥ a`, `m ≥ b` and `m ∈ {a, b}`: `m = max(a, b)`.
//! Inputs are int8 (range-checked where they were made), so the differences are small and cannot wrap.

use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Selector},
    poly::Rotation,
};

use super::range_check::RangeTable;
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;

/// Columns of the max chip.
#[derive(Clone, Debug)]
pub struct MaxPoolConfig {
    a: Column<Advice>,
    b: Column<Advice>,
    m: Column<Advice>,
    q_max: Selector,
}

/// Rows the maximum of a window of `len` elements takes.
pub fn rows(len: usize) -> usize {
    len.saturating_sub(1)
}

impl MaxPoolConfig {
    /// Allocates the columns, the gate and the two byte lookups into the range table.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, table: RangeTable) -> Self {
        let [a, b, m] = [(); 3].map(|_| meta.advice_column());
        for c in [a, b, m] {
            meta.enable_equality(c);
        }
        let q_max = meta.complex_selector();
        meta.create_gate("pairwise max", |meta| {
            let q = meta.query_selector(q_max);
            let (a, b, m) = (
                meta.query_advice(a, Rotation::cur()),
                meta.query_advice(b, Rotation::cur()),
                meta.query_advice(m, Rotation::cur()),
            );
            vec![q * (m.clone() - a) * (m - b)]
        });
        for (name, other) in [("max minus a is a byte", a), ("max minus b is a byte", b)] {
            meta.lookup(name, |meta| {
                let q = meta.query_selector(q_max);
                let m = meta.query_advice(m, Rotation::cur());
                let o = meta.query_advice(other, Rotation::cur());
                table.byte_lookup(q, m - o)
            });
        }
        Self { a, b, m, q_max }
    }

    /// The maximum of `window` from `row`; returns its cell and the next free row.
    pub fn assign(
        &self,
        a: &mut Assigner,
        mut row: usize,
        window: &[AssignedValue],
    ) -> Result<(AssignedValue, usize), Error> {
        let Some((first, rest)) = window.split_first() else {
            return Err(Error::Synthesis);
        };
        let mut max = *first;
        for next in rest {
            a.enable(&self.q_max, row)?;
            let left = a.copy(CellKind::PoolInput, self.a, row, &max);
            let right = a.copy(CellKind::PoolInput, self.b, row, next);
            let (l, r) = (
                field::to_i64(&left.value).unwrap_or(0),
                field::to_i64(&right.value).unwrap_or(0),
            );
            // A forged pairwise maximum claims the smaller operand (the tests' hooks only, see `assign`).
            #[cfg(feature = "test-hooks")]
            let m = if a.forges_pool_min() { l.min(r) } else { l.max(r) };
            #[cfg(not(feature = "test-hooks"))]
            let m = l.max(r);
            max = a.advice(CellKind::PoolMax, self.m, row, field::from_i64(m));
            row += 1;
        }
        Ok((max, row))
    }
}
