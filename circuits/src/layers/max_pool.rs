//! A max pool: the maximum of each window as a chain of pairwise maxima on the max chip.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::max_pool;
use crate::error::CircuitProblem;
use crate::model::{Layer, MaxPool};
use crate::params::Chip;

impl LayerChip for MaxPool {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let rows: usize = self.windows.iter().map(|w| max_pool::rows(w.len())).sum();
        ctx.rows.pool += rows;
        // Two byte lookups per pairwise maximum.
        Ok(Planned {
            layout: "max",
            lookups: 2 * rows,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let chip = (ctx.config.max_pool.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::MaxPool))?;
        let mut out = Vec::with_capacity(self.windows.len());
        for window in &self.windows {
            let cells = window.iter().map(|s| ctx.cell(s)).collect::<Result<Vec<_>, _>>()?;
            let (max, next) = chip.assign(ctx.a, ctx.rows.pool, &cells)?;
            ctx.rows.pool = next;
            out.push(max);
        }
        Ok(out)
    }
}
