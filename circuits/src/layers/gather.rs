//! Data movement (Reshape, Flatten, Transpose, Concat): each output is the cell of its source. No rows, no
//! constraints: the next layer copies from the source cells themselves.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::error::CircuitProblem;
use crate::model::{Layer, Source};

impl LayerChip for Vec<Source> {
    fn plan(&self, _: &Layer, _: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        Ok(Planned {
            layout: "move",
            lookups: 0,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        self.iter().map(|s| ctx.cell(s)).collect()
    }
}
