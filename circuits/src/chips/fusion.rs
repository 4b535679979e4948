//! Table activations fused into the requantization that feeds them (issue #16 item 2).
//!
//! A requantization through the clamp table looks up `(lo, q, clamp(q, lo, 127))`. When a table activation `f`
//! (Sigmoid, Tanh, GELU, …) is the only reader of a requantizing layer's int8 output, the circuit can look up
//! `(tag, q, f(clamp(q, lo, 127)))` instead, in entries the clamp table holds for that function: the layer's
//! requantization rows then output the activation directly and the table layer takes no row, no lookup and no
//! cell. The integers are the IR's (`f` applied to the clamped value), so the native engine is unchanged.
//!
//! Which layers fuse is a function of the model and the verifying key's parameters alone
//! ([`Fusion::of`]): a circuit with [`Chip::FusedTables`] and a clamp table fuses every table layer that reads a
//! [`Linear`] or [`Mul`] output read by nothing else, all of whose requantizations the clamp table
//! covers ([`covers`]). Each distinct `(function, lo)` gets its own tag, a positive integer (the plain int8 ranges
//! are tagged by their lower bounds −128 and 0), fixed per row in the requantization's `lo` column, so a prover
//! cannot swap the function; each adds `2^w` rows to the clamp table.

use std::collections::{BTreeMap, BTreeSet};

use super::clamp_table::covers;
use crate::model::{Op, QuantizedModel, ACT_MAX, ACT_MIN};
use crate::params::{Chip, CircuitParams};

/// One activation the clamp table holds entries for: `(tag, q, f(clamp(q, lo, 127)))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedActivation {
    /// The tag its rows look up: a positive integer, distinct from the plain ranges' −128 and 0.
    pub tag: i64,
    /// The lower clamp bound before the function: −128, or 0 when the producing layer has a fused ReLU.
    pub lo: i64,
    /// The function on the int8 domain (`values[x + 128]`).
    pub values: Vec<i8>,
}

impl FusedActivation {
    /// `f(clamp(q, lo, 127))`.
    pub fn apply(&self, q: i64) -> i64 {
        let x = q.clamp(self.lo, ACT_MAX);
        (self.values.get((x - ACT_MIN) as usize)).map_or(0, |&v| i64::from(v))
    }
}

/// Which table layers a circuit fuses, and the clamp-table entries that takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fusion {
    /// The clamp table's activation entries, in tag order.
    entries: Vec<FusedActivation>,
    /// Producing layer → its entry (an index into `entries`).
    producers: BTreeMap<usize, usize>,
    /// The fused table layers.
    tables: BTreeSet<usize>,
}

/// The `(producer, table)` layer pairs where a table layer is the only reader of a linear layer's or product's
/// output (whatever the layout; [`Fusion::of`] keeps those the clamp table covers).
pub fn candidates(model: &QuantizedModel) -> Vec<(usize, usize)> {
    let tensors = model.layers.len() + 1;
    let mut readers = vec![0usize; tensors];
    let mut read = |tensor: usize| {
        if let Some(count) = readers.get_mut(tensor) {
            *count += 1;
        }
    };
    for layer in &model.layers {
        match &layer.op {
            Op::Linear(lin) => (lin.groups.iter())
                .flat_map(|g| g.taps.iter().flatten())
                .for_each(|s| read(s.tensor)),
            Op::MaxPool(pool) => pool.windows.iter().flatten().for_each(|s| read(s.tensor)),
            Op::Table(table) => read(table.input),
            Op::Gather(sources) => sources.iter().for_each(|s| read(s.tensor)),
            Op::Mul(mul) => mul.operands.iter().flatten().for_each(|s| read(s.tensor)),
            Op::MatMul(matmul) => matmul.lhs.iter().chain(&matmul.rhs).for_each(|s| read(s.tensor)),
            Op::Softmax(softmax) => read(softmax.input),
            Op::LayerNorm(norm) => read(norm.input),
            Op::ArgMax(argmax) => read(argmax.input),
            Op::Embedding(embedding) => embedding.ids.iter().for_each(|s| read(s.tensor)),
        }
    }
    let mut pairs = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let Op::Table(table) = &layer.op else { continue };
        let Some(producer) = table.input.checked_sub(1) else {
            continue;
        };
        let requantizes = matches!(
            model.layers.get(producer).map(|l| &l.op),
            Some(Op::Linear(_) | Op::Mul(_) | Op::MatMul(_))
        );
        // A table reads each element once, so one reading layer means the table is the only reader of every element.
        if producer < index && requantizes && readers.get(table.input) == Some(&1) {
            pairs.push((producer, index));
        }
    }
    pairs
}

