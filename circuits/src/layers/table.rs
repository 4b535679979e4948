//! An activation table: one lookup per element into the model's activation tables, or, fused into the clamp
//! table ([`crate::chips::fusion`]), nothing: its outputs are the cells its input's requantizations output.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::error::CircuitProblem;
use crate::model::{Layer, Table};
use crate::params::Chip;

impl LayerChip for Table {
    fn plan(&self, layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        if ctx.fusion.fuses_table(ctx.index) {
            return Ok(Planned {
                layout: "fused",
                lookups: 0,
            });
        }
        let rows = layer.output_len();
        ctx.rows.table += rows;
        Ok(Planned {
            layout: "table",
            lookups: rows,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        if ctx.fusion.fuses_table(ctx.index) {
            // The requantization rows of the input already output the activation.
            return ctx.tensors.get(self.input).cloned().ok_or(CircuitProblem::MissingTable);
        }
        let chip = (ctx.config.table.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::Table))?;
        let id = *ctx.tables.get(&self.values).ok_or(CircuitProblem::MissingTable)?;
        let input = ctx.tensors.get(self.input).ok_or(CircuitProblem::MissingTable)?;
        let mut out = Vec::with_capacity(input.len());
        for x in input {
            out.push(chip.assign(ctx.a, ctx.rows.table, id, self, x)?);
            ctx.rows.table += 1;
        }
        Ok(out)
    }
}
