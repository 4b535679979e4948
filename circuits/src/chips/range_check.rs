//! Range checks by running sum over limbs looked up in one shared tagged table, spread over several columns.
//!
//! Limbs are `L` bits wide (`L = CircuitParams::limb_bits`, 8 to 15: the planner takes the widest whose table
//! fits in the circuit's rows, so a 2^16-row circuit checks 14-bit limbs). The table holds pairs `(tag, v)`:
//! `(t, v)` for `v ∈ [0, 2^t)` and every width `t ∈ 1..=L`, `(−t, v)` for `v ∈ [−2^(t−1), 2^(t−1))` and the
//! signed widths a last limb can have (8, for int8 values, and `16 − L` for 16-bit values when `L > 8`), as field
//! elements, and `(0, 0)` for rows without a check: 767 rows with bytes, `2^(L+1) + 255 + 2^(16−L)` above.
//!
//! To show that `v` lies in a range, a chip copies `v` into `z_0` of one range column and writes
//! `z_{i+1} = (z_i − limb_i) / 2^L` below it, one row per limb. Lookup (every row, per column):
//! `(tag, z_i − 2^L · chain · z_{i+1}) ∈ table`, with fixed `chain = 1` and `tag = L` on every limb but the last
//! and `chain = 0` on the last, whose limb is `z_{n−1}` itself. Checks fill a column from row 0 without gaps;
//! below them `tag` and `chain` are 0, so the lookup forces `z = 0` there, which is what an honest prover leaves.
//! (The input has degree 2, so the lookup stays within degree 5.) So `v = Σ limb_i · 2^(L·i)` with `L`-bit limbs
//! below the last and a last limb in its tag's range: `[0, 2^b)` in `⌈b/L⌉` rows with last tag
//! `b − L·(n − 1)`, or a signed `b`-bit range with a signed last limb of at most 8 bits (an int8 in one row, a
//! 16-bit value in two). The sum cannot wrap modulo p. No end row and no gate: a check of `n` limbs takes exactly
//! `n` rows.
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
    /// `[−2^(bits − 1), 2^(bits − 1))`: a signed integer (at least one bit).
    Signed {
        /// Number of bits, sign included.
        bits: u32,
    },
}

/// Narrowest limb the range chip takes (every check's last limb of at most 8 bits has a tag of its own).
pub const MIN_LIMB_BITS: u32 = 8;
/// Widest limb the range chip takes (a 16-bit signed value then has a 1-bit signed last limb; its table has
/// `2^16 + 257` rows).
pub const MAX_LIMB_BITS: u32 = 15;
/// Widest signed last limb: an int8.
const SIGNED_LAST_BITS: u32 = 8;
/// The widest signed values the chip checks (16-bit outputs).
const WIDEST_SIGNED_BITS: u32 = 16;

/// The signed widths of last limbs the table holds for `limb_bits`-bit limbs: 8 (an int8) and, above 8-bit limbs,
/// `16 − L` (the last limb of a 16-bit value).
fn signed_last_widths(limb_bits: u32) -> Vec<u32> {
    let mut widths = vec![SIGNED_LAST_BITS];
    if limb_bits > SIGNED_LAST_BITS && limb_bits < WIDEST_SIGNED_BITS {
        widths.insert(0, WIDEST_SIGNED_BITS - limb_bits);
    }
    widths
}

impl Range {
    /// `[−128, 128)`: an int8.
    pub const INT8: Range = Range::Signed { bits: 8 };

    /// The range of a requantization's outputs: `[0, 2^(bits−1))` after a ReLU, signed `bits`-bit otherwise.
    pub fn of_output(out: OutputRange) -> Range {
        if out.relu {
            Range::Unsigned { bits: out.bits - 1 }
        } else {
            Range::Signed { bits: out.bits }
        }
    }

    /// Rows (limbs) the check takes with `limb_bits`-bit limbs: `⌈bits / L⌉` unsigned; signed, one for at most 8
    /// bits and otherwise `L`-bit limbs below a signed last limb of at most 8 bits.
    pub fn rows(self, limb_bits: u32) -> usize {
        let limb_bits = limb_bits.max(1);
        match self {
            Range::Unsigned { bits } => bits.div_ceil(limb_bits) as usize,
            Range::Signed { bits } if bits <= SIGNED_LAST_BITS => 1,
            Range::Signed { bits } => 1 + (bits - SIGNED_LAST_BITS).div_ceil(limb_bits) as usize,
        }
    }

