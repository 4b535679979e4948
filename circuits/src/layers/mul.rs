//! An elementwise product of two activations: one row of the product chip per output (`z = a · b`, the operands
//! copied from their cells), then one requantization of `z` (copied into the accumulator column).

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::requantize::Accumulator;
use crate::error::CircuitProblem;
use crate::model::{Layer, Mul};
use crate::params::Chip;

impl LayerChip for Mul {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        // One rescale for every output: its range checks are worked out once.
        let rows = ctx.requantization_rows(&self.rescale(), self.output_range());
        let mut lookups = 0;
        for _ in &self.operands {
            ctx.rows.product += 1;
            lookups += ctx.place_requantization_rows(rows);
        }
        Ok(Planned { layout: "mul", lookups })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let chip = (ctx.config.product.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::Product))?;
        let (rescale, range) = (self.rescale(), self.output_range());
        let mut out = Vec::with_capacity(self.operands.len());
        for [a, b] in &self.operands {
            let (a, b) = (ctx.cell(a)?, ctx.cell(b)?);
            let z = chip.assign(ctx.a, ctx.rows.product, &a, &b)?;
            ctx.rows.product += 1;
            let (y, _) = ctx.requantize(&rescale, range, Accumulator::Copy(&z))?;
            out.push(y);
        }
        Ok(out)
    }
}
