//! Circuit size: rows each column group uses, per-layer costs, columns, lookups, and the smallest `k` that fits.

use halo2_proofs::{halo2curves::bn256::Fr, plonk::ConstraintSystem};
use serde::{Deserialize, Serialize};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::chips::fusion::{self, Fusion};
use crate::chips::range_check::RangeTable;
use crate::chips::{clamp_table, freivalds, linear, poseidon, table};
use crate::circuit::configure;
use crate::column_rows::ColumnRows;
use crate::error::{CircuitError, CircuitProblem};
use crate::layers::{plan_layer, Cursors, KernelRowsCache, PlanContext};
use crate::model::{Op, QuantizedModel};
use crate::params::{Chip, CircuitParams, MAX_FREIVALDS_PAIRS, MIN_LIMB_BITS};

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
    /// Rows of the fullest requantization column set (one per requantized output, the sponge's in the first set,
    /// and the nonce's).
    pub requant_rows: usize,
    /// Rows of the fullest range-check column.
    pub range_rows: usize,
    /// Rows of the max-pool columns.
    pub pool_rows: usize,
    /// Rows of the activation-table columns.
    pub table_rows: usize,
    /// Rows of the product columns.
    pub product_rows: usize,
    /// Rows of the softmax columns.
    pub softmax_rows: usize,
    /// Rows of the ArgMax columns.
    pub argmax_rows: usize,
    /// Rows of the layer-norm columns.
    pub norm_rows: usize,
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

    /// The cost model the planner minimises: committed polynomials × (rows + [`POLYNOMIAL_OVERHEAD_ROWS`]), plus a
    /// fifth of that for each fixed column (read in every gate evaluation over the extended domain). In
    /// "polynomial rows"; `BENCHMARKS.md` compares it with measured proving time.
    pub fn estimated_cost(&self) -> u64 {
        let n = (1u64 << self.k) + POLYNOMIAL_OVERHEAD_ROWS;
        n * (5 * self.committed_polynomials() as u64 + self.fixed_columns as u64) / 5
    }

    /// Columns whose `2^k` values the prover holds in several forms (values, coefficients and, for the quotient,
    /// the extended domain): committed polynomials, fixed columns and the permutation's columns.
    pub fn resident_columns(&self) -> usize {
        self.committed_polynomials() + self.fixed_columns + self.equality_columns
    }

    /// The planner's memory model: bytes the prover holds for this layout, `resident columns × 2^k × 32 bytes ×`
    /// [`MEMORY_FACTOR`] (values, coefficients and extended-domain evaluations of each). An estimate that ranks
    /// layouts of one model; BENCHMARKS.md compares it with measured peak memory.
    pub fn estimated_memory_bytes(&self) -> u64 {
        (self.resident_columns() as u64) << self.k << 5 << MEMORY_FACTOR_LOG2
    }

    /// The largest number of rows any column group uses.
    pub fn used_rows(&self) -> usize {
        [
            self.requant_rows,
            self.linear_rows,
            self.range_rows,
            self.pool_rows,
            self.table_rows,
            self.product_rows,
            self.softmax_rows,
            self.argmax_rows,
            self.norm_rows,
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
    plan_validated(&Facts::of(model), params)
}

/// [`plan`] of each of `params` for one `model`, sharing what planning works out once per model (as the planner
/// does for its candidates), in order.
pub fn plan_each(model: &QuantizedModel, params: &[CircuitParams]) -> Result<Vec<Layout>, String> {
    model.validate().map_err(|e| e.to_string())?;
    let facts = Facts::of(model);
    params.iter().map(|p| plan_validated(&facts, p)).collect()
}

/// What planning reads of a model on every candidate, worked out once: the model, validated, the widest input
/// of each layer (which walks every tap of a linear layer), the sliding windows of each matrix product, and where
/// the requantization rows and range checks go for each (limbs, range columns, requantization sets) planned so far.
struct Facts<'m> {
    model: &'m QuantizedModel,
    input_bits: Vec<u32>,
    /// The clamp-table width the planner tries ([`clamp_bits_covering`]; 0: none).
    clamp_bits: u32,
    /// The `(producer, table)` layer pairs a circuit with fused tables could fuse ([`fusion::candidates`]).
    fusion_candidates: Vec<(usize, usize)>,
    windows: Vec<Option<freivalds::Windows>>,
    /// Each linear layer's shape as a matrix product ([`freivalds::product_shape`]), by index.
    shapes: Vec<Option<freivalds::ProductShape>>,
    placements: Mutex<HashMap<PlacementKey, Arc<RequantPlacement>>>,
    /// What the constraint system of each layout shape gives the plan ([`SystemFacts::key`]): building it was a
    /// third of the planning time of a transformer block, and most candidates share it.
    systems: Mutex<HashMap<CircuitParams, SystemFacts>>,
    /// Each linear layer's requantization rows per kernel ([`KernelRows`]), by layer, limb bits and clamp bits.
    kernel_rows: KernelRowsCache,
}

