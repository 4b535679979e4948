//! An embedding: one lookup per output element into the activation table, which holds the embedding's columns
//! under their own tags ([`crate::chips::table`]): row `(tag_j, id_p, out[p][j])`.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::table::embedding_tags;
use crate::error::CircuitProblem;
use crate::model::{Embedding, Layer};
use crate::params::Chip;

impl LayerChip for Embedding {
    fn plan(&self, layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let rows = layer.output_len();
        ctx.rows.table += rows;
        Ok(Planned {
            layout: "embedding",
            lookups: rows,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let chip = (ctx.config.table.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::Table))?;
        let first = *embedding_tags(ctx.model)
            .get(&ctx.index)
            .ok_or(CircuitProblem::MissingTable)?;
        let mut out = Vec::with_capacity(self.ids.len() * self.width);
        for id in &self.ids {
            let id = ctx.cell(id)?;
            for j in 0..self.width {
                let tag = first + j as u64;
                out.push(chip.assign_entry(ctx.a, ctx.rows.table, tag, &id, |x| self.entry(x, j))?);
                ctx.rows.table += 1;
            }
        }
        Ok(out)
    }
}