    /// Table tag of the last limb: its width in bits, negated for a signed last limb; `None` when the table has
    /// no such tag (a signed range other than 8 or 16 bits, or a check of no bits).
    fn last_tag(self, limb_bits: u32) -> Option<Fr> {
        let below = limb_bits * (self.rows(limb_bits) as u32).checked_sub(1)?;
        match self {
            Range::Unsigned { bits } => {
                let width = bits.checked_sub(below).filter(|w| (1..=limb_bits).contains(w))?;
                Some(Fr::from(u64::from(width)))
            }
            Range::Signed { bits } => {
                let width = bits.checked_sub(below)?;
                signed_last_widths(limb_bits)
                    .contains(&width)
                    .then(|| -Fr::from(u64::from(width)))
            }
        }
    }
}

/// Tag of a byte (`[0, 256)`), which every table holds.
const TAG_BYTE: u64 = 8;

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

    /// Rows of the table for `limb_bits`-bit limbs: `(0, 0)`, `2^t` values for each width `t ∈ 1..=L` and for
    /// each signed last width.
    pub fn rows(limb_bits: u32) -> usize {
        let signed: usize = signed_last_widths(limb_bits).iter().map(|w| 1usize << w).sum();
        1 + ((1usize << (limb_bits + 1)) - 2) + signed
    }

    /// The widest limb (within [`MIN_LIMB_BITS`, `MAX_LIMB_BITS`]) whose table fits in `rows` rows; `None` when
    /// not even the narrowest does.
    pub fn widest_limb_fitting(rows: usize) -> Option<u32> {
        (MIN_LIMB_BITS..=MAX_LIMB_BITS)
            .rev()
            .find(|&bits| Self::rows(bits) <= rows)
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
    limb_bits: u32,
}

impl RangeCheckConfig {
    /// Allocates `columns` range columns (at least one) of `limb_bits`-bit limbs (within [`MIN_LIMB_BITS`,
    /// `MAX_LIMB_BITS`], where it is clamped), their lookups and the shared table.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, columns: usize, limb_bits: u32) -> Self {
        let limb_bits = limb_bits.clamp(MIN_LIMB_BITS, MAX_LIMB_BITS);
        let table = RangeTable {
            tag: meta.lookup_table_column(),
            value: meta.lookup_table_column(),
        };
        let radix = Expression::Constant(Fr::from(1u64 << limb_bits));
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
        Self {
            columns,
            table,
            limb_bits,
        }
    }

    /// Bits per limb.
    pub fn limb_bits(&self) -> u32 {
        self.limb_bits
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
        for width in 1..=u64::from(self.limb_bits) {
            entries.extend((0..1u64 << width).map(|v| (Fr::from(width), Fr::from(v))));
        }
        for width in signed_last_widths(self.limb_bits) {
            let half = 1i64 << (width - 1);
            entries.extend((-half..half).map(|v| (-Fr::from(u64::from(width)), field::from_i64(v))));
        }
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
        let limb_bits = self.limb_bits;
        let limbs = range.rows(limb_bits);
        let last_tag = range.last_tag(limb_bits).ok_or(Error::Synthesis)?;
        let (index, row) = rows.place(limbs);
        let column = self.columns.get(index).ok_or(Error::Synthesis)?;
        let radix_inv = Fr::from(1u64 << limb_bits).invert().unwrap_or(Fr::ZERO);
        let mask = (1u64 << limb_bits) - 1;
        let mut z = a.copy(CellKind::RangeLimb, column.z, row, value).value;
        // The low limb of the running sum: of the integer (two's complement for a negative one) when the value is
        // a small integer, else of the field element's representation (a value no honest prover range-checks).
        let low_limb = |z: &Fr| match field::to_i64(z) {
            Some(v) => Fr::from(v as u64 & mask),
            None => {
                let repr = ff::PrimeField::to_repr(z);
                let bytes = repr.as_ref();
                Fr::from(u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) & mask)
            }
        };
        for i in 0..limbs {
            let last = i + 1 == limbs;
            a.fixed(
                column.tag,
                row + i,
                if last { last_tag } else { Fr::from(u64::from(limb_bits)) },
            );
            a.fixed(column.chain, row + i, if last { Fr::ZERO } else { Fr::ONE });
            if !last {
                let next = (z - low_limb(&z)) * radix_inv;
                // Carry on from the cell as written (a forged limb propagates, see `assign`).
                z = a.advice(CellKind::RangeLimb, column.z, row + i + 1, next).value;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