/// What a plan reads off a layout's constraint system.
#[derive(Clone, Copy, Debug)]
struct SystemFacts {
    uncapped_degree: usize,
    degree: usize,
    blinding_rows: usize,
    minimum_rows: usize,
    advice_columns: usize,
    fixed_columns: usize,
    lookups: usize,
    equality_columns: usize,
    proof_bytes: usize,
}

impl SystemFacts {
    /// The constraint system of `params`, configured.
    fn of(params: &CircuitParams) -> Self {
        let mut cs = ConstraintSystem::<Fr>::default();
        configure(&mut cs, params);
        Self {
            uncapped_degree: uncapped_degree(&cs),
            degree: cs.degree(),
            blinding_rows: cs.blinding_factors() + 1,
            minimum_rows: cs.minimum_rows(),
            advice_columns: cs.num_advice_columns(),
            fixed_columns: cs.num_fixed_columns() + cs.num_selectors(),
            lookups: cs.lookups().len(),
            equality_columns: cs.permutation().get_columns().len(),
            proof_bytes: proof_bytes(&cs),
        }
    }

    /// What the constraint system depends on: every field but which layers Freivalds' test checks (only whether
    /// some are).
    fn key(params: &CircuitParams) -> CircuitParams {
        let freivalds_layers = match params.freivalds_layers.is_empty() {
            true => BTreeSet::new(),
            false => BTreeSet::from([0]),
        };
        CircuitParams {
            freivalds_layers,
            ..params.clone()
        }
    }
}

/// Limb bits, range columns, requantization sets and clamp-table bits: all that where requantization rows and range checks go
/// depends on (every layer places them in the same order whatever the multiply-accumulate and Freivalds choices).
type PlacementKey = (u32, usize, usize, u32);

/// Where one planning put the requantization rows and range checks (the input's and every layer's, before the
/// nonce's row): placing them was most of the planning time (one greedy placement per check per output).
struct RequantPlacement {
    /// Requantization rows and range rows each layer added.
    layers: Vec<(usize, usize)>,
    /// The requantization column sets after the last layer.
    requant: ColumnRows,
    /// The range columns after the last layer.
    range: ColumnRows,
}

impl<'m> Facts<'m> {
    /// The facts of a validated `model`.
    fn of(model: &'m QuantizedModel) -> Self {
        let input_bits = Self::input_bits_of(model);
        let windows = (model.layers.par_iter())
            .map(|l| match &l.op {
                Op::Linear(lin) => freivalds::product_windows(lin),
                _ => None,
            })
            .collect();
        let shapes = (model.layers.par_iter())
            .map(|l| match &l.op {
                Op::Linear(lin) => freivalds::product_shape(lin),
                _ => None,
            })
            .collect();
        let clamp_bits = clamp_bits_covering(model, &input_bits);
        Self {
            model,
            input_bits,
            clamp_bits,
            fusion_candidates: fusion::candidates(model),
            windows,
            shapes,
            placements: Mutex::default(),
            systems: Mutex::default(),
            kernel_rows: KernelRowsCache::default(),
        }
    }

    /// The widest input of each layer of `model` ([`QuantizedModel::input_bits`] of a linear layer, 0 for others).
    fn input_bits_of(model: &QuantizedModel) -> Vec<u32> {
        (model.layers.iter())
            .map(|l| match &l.op {
                Op::Linear(lin) => model.input_bits(lin),
                _ => 0,
            })
            .collect()
    }

    /// The window widths of `layers` (those with sliding windows): the stride gates a circuit checking them with
    /// Freivalds' test needs.
    fn widths_of(&self, layers: &BTreeSet<usize>) -> BTreeSet<usize> {
        (layers.iter())
            .filter_map(|&l| self.windows.get(l)?.as_ref().map(|w| w.width))
            .collect()
    }
}

