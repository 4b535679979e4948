//! Range checks by running sum over limbs looked up in one shared tagged table, spread over several columns.
//!
//! The table holds pairs `(tag, v)`: `(t, v)` for `v ∈ [0, 2^t)` and every width `t ∈ 1..=8`, `(−1, v)` for
//! `v ∈ [−128, 128)` (a signed byte, as a field element), and `(0, 0)` for rows without a check.
//!
//! To show that `v` lies in a range, a chip copies `v` into `z_0` of one range column and writes
//! `z_{i+1} = (z_i − limb_i) / 256` below it, one row per limb. Lookup (every row, per column):
//! `(tag, z_i − 256 · chain · z_{i+1}) ∈ table`, with fixed `chain = 1` on every limb but the last and `chain = 0`
//! on the last, whose limb is `z_{L−1}` itself. Checks fill a column from row 0 without gaps; below them `tag` and
//! `chain` are 0, so the lookup forces `z = 0` there, which is what an honest prover leaves. (The input has degree
//! 2, so the lookup stays within degree 5.) So `v = Σ limb_i · 256^i` with bytes below the last
//! limb and a last limb in the tag's range: `[0, 2^(8(L−1) + t))` with tag `t`, so any number of bits, or
//! `[−2^(8L−1), 2^(8L−1))` with the signed tag (an int8 in one row, a 16-bit output in two).
//! The sum cannot wrap modulo p. No end row and no gate: a check of `L` limbs takes exactly `L` rows.
//!
//! Checks go to the column with the fewest rows used so far ([`ColumnRows::place`]); the layout planner runs the
//! same placement ([`ColumnRows`]), so its row counts are exact.

use ff::Field;
use halo2_proofs::{
    circuit::{Layouter, Value},
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, TableColumn},
    poly::Rotation,
};

use crate::arith::LIMB_BITS;
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::column_rows::ColumnRows;
use crate::field;
use crate::model::OutputRange;

/// The range a check proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// `[0, 2^bits)` (at least one bit).
    Unsigned {
        /// Number of bits.
        bits: u32,
    },
    /// `[−2^(8·limbs − 1), 2^(8·limbs − 1))`: a signed integer.
    Signed {
        /// Number of limbs (the last one is a signed byte).
        limbs: usize,
    },
}

impl Range {
    /// `[−128, 128)`: an int8.
    pub const INT8: Range = Range::Signed { limbs: 1 };

    /// The range of a requantization's outputs: `[0, 2^(bits−1))` after a ReLU, signed `bits`-bit otherwise.
    pub fn of_output(out: OutputRange) -> Range {
        if out.relu {
            Range::Unsigned { bits: out.bits - 1 }
        } else {
            Range::Signed {
                limbs: out.bits.div_ceil(LIMB_BITS) as usize,
            }
        }
    }

    /// Rows (limbs) the check takes.
    pub fn rows(self) -> usize {
        match self {
            Range::Unsigned { bits } => bits.div_ceil(LIMB_BITS) as usize,
            Range::Signed { limbs } => limbs,
        }
    }

    /// Table tag of the last limb: its width in bits, or −1 for a signed byte.
    fn last_tag(self) -> Fr {
        match self {
            Range::Unsigned { bits } => Fr::from(u64::from(bits - LIMB_BITS * (self.rows() as u32 - 1))),
            Range::Signed { .. } => -Fr::ONE,
        }
    }
}

const TAG_BYTE: u64 = LIMB_BITS as u64;

/// The tagged lookup table, shared with chips that look bytes up directly (max pool).
#[derive(Clone, Copy, Debug)]
pub struct RangeTable {
    tag: TableColumn,
    value: TableColumn,
}

impl RangeTable {
    /// The lookup `(q · 8, q · expr) ∈ table`: `expr ∈ [0, 256)` wherever `q` is on.
    pub fn byte_lookup(&self, q: Expression<Fr>, expr: Expression<Fr>) -> Vec<(Expression<Fr>, TableColumn)> {
        vec![
            (q.clone() * Expression::Constant(Fr::from(TAG_BYTE)), self.tag),
            (q * expr, self.value),
        ]
    }

    /// Rows of the table: `(0, 0)`, `2^t` values for each width `t ∈ 1..=8`, 256 signed bytes.
    pub fn rows() -> usize {
        1 + ((1 << (LIMB_BITS + 1)) - 2) + (1 << LIMB_BITS)
    }
}

