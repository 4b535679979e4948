//! Elementwise product of two activations: `z = x · y`, one row per product.
//!
//! Gate (row with `q_mul`): `x · y − z = 0`. `x` and `y` are copies of int8 cells (each range-checked where it was
//! produced: an input, a requantized output or a table output), so `|z| ≤ 2^14`; `z` is copied into the
//! requantization chip's accumulator column, whose slack and remainder checks are sized for that bound.

use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};

/// Columns of the product chip.
#[derive(Clone, Debug)]
pub struct ProductConfig {
    x: Column<Advice>,
    y: Column<Advice>,
    z: Column<Advice>,
    q_mul: Selector,
}

impl ProductConfig {
    /// Allocates three advice columns (all under the permutation) and the product gate.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let [x, y, z] = [(); 3].map(|_| meta.advice_column());
        for c in [x, y, z] {
            meta.enable_equality(c);
        }
        let q_mul = meta.selector();
        meta.create_gate("elementwise product", |meta| {
            let q = meta.query_selector(q_mul);
            let [x, y, z] = [x, y, z].map(|c| meta.query_advice(c, Rotation::cur()));
            vec![q * (x * y - z)]
        });
        Self { x, y, z, q_mul }
    }

    /// Multiplies the cells `lhs` and `rhs` at `row`; returns the product cell.
    pub fn assign(
        &self,
        a: &mut Assigner,
        row: usize,
        lhs: &AssignedValue,
        rhs: &AssignedValue,
    ) -> Result<AssignedValue, Error> {
        a.enable(&self.q_mul, row)?;
        let x = a.copy(CellKind::MulOperand, self.x, row, lhs);
        let y = a.copy(CellKind::MulOperand, self.y, row, rhs);
        Ok(a.advice(CellKind::MulProduct, self.z, row, x.value * y.value))
    }
}