/// The clamp table ([`clamp_table`]) the planner tries for `model`: the narrowest that covers
/// [`CLAMP_TABLE_COVERAGE`] of its int8 requantized outputs (each through its kernel's [`clamp_table::bits_to_cover`];
/// the few with wider quotients, a last layer's say, keep the flag-and-slack gate rather than double the table);
/// 0 when no requantization can use one. `input_bits`: the widest input of each layer.
fn clamp_bits_covering(model: &QuantizedModel, input_bits: &[u32]) -> u32 {
    let mut widths: Vec<(u32, usize)> = Vec::new();
    for (layer, &bits) in model.layers.iter().zip(input_bits) {
        match &layer.op {
            Op::Linear(lin) => {
                for group in &lin.groups {
                    for &(_, k) in &group.outputs {
                        let width = (lin.kernels.get(k))
                            .and_then(|k| clamp_table::bits_to_cover(&k.rescale_for(bits), lin.output_range()));
                        widths.extend(width.map(|w| (w, 1)));
                    }
                }
            }
            Op::Mul(mul) => {
                let width = clamp_table::bits_to_cover(&mul.rescale(), mul.output_range());
                widths.extend(width.map(|w| (w, mul.operands.len())));
            }
            Op::MatMul(matmul) => {
                let width = clamp_table::bits_to_cover(&matmul.rescale(), matmul.output_range());
                widths.extend(width.map(|w| (w, matmul.output_len())));
            }
            _ => {}
        }
    }
    widths.sort_unstable();
    let total: usize = widths.iter().map(|&(_, count)| count).sum();
    let mut covered = 0;
    for (width, count) in widths {
        covered += count;
        if covered as f64 >= CLAMP_TABLE_COVERAGE * total as f64 {
            return width;
        }
    }
    0
}

/// The clamp-table width the planner tries for `model` (0: none; see [`clamp_bits_covering`]).
pub fn clamp_table_bits(model: &QuantizedModel) -> u32 {
    clamp_bits_covering(model, &Facts::input_bits_of(model))
}

/// The share of a model's requantized outputs the clamp table the planner tries must cover.
pub const CLAMP_TABLE_COVERAGE: f64 = 0.95;

