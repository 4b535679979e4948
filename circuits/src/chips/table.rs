//! Lookup-table activations on the int8 domain (Sigmoid, Tanh, GELU, LeakyReLU, HardSwish, Clip, …).
//!
//! One three-column table holds every activation of the model: `(id, x, f_id(x))` for `x ∈ [−128, 127]`, plus the
//! row `(0, 0, 0)` that disabled rows look up. Row: `x` (copied in), `y`, and the fixed `id` of the layer's table.
//! Lookup: `(q · id, q · x, q · y) ∈ table`. The id is fixed, so the prover cannot pick another function; the lookup
//! also range-checks `x` to int8, so no value outside the table's domain can reach it.
//!
//! The same table holds each softmax's exponential table (numbered after the activations): `(id, d, exp[d + 255])`
//! for `d ∈ [−255, 0]`, which the softmax chip looks up from its own rows ([`crate::chips::softmax`]).
//!
//! And each embedding's table, one tag per column `j` of the embedding (numbered after the exponentials):
//! `(tag_j, id, E[id][j])` for every id of the vocabulary. An embedding row looks up `(tag_j, id, y)`: the fixed tag
//! picks the column, the copied id the row, so `y` can only be the table's value, and an id outside the vocabulary
//! has no entry at all.

use std::collections::HashMap;

use halo2_proofs::{
    circuit::{Layouter, Value},
    halo2curves::bn256::Fr,
    plonk::{Advice, Column, ConstraintSystem, Error, Fixed, Selector, TableColumn},
    poly::Rotation,
};

use crate::assign::{AssignedValue, Assigner, CellKind};
use crate::field;
use crate::model::{Op, QuantizedModel, Table, ACT_MAX, ACT_MIN, EXP_TABLE_LEN};

use std::collections::BTreeMap;

/// Columns of the activation-table chip.
#[derive(Clone, Debug)]
pub struct TableConfig {
    x: Column<Advice>,
    y: Column<Advice>,
    id: Column<Fixed>,
    q_table: Selector,
    table: [TableColumn; 3],
}

/// The distinct activation tables of a model, numbered from 1 in order of first use.
pub fn table_ids(model: &QuantizedModel) -> HashMap<Vec<i8>, u64> {
    let mut ids = HashMap::new();
    for layer in &model.layers {
        if let Op::Table(t) = &layer.op {
            let next = ids.len() as u64 + 1;
            ids.entry(t.values.clone()).or_insert(next);
        }
    }
    ids
}

/// The distinct exponential tables of the model's softmax layers, numbered after its activation tables in order of
/// first use.
pub fn exp_table_ids(model: &QuantizedModel) -> HashMap<Vec<i64>, u64> {
    let first = table_ids(model).len() as u64 + 1;
    let mut ids = HashMap::new();
    for layer in &model.layers {
        if let Op::Softmax(s) = &layer.op {
            let next = first + ids.len() as u64;
            ids.entry(s.exp.clone()).or_insert(next);
        }
    }
    ids
}

/// The first tag of each embedding layer's columns (by layer index): numbered after the exponential tables, one tag
/// per column of each embedding in layer order.
pub fn embedding_tags(model: &QuantizedModel) -> BTreeMap<usize, u64> {
    let mut next = table_ids(model).len() as u64 + exp_table_ids(model).len() as u64 + 1;
    let mut tags = BTreeMap::new();
    for (index, layer) in model.layers.iter().enumerate() {
        if let Op::Embedding(e) = &layer.op {
            tags.insert(index, next);
            next += e.width as u64;
        }
    }
    tags
}

/// Rows the lookup table of `model` fills.
pub fn table_rows(model: &QuantizedModel) -> usize {
    let embeddings: usize = (model.layers.iter())
        .map(|l| match &l.op {
            Op::Embedding(e) => e.table.len(),
            _ => 0,
        })
        .sum();
    1 + 256 * table_ids(model).len() + EXP_TABLE_LEN * exp_table_ids(model).len() + embeddings
}

