//! Linear layers: multiply-accumulate with the weights in fixed columns, several output channels per row.
//!
//! A pass computes `lanes` channels at once: row `j` holds input `x_j` (one advice cell, copied in) and, for each
//! lane `o`, the fixed weight `w_o = W[c_o][j]` and the running sum `acc_o`.
//! Gate (per lane): `q_mac · (acc_o − cont · acc_o[−1] − x · w_o − b_o) = 0`,
//! with `cont = 0, b_o = bias[c_o]` on the first row of a pass and `cont = 1, b_o = 0` after.
//! Weights and biases are fixed, so the verifying key (and the model id) commits to them.

use ff::Field;
use halo2_proofs::{
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Fixed, Selector},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::DenseLayer;

/// Columns of the multiply-accumulate chip.
#[derive(Clone, Debug)]
pub struct DenseConfig {
    x: Column<Advice>,
    acc: Vec<Column<Advice>>,
    w: Vec<Column<Fixed>>,
    b: Vec<Column<Fixed>>,
    cont: Column<Fixed>,
    q_mac: Selector,
}

/// Rows a layer takes with `lanes` channels per pass.
pub fn rows(layer: &DenseLayer, lanes: usize) -> usize {
    layer.in_features * layer.out_features.div_ceil(lanes)
}

impl DenseConfig {
    /// Allocates `lanes` accumulator lanes and the multiply-accumulate gate.
    pub fn configure(meta: &mut ConstraintSystem<Fr>, lanes: usize) -> Self {
        let x = meta.advice_column();
        meta.enable_equality(x);
        let acc: Vec<_> = (0..lanes).map(|_| meta.advice_column()).collect();
        for &c in &acc {
            meta.enable_equality(c);
        }
        let w: Vec<_> = (0..lanes).map(|_| meta.fixed_column()).collect();
        let b: Vec<_> = (0..lanes).map(|_| meta.fixed_column()).collect();
        let cont = meta.fixed_column();
        let q_mac = meta.selector();
        meta.create_gate("multiply-accumulate", |meta| {
            let q = meta.query_selector(q_mac);
            let x = meta.query_advice(x, Rotation::cur());
            let cont = meta.query_fixed(cont, Rotation::cur());
            (0..lanes)
                .map(|o| {
                    let acc_cur = meta.query_advice(acc[o], Rotation::cur());
                    let acc_prev = meta.query_advice(acc[o], Rotation::prev());
                    let w = meta.query_fixed(w[o], Rotation::cur());
                    let b = meta.query_fixed(b[o], Rotation::cur());
                    q.clone() * (acc_cur - cont.clone() * acc_prev - x.clone() * w - b)
                })
                .collect::<Vec<_>>()
        });
        Self {
            x,
            acc,
            w,
            b,
            cont,
            q_mac,
        }
    }

    /// Writes zeros into the accumulators of `row` (the row before the first pass, which its gate reads).
    pub fn assign_blank_row(&self, a: &mut Assigner, row: usize) {
        for &column in &self.acc {
            a.advice(CellKind::Padding, column, row, Fr::ZERO);
        }
    }

    /// Lays out `layer` on `inputs` from `row`; returns the accumulator cell of every channel and the next free row.
    pub fn assign(
        &self,
        a: &mut Assigner,
        mut row: usize,
        layer: &DenseLayer,
        inputs: &[AssignedValue],
    ) -> Result<(Vec<AssignedValue>, usize), Error> {
        let lanes = self.acc.len();
        let mut outputs = Vec::with_capacity(layer.out_features);
        for first in (0..layer.out_features).step_by(lanes) {
            let mut sums = vec![Fr::ZERO; lanes];
            let mut last = Vec::new();
            for (j, input) in inputs.iter().enumerate() {
                a.enable(&self.q_mac, row)?;
                let x = a.copy(CellKind::LayerInput, self.x, row, input);
                a.fixed(self.cont, row, if j == 0 { Fr::ZERO } else { Fr::ONE });
                last.clear();
                for (o, sum) in sums.iter_mut().enumerate() {
                    let c = first + o;
                    let (w, b) = if c < layer.out_features {
                        (
                            field::from_i64(layer.weight(c, j)),
                            if j == 0 {
                                field::from_i64(layer.bias[c])
                            } else {
                                Fr::ZERO
                            },
                        )
                    } else {
                        (Fr::ZERO, Fr::ZERO)
                    };
                    a.fixed(self.w[o], row, w);
                    a.fixed(self.b[o], row, b);
                    *sum = *sum * Fr::from(u64::from(j != 0)) + x.value * w + b;
                    last.push(a.advice(CellKind::ProductSum, self.acc[o], row, *sum));
                }
                row += 1;
            }
            outputs.extend(last.into_iter().take(layer.out_features - first));
        }
        Ok((outputs, row))
    }
}
