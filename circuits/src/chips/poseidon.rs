//! The input commitment in the circuit: a Poseidon sponge, one row per round, over the packed input cells (copied
//! in from the packing pass that also feeds the first layer).
//!
//! Columns: state `s_0..s_2` and S-box squares `sq_0..sq_2` (advice columns the requantization chip also uses, in
//! other rows) and round constants `rc_0..rc_2`. Writing `u_j = s_j + rc_j`, every S-box `u^5` is split as
//! `sq = u^2`, `u^5 = u · sq^2` so that no gate exceeds degree 5 (halo2-axiom's limit).
//! A chunk is absorbed from the row before its first round (the absorb row): the row holding the previous
//! permutation's output, or the sponge's first row. No round gate reads that row's squares or round constants, so
//! its `sq_0, sq_1` hold the message words `m_0, m_1` and its `rc_0, rc_1, rc_2` hold the absorb's `keep`, `mask`
//! and `init`; every cell is read at the current or the next row only.
//! - absorb (`q_absorb`): `s_0[+1] = keep · s_0 + m_0`, `s_1[+1] = keep · s_1 + mask · m_1`,
//!   `s_2[+1] = keep · s_2 + init`; the first chunk has `keep = 0, init = L · 2^64` (the capacity element), later
//!   ones `keep = 1, init = 0`; `mask = 0` where `m_1` is padding, so padding is zero by construction.
//! - full round (`q_full`):  `sq_j = u_j^2`, `s_i[+1] = Σ_j MDS_ij · u_j · sq_j^2`
//! - partial round (`q_partial`): `sq_0 = u_0^2`, `s_i[+1] = MDS_i0 · u_0 · sq_0^2 + Σ_{j>0} MDS_ij · u_j`

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector, VirtualCells},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::poseidon::{self as native, constants, is_full_round, RATE, ROUNDS, WIDTH};

/// Columns of the Poseidon chip.
#[derive(Clone, Debug)]
pub struct PoseidonConfig {
    state: [Column<Advice>; WIDTH],
    square: [Column<Advice>; WIDTH],
    rc: [Column<Fixed>; WIDTH],
    q_absorb: Selector,
    q_full: Selector,
    q_partial: Selector,
}

/// Rows the sponge takes for a message of `len` elements (the first row included).
pub fn rows(len: usize) -> usize {
    1 + len.div_ceil(RATE) * (ROUNDS + 1)
}

impl PoseidonConfig {
    /// Adds the absorb and round gates over the given `state` and `square` advice columns (shared with other
    /// chips, in other rows) and allocates the fixed columns.
    pub fn configure(
        meta: &mut ConstraintSystem<Fr>,
        state: [Column<Advice>; WIDTH],
        square: [Column<Advice>; WIDTH],
    ) -> Self {
        for c in [state[0], square[0], square[1]] {
            meta.enable_equality(c);
        }
        let rc = [(); WIDTH].map(|_| meta.fixed_column());
        let (q_absorb, q_full, q_partial) = (meta.selector(), meta.selector(), meta.selector());
        let mds = constants().mds;

        meta.create_gate("poseidon absorb", |meta| {
            let q = meta.query_selector(q_absorb);
            let [keep, mask, init] = rc.map(|c| meta.query_fixed(c, Rotation::cur()));
            let s = |meta: &mut VirtualCells<Fr>, j: usize, r| meta.query_advice(state[j], r);
            let m0 = meta.query_advice(square[0], Rotation::cur());
            let m1 = meta.query_advice(square[1], Rotation::cur());
            let added = [m0, mask * m1, init];
            (0..WIDTH)
                .map(|j| {
                    let next = s(meta, j, Rotation::next());
                    let cur = s(meta, j, Rotation::cur());
                    q.clone() * (next - keep.clone() * cur - added[j].clone())
                })
                .collect::<Vec<_>>()
        });
        for (name, selector, full) in [
            ("poseidon full round", q_full, true),
            ("poseidon partial round", q_partial, false),
        ] {
            meta.create_gate(name, |meta| {
                let q = meta.query_selector(selector);
                let boxed = if full { WIDTH } else { 1 };
                let u: Vec<_> = (0..WIDTH)
                    .map(|j| meta.query_advice(state[j], Rotation::cur()) + meta.query_fixed(rc[j], Rotation::cur()))
                    .collect();
                let sq: Vec<_> = (0..boxed)
                    .map(|j| meta.query_advice(square[j], Rotation::cur()))
                    .collect();
                let mut constraints: Vec<_> = (0..boxed)
                    .map(|j| q.clone() * (sq[j].clone() - u[j].clone() * u[j].clone()))
                    .collect();
                let t: Vec<_> = (0..WIDTH)
                    .map(|j| {
                        if j < boxed {
                            u[j].clone() * sq[j].clone() * sq[j].clone()
                        } else {
                            u[j].clone()
                        }
                    })
                    .collect();
                for i in 0..WIDTH {
                    let next = meta.query_advice(state[i], Rotation::next());
                    let mixed = (0..WIDTH)
                        .map(|j| t[j].clone() * Expression::Constant(mds[i][j]))
                        .reduce(|acc, e| acc + e)
                        .unwrap_or(Expression::Constant(Fr::ZERO));
                    constraints.push(q.clone() * (next - mixed));
                }
                constraints
            });
        }
        Self {
            state,
            square,
            rc,
            q_absorb,
            q_full,
            q_partial,
        }
    }

