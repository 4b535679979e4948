//! Range checks by running sum over 8-bit limbs looked up in one shared table.
//!
//! To show `v + off ∈ [0, 2^(8L))`, the chip writes `z_0 = v` (a copy), then `z_{i+1} = (z_i + off_i − limb_i) / 256`
//! down a column, with `off_0 = off` and `off_i = 0` after, and finally `z_L = 0`.
//! Lookup (each limb row): `q_limb · (z_i + off_i − 256 · z_{i+1}) ∈ [0, 256)`.
//! Gate (last row): `q_end · z_L = 0`.
//! Together: `v + off = Σ limb_i · 256^i` with every limb a byte, so the sum cannot wrap modulo p.

use ff::{Field, PrimeField};
use halo2_proofs::{
    circuit::{Layouter, Value},
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector, TableColumn},
    poly::Rotation,
};

use crate::arith::LIMB_BITS;
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;

/// Columns of the range-check chip.
#[derive(Clone, Debug)]
pub struct RangeCheckConfig {
    z: Column<Advice>,
    off: Column<Fixed>,
    q_limb: Selector,
    q_end: Selector,
    table: TableColumn,
}

/// Rows one check of `limbs` limbs takes.
pub fn rows(limbs: usize) -> usize {
    limbs + 1
}

impl RangeCheckConfig {
    /// Allocates the chip's columns, its lookup and its gate.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let z = meta.advice_column();
        meta.enable_equality(z);
        let off = meta.fixed_column();
        let q_limb = meta.complex_selector();
        let q_end = meta.selector();
        let table = meta.lookup_table_column();
        let radix = Fr::from(1u64 << LIMB_BITS);
        meta.lookup("range limb is a byte", |meta| {
            let q = meta.query_selector(q_limb);
            let z_cur = meta.query_advice(z, Rotation::cur());
            let z_next = meta.query_advice(z, Rotation::next());
            let off = meta.query_fixed(off, Rotation::cur());
            vec![(q * (z_cur + off - z_next * Expression::Constant(radix)), table)]
        });
        meta.create_gate("running sum ends at zero", |meta| {
            let q = meta.query_selector(q_end);
            vec![q * meta.query_advice(z, Rotation::cur())]
        });
        Self {
            z,
            off,
            q_limb,
            q_end,
            table,
        }
    }

    /// The byte table `[0, 256)`, for chips that look bytes up directly.
    pub fn byte_table(&self) -> TableColumn {
        self.table
    }

    /// Fills the byte table `[0, 256)`.
    pub fn load_table(&self, layouter: &mut impl Layouter<Fr>) -> Result<(), Error> {
        layouter.assign_table(
            || "bytes",
            |mut table| {
                for v in 0..(1u64 << LIMB_BITS) {
                    table.assign_cell(|| "byte", self.table, v as usize, || Value::known(Fr::from(v)))?;
                }
                Ok(())
            },
        )
    }

    /// Constrains `value + off ∈ [0, 2^(8·limbs))`, starting at `row`; returns the next free row.
    pub fn check(
        &self,
        a: &mut Assigner,
        row: usize,
        value: &AssignedValue,
        off: i64,
        limbs: usize,
    ) -> Result<usize, Error> {
        let radix_inv = Fr::from(1u64 << LIMB_BITS).invert().unwrap_or(Fr::ZERO);
        let mut z = a.copy(CellKind::RangeLimb, self.z, row, value).value;
        let mut shifted = z + field::from_i64(off);
        for i in 0..limbs {
            a.enable(&self.q_limb, row + i)?;
            a.fixed(self.off, row + i, if i == 0 { field::from_i64(off) } else { Fr::ZERO });
            let limb = Fr::from(shifted.to_repr().as_ref()[0] as u64);
            z = (shifted - limb) * radix_inv;
            a.advice(CellKind::RangeLimb, self.z, row + i + 1, z);
            shifted = z;
        }
        a.enable(&self.q_end, row + limbs)?;
        Ok(row + rows(limbs))
    }
}