impl Fusion {
    /// The fusion of a circuit for `model` with layout `params` (none without [`Chip::FusedTables`] or a clamp
    /// table).
    pub fn of(model: &QuantizedModel, params: &CircuitParams) -> Self {
        if !params.has(Chip::FusedTables) || params.clamp_bits == 0 {
            return Self::default();
        }
        let candidates = candidates(model);
        let input_bits: Vec<u32> = (model.layers.iter())
            .enumerate()
            .map(|(i, l)| match &l.op {
                Op::Linear(lin) if candidates.iter().any(|&(p, _)| p == i) => model.input_bits(lin),
                _ => 0,
            })
            .collect();
        Self::from_candidates(model, params, &candidates, &input_bits)
    }

    /// [`Fusion::of`] from the model's [`candidates`], with the widest input of each layer ([`QuantizedModel::input_bits`]
    /// of a linear one) in `input_bits`, by index (the planner works both out once per model).
    pub fn from_candidates(
        model: &QuantizedModel,
        params: &CircuitParams,
        candidates: &[(usize, usize)],
        input_bits: &[u32],
    ) -> Self {
        let mut fusion = Self::default();
        if !params.has(Chip::FusedTables) || params.clamp_bits == 0 {
            return fusion;
        }
        for &(producer, index) in candidates {
            let (Some(producer_layer), Some(Op::Table(table))) =
                (model.layers.get(producer), model.layers.get(index).map(|l| &l.op))
            else {
                continue;
            };
            let (covered, lo) = match &producer_layer.op {
                Op::Linear(lin) => {
                    let Some(&bits) = input_bits.get(producer) else {
                        continue;
                    };
                    let out = lin.output_range();
                    let used = lin.groups.iter().flat_map(|g| g.outputs.iter().map(|&(_, k)| k));
                    let covered = (used.collect::<BTreeSet<_>>().into_iter()).all(|k| {
                        lin.kernels
                            .get(k)
                            .is_some_and(|k| covers(params.clamp_bits, &k.rescale_for(bits), out))
                    });
                    (covered, out.lo())
                }
                Op::Mul(mul) => (
                    covers(params.clamp_bits, &mul.rescale(), mul.output_range()),
                    mul.output_range().lo(),
                ),
                Op::MatMul(matmul) => (
                    covers(params.clamp_bits, &matmul.rescale(), matmul.output_range()),
                    matmul.output_range().lo(),
                ),
                _ => (false, 0),
            };
            if !covered {
                continue;
            }
            let entry = match (fusion.entries.iter()).position(|e| e.lo == lo && e.values == table.values) {
                Some(entry) => entry,
                None => {
                    fusion.entries.push(FusedActivation {
                        tag: fusion.entries.len() as i64 + 1,
                        lo,
                        values: table.values.clone(),
                    });
                    fusion.entries.len() - 1
                }
            };
            fusion.producers.insert(producer, entry);
            fusion.tables.insert(index);
        }
        fusion
    }

    /// The activation layer `producer`'s requantizations output, if it is fused.
    pub fn of_producer(&self, producer: usize) -> Option<&FusedActivation> {
        self.producers.get(&producer).and_then(|&e| self.entries.get(e))
    }

    /// Whether table layer `index` is fused into the layer it reads.
    pub fn fuses_table(&self, index: usize) -> bool {
        self.tables.contains(&index)
    }

    /// The fused table layers.
    pub fn tables(&self) -> &BTreeSet<usize> {
        &self.tables
    }

    /// The clamp table's activation entries, in tag order.
    pub fn entries(&self) -> &[FusedActivation] {
        &self.entries
    }

    /// Whether nothing is fused.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}