/// One range column: the running sums `z`, the limb's tag and the chaining flag.
#[derive(Clone, Debug)]
struct RangeColumn {
    z: Column<Advice>,
    tag: Column<Fixed>,
    chain: Column<Fixed>,
}

/// Columns of the range-check chip.
#[derive(Clone, Debug)]
pub struct RangeCheckConfig {
    columns: Vec<RangeColumn>,
    table: RangeTable,
}

impl RangeCheckConfig {
    /// Allocates `columns` range columns (at least one), their lookups and the shared table.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, columns: usize) -> Self {
        let table = RangeTable {
            tag: meta.lookup_table_column(),
            value: meta.lookup_table_column(),
        };
        let radix = Expression::Constant(Fr::from(1u64 << LIMB_BITS));
        let columns = (0..columns.max(1))
            .map(|_| {
                let column = RangeColumn {
                    z: meta.advice_column(),
                    tag: meta.fixed_column(),
                    chain: meta.fixed_column(),
                };
                meta.enable_equality(column.z);
                meta.lookup("range limb", |meta| {
                    let tag = meta.query_fixed(column.tag, Rotation::cur());
                    let chain = meta.query_fixed(column.chain, Rotation::cur());
                    let z_cur = meta.query_advice(column.z, Rotation::cur());
                    let z_next = meta.query_advice(column.z, Rotation::next());
                    vec![(tag, table.tag), (z_cur - chain * z_next * radix.clone(), table.value)]
                });
                column
            })
            .collect();
        Self { columns, table }
    }

    /// The tagged table, for chips that look bytes up directly.
    pub fn table(&self) -> RangeTable {
        self.table
    }

    /// Number of range columns.
    pub fn columns(&self) -> usize {
        self.columns.len()
    }

    /// Fills the tagged table.
    pub fn load_table(&self, layouter: &mut impl Layouter<Fr>) -> Result<(), Error> {
        let mut entries = vec![(Fr::ZERO, Fr::ZERO)];
        for width in 1..=u64::from(LIMB_BITS) {
            entries.extend((0..1u64 << width).map(|v| (Fr::from(width), Fr::from(v))));
        }
        entries.extend((-128i64..128).map(|v| (-Fr::ONE, field::from_i64(v))));
        layouter.assign_table(
            || "range table",
            |mut table| {
                for (row, (tag, value)) in entries.iter().enumerate() {
                    table.assign_cell(|| "tag", self.table.tag, row, || Value::known(*tag))?;
                    table.assign_cell(|| "value", self.table.value, row, || Value::known(*value))?;
                }
                Ok(())
            },
        )
    }

    /// Constrains `value` to `range`, in the least used column of `rows`.
    pub fn check(
        &self,
        a: &mut Assigner,
        rows: &mut ColumnRows,
        value: &AssignedValue,
        range: Range,
    ) -> Result<(), Error> {
        let limbs = range.rows();
        if limbs == 0 {
            return Err(Error::Synthesis);
        }
        let (index, row) = rows.place(limbs);
        let column = self.columns.get(index).ok_or(Error::Synthesis)?;
        let radix_inv = Fr::from(1u64 << LIMB_BITS).invert().unwrap_or(Fr::ZERO);
        let mut z = a.copy(CellKind::RangeLimb, column.z, row, value).value;
        // The low byte of the running sum: of the integer (two's complement for a negative one) when the value is
        // a small integer, else of the field element's representation (a value no honest prover range-checks).
        let low_byte = |z: &Fr| match field::to_i64(z) {
            Some(v) => Fr::from((v & 0xff) as u64),
            None => Fr::from(u64::from(ff::PrimeField::to_repr(z).as_ref()[0])),
        };
        for i in 0..limbs {
            let last = i + 1 == limbs;
            a.fixed(
                column.tag,
                row + i,
                if last { range.last_tag() } else { Fr::from(TAG_BYTE) },
            );
            a.fixed(column.chain, row + i, if last { Fr::ZERO } else { Fr::ONE });
            if !last {
                let next = (z - low_byte(&z)) * radix_inv;
                // Carry on from the cell as written (a forged limb propagates, see `assign`).
                z = a.advice(CellKind::RangeLimb, column.z, row + i + 1, next).value;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