    /// Hashes `salt` and the `packed` input cells (copied in) from `row` (whose state cells are zeros that the
    /// first absorb reads, times `keep = 0`). Returns the cell holding the hash and the next free row.
    pub fn assign(
        &self,
        a: &mut Assigner,
        mut row: usize,
        salt: Fr,
        packed: &[AssignedValue],
    ) -> Result<(AssignedValue, usize), Error> {
        for column in self.state {
            a.advice(CellKind::Padding, column, row, Fr::ZERO);
        }
        row += 1;
        let message: Vec<Option<&AssignedValue>> = std::iter::once(None).chain(packed.iter().map(Some)).collect();
        let c = constants();
        let mut state = [Fr::ZERO, Fr::ZERO, native::capacity_element(message.len())];
        let mut last = None;
        for (k, chunk) in message.chunks(RATE).enumerate() {
            a.enable(&self.q_absorb, row - 1)?;
            let [keep, mask, init] = self.rc;
            a.fixed(keep, row - 1, if k == 0 { Fr::ZERO } else { Fr::ONE });
            a.fixed(mask, row - 1, if chunk.len() == RATE { Fr::ONE } else { Fr::ZERO });
            a.fixed(init, row - 1, if k == 0 { state[2] } else { Fr::ZERO });
            if k == 0 {
                state[2] = Fr::ZERO;
            }
            let mut absorbed = [Fr::ZERO; RATE];
            for (i, v) in chunk.iter().enumerate() {
                let cell = match v {
                    Some(source) => a.copy(CellKind::PackedInput, self.square[i], row - 1, source),
                    None => a.advice(CellKind::Salt, self.square[i], row - 1, salt),
                };
                absorbed[i] = cell.value;
            }
            if chunk.len() < RATE {
                a.advice(CellKind::Padding, self.square[1], row - 1, Fr::ZERO);
            }
            if k == 0 {
                state = [absorbed[0], absorbed[1], native::capacity_element(message.len())];
            } else {
                state = [state[0] + absorbed[0], state[1] + absorbed[1], state[2]];
            }
            for r in 0..=ROUNDS {
                let written: Vec<_> = (0..WIDTH)
                    .map(|j| a.advice(CellKind::PoseidonState, self.state[j], row, state[j]))
                    .collect();
                if r == ROUNDS {
                    // The next absorb carries on from the cells as written (a forged state propagates).
                    state = [written[0].value, written[1].value, written[2].value];
                    last = Some(written[0]);
                    break;
                }
                a.enable(
                    if is_full_round(r) {
                        &self.q_full
                    } else {
                        &self.q_partial
                    },
                    row,
                )?;
                let boxed = if is_full_round(r) { WIDTH } else { 1 };
                for (j, cell) in written.iter().enumerate() {
                    a.fixed(self.rc[j], row, c.round_constants[r][j]);
                    if j < boxed {
                        let u = cell.value + c.round_constants[r][j];
                        a.advice(CellKind::PoseidonState, self.square[j], row, u.square());
                    }
                }
                let current = [written[0].value, written[1].value, written[2].value];
                state = native::round(&current, r);
                row += 1;
            }
            row += 1;
        }
        Ok((last.ok_or(Error::Synthesis)?, row))
    }
}
