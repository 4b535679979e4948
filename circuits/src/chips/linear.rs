//! Linear layers (Gemm, Conv, average pools, residual Add): multiply-accumulate with the weights in fixed columns,
//! several output channels per row.
//!
//! A group's outputs read the same taps. A pass computes `lanes` outputs at once, `taps` inputs per row: row `j`
//! holds taps `x_{j,1} … x_{j,T}` (advice cells, copied in) and, for each lane `o`, the fixed weights `w_{o,t}`
//! and the running sum `acc_o`. Gate (per lane): `q_mac · (acc_o − cont · acc_o[−1] − Σ_t x_t · w_{o,t}) = 0`, with
//! `cont = 0` on the first row of a pass and `cont = 1` after. Padding taps are skipped; the slots left over in a
//! pass's last row hold zeros (padding cells) under zero weights. The bias is added by the requantization gate
//! (fixed offset). Weights and biases are fixed, so the verifying key (and the model id) commits to them. Several
//! taps per row is what a matrix–vector product (a dense layer, where Freivalds' test cannot help) needs when its
//! rows set `k`: `T` times fewer rows for `T − 1` more advice columns and `lanes · (T − 1)` more fixed ones.

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::{Linear, LinearGroup};

/// Columns of the multiply-accumulate chip.
#[derive(Clone, Debug)]
pub struct LinearConfig {
    /// One column per tap of a row.
    x: Vec<Column<Advice>>,
    acc: Vec<Column<Advice>>,
    /// `w[o][t]`: the weight of lane `o` for tap `t` of the row.
    w: Vec<Vec<Column<Fixed>>>,
    cont: Column<Fixed>,
    q_mac: Selector,
}

/// Bits of input words packed into one field element for the commitment (below the 254 bits of the field).
pub const PACK_BITS: u32 = 248;
/// int8 inputs packed into one field element (31 · 8 = 248 bits).
pub const PACK_BYTES: usize = 31;

/// Input words of `word_bits` bits packed into one field element: 31 int8 values, or 15 16-bit token ids.
pub fn pack_words(word_bits: u32) -> usize {
    (PACK_BITS / word_bits.clamp(1, PACK_BITS)) as usize
}

/// Rows packing `inputs` inputs takes.
pub fn pack_rows(inputs: usize) -> usize {
    inputs
}

/// Rows one group takes with `lanes` outputs per pass and `taps` inputs per row.
pub fn group_rows(group: &LinearGroup, lanes: usize, taps: usize) -> usize {
    group.taps.iter().flatten().count().div_ceil(taps.max(1)) * group.outputs.len().div_ceil(lanes)
}

/// Rows a linear layer takes.
pub fn rows(linear: &Linear, lanes: usize, taps: usize) -> usize {
    linear.groups.iter().map(|g| group_rows(g, lanes, taps)).sum()
}