/// [`plan`] of a model already validated (the planner validates once for all its candidates).
fn plan_validated(facts: &Facts<'_>, params: &CircuitParams) -> Result<Layout, String> {
    let model = facts.model;
    let key = SystemFacts::key(params);
    let cached = facts.systems.lock().ok().and_then(|systems| systems.get(&key).copied());
    let cs = cached.unwrap_or_else(|| {
        let system = SystemFacts::of(params);
        if let Ok(mut systems) = facts.systems.lock() {
            systems.insert(key, system);
        }
        system
    });
    let degree = cs.uncapped_degree;
    if degree > MAX_DEGREE {
        // halo2-axiom silently caps the degree at 5: a higher-degree constraint would be checked by MockProver but
        // not by real proofs.
        return Err(format!("the constraint system has degree {degree}, above {MAX_DEGREE}"));
    }
    let fusion = Fusion::from_candidates(model, params, &facts.fusion_candidates, &facts.input_bits);
    let inputs = model.input_len();
    let poseidon_rows = poseidon::rows(1 + inputs.div_ceil(linear::pack_words(model.input.word_bits())));
    let mut range = ColumnRows::new(params.range_columns, 0);
    for _ in 0..inputs {
        range.place(crate::circuit::input_range(model).rows(params.limb_bits));
    }
    let mut ctx = PlanContext {
        model,
        input_bits: &facts.input_bits,
        windows: &facts.windows,
        shapes: Some(&facts.shapes),
        params,
        fusion: &fusion,
        index: 0,
        rows: Cursors {
            linear: 1 + linear::pack_rows(inputs),
            requant: crate::circuit::requant_rows(params.requant_sets, poseidon_rows),
            range,
            freivalds: ColumnRows::new(params.freivalds_pairs, 1),
            // Row 0 of the softmax columns is blank.
            softmax: usize::from(params.has(Chip::Softmax)),
            argmax: usize::from(params.has(Chip::ArgMax)),
            norm: usize::from(params.has(Chip::LayerNorm)),
            ..Cursors::default()
        },
        requantization_placed: false,
        kernel_rows: Some(&facts.kernel_rows),
    };
    let key = (
        params.limb_bits,
        params.range_columns,
        params.requant_sets,
        params.clamp_bits,
    );
    let placed = facts.placements.lock().ok().and_then(|p| p.get(&key).cloned());
    ctx.requantization_placed = placed.is_some();
    let mut layers = Vec::with_capacity(model.layers.len());
    for (index, layer) in model.layers.iter().enumerate() {
        let failed = |problem| {
            CircuitError {
                layer: layer.name.clone(),
                problem,
            }
            .to_string()
        };
        // A fused table layer needs no table chip.
        let needs = |chip: Chip| !(chip == Chip::Table && fusion.fuses_table(index));
        if let Some(chip) = (Chip::needed_by(&layer.op).into_iter()).find(|&c| needs(c) && !params.has(c)) {
            return Err(failed(CircuitProblem::MissingChip(chip)));
        }
        if params.uses_freivalds(index) && !matches!(layer.op, Op::Linear(_)) {
            return Err(failed(CircuitProblem::NotAProduct));
        }
        ctx.index = index;
        layers.push(plan_layer(layer, &mut ctx).map_err(failed)?);
    }
    let mut rows = ctx.rows;
    // The outputs packed for the instance column, one multiply-accumulate row each.
    rows.linear += linear::pack_rows(model.output_len());
    match placed {
        Some(placed) => {
            for (cost, &(requant, range)) in layers.iter_mut().zip(&placed.layers) {
                (cost.requant_rows, cost.range_rows) = (requant, range);
            }
            rows.requant = placed.requant.clone();
            rows.range = placed.range.clone();
        }
        None => {
            let placement = RequantPlacement {
                layers: layers.iter().map(|c| (c.requant_rows, c.range_rows)).collect(),
                requant: rows.requant.clone(),
                range: rows.range.clone(),
            };
            if let Ok(mut placements) = facts.placements.lock() {
                placements.insert(key, Arc::new(placement));
            }
        }
    }
    // The nonce takes one more row.
    rows.requant.place(1);
    let mut layout = Layout {
        poseidon_rows,
        linear_rows: rows.linear,
        requant_rows: rows.requant.max(),
        range_rows: rows.range.max(),
        pool_rows: rows.pool,
        table_rows: rows.table,
        product_rows: rows.product,
        softmax_rows: rows.softmax,
        argmax_rows: rows.argmax,
        norm_rows: rows.norm,
        freivalds_rows: if params.has_freivalds() {
            rows.freivalds.max()
        } else {
            0
        },
        lookup_table_rows: RangeTable::rows(params.limb_bits)
            .max(if params.has(Chip::Table) {
                table::table_rows(model)
            } else {
                0
            })
            .max(if params.clamp_bits > 0 {
                clamp_table::rows(params.clamp_bits, fusion.entries().len())
            } else {
                0
            }),
        blinding_rows: cs.blinding_rows,
        advice_columns: cs.advice_columns,
        fixed_columns: cs.fixed_columns,
        lookups: cs.lookups,
        equality_columns: cs.equality_columns,
        proof_bytes: cs.proof_bytes,
        degree: cs.degree,
        k: 0,
        layers,
    };
    let needed_rows = (layout.used_rows() + layout.blinding_rows).max(cs.minimum_rows);
    let k = needed_rows.next_power_of_two().trailing_zeros();
    if k > MAX_K {
        return Err(format!(
            "the circuit needs 2^{k} rows, more than the supported 2^{MAX_K}"
        ));
    }
    layout.k = k;
    Ok(layout)
}

/// What each polynomial costs a proof beyond its `2^k` rows (its evaluations, its share of the multi-open and of
/// the transcript), in rows: a least-squares fit of `time = a · rows · polynomials + b · polynomials` to the
/// planner-against-measurement table of BENCHMARKS.md (k = 10…14: `b / a` ≈ 1,100 rows, about 5 ms per
/// polynomial on the 2-core VM). Without it, small models were given k = 10 layouts of twice the columns that were
/// no faster than k = 12 ones with proofs 2.6× larger (digits-resnet: 1,246 vs 1,228 ms, 13.5 vs 5.1 KB).
pub const POLYNOMIAL_OVERHEAD_ROWS: u64 = 1024;

/// log2 of the memory model's bytes per resident column value, in units of 32 bytes (values, coefficients and
/// the extended domain's share; see [`Layout::estimated_memory_bytes`]).
pub const MEMORY_FACTOR_LOG2: u32 = 1;

/// Multiply-accumulate shapes the planner tries, `(lanes, taps per row)`, by products per row: 2, 4, 8 with one
/// tap, then 16, 32, 64 with several (8 lanes of 2 taps make as many products per row as 16 of one, with 7 advice
/// columns fewer).
pub const MAC_SHAPE_CHOICES: [(usize, usize); 6] = [(2, 1), (4, 1), (8, 1), (8, 2), (8, 4), (16, 4)];

