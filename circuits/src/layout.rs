//! Circuit size: rows each column group uses, per-layer costs, columns, lookups, and the smallest `k` that fits.

use halo2_proofs::{halo2curves::bn256::Fr, plonk::ConstraintSystem};
use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::chips::range_check::{Range, RangeTable};
use crate::chips::{freivalds, linear, poseidon, table};
use crate::circuit::configure;
use crate::column_rows::ColumnRows;
use crate::error::{CircuitError, CircuitProblem};
use crate::layers::{plan_layer, Cursors, PlanContext};
use crate::model::{Op, QuantizedModel};
use crate::params::{Chip, CircuitParams};

/// Largest `k` zkinfer will lay a circuit out at.
pub const MAX_K: u32 = 24;

/// The highest constraint degree halo2-axiom proves correctly (it caps larger degrees without an error).
pub const MAX_DEGREE: usize = 5;

/// The degree the constraint system really needs: gates, and lookups at `2 + input degree + table degree`
/// (halo2's bound for the lookup grand product); halo2-axiom's own `degree()` caps this at 5.
pub fn uncapped_degree(cs: &ConstraintSystem<Fr>) -> usize {
    let gates = cs
        .gates()
        .iter()
        .flat_map(|g| g.polynomials().iter().map(|p| p.degree()));
    let lookups = cs.lookups().iter().map(|l| {
        let degree = |e: &Vec<halo2_proofs::plonk::Expression<Fr>>| e.iter().map(|x| x.degree()).max().unwrap_or(1);
        (2 + degree(l.input_expressions()) + degree(l.table_expressions())).max(4)
    });
    gates.chain(lookups).max().unwrap_or(1)
}

/// The size of a SHPLONK proof of `cs`: commitments (advice, three per lookup, the permutation's grand products,
/// the quotient's pieces and its random polynomial, two for the multi-open) and evaluations (every advice and fixed
/// query, selectors counted as fixed columns, five per lookup, three per grand product but one, one per permuted
/// column, the random polynomial's), 32 bytes each.
pub fn proof_bytes(cs: &ConstraintSystem<Fr>) -> usize {
    let lookups = cs.lookups().len();
    let chunk = cs.degree().saturating_sub(2).max(1);
    let equality = cs.permutation().get_columns().len();
    let products = equality.div_ceil(chunk);
    let commitments = cs.num_advice_columns() + 3 * lookups + products + cs.degree().saturating_sub(1) + 1 + 2;
    let evaluations = cs.advice_queries().len()
        + cs.fixed_queries().len()
        + cs.num_selectors()
        + 5 * lookups
        + (3 * products).saturating_sub(1)
        + equality
        + 1;
    32 * (commitments + evaluations)
}

/// The exact size of a proof of the circuit laid out with `params` ([`proof_bytes`] of its constraint system).
pub fn proof_bytes_of(params: &CircuitParams) -> usize {
    let mut cs = ConstraintSystem::<Fr>::default();
    configure(&mut cs, params);
    proof_bytes(&cs)
}

/// What one layer costs in the circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// ONNX operator(s).
    pub op_type: String,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// How the layer is laid out: `mac` (multiply-accumulate), `freivalds` (matrix product checked at a
    /// challenge), `max`, `table`, `move` or `mul` (elementwise product).
    pub layout: String,
    /// Rows in the layer's main column group (multiply-accumulate, Freivalds, max, table or product columns; 0 for
    /// moves).
    pub rows: usize,
    /// Rows it adds to the requantization columns.
    pub requant_rows: usize,
    /// Rows it adds to the range-check columns (all together).
    pub range_rows: usize,
    /// Lookups it performs (range-check limbs, max differences, table lookups).
    pub lookups: usize,
}

