//! A linear layer (Gemm/MatMul, Conv, average pool, residual Add): weighted sums on the multiply-accumulate chip,
//! or, for a convolution the planner picks, a matrix product checked with Freivalds' test in the second phase;
//! then one requantization per output.

use ff::Field;
use halo2_proofs::halo2curves::bn256::Fr;

use std::sync::Arc;

use super::{collect_outputs, AssignContext, KernelRows, LayerChip, PlanContext, Planned};
use crate::assign::AssignedValue;
use crate::chips::freivalds::{place_product, product_shape, product_windows, Windows};
use crate::chips::requantize::Accumulator;
use crate::error::CircuitProblem;
use crate::field;
use crate::model::{Layer, Linear};

/// A matrix product left for the second phase: `Y = W·X` with `X` and `Y` already assigned (the bias is added by
/// the requantization offset).
pub struct ProductCheck {
    /// `W`, one row per output channel.
    pub weights: Vec<Vec<i64>>,
    /// `X`, one row per tap (`None` for padding).
    pub x: Vec<Vec<Option<AssignedValue>>>,
    /// `Y`, the accumulator cells, one row per output channel.
    pub y: Vec<Vec<AssignedValue>>,
    /// The sliding windows `X` is evaluated through, when the circuit has a stride gate of their width.
    pub windows: Option<Windows>,
}

impl Linear {
    /// The range-check rows of each kernel's requantizations and the lookups of all outputs: from the planner's
    /// cache, or worked out (one rescale per kernel, whose accumulator bound sums its weights, not per output).
    fn kernel_rows(&self, ctx: &PlanContext<'_>) -> Result<Arc<KernelRows>, CircuitProblem> {
        let key = (ctx.index, ctx.params.limb_bits, ctx.params.clamp_bits);
        let cached = (ctx.kernel_rows).and_then(|cache| cache.lock().ok()?.get(&key).cloned());
        if let Some(rows) = cached {
            return Ok(rows);
        }
        let input_bits = (ctx.input_bits.get(ctx.index).copied()).unwrap_or_else(|| ctx.model.input_bits(self));
        let out = self.output_range();
        let rows: Vec<[usize; 3]> = (self.kernels.iter())
            .map(|k| ctx.requantization_rows(&k.rescale_for(input_bits), out))
            .collect();
        let mut lookups = 0;
        for group in &self.groups {
            for &(_, k) in &group.outputs {
                let r = rows.get(k).ok_or(CircuitProblem::MissingKernel(k))?;
                // A requantization through the clamp table has no output check and looks its output up once.
                lookups += r.iter().sum::<usize>() + usize::from(r[2] == 0);
            }
        }
        let rows = Arc::new(KernelRows { rows, lookups });
        if let Some(mut cache) = ctx.kernel_rows.and_then(|cache| cache.lock().ok()) {
            cache.insert(key, rows.clone());
        }
        Ok(rows)
    }
}

impl LayerChip for Linear {
    fn plan(&self, _: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem> {
        let freivalds = ctx.params.uses_freivalds(ctx.index);
        if freivalds {
            let computed;
            let shape = match ctx.shapes.and_then(|shapes| shapes.get(ctx.index)?.as_ref()) {
                Some(shape) => shape,
                None => {
                    computed = product_shape(self).ok_or(CircuitProblem::NotAProduct)?;
                    &computed
                }
            };
            let windows = ctx.windows.get(ctx.index).and_then(Option::as_ref);
            let windows = windows.filter(|w| ctx.params.freivalds_widths.contains(&w.width));
            place_product(
                &mut ctx.rows.freivalds,
                shape.kernels.len(),
                shape.taps,
                shape.positions,
                windows,
            );
        } else {
            ctx.rows.linear +=
                crate::chips::linear::rows(self, ctx.params.mac_lanes.max(1), ctx.params.mac_taps.max(1));
        }
        let kernel_rows = self.kernel_rows(ctx)?;
        let lookups = if ctx.requantization_placed {
            kernel_rows.lookups
        } else {
            let mut lookups = 0;
            for group in &self.groups {
                for &(_, k) in &group.outputs {
                    let rows = *kernel_rows.rows.get(k).ok_or(CircuitProblem::MissingKernel(k))?;
                    lookups += ctx.place_requantization_rows(rows);
                }
            }
            lookups
        };
        Ok(Planned {
            layout: if freivalds { "freivalds" } else { "mac" },
            lookups,
        })
    }

    fn assign(&self, layer: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem> {
        let mut out: Vec<Option<AssignedValue>> = vec![None; layer.output_len()];
        let range = self.output_range();
        let input_bits = ctx.model.input_bits(self);
        if ctx.freivalds {
            let shape = product_shape(self).ok_or(CircuitProblem::NotAProduct)?;
            let taps = self
                .groups
                .iter()
                .map(|g| {
                    g.taps
                        .iter()
                        .map(|t| t.as_ref().map(|s| ctx.cell(s)).transpose())
                        .collect()
                })
                .collect::<Result<Vec<Vec<_>>, _>>()?;
            let mut y = vec![Vec::with_capacity(shape.positions); shape.kernels.len()];
            for (group, taps) in self.groups.iter().zip(&taps) {
                for (column, &(o, k)) in y.iter_mut().zip(&group.outputs) {
                    let kernel = self.kernels.get(k).ok_or(CircuitProblem::MissingKernel(k))?;
                    let acc = taps.iter().zip(&kernel.weights).fold(Fr::ZERO, |sum, (x, &w)| {
                        sum + x.map_or(Fr::ZERO, |x| x.value * field::from_i64(w))
                    });
                    let (output, acc) =
                        ctx.requantize(&kernel.rescale_for(input_bits), range, Accumulator::Witness(acc))?;
                    column.push(acc);
                    *out.get_mut(o).ok_or(CircuitProblem::MissingOutput(o))? = Some(output);
                }
            }
            ctx.products.push(ProductCheck {
                weights: (shape.kernels.iter())
                    .map(|&k| {
                        let kernel = self.kernels.get(k).ok_or(CircuitProblem::MissingKernel(k))?;
                        Ok(kernel.weights.clone())
                    })
                    .collect::<Result<_, CircuitProblem>>()?,
                x: (0..shape.taps).map(|t| taps.iter().map(|g| g[t]).collect()).collect(),
                y,
                windows: product_windows(self).filter(|w| ctx.freivalds_widths.contains(&w.width)),
            });
        } else {
            for group in &self.groups {
                let taps = (group.taps.iter())
                    .map(|t| t.as_ref().map(|s| ctx.cell(s)).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                let (accumulators, next) =
                    ctx.config
                        .linear
                        .assign_group(ctx.a, ctx.rows.linear, self, group, &taps)?;
                ctx.rows.linear = next;
                for (&(o, k), acc) in group.outputs.iter().zip(&accumulators) {
                    let kernel = self.kernels.get(k).ok_or(CircuitProblem::MissingKernel(k))?;
                    let (y, _) = ctx.requantize(&kernel.rescale_for(input_bits), range, Accumulator::Copy(acc))?;
                    *out.get_mut(o).ok_or(CircuitProblem::MissingOutput(o))? = Some(y);
                }
            }
        }
        collect_outputs(out)
    }
}
