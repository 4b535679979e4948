//! Circuit size: rows each column group uses, per-layer costs, columns, lookups, and the smallest `k` that fits.

use halo2_proofs::{halo2curves::bn256::Fr, plonk::ConstraintSystem};
use serde::{Deserialize, Serialize};

use crate::arith::LIMB_BITS;
use crate::chips::{linear, max_pool, poseidon, range_check, requantize, table};
use crate::circuit::{configure, CircuitParams};
use crate::model::{Op, QuantizedModel};

/// Largest `k` zkinfer will lay a circuit out at.
pub const MAX_K: u32 = 24;

/// What one layer costs in the circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// ONNX operator(s).
    pub op_type: String,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Rows in the layer's main column group (multiply-accumulate, max, or table columns; 0 for data moves).
    pub rows: usize,
    /// Rows it adds to the requantization columns.
    pub requant_rows: usize,
    /// Rows it adds to the range-check column.
    pub range_rows: usize,
    /// Lookups it performs (range-check limbs, max differences, table lookups).
    pub lookups: usize,
}

/// The size of a model's circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Rows of the Poseidon sponge (input commitment).
    pub poseidon_rows: usize,
    /// Rows of the multiply-accumulate columns.
    pub linear_rows: usize,
    /// Rows of the requantization columns (one per linear output, plus the nonce).
    pub requant_rows: usize,
    /// Rows of the range-check column.
    pub range_rows: usize,
    /// Rows of the max-pool columns.
    pub pool_rows: usize,
    /// Rows of the activation-table columns.
    pub table_rows: usize,
    /// Rows of the largest lookup table (bytes, or the activation tables).
    pub lookup_table_rows: usize,
    /// Rows reserved for blinding at the end of every column.
    pub blinding_rows: usize,
    /// Advice columns.
    pub advice_columns: usize,
    /// Fixed columns (selectors included).
    pub fixed_columns: usize,
    /// Lookup arguments.
    pub lookups: usize,
    /// Degree of the constraint system.
    pub degree: usize,
    /// log2 of the number of rows.
    pub k: u32,
    /// Per-layer costs, in order.
    pub layers: Vec<LayerCost>,
}

impl Layout {
    /// The largest number of rows any column group uses.
    pub fn used_rows(&self) -> usize {
        [
            self.poseidon_rows,
            self.linear_rows,
            self.requant_rows,
            self.range_rows,
            self.pool_rows,
            self.table_rows,
            self.lookup_table_rows,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Works out the layout of `model` without assigning anything.
pub fn plan(model: &QuantizedModel, params: CircuitParams) -> Result<Layout, String> {
    model.validate()?;
    let needed = CircuitParams::for_model(model);
    if (needed.max_pool && !params.max_pool) || (needed.tables && !params.tables) {
        return Err("the circuit parameters lack a chip the model uses".into());
    }
    let mut cs = ConstraintSystem::<Fr>::default();
    configure(&mut cs, params);
    let lanes = params.mac_lanes.max(1);
    let inputs = model.input_len();
    let mut layers = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let mut cost = LayerCost {
            name: layer.name.clone(),
            op_type: layer.op_type.clone(),
            output_shape: layer.output_shape.clone(),
            rows: 0,
            requant_rows: 0,
            range_rows: 0,
            lookups: 0,
        };
        match &layer.op {
            Op::Linear(lin) => {
                cost.rows = linear::rows(lin, lanes);
                for group in &lin.groups {
                    for &(_, k) in &group.outputs {
                        let rows = requantize::range_rows(&lin.kernels[k], lin.activation);
                        cost.range_rows += rows;
                        cost.lookups += rows;
                        cost.requant_rows += 1;
                    }
                }
            }
            Op::MaxPool(pool) => {
                cost.rows = pool.windows.iter().map(|w| max_pool::rows(w.len())).sum();
                cost.lookups = 2 * cost.rows;
            }
            Op::Table(_) => {
                cost.rows = layer.output_len();
                cost.lookups = cost.rows;
            }
            Op::Gather(_) => {}
        }
        layers.push(cost);
    }
    let sum = |f: fn(&LayerCost) -> usize, op: fn(&Op) -> bool| {
        layers
            .iter()
            .zip(&model.layers)
            .filter(|(_, l)| op(&l.op))
            .map(|(c, _)| f(c))
            .sum::<usize>()
    };
    let mut layout = Layout {
        poseidon_rows: 1 + poseidon::rows(inputs + 1),
        linear_rows: 1 + sum(|c| c.rows, |op| matches!(op, Op::Linear(_))),
        requant_rows: 1 + sum(|c| c.requant_rows, |_| true),
        range_rows: inputs * range_check::rows(1) + sum(|c| c.range_rows, |_| true),
        pool_rows: sum(|c| c.rows, |op| matches!(op, Op::MaxPool(_))),
        table_rows: sum(|c| c.rows, |op| matches!(op, Op::Table(_))),
        lookup_table_rows: (1 << LIMB_BITS).max(if params.tables { table::table_rows(model) } else { 0 }),
        blinding_rows: cs.blinding_factors() + 1,
        advice_columns: cs.num_advice_columns(),
        fixed_columns: cs.num_fixed_columns() + cs.num_selectors(),
        lookups: cs.lookups().len(),
        degree: cs.degree(),
        k: 0,
        layers,
    };
    let needed_rows = (layout.used_rows() + layout.blinding_rows).max(cs.minimum_rows());
    let k = needed_rows.next_power_of_two().trailing_zeros();
    if k > MAX_K {
        return Err(format!(
            "the circuit needs 2^{k} rows, more than the supported 2^{MAX_K}"
        ));
    }
    layout.k = k;
    Ok(layout)
}
