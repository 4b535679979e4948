//! A matrix product of two activations: each output's accumulator `Σ_k A[i,k]·B[k,j]` is a witness in the next
//! requantization row, and the whole product is checked in the second phase by the Freivalds chip's test for two
//! witnessed operands ([`crate::chips::freivalds::bilinear`]): `n·p + m·p + m·n` rows per product instead of the
//! `m·n·p` products a multiply-accumulate would take.

use ff::Field;
use halo2_proofs::halo2curves::bn256::Fr;

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::freivalds::bilinear;
use crate::chips::requantize::Accumulator;
use crate::error::CircuitProblem;
use crate::model::{Layer, MatMul};
use crate::params::Chip;

/// A product of two activations left for the second phase: `C = A·B`, every cell already assigned (`C` the
/// accumulator cells).
pub struct MatMulCheck {
    /// `A`, `m×n`.
    pub lhs: Vec<Vec<AssignedValue>>,
    /// `B`, `n×p`.
    pub rhs: Vec<Vec<AssignedValue>>,
    /// `C`, `m×p`.
    pub out: Vec<Vec<AssignedValue>>,
}

impl LayerChip for MatMul {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let (m, n, p) = (self.rows, self.inner, self.columns);
        let requantization = ctx.requantization_rows(&self.rescale(), self.output_range());
        let mut lookups = 0;
        for _ in 0..self.products() {
            bilinear::place_product(&mut ctx.rows.freivalds, m, n, p);
            for _ in 0..m * p {
                lookups += ctx.place_requantization_rows(requantization);
            }
        }
        Ok(Planned {
            layout: "matmul",
            lookups,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        if !ctx.config.freivalds.as_ref().is_some_and(|f| f.has_dot()) {
            return Err(CircuitProblem::MissingChip(Chip::MatMul));
        }
        let (m, n, p) = (self.rows, self.inner, self.columns);
        let (rescale, range) = (self.rescale(), self.output_range());
        let mut outputs = Vec::with_capacity(self.output_len());
        for product in self.each() {
            let cells = |sources: &[crate::model::Source], width: usize| {
                (sources.chunks_exact(width))
                    .map(|row| row.iter().map(|s| ctx.cell(s)).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()
            };
            let lhs = cells(product.lhs, n)?;
            let rhs = cells(product.rhs, p)?;
            let mut out = Vec::with_capacity(m);
            for a in &lhs {
                let mut row = Vec::with_capacity(p);
                for j in 0..p {
                    let acc = (a.iter().zip(&rhs)).fold(Fr::ZERO, |sum, (x, b)| sum + x.value * b[j].value);
                    let (y, acc) = ctx.requantize(&rescale, range, Accumulator::Witness(acc))?;
                    row.push(acc);
                    outputs.push(y);
                }
                out.push(row);
            }
            ctx.matmuls.push(MatMulCheck { lhs, rhs, out });
        }
        Ok(outputs)
    }
}