impl LinearConfig {
    /// Allocates `lanes` accumulator lanes, `taps` input columns and the multiply-accumulate gate.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, lanes: usize, taps: usize) -> Self {
        let x: Vec<_> = (0..taps.max(1)).map(|_| meta.advice_column()).collect();
        for &c in &x {
            meta.enable_equality(c);
        }
        let acc: Vec<_> = (0..lanes).map(|_| meta.advice_column()).collect();
        for &c in &acc {
            meta.enable_equality(c);
        }
        let w: Vec<Vec<_>> = (0..lanes)
            .map(|_| x.iter().map(|_| meta.fixed_column()).collect())
            .collect();
        let cont = meta.fixed_column();
        let q_mac = meta.selector();
        meta.create_gate("multiply-accumulate", |meta| {
            let q = meta.query_selector(q_mac);
            let xs: Vec<_> = x.iter().map(|&c| meta.query_advice(c, Rotation::cur())).collect();
            let cont = meta.query_fixed(cont, Rotation::cur());
            (0..lanes)
                .map(|o| {
                    let acc_cur = meta.query_advice(acc[o], Rotation::cur());
                    let acc_prev = meta.query_advice(acc[o], Rotation::prev());
                    let products = xs
                        .iter()
                        .zip(&w[o])
                        .fold(Expression::Constant(Fr::ZERO), |sum, (x, &w)| {
                            sum + x.clone() * meta.query_fixed(w, Rotation::cur())
                        });
                    q.clone() * (acc_cur - cont.clone() * acc_prev - products)
                })
                .collect::<Vec<_>>()
        });
        Self { x, acc, w, cont, q_mac }
    }

    /// Input cells per row.
    pub fn taps(&self) -> usize {
        self.x.len()
    }

    /// Writes zeros into the accumulators of `row` (the row before the first pass, which its gate reads).
    pub fn assign_blank_row(&self, a: &mut Assigner, row: usize) {
        for &column in &self.acc {
            a.advice(CellKind::Padding, column, row, Fr::ZERO);
        }
    }

    /// Packs `inputs` (`word_bits`-bit words: int8 values, or token ids) for the commitment from `row`: for each
    /// run of [`pack_words`] inputs, lane 0 computes `P = Σ_i x_i · R^i` with `R = 2^word_bits` by Horner
    /// (`cont = R`, `w = 1`) while the other lanes stay zero.
    /// The inputs are written here for the first time (every later use copies these cells) and must be
    /// range-checked by the caller, which makes the packing injective. Returns the input cells, the packed cells
    /// and the next free row.
    pub fn assign_pack(
        &self,
        a: &mut Assigner,
        row: usize,
        inputs: &[Fr],
        word_bits: u32,
    ) -> Result<(Vec<AssignedValue>, Vec<AssignedValue>, usize), Error> {
        let x = self.x[0];
        let write = |a: &mut Assigner, i: usize, row: usize| a.advice(CellKind::Input, x, row, inputs[i]);
        self.pack(a, row, inputs.len(), word_bits, CellKind::PackedInput, write)
    }

    /// Packs the model's `outputs` into instance rows the same way ([`crate::public_inputs::pack_outputs`]): each
    /// output cell copied into lane 0's input column. The outputs are range-checked where they were computed.
    /// Returns the packed cells and the next free row.
    pub fn assign_pack_outputs(
        &self,
        a: &mut Assigner,
        row: usize,
        outputs: &[AssignedValue],
        word_bits: u32,
    ) -> Result<(Vec<AssignedValue>, usize), Error> {
        let x = self.x[0];
        let write = |a: &mut Assigner, i: usize, row: usize| a.copy(CellKind::OutputCopy, x, row, &outputs[i]);
        let (_, packed, row) = self.pack(a, row, outputs.len(), word_bits, CellKind::PackedOutput, write)?;
        Ok((packed, row))
    }

    /// The packing pass over `n` values that `write` puts into lane 0's input column (value `i` at a row); the
    /// running sums are cells of `sum_kind`. Returns the value cells, the packed cells and the next free row.
    fn pack(
        &self,
        a: &mut Assigner,
        mut row: usize,
        n: usize,
        word_bits: u32,
        sum_kind: CellKind,
        mut write: impl FnMut(&mut Assigner, usize, usize) -> AssignedValue,
    ) -> Result<(Vec<AssignedValue>, Vec<AssignedValue>, usize), Error> {
        let mut cells: Vec<Option<AssignedValue>> = vec![None; n];
        let words = pack_words(word_bits);
        let mut packed = Vec::with_capacity(n.div_ceil(words));
        let radix = Fr::from(1u64 << word_bits.min(32));
        let indices: Vec<usize> = (0..n).collect();
        for chunk in indices.chunks(words) {
            let mut sum = Fr::ZERO;
            let mut last = None;
            for (j, &i) in chunk.iter().rev().enumerate() {
                let cont = if j == 0 { Fr::ZERO } else { radix };
                a.enable(&self.q_mac, row)?;
                let x = write(a, i, row);
                for &column in &self.x[1..] {
                    a.advice(CellKind::Padding, column, row, Fr::ZERO);
                }
                a.fixed(self.cont, row, cont);
                for (o, column) in self.acc.iter().enumerate() {
                    for (t, &w) in self.w[o].iter().enumerate() {
                        a.fixed(w, row, if o == 0 && t == 0 { Fr::ONE } else { Fr::ZERO });
                    }
                    if o == 0 {
                        // Carry on from the cell as written (a forged running sum propagates, see `assign`).
                        let cell = a.advice(sum_kind, *column, row, sum * cont + x.value);
                        sum = cell.value;
                        last = Some(cell);
                    } else {
                        a.advice(CellKind::ProductSum, *column, row, Fr::ZERO);
                    }
                }
                cells[i] = Some(x);
                row += 1;
            }
            packed.push(last.ok_or(Error::Synthesis)?);
        }
        let cells = cells.into_iter().collect::<Option<Vec<_>>>().ok_or(Error::Synthesis)?;
        Ok((cells, packed, row))
    }

    /// Lays out one group from `row`: `taps` are the group's input cells (`None` for padding). Returns the
    /// accumulator cell of each of the group's outputs (in `group.outputs` order) and the next free row.
    pub fn assign_group(
        &self,
        a: &mut Assigner,
        mut row: usize,
        linear: &Linear,
        group: &LinearGroup,
        taps: &[Option<AssignedValue>],
    ) -> Result<(Vec<AssignedValue>, usize), Error> {
        let lanes = self.acc.len();
        let present: Vec<(usize, &AssignedValue)> = taps
            .iter()
            .enumerate()
            .filter_map(|(t, tap)| tap.as_ref().map(|c| (t, c)))
            .collect();
        let mut accumulators = Vec::with_capacity(group.outputs.len());
        for pass in group.outputs.chunks(lanes) {
            let kernels: Vec<_> = pass.iter().map(|&(_, k)| &linear.kernels[k]).collect();
            let mut sums = vec![Fr::ZERO; lanes];
            let mut last = Vec::new();
            for (j, row_taps) in present.chunks(self.x.len()).enumerate() {
                a.enable(&self.q_mac, row)?;
                // The row's taps, then zeros in the slots a pass's last row leaves over (under zero weights).
                let mut xs = Vec::with_capacity(self.x.len());
                for (slot, &column) in self.x.iter().enumerate() {
                    xs.push(match row_taps.get(slot) {
                        Some(&(t, tap)) => (Some(t), a.copy(CellKind::LayerInput, column, row, tap).value),
                        None => (None, a.advice(CellKind::Padding, column, row, Fr::ZERO).value),
                    });
                }
                a.fixed(self.cont, row, if j == 0 { Fr::ZERO } else { Fr::ONE });
                last.clear();
                for (o, sum) in sums.iter_mut().enumerate() {
                    let mut next = *sum * Fr::from(u64::from(j != 0));
                    for (&(t, x), &column) in xs.iter().zip(&self.w[o]) {
                        let w = match (t, kernels.get(o)) {
                            (Some(t), Some(k)) => field::from_i64(k.weights[t]),
                            _ => Fr::ZERO,
                        };
                        a.fixed(column, row, w);
                        next += x * w;
                    }
                    // Carry on from the cell as written (a forged running sum propagates, see `assign`).
                    let cell = a.advice(CellKind::ProductSum, self.acc[o], row, next);
                    *sum = cell.value;
                    last.push(cell);
                }
                row += 1;
            }
            accumulators.extend(last.into_iter().take(pass.len()));
        }
        Ok((accumulators, row))
    }
}
