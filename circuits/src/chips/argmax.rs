//! ArgMax rows ([`crate::model::ArgMax`]): one row per element, a row's elements on consecutive rows (in reverse
//! order when ties go to the last maximum, so that "first in layout order" is the tie-break either way).
//!
//! Columns: `x` (the element, copied in), `m` (the row maximum, one value down the row), `o` (1 on the chosen
//! element), `f` (how many chosen so far, this row included), `i` (the running index `Σ pos·o`) and
//! `g = (1 − f)·(m − x − 1)`; fixed `first`, `last` and `pos` (the element's index in its row). Gates, on `q_arg`
//! rows:
//!
//! - `o·(1 − o) = 0`, `f = (1 − first)·f[−1] + o`, `last·(f − 1) = 0`: exactly one element is chosen;
//! - `(1 − first)·(m − m[−1]) = 0`: one maximum per row; `o·(x − m) = 0`: the chosen element is it;
//! - `i = (1 − first)·i[−1] + pos·o`: the last `i` is the chosen element's index (the output);
//! - `g = (1 − f)·(m − x − 1)`;
//!
//! and two byte lookups: `m − x ∈ [0, 256)` on every row (`m` is at least every element, so with the chosen one
//! equal to it, it is the maximum) and `g ∈ [0, 256)` (before the chosen element `f = 0`, so `x < m`: no earlier
//! element ties it). Elements are int8, so the differences are small and cannot wrap.

use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector},
    poly::Rotation,
};

use super::range_check::RangeTable;
use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;

/// Columns of the ArgMax chip.
#[derive(Clone, Debug)]
pub struct ArgMaxConfig {
    x: Column<Advice>,
    m: Column<Advice>,
    o: Column<Advice>,
    f: Column<Advice>,
    i: Column<Advice>,
    g: Column<Advice>,
    first: Column<Fixed>,
    last: Column<Fixed>,
    pos: Column<Fixed>,
    q_arg: Selector,
}

impl ArgMaxConfig {
    /// Allocates the columns, the gates and the two byte lookups into the range table.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, table: RangeTable) -> Self {
        let [x, m, o, f, i, g] = [(); 6].map(|_| meta.advice_column());
        for c in [x, i] {
            meta.enable_equality(c);
        }
        let [first, last, pos] = [(); 3].map(|_| meta.fixed_column());
        let q_arg = meta.complex_selector();
        meta.create_gate("argmax", |meta| {
            let q = meta.query_selector(q_arg);
            let prev = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fr>, c| meta.query_advice(c, Rotation::prev());
            let (m_prev, f_prev, i_prev) = (prev(meta, m), prev(meta, f), prev(meta, i));
            let [x, m, o, f, i, g] = [x, m, o, f, i, g].map(|c| meta.query_advice(c, Rotation::cur()));
            let [first, last, pos] = [first, last, pos].map(|c| meta.query_fixed(c, Rotation::cur()));
            let one = Expression::Constant(Fr::from(1));
            let later = one.clone() - first;
            vec![
                q.clone() * o.clone() * (one.clone() - o.clone()),
                q.clone() * (f.clone() - later.clone() * f_prev - o.clone()),
                q.clone() * last * (f.clone() - one.clone()),
                q.clone() * later.clone() * (m.clone() - m_prev),
                q.clone() * o.clone() * (x.clone() - m.clone()),
                q.clone() * (i - later * i_prev - pos * o),
                q * (g - (one.clone() - f) * (m - x - one)),
            ]
        });
        meta.lookup("argmax: the maximum is at least every element", |meta| {
            let q = meta.query_selector(q_arg);
            let m = meta.query_advice(m, Rotation::cur());
            let x = meta.query_advice(x, Rotation::cur());
            table.byte_lookup(q, m - x)
        });
        meta.lookup("argmax: no element before the chosen one ties it", |meta| {
            let q = meta.query_selector(q_arg);
            let g = meta.query_advice(g, Rotation::cur());
            table.byte_lookup(q, g)
        });
        Self {
            x,
            m,
            o,
            f,
            i,
            g,
            first,
            last,
            pos,
            q_arg,
        }
    }

    /// Writes zeros into `m`, `f` and `i` at row 0 (the blank row before the first ArgMax row, which the gates
    /// read); ArgMax rows start at row 1.
    pub fn assign_blank_row(&self, a: &mut Assigner) {
        for column in [self.m, self.f, self.i] {
            a.advice(CellKind::Padding, column, 0, Fr::from(0));
        }
    }

    /// One row of elements `x` from `row`, `(position, cell)` in layout order (ties go to the first laid out).
    /// Returns the index cell (the output) and the next free row. Later cells are computed from the cells as
    /// written (a forged cell propagates).
    pub fn assign_row(
        &self,
        a: &mut Assigner,
        row: usize,
        x: &[(usize, AssignedValue)],
    ) -> Result<(AssignedValue, usize), Error> {
        let values: Vec<i64> = x.iter().map(|(_, c)| field::to_i64(&c.value).unwrap_or(0)).collect();
        let max = values.iter().copied().max().ok_or(Error::Synthesis)?;
        let chosen = values.iter().position(|&v| v == max).ok_or(Error::Synthesis)?;
        let (mut m_prev, mut f_prev, mut i_prev) = (Fr::from(0), Fr::from(0), Fr::from(0));
        let mut index = None;
        for (j, (pos, cell)) in x.iter().enumerate() {
            let at = row + j;
            let first = j == 0;
            a.enable(&self.q_arg, at)?;
            a.fixed(self.first, at, Fr::from(u64::from(first)));
            a.fixed(self.last, at, Fr::from(u64::from(j + 1 == x.len())));
            a.fixed(self.pos, at, Fr::from(*pos as u64));
            let later = |v: Fr| if first { Fr::from(0) } else { v };
            let xc = a.copy(CellKind::ArgMaxInput, self.x, at, cell);
            let m = a.advice(
                CellKind::ArgMaxMax,
                self.m,
                at,
                if first { field::from_i64(max) } else { m_prev },
            );
            let o = a.advice(CellKind::ArgMaxChoice, self.o, at, Fr::from(u64::from(j == chosen)));
            let f = a.advice(CellKind::ArgMaxChoice, self.f, at, later(f_prev) + o.value);
            let i = a.advice(
                CellKind::ArgMaxIndex,
                self.i,
                at,
                later(i_prev) + Fr::from(*pos as u64) * o.value,
            );
            let gap = (Fr::from(1) - f.value) * (m.value - xc.value - Fr::from(1));
            a.advice(CellKind::ArgMaxGap, self.g, at, gap);
            (m_prev, f_prev, i_prev) = (m.value, f.value, i.value);
            index = Some(i);
        }
        Ok((index.ok_or(Error::Synthesis)?, row + x.len()))
    }
}