/// The size of a model's circuit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Rows of the Poseidon sponge (input commitment), in the columns it shares with requantization.
    pub poseidon_rows: usize,
    /// Rows of the multiply-accumulate columns.
    pub linear_rows: usize,
    /// Rows of the requantization columns after the sponge (one per linear output, plus the nonce).
    pub requant_rows: usize,
    /// Rows of the fullest range-check column.
    pub range_rows: usize,
    /// Rows of the max-pool columns.
    pub pool_rows: usize,
    /// Rows of the activation-table columns.
    pub table_rows: usize,
    /// Rows of the product columns.
    pub product_rows: usize,
    /// Rows of the Freivalds columns (second phase).
    pub freivalds_rows: usize,
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
    /// Columns under the permutation (copy constraints).
    pub equality_columns: usize,
    /// Degree of the constraint system.
    pub degree: usize,
    /// Proof size this layout gives, in bytes: 32 per commitment and per opened evaluation (see
    /// [`proof_bytes`]).
    pub proof_bytes: usize,
    /// log2 of the number of rows.
    pub k: u32,
    /// Per-layer costs, in order.
    pub layers: Vec<LayerCost>,
}

impl Layout {
    /// Polynomials the prover commits to: advice columns, three per lookup (permuted input, permuted table,
    /// grand product), the permutation's grand products (`degree − 2` columns each) and the quotient's pieces.
    pub fn committed_polynomials(&self) -> usize {
        let chunk = self.degree.saturating_sub(2).max(1);
        self.advice_columns + 3 * self.lookups + self.equality_columns.div_ceil(chunk) + self.degree.saturating_sub(1)
    }

    /// The cost model the planner minimises: committed polynomials × rows, plus a fifth of that for each fixed
    /// column (read in every gate evaluation over the extended domain). In "polynomial rows"; `BENCHMARKS.md`
    /// compares it with measured proving time.
    pub fn estimated_cost(&self) -> u64 {
        let n = 1u64 << self.k;
        n * (5 * self.committed_polynomials() as u64 + self.fixed_columns as u64) / 5
    }