impl TableConfig {
    /// Allocates the columns, the table and the lookup.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let [x, y] = [(); 2].map(|_| meta.advice_column());
        meta.enable_equality(x);
        meta.enable_equality(y);
        let id = meta.fixed_column();
        let q_table = meta.complex_selector();
        let table = [(); 3].map(|_| meta.lookup_table_column());
        meta.lookup("activation table", |meta| {
            let q = meta.query_selector(q_table);
            let id = meta.query_fixed(id, Rotation::cur());
            let x = meta.query_advice(x, Rotation::cur());
            let y = meta.query_advice(y, Rotation::cur());
            vec![(q.clone() * id, table[0]), (q.clone() * x, table[1]), (q * y, table[2])]
        });
        Self {
            x,
            y,
            id,
            q_table,
            table,
        }
    }

    /// The table's columns `(id, x, y)`, for chips that look up into it.
    pub fn columns(&self) -> [TableColumn; 3] {
        self.table
    }

    /// Fills the table with every activation and exponential table of `model`.
    pub fn load(&self, layouter: &mut impl Layouter<Fr>, model: &QuantizedModel) -> Result<(), Error> {
        let mut entries: Vec<(u64, Vec<i8>)> = table_ids(model).into_iter().map(|(v, id)| (id, v)).collect();
        entries.sort();
        let mut exps: Vec<(u64, Vec<i64>)> = exp_table_ids(model).into_iter().map(|(v, id)| (id, v)).collect();
        exps.sort();
        let embeddings = embedding_tags(model);
        layouter.assign_table(
            || "activations",
            |mut t| {
                let mut row = 0;
                let mut put = |row: usize, values: [Fr; 3]| -> Result<(), Error> {
                    for (column, v) in self.table.iter().zip(values) {
                        t.assign_cell(|| "activation", *column, row, || Value::known(v))?;
                    }
                    Ok(())
                };
                put(row, [Fr::from(0u64); 3])?;
                for (id, values) in &entries {
                    for (x, y) in (ACT_MIN..=ACT_MAX).zip(values) {
                        row += 1;
                        put(row, [Fr::from(*id), field::from_i64(x), field::from_i64(*y as i64)])?;
                    }
                }
                for (id, values) in &exps {
                    for (d, e) in (-(EXP_TABLE_LEN as i64) + 1..=0).zip(values) {
                        row += 1;
                        put(row, [Fr::from(*id), field::from_i64(d), field::from_i64(*e)])?;
                    }
                }
                for (&layer, &first) in &embeddings {
                    let Some(Op::Embedding(e)) = model.layers.get(layer).map(|l| &l.op) else {
                        continue;
                    };
                    for j in 0..e.width {
                        for id in 0..e.vocab() {
                            row += 1;
                            let y = e.entry(id as i64, j);
                            put(
                                row,
                                [Fr::from(first + j as u64), Fr::from(id as u64), field::from_i64(y)],
                            )?;
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// Looks `input` up under tag `tag` at `row`: the output cell holds `entry(x)` of the copied value `x`, which the
    /// lookup checks is the table's entry `(tag, x, y)` (an embedding's element: `tag` its column, `x` the token id).
    pub fn assign_entry(
        &self,
        a: &mut Assigner,
        row: usize,
        tag: u64,
        input: &AssignedValue,
        entry: impl Fn(i64) -> i64,
    ) -> Result<AssignedValue, Error> {
        a.enable(&self.q_table, row)?;
        a.fixed(self.id, row, Fr::from(tag));
        let x = a.copy(CellKind::EmbeddingId, self.x, row, input);
        let y = entry(field::to_i64(&x.value).unwrap_or(-1));
        Ok(a.advice(CellKind::EmbeddingOutput, self.y, row, field::from_i64(y)))
    }

    /// Applies `table` (numbered `id`) to `input` at `row`; returns the output cell.
    pub fn assign(
        &self,
        a: &mut Assigner,
        row: usize,
        id: u64,
        table: &Table,
        input: &AssignedValue,
    ) -> Result<AssignedValue, Error> {
        a.enable(&self.q_table, row)?;
        a.fixed(self.id, row, Fr::from(id));
        let x = a.copy(CellKind::TableInput, self.x, row, input);
        let y = table.apply(field::to_i64(&x.value).unwrap_or(0));
        Ok(a.advice(CellKind::TableOutput, self.y, row, field::from_i64(y)))
    }
}
