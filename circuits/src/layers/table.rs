//! An activation table: one lookup per element into the model's activation tables.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::error::CircuitProblem;
use crate::model::{Layer, Table};
use crate::params::Chip;

impl LayerChip for Table {
    fn plan(&self, layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let rows = layer.output_len();
        ctx.rows.table += rows;
        Ok(Planned {
            layout: "table",
            lookups: rows,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
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