    /// The largest number of rows any column group uses.
    pub fn used_rows(&self) -> usize {
        [
            self.poseidon_rows + self.requant_rows,
            self.linear_rows,
            self.range_rows,
            self.pool_rows,
            self.table_rows,
            self.product_rows,
            self.freivalds_rows,
            self.lookup_table_rows,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Works out the layout of `model` without assigning anything: the circuit's input section, then each layer's
/// chip ([`plan_layer`]) advancing the same row cursors synthesis advances.
pub fn plan(model: &QuantizedModel, params: &CircuitParams) -> Result<Layout, String> {
    model.validate().map_err(|e| e.to_string())?;
    let mut cs = ConstraintSystem::<Fr>::default();
    configure(&mut cs, params);
    let degree = uncapped_degree(&cs);
    if degree > MAX_DEGREE {
        // halo2-axiom silently caps the degree at 5: a higher-degree constraint would be checked by MockProver but
        // not by real proofs.
        return Err(format!("the constraint system has degree {degree}, above {MAX_DEGREE}"));
    }
    let inputs = model.input_len();
    let poseidon_rows = poseidon::rows(1 + inputs.div_ceil(linear::PACK_BYTES));
    let mut range = ColumnRows::new(params.range_columns, 0);
    for _ in 0..inputs {
        range.place(Range::INT8.rows());
    }
    let mut ctx = PlanContext {
        model,
        params,
        index: 0,
        rows: Cursors {
            linear: 1 + linear::pack_rows(inputs),
            requant: poseidon_rows,
            range,
            freivalds: ColumnRows::new(params.freivalds_pairs, 1),
            ..Cursors::default()
        },
    };
    let mut layers = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let failed = |problem| {
            CircuitError {
                layer: layer.name.clone(),
                problem,
            }
            .to_string()
        };
        if let Some(chip) = Chip::needed_by(&layer.op).into_iter().find(|&c| !params.has(c)) {
            return Err(failed(CircuitProblem::MissingChip(chip)));
        }
        if params.uses_freivalds(index) && !matches!(layer.op, Op::Linear(_)) {
            return Err(failed(CircuitProblem::NotAProduct));
        }
        ctx.index = index;
        layers.push(plan_layer(layer, &mut ctx).map_err(failed)?);
    }
    let rows = ctx.rows;
    let mut layout = Layout {
        poseidon_rows,
        linear_rows: rows.linear,
        // The nonce takes one more row.
        requant_rows: rows.requant - poseidon_rows + 1,
        range_rows: rows.range.max(),
        pool_rows: rows.pool,
        table_rows: rows.table,
        product_rows: rows.product,
        freivalds_rows: if params.freivalds_layers.is_empty() {
            0
        } else {
            rows.freivalds.max()
        },
        lookup_table_rows: RangeTable::rows().max(if params.has(Chip::Table) {
            table::table_rows(model)
        } else {
            0
        }),
        blinding_rows: cs.blinding_factors() + 1,
        advice_columns: cs.num_advice_columns(),
        fixed_columns: cs.num_fixed_columns() + cs.num_selectors(),
        lookups: cs.lookups().len(),
        equality_columns: cs.permutation().get_columns().len(),
        proof_bytes: proof_bytes(&cs),
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

/// Multiply-accumulate lane counts the planner tries.
pub const MAC_LANE_CHOICES: [usize; 3] = [2, 4, 8];

/// Freivalds column-pair counts the planner tries (when some layer uses the chip).
pub const FREIVALDS_PAIR_CHOICES: [usize; 3] = [1, 2, 3];

/// Range-check column counts the planner tries.
pub const RANGE_COLUMN_CHOICES: std::ops::RangeInclusive<usize> = 1..=4;

/// Proof size the planner keeps to when some layout allows it (5 KiB).
pub const MAX_PROOF_BYTES: usize = 5 * 1024;

/// Up to this many convolutions the planner tries every subset for Freivalds' test; beyond, it adds them greedily.
pub const EXHAUSTIVE_FREIVALDS: usize = 6;

/// Most Freivalds candidates [`choose_with`] tries every subset of, whatever it is asked (2^16 subsets).
pub const MAX_EXHAUSTIVE_FREIVALDS: usize = 16;

/// Linear layers that are matrix products (convolutions), by index: candidates for Freivalds' test.
pub fn freivalds_candidates(model: &QuantizedModel) -> Vec<usize> {
    model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(&l.op, Op::Linear(lin) if freivalds::product_shape(lin).is_some()))
        .map(|(i, _)| i)
        .collect()
}

/// A candidate layout and its plan.
pub type Candidate = (CircuitParams, Layout);

/// How the planner orders candidates: proofs within [`MAX_PROOF_BYTES`] first, then estimated cost, then the
/// smaller layout.
fn rank((params, layout): &Candidate) -> (bool, u64, usize, usize, usize, usize, usize, BTreeSet<usize>) {
    (
        layout.proof_bytes > MAX_PROOF_BYTES,
        layout.estimated_cost(),
        layout.committed_polynomials(),
        params.range_columns,
        params.mac_lanes,
        params.freivalds_pairs,
        params.freivalds_layers.len(),
        params.freivalds_layers.clone(),
    )
}

/// Every lane count, range-column count and (with Freivalds layers) pair count for one set of Freivalds layers.
fn candidates_for(
    model: &QuantizedModel,
    base: &CircuitParams,
    freivalds_layers: &BTreeSet<usize>,
) -> Result<Vec<Candidate>, String> {
    let pairs: &[usize] = if freivalds_layers.is_empty() {
        &[1]
    } else {
        &FREIVALDS_PAIR_CHOICES
    };
    let mut out = Vec::new();
    for range_columns in RANGE_COLUMN_CHOICES {
        for mac_lanes in MAC_LANE_CHOICES {
            for &freivalds_pairs in pairs {
                let params = CircuitParams {
                    mac_lanes,
                    range_columns,
                    freivalds_layers: freivalds_layers.clone(),
                    freivalds_pairs,
                    ..base.clone()
                };
                let layout = plan(model, &params)?;
                out.push((params, layout));
            }
        }
    }
    Ok(out)
}

/// The layout choices for `model` with the lowest [`Layout::estimated_cost`] among those whose proof fits in
/// [`MAX_PROOF_BYTES`] (among all if none does; fewest columns on a tie), with the plans of every candidate tried,
/// cheapest first: every lane count in [`MAC_LANE_CHOICES`], every number of range columns in
/// [`RANGE_COLUMN_CHOICES`], every number of Freivalds column pairs in [`FREIVALDS_PAIR_CHOICES`] and every subset
/// of [`freivalds_candidates`] (up to [`EXHAUSTIVE_FREIVALDS`] of them; see [`choose_with`]).
pub fn choose(model: &QuantizedModel) -> Result<(CircuitParams, Vec<Candidate>), String> {
    choose_with(model, EXHAUSTIVE_FREIVALDS)
}

/// [`choose`], trying every subset of the Freivalds candidates when there are at most `exhaustive` of them, and
/// otherwise growing the set greedily: starting from none, add the layer whose best layout ranks highest, while
/// that improves on the best so far.
pub fn choose_with(model: &QuantizedModel, exhaustive: usize) -> Result<(CircuitParams, Vec<Candidate>), String> {
    let base = CircuitParams::with_chips_of(model);
    let eligible = freivalds_candidates(model);
    let mut candidates = Vec::new();
    if eligible.len() <= exhaustive.min(MAX_EXHAUSTIVE_FREIVALDS) {
        for subset in 0..1u64 << eligible.len() {
            let layers: BTreeSet<usize> = (eligible.iter().enumerate())
                .filter(|(bit, _)| subset >> bit & 1 == 1)
                .map(|(_, &l)| l)
                .collect();
            candidates.extend(candidates_for(model, &base, &layers)?);
        }
    } else {
        let best_of = |c: &[Candidate]| c.iter().map(rank).min();
        let mut chosen = BTreeSet::new();
        candidates.extend(candidates_for(model, &base, &chosen)?);
        let mut best = best_of(&candidates);
        loop {
            let mut step = None;
            for &layer in eligible.iter().filter(|l| !chosen.contains(*l)) {
                let mut with = chosen.clone();
                with.insert(layer);
                let tried = candidates_for(model, &base, &with)?;
                let key = best_of(&tried);
                if key < best && step.as_ref().is_none_or(|(_, k)| key < *k) {
                    step = Some((with, key));
                }
                candidates.extend(tried);
            }
            match step {
                Some((set, key)) => (chosen, best) = (set, key),
                None => break,
            }
        }
    }
    candidates.sort_by_key(rank);
    let best = candidates
        .first()
        .map(|(p, _)| p.clone())
        .ok_or("no layout candidate")?;
    Ok((best, candidates))
}

#[cfg(test)]
mod tests {
    use halo2_proofs::plonk::Expression;

    use super::*;

    #[test]
    fn uncapped_degree_sees_what_halo2_axiom_caps() {
        let mut cs = ConstraintSystem::<Fr>::default();
        let a = cs.advice_column();
        let f = cs.fixed_column();
        let q = cs.complex_selector();
        let table = cs.lookup_table_column();
        // Input of degree 3 (selector · fixed · advice): the lookup needs degree 2 + 3 + 1 = 6.
        cs.lookup("degree six", |meta| {
            let q = meta.query_selector(q);
            let f = meta.query_fixed(f, halo2_proofs::poly::Rotation::cur());
            let a = meta.query_advice(a, halo2_proofs::poly::Rotation::cur());
            vec![(q * f * a + Expression::Constant(Fr::one()), table)]
        });
        assert_eq!(
            cs.degree(),
            5,
            "halo2-axiom no longer caps the degree; revisit MAX_DEGREE"
        );
        assert_eq!(uncapped_degree(&cs), 6);
    }
}