/// Most range-check columns the planner tries (it stops adding columns once range checks no longer set `k`).
pub const MAX_PLANNED_RANGE_COLUMNS: usize = 12;

/// Most requantization column sets the planner tries (it stops adding sets once requantization no longer sets
/// `k`).
pub const MAX_PLANNED_REQUANT_SETS: usize = 6;

/// What the planner minimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Proving time: [`Layout::estimated_cost`].
    #[default]
    Time,
    /// Proof size: [`Layout::proof_bytes`], then time.
    Size,
    /// Prover memory: [`Layout::estimated_memory_bytes`], then time.
    Memory,
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "time" => Ok(Objective::Time),
            "size" => Ok(Objective::Size),
            "memory" => Ok(Objective::Memory),
            other => Err(format!("unknown objective `{other}`; use time, size or memory")),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::Time => "time",
            Objective::Size => "size",
            Objective::Memory => "memory",
        })
    }
}

/// What the planner is asked for: an objective, and an optional cap on the proof's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    /// What to minimise.
    pub objective: Objective,
    /// Largest acceptable proof, bytes (`None`: any size).
    pub max_proof_bytes: Option<usize>,
}

impl Goal {
    /// What the objective minimises, for `layout`: its estimated cost, proof bytes or estimated memory.
    pub fn objective_of(&self, layout: &Layout) -> u64 {
        match self.objective {
            Objective::Time => layout.estimated_cost(),
            Objective::Size => layout.proof_bytes as u64,
            Objective::Memory => layout.estimated_memory_bytes(),
        }
    }

    /// Whether `layout`'s proof is within the cap.
    pub fn fits(&self, layout: &Layout) -> bool {
        self.max_proof_bytes.is_none_or(|max| layout.proof_bytes <= max)
    }
}

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

/// The window widths of `layers` of `model` whose matrix products have sliding windows
/// ([`freivalds::product_windows`]): the `freivalds_widths` a layout checking `layers` with Freivalds' test needs
/// to evaluate them through their windows (the planner always gives them).
pub fn window_widths(model: &QuantizedModel, layers: &BTreeSet<usize>) -> BTreeSet<usize> {
    (layers.iter())
        .filter_map(|&l| match &model.layers.get(l)?.op {
            Op::Linear(lin) => freivalds::product_windows(lin).map(|w| w.width),
            _ => None,
        })
        .collect()
}

/// A candidate layout and its plan.
pub type Candidate = (CircuitParams, Layout);

/// The key candidates are ordered by.
type RankKey = (
    bool,
    u64,
    u64,
    usize,
    u32,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    BTreeSet<usize>,
);

/// How the planner orders candidates for `goal`: proofs within its cap first, then its objective, then estimated
/// cost, then the smaller layout.
fn rank(goal: &Goal, (params, layout): &Candidate) -> RankKey {
    let cost = layout.estimated_cost();
    (
        !goal.fits(layout),
        goal.objective_of(layout),
        cost,
        layout.committed_polynomials(),
        params.limb_bits,
        params.range_columns,
        params.requant_sets,
        params.mac_lanes,
        params.mac_taps,
        params.freivalds_pairs,
        params.freivalds_layers.len(),
        params.freivalds_layers.clone(),
    )
}

/// Column groups whose number of columns the planner chooses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Linear,
    Freivalds,
    Requant,
    Range,
}

/// Whether `group` is the fullest column group of `layout` (strictly): only then can more of its columns lower `k`.
fn binds(layout: &Layout, group: Group) -> bool {
    let rows = [
        (Some(Group::Linear), layout.linear_rows),
        (Some(Group::Freivalds), layout.freivalds_rows),
        (Some(Group::Requant), layout.requant_rows),
        (Some(Group::Range), layout.range_rows),
        (None, layout.pool_rows),
        (None, layout.table_rows),
        (None, layout.product_rows),
        (None, layout.softmax_rows),
        (None, layout.argmax_rows),
        (None, layout.norm_rows),
        (None, layout.lookup_table_rows),
    ];
    let own = rows.iter().find(|(g, _)| *g == Some(group)).map_or(0, |(_, r)| *r);
    rows.iter().filter(|(g, _)| *g != Some(group)).all(|(_, r)| own > *r)
}

/// Whether `group` is the fullest column group of any of `layouts` ([`binds`]).
fn binds_any(layouts: &[Layout], group: Group) -> bool {
    layouts.iter().any(|l| binds(l, group))
}

