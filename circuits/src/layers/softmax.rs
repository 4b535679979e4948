//! A softmax: per row, the maximum of the kept elements as a chain on the max chip, then one softmax-chip row per
//! element ([`crate::chips::softmax`]), then the range checks that make its division exact: each output in
//! `[0, 2^7)`, each remainder `r` and bound `2S − 1 − r` in `[0, 2^B)`.

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::max_pool;
use crate::chips::range_check::Range;
use crate::chips::table::exp_table_ids;
use crate::error::CircuitProblem;
use crate::model::{Layer, Softmax, PROBABILITY_BITS};
use crate::params::Chip;

impl Softmax {
    /// The range checks of each element, in order: output, remainder, bound.
    fn checks(&self) -> [Range; 3] {
        let remainder = Range::Unsigned {
            bits: self.remainder_bits(),
        };
        [Range::Unsigned { bits: PROBABILITY_BITS }, remainder, remainder]
    }
}

impl LayerChip for Softmax {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let n = self.row_len.max(1);
        let checks = self.checks().map(|c| c.rows(ctx.params.limb_bits));
        let mut lookups = 0;
        for keep in self.keep.chunks(n) {
            let kept = keep.iter().filter(|&&k| k).count();
            let pairs = max_pool::rows(kept);
            ctx.rows.pool += pairs;
            ctx.rows.softmax += keep.len();
            // Two byte lookups per pairwise maximum, one exponential per kept element.
            lookups += 2 * pairs + kept;
            for _ in keep {
                for rows in checks {
                    if !ctx.requantization_placed {
                        ctx.rows.range.place(rows);
                    }
                    lookups += rows;
                }
            }
        }
        Ok(Planned {
            layout: "softmax",
            lookups,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let config = ctx.config;
        let chip = (config.softmax.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::Softmax))?;
        let pool = (config.max_pool.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::MaxPool))?;
        let id = *exp_table_ids(ctx.model)
            .get(&self.exp)
            .ok_or(CircuitProblem::MissingTable)?;
        let input = ctx.tensors.get(self.input).ok_or(CircuitProblem::MissingTable)?;
        let n = self.row_len.max(1);
        let [output, remainder, _] = self.checks();
        let mut outputs = Vec::with_capacity(input.len());
        for (cells, keep) in input.chunks(n).zip(self.keep.chunks(n)) {
            let kept: Vec<AssignedValue> = (cells.iter().zip(keep)).filter(|(_, &k)| k).map(|(c, _)| *c).collect();
            let (max, next) = pool.assign(ctx.a, ctx.rows.pool, &kept)?;
            ctx.rows.pool = next;
            let x: Vec<Option<AssignedValue>> = (cells.iter().zip(keep)).map(|(c, &k)| k.then_some(*c)).collect();
            let (row, next) = chip.assign_row(ctx.a, ctx.rows.softmax, self, id, &x, &max)?;
            ctx.rows.softmax = next;
            for (p, bounds) in row.outputs.iter().zip(row.remainders.chunks(2)) {
                config.range.check(ctx.a, &mut ctx.rows.range, p, output)?;
                for r in bounds {
                    config.range.check(ctx.a, &mut ctx.rows.range, r, remainder)?;
                }
            }
            outputs.extend(row.outputs);
        }
        Ok(outputs)
    }
}
