//! Range checks by running sum over limbs looked up in one shared tagged table, spread over several columns.
//!
//! The table holds pairs `(tag, v)`: `(8, v)` for `v ∈ [0, 256)`, `(7, v)` for `v ∈ [0, 128)`, `(−1, v)` for
//! `v ∈ [−128, 128)` (a signed byte, as a field element), and `(0, 0)` for rows without a check.
//!
//! To show that `v` lies in a range, a chip copies `v` into `z_0` of one range column and writes
//! `z_{i+1} = (z_i − limb_i) / 256` below it, one row per limb. Lookup (every row, per column):
//! `(tag, z_i − 256 · chain · z_{i+1}) ∈ table`, with fixed `chain = 1` on every limb but the last and `chain = 0`
//! on the last, whose limb is `z_{L−1}` itself. Checks fill a column from row 0 without gaps; below them `tag` and
//! `chain` are 0, so the lookup forces `z = 0` there, which is what an honest prover leaves. (The input has degree
//! 2, so the lookup stays within degree 5.) So `v = Σ limb_i · 256^i` with bytes below the last
//! limb and a last limb in the tag's range: `[0, 2^(8L))` with tag 8, `[0, 128)` or `[−128, 128)` for one limb.
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

/// The range a check proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// `[0, 2^(8·limbs))`.
    Unsigned {
        /// Number of byte limbs.
        limbs: usize,
    },
    /// `[0, 128)`: a ReLU output.
    NonNegativeInt8,
    /// `[−128, 128)`: an int8.
    Int8,
}

impl Range {
    /// Rows (limbs) the check takes.
    pub fn rows(self) -> usize {
        match self {
            Range::Unsigned { limbs } => limbs,
            Range::NonNegativeInt8 | Range::Int8 => 1,
        }
    }

    /// Table tag of the last limb.
    fn last_tag(self) -> Fr {
        match self {
            Range::Unsigned { .. } => Fr::from(TAG_BYTE),
            Range::NonNegativeInt8 => Fr::from(TAG_SEVEN_BITS),
            Range::Int8 => -Fr::ONE,
        }
    }
}

const TAG_BYTE: u64 = 8;
const TAG_SEVEN_BITS: u64 = 7;

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

    /// Rows of the table.
    pub fn rows() -> usize {
        1 + (1 << LIMB_BITS) + (1 << (LIMB_BITS - 1)) + (1 << LIMB_BITS)
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
        entries.extend((0..1u64 << LIMB_BITS).map(|v| (Fr::from(TAG_BYTE), Fr::from(v))));
        entries.extend((0..1u64 << (LIMB_BITS - 1)).map(|v| (Fr::from(TAG_SEVEN_BITS), Fr::from(v))));
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
        for i in 0..limbs {
            let last = i + 1 == limbs;
            a.fixed(
                column.tag,
                row + i,
                if last { range.last_tag() } else { Fr::from(TAG_BYTE) },
            );
            a.fixed(column.chain, row + i, if last { Fr::ZERO } else { Fr::ONE });
            if !last {
                let limb = Fr::from(u64::from(ff::PrimeField::to_repr(&z).as_ref()[0]));
                z = (z - limb) * radix_inv;
                a.advice(CellKind::RangeLimb, column.z, row + i + 1, z);
            }
        }
        Ok(())
    }
}