/// Every multiply-accumulate shape in [`MAC_SHAPE_CHOICES`] and, for each, as many Freivalds column pairs (with Freivalds layers),
/// requantization sets and range columns as can lower `k`, for one set of Freivalds layers: innermost first, a
/// group gets another column while it is the fullest (more would only add polynomials), up to
/// [`MAX_FREIVALDS_PAIRS`], [`MAX_PLANNED_REQUANT_SETS`] and [`MAX_PLANNED_RANGE_COLUMNS`]; larger shapes are
/// tried while the multiply-accumulate rows are the fullest.
///
/// Each is planned without a clamp table and, where some requantization can use one, with the planner's table
/// ([`clamp_bits_covering`]), and with that table holding the model's table activations too where some fuse
/// ([`fused_tables`]).
fn candidates_for(
    model: &Facts<'_>,
    base: &CircuitParams,
    freivalds_layers: &BTreeSet<usize>,
) -> Result<Vec<Candidate>, String> {
    let mut bases = vec![CircuitParams {
        clamp_bits: 0,
        ..base.clone()
    }];
    if model.clamp_bits > 0 {
        let with_table = CircuitParams {
            clamp_bits: model.clamp_bits,
            ..base.clone()
        };
        bases.extend(fused_tables(model, &with_table));
        bases.push(with_table);
    }
    let mut out = Vec::new();
    for base in &bases {
        out.extend(candidates_with_clamp(model, base, freivalds_layers)?);
    }
    Ok(out)
}

/// `params` (with a clamp table) with the model's table activations fused into it ([`Chip::FusedTables`]), and
/// without the activation-table chip when every table layer fuses; `None` when none would.
fn fused_tables(model: &Facts<'_>, params: &CircuitParams) -> Option<CircuitParams> {
    let mut fused = params.clone();
    fused.chips.insert(Chip::FusedTables);
    let fusion = Fusion::from_candidates(model.model, &fused, &model.fusion_candidates, &model.input_bits);
    if fusion.is_empty() {
        return None;
    }
    let tables = model
        .model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.op, Op::Table(_)));
    // The activation table also holds softmax exponentials and embeddings: keep it for them.
    let softmax = (model.model.layers.iter()).any(|l| matches!(l.op, Op::Softmax(_) | Op::Embedding(_)));
    if !softmax && tables.map(|(i, _)| i).all(|i| fusion.fuses_table(i)) {
        fused.chips.remove(&Chip::Table);
    }
    Some(fused)
}

/// [`candidates_for`] with the clamp table of `base`.
fn candidates_with_clamp(
    model: &Facts<'_>,
    base: &CircuitParams,
    freivalds_layers: &BTreeSet<usize>,
) -> Result<Vec<Candidate>, String> {
    let max_pairs = if freivalds_layers.is_empty() && !base.has(Chip::MatMul) {
        1
    } else {
        MAX_FREIVALDS_PAIRS
    };
    let mut out = Vec::new();
    for (shape_choice, &(mac_lanes, mac_taps)) in MAC_SHAPE_CHOICES.iter().enumerate() {
        let mut last: Vec<Layout> = Vec::new();
        for freivalds_pairs in 1..=max_pairs {
            for requant_sets in 1..=MAX_PLANNED_REQUANT_SETS {
                for range_columns in 1..=MAX_PLANNED_RANGE_COLUMNS {
                    let params = CircuitParams {
                        mac_lanes,
                        mac_taps,
                        range_columns,
                        requant_sets,
                        freivalds_layers: freivalds_layers.clone(),
                        freivalds_pairs,
                        freivalds_widths: model.widths_of(freivalds_layers),
                        ..base.clone()
                    };
                    let planned = plan_with_widest_limbs(model, params)?;
                    // A group grows while it binds in either plan (with byte limbs a larger `k` can be reached
                    // whose table leaves no room for wider limbs, and with wider limbs the table itself can bind).
                    last = planned.iter().map(|(_, l)| l.clone()).collect();
                    out.extend(planned);
                    if !binds_any(&last, Group::Range) {
                        break;
                    }
                }
                if !binds_any(&last, Group::Requant) {
                    break;
                }
            }
            if !binds_any(&last, Group::Freivalds) {
                break;
            }
        }
        // The two smallest shapes are always tried (fewer columns can be cheaper at the same `k`).
        if shape_choice > 0 && !binds_any(&last, Group::Linear) {
            break;
        }
    }
    Ok(out)
}

