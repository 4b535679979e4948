//! A layer normalization: per row, the layer-norm chip's element rows and root row ([`crate::chips::norm`]), the
//! range checks of the inverse square root and its two slacks, then one requantization of each product `c·q`
//! (copied into the accumulator column).

use super::{AssignContext, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::norm::NormConfig;
use crate::chips::range_check::Range;
use crate::chips::requantize::Accumulator;
use crate::error::CircuitProblem;
use crate::model::{Layer, LayerNorm};
use crate::params::Chip;

impl LayerNorm {
    /// The range checks of each row, in order: the root, the lower slack, the upper slack.
    fn checks(&self) -> [Range; 3] {
        let slack = Range::Unsigned {
            bits: self.slack_bits(),
        };
        [Range::Unsigned { bits: self.root_bits }, slack, slack]
    }
}

impl LayerChip for LayerNorm {
    fn plan(&self, layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let n = self.row_len.max(1);
        let checks = self.checks().map(|c| c.rows(ctx.params.limb_bits));
        let requantization = ctx.requantization_rows(&self.rescale(), self.output_range());
        let mut lookups = 0;
        for _ in 0..self.rows(layer.output_len()) {
            ctx.rows.norm += NormConfig::rows(n);
            for rows in checks {
                if !ctx.requantization_placed {
                    ctx.rows.range.place(rows);
                }
                lookups += rows;
            }
            for _ in 0..n {
                lookups += ctx.place_requantization_rows(requantization);
            }
        }
        Ok(Planned {
            layout: "layernorm",
            lookups,
        })
    }

    fn assign(&self, _: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let config = ctx.config;
        let chip = (config.norm.as_ref()).ok_or(CircuitProblem::MissingChip(Chip::LayerNorm))?;
        let first = crate::model::Source {
            tensor: self.input,
            index: 0,
        };
        let input = ctx
            .tensors
            .get(self.input)
            .ok_or(CircuitProblem::MissingSource(first))?;
        let n = self.row_len.max(1);
        let checks = self.checks();
        let (rescale, range) = (self.rescale(), self.output_range());
        let mut outputs = Vec::with_capacity(input.len());
        for cells in input.chunks(n) {
            let (row, next) = chip.assign_row(ctx.a, ctx.rows.norm, self, cells)?;
            ctx.rows.norm = next;
            for (cell, check) in [&row.root, &row.lower, &row.upper].into_iter().zip(checks) {
                config.range.check(ctx.a, &mut ctx.rows.range, cell, check)?;
            }
            for product in &row.products {
                let (y, _) = ctx.requantize(&rescale, range, Accumulator::Copy(product))?;
                outputs.push(y);
            }
        }
        Ok(outputs)
    }
}
