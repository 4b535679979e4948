//! An ArgMax: one ArgMax-chip row per element ([`crate::chips::argmax`]), each row's elements in order, or in
//! reverse when ties go to the last maximum; its output is each row's index cell.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::error::CircuitProblem;
use crate::model::{ArgMax, Layer};
use crate::params::Chip;

impl LayerChip for ArgMax {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let elements = ctx.model.tensor_len(self.input);
        ctx.rows.argmax += elements;
        // Two byte lookups per element.
        Ok(Planned {
            layout: "argmax",
            lookups: 2 * elements,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let chip = (ctx.config.argmax.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::ArgMax))?;
        let input = ctx.tensors.get(self.input).ok_or(CircuitProblem::MissingTable)?;
        let mut out = Vec::with_capacity(input.len() / self.row_len.max(1));
        for row in input.chunks(self.row_len.max(1)) {
            let mut elements: Vec<(usize, AssignedValue)> = row.iter().copied().enumerate().collect();
            if self.select_last_index {
                elements.reverse();
            }
            let (index, next) = chip.assign_row(ctx.a, ctx.rows.argmax, &elements)?;
            ctx.rows.argmax = next;
            out.push(index);
        }
        Ok(out)
    }
}