/// `params` planned with byte limbs and, where range checks are the fullest column group and the circuit leaves
/// room for a larger table, again with the widest limbs whose table fits in half its rows
/// ([`RangeTable::widest_limb_fitting`] at `k − 1`; at `k` when none wider than a byte does): fewer range rows per
/// check (a 30-bit remainder takes 3 rows of 14 bits instead of 4 bytes), which can lower `k`, or let fewer range
/// columns reach it. Both are candidates (the goal ranks them).
fn plan_with_widest_limbs(model: &Facts<'_>, params: CircuitParams) -> Result<Vec<Candidate>, String> {
    let bytes = CircuitParams {
        limb_bits: MIN_LIMB_BITS,
        ..params
    };
    let layout = plan_validated(model, &bytes)?;
    // The widest limbs whose table fits at `k − 1` (wider limbs are what can lower `k`), or else at `k`.
    let usable = |k: u32| (1usize << k).saturating_sub(layout.blinding_rows);
    let wider = |k: u32| RangeTable::widest_limb_fitting(usable(k)).filter(|&bits| bits > MIN_LIMB_BITS);
    // Only where range checks set `k`: otherwise wider limbs leave `k` and the columns as they are.
    let wide = binds(&layout, Group::Range)
        .then(|| wider(layout.k.saturating_sub(1)).or_else(|| wider(layout.k)))
        .flatten();
    let mut out = Vec::with_capacity(2);
    out.push((bytes.clone(), layout));
    if let Some(limb_bits) = wide {
        let params = CircuitParams { limb_bits, ..bytes };
        let layout = plan_validated(model, &params)?;
        out.push((params, layout));
    }
    Ok(out)
}

/// The fastest layout for `model` ([`choose_for`] with the default [`Goal`]: time, any proof size).
pub fn choose(model: &QuantizedModel) -> Result<(CircuitParams, Vec<Candidate>), String> {
    choose_for(model, &Goal::default())
}

/// The layout choices for `model` that best meet `goal` (fewest columns on a tie), with the plans of every
/// candidate tried, best first: every multiply-accumulate shape in [`MAC_SHAPE_CHOICES`] (while its rows bind), and Freivalds column pairs, range columns and
/// requantization sets as [`candidates_for`] adds them, and every
/// subset of [`freivalds_candidates`] (up to [`EXHAUSTIVE_FREIVALDS`] of them; see [`choose_with`]). An error when
/// the goal caps the proof size and no layout fits, naming the smallest proof there is.
pub fn choose_for(model: &QuantizedModel, goal: &Goal) -> Result<(CircuitParams, Vec<Candidate>), String> {
    choose_with(model, goal, EXHAUSTIVE_FREIVALDS)
}

/// Whether [`choose_for`] walks over sets of Freivalds layers for `model` (more candidates than it tries
/// exhaustively): the expensive part of planning a large model.
pub fn walks_freivalds_sets(model: &QuantizedModel) -> bool {
    freivalds_candidates(model).len() > EXHAUSTIVE_FREIVALDS
}

/// The layout choices for `model` with the Freivalds layers `layers` (those that are not candidates dropped), best
/// first: one [`candidates_for`] sweep without the walk over sets. A search comparing many quantizations of one
/// model plans them this way once a full [`choose_for`] has chosen the set for one of them.
pub fn choose_with_layers(
    model: &QuantizedModel,
    goal: &Goal,
    layers: &BTreeSet<usize>,
) -> Result<(CircuitParams, Vec<Candidate>), String> {
    model.validate().map_err(|e| e.to_string())?;
    let eligible: BTreeSet<usize> = freivalds_candidates(model).into_iter().collect();
    let layers: BTreeSet<usize> = layers.intersection(&eligible).copied().collect();
    let facts = Facts::of(model);
    let base = CircuitParams::with_chips_of(model);
    let mut candidates = candidates_for(&facts, &base, &layers)?;
    candidates.sort_by_key(|c| rank(goal, c));
    let best = candidates.first().ok_or("no layout candidate")?.0.clone();
    Ok((best, candidates))
}

/// Candidates [`choose_with`] returns with their per-layer costs ([`Layout::layers`]); the others have none.
pub const DETAILED_CANDIDATES: usize = 16;

/// A candidate without its per-layer costs, as the planner keeps all but the best.
fn lean((params, mut layout): Candidate) -> Candidate {
    layout.layers = Vec::new();
    (params, layout)
}

