//! Circuit size: rows each column group uses, columns, lookups, and the smallest `k` that fits them.

use halo2_proofs::{halo2curves::bn256::Fr, plonk::ConstraintSystem};
use serde::{Deserialize, Serialize};

use crate::arith::LIMB_BITS;
use crate::chips::{dense, poseidon, range_check, requantize};
use crate::circuit::{configure, CircuitParams};
use crate::model::QuantizedModel;

/// Largest `k` zkinfer will lay a circuit out at.
pub const MAX_K: u32 = 24;

/// The size of a model's circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Rows of the Poseidon sponge (input commitment).
    pub poseidon_rows: usize,
    /// Rows of the multiply-accumulate columns.
    pub dense_rows: usize,
    /// Rows of the requantization columns (one per channel, plus the nonce).
    pub requant_rows: usize,
    /// Rows of the range-check column.
    pub range_rows: usize,
    /// Rows of the byte lookup table.
    pub table_rows: usize,
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
}

impl Layout {
    /// The largest number of rows any column group uses.
    pub fn used_rows(&self) -> usize {
        [
            self.poseidon_rows,
            self.dense_rows,
            self.requant_rows,
            self.range_rows,
            self.table_rows,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Works out the layout of `model` without assigning anything.
pub fn plan(model: &QuantizedModel, params: CircuitParams) -> Result<Layout, String> {
    model.validate()?;
    let mut cs = ConstraintSystem::<Fr>::default();
    configure(&mut cs, params);
    let lanes = params.mac_lanes.max(1);
    let inputs = model.input_len();
    let mut range_rows = inputs * range_check::rows(1);
    let mut requant_rows = 1;
    for layer in &model.layers {
        for c in 0..layer.out_features {
            range_rows += requantize::range_rows(layer, c);
        }
        requant_rows += layer.out_features;
    }
    let mut layout = Layout {
        poseidon_rows: 1 + poseidon::rows(inputs + 1),
        dense_rows: 1 + model.layers.iter().map(|l| dense::rows(l, lanes)).sum::<usize>(),
        requant_rows,
        range_rows,
        table_rows: 1 << LIMB_BITS,
        blinding_rows: cs.blinding_factors() + 1,
        advice_columns: cs.num_advice_columns(),
        fixed_columns: cs.num_fixed_columns() + cs.num_selectors(),
        lookups: cs.lookups().len(),
        degree: cs.degree(),
        k: 0,
    };
    let needed = (layout.used_rows() + layout.blinding_rows).max(cs.minimum_rows());
    let k = needed.next_power_of_two().trailing_zeros();
    if k > MAX_K {
        return Err(format!(
            "the circuit needs 2^{k} rows, more than the supported 2^{MAX_K}"
        ));
    }
    layout.k = k;
    Ok(layout)
}