/// [`choose_for`], trying every subset of the Freivalds candidates when there are at most `exhaustive` of them,
/// and otherwise two greedy walks: starting from none, add the layer whose best layout ranks highest while that
/// improves on the best so far; and starting from all, remove layers the same way.
pub fn choose_with(
    model: &QuantizedModel,
    goal: &Goal,
    exhaustive: usize,
) -> Result<(CircuitParams, Vec<Candidate>), String> {
    model.validate().map_err(|e| e.to_string())?;
    let rank = |c: &Candidate| rank(goal, c);
    let base = CircuitParams::with_chips_of(model);
    let eligible = freivalds_candidates(model);
    let facts = Facts::of(model);
    let model = &facts;
    let mut candidates = Vec::new();
    if eligible.len() <= exhaustive.min(MAX_EXHAUSTIVE_FREIVALDS) {
        // Subsets are planned in parallel (each plan walks the whole model; a 32×32 CNN has thousands of them).
        let planned: Vec<Vec<Candidate>> = (0..1u64 << eligible.len())
            .into_par_iter()
            .map(|subset| {
                let layers: BTreeSet<usize> = (eligible.iter().enumerate())
                    .filter(|(bit, _)| subset >> bit & 1 == 1)
                    .map(|(_, &l)| l)
                    .collect();
                candidates_for(model, &base, &layers)
            })
            .collect::<Result<_, String>>()?;
        candidates.extend(planned.into_iter().flatten().map(lean));
    } else {
        // Two greedy walks, their candidates pooled: adding layers to none while that helps, and removing layers
        // from all while that helps (a layout whose `k` drops only once several layers move is found by the second).
        let best_of = |c: &[Candidate]| c.iter().map(rank).min();
        for start_full in [false, true] {
            let mut chosen: BTreeSet<usize> = if start_full {
                eligible.iter().copied().collect()
            } else {
                BTreeSet::new()
            };
            let start = candidates_for(model, &base, &chosen)?;
            let mut best = best_of(&start);
            candidates.extend(start.into_iter().map(lean));
            loop {
                // Every one-layer change is planned in parallel; the first that ranks best (in `eligible`'s order)
                // is taken, as a walk one layer at a time would.
                let steps: Vec<BTreeSet<usize>> = (eligible.iter())
                    .filter_map(|&layer| {
                        let mut next = chosen.clone();
                        let changed = if start_full {
                            next.remove(&layer)
                        } else {
                            next.insert(layer)
                        };
                        changed.then_some(next)
                    })
                    .collect();
                let planned: Vec<Vec<Candidate>> = (steps.par_iter())
                    .map(|next| candidates_for(model, &base, next))
                    .collect::<Result<_, String>>()?;
                let mut step = None;
                let mut improving = Vec::new();
                for (next, tried) in steps.into_iter().zip(planned) {
                    let key = best_of(&tried);
                    if key < best {
                        improving.push(next.symmetric_difference(&chosen).copied().collect::<Vec<_>>());
                        if step.as_ref().is_none_or(|(_, k)| key < *k) {
                            step = Some((next.clone(), key));
                        }
                    }
                    candidates.extend(tried.into_iter().map(lean));
                }
                // Every improving change at once, when several improve (a model with many layers of one kind
                // would otherwise take one step per layer): taken when it ranks above the best single change.
                if improving.len() > 1 {
                    let mut all = chosen.clone();
                    for layer in improving.into_iter().flatten() {
                        if start_full {
                            all.remove(&layer);
                        } else {
                            all.insert(layer);
                        }
                    }
                    let tried = candidates_for(model, &base, &all)?;
                    let key = best_of(&tried);
                    if step.as_ref().is_some_and(|(_, k)| key < *k) {
                        step = Some((all, key));
                    }
                    candidates.extend(tried.into_iter().map(lean));
                }
                match step {
                    Some((set, key)) => (chosen, best) = (set, key),
                    None => break,
                }
            }
        }
    }
    candidates.sort_by_key(rank);
    // The greedy walks can try a set twice; identical layouts rank next to each other.
    candidates.dedup_by(|a, b| a.0 == b.0);
    // The best candidates get their per-layer costs back (the others were kept lean: a large model tries hundreds
    // of thousands of layouts).
    for (params, layout) in candidates.iter_mut().take(DETAILED_CANDIDATES) {
        *layout = plan_validated(model, params)?;
    }
    let (best, layout) = candidates.first().ok_or("no layout candidate")?;
    if let (false, Some(max)) = (goal.fits(layout), goal.max_proof_bytes) {
        let smallest = candidates.iter().map(|(_, l)| l.proof_bytes).min().unwrap_or(0);
        return Err(format!(
            "no layout gives a proof of at most {max} bytes: the smallest is {smallest} bytes; raise the cap \
             (--max-proof-bytes) or leave it out"
        ));
    }
    Ok((best.clone(), candidates))
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
