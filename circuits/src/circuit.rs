//! The model circuit: commitment → range-checked input → layers (linear → requantize/clamp, max pool, activation
//! table, data movement) → public outputs.
//!
//! Layers compose chips and own no constraints. Public inputs are bound here and only here: the Poseidon output to
//! instance row 0, the nonce cell to row 1, the last layer's outputs to rows 2…

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ff::Field;
use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    halo2curves::bn256::Fr,
    plonk::{Circuit, Column, ConstraintSystem, Error, Instance},
};
use serde::{Deserialize, Serialize};

use crate::assign::{AssignedValue, Assigner, CellKind, Tamper};
use crate::chips::{
    freivalds::{product_shape, FreivaldsConfig},
    linear::LinearConfig,
    max_pool::MaxPoolConfig,
    poseidon::PoseidonConfig,
    range_check::{Range, RangeCheckConfig},
    requantize::{Accumulator, RequantConfig},
    table::{table_ids, TableConfig},
};
use crate::column_rows::ColumnRows;
use crate::field;
use crate::model::{Kernel, Layer, Op, OutputRange, QuantizedModel, Source};
use crate::public_inputs::{COMMITMENT_ROW, NONCE_ROW, OUTPUTS_ROW};

/// Layout choices that change the constraint system (and so the verifying key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitParams {
    /// Output channels computed side by side in the multiply-accumulate chip.
    pub mac_lanes: usize,
    /// Whether the circuit has the max-pool chip.
    pub max_pool: bool,
    /// Whether the circuit has the activation-table chip.
    pub tables: bool,
    /// Range-check columns (each with its own lookup into the shared table).
    pub range_columns: usize,
    /// Linear layers (bit `i` for layer `i`) checked as matrix products with Freivalds' test instead of the
    /// multiply-accumulate chip.
    pub freivalds_layers: u64,
    /// Column pairs of the Freivalds chip (its runs spread over them).
    pub freivalds_pairs: usize,
}

/// Most multiply-accumulate lanes a layout may ask for.
pub const MAX_MAC_LANES: usize = 16;
/// Most range-check columns a layout may ask for.
pub const MAX_RANGE_COLUMNS: usize = 16;
/// Most Freivalds column pairs a layout may ask for.
pub const MAX_FREIVALDS_PAIRS: usize = 8;

impl CircuitParams {
    /// Whether layer `index` is checked with Freivalds' test.
    pub fn uses_freivalds(&self, index: usize) -> bool {
        index < 64 && self.freivalds_layers >> index & 1 == 1
    }

    /// Refuses parameters no planner chooses, so that parameters read from a file (a verifying key handed out by
    /// a miner) cannot ask for an absurd constraint system: lanes in `[1, 16]`, range columns in `[1, 16]`,
    /// Freivalds pairs in `[1, 8]`.
    pub fn validate(&self) -> Result<(), String> {
        let bounded = |what: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("circuit parameters: {value} {what} outside [1, {max}]"))
            }
        };
        bounded("multiply-accumulate lanes", self.mac_lanes, MAX_MAC_LANES)?;
        bounded("range columns", self.range_columns, MAX_RANGE_COLUMNS)?;
        bounded("Freivalds column pairs", self.freivalds_pairs, MAX_FREIVALDS_PAIRS)
    }
}

impl Default for CircuitParams {
    fn default() -> Self {
        Self {
            mac_lanes: 4,
            max_pool: false,
            tables: false,
            range_columns: 1,
            freivalds_layers: 0,
            freivalds_pairs: 1,
        }
    }
}

impl CircuitParams {
    /// The layout the planner picks for `model` ([`crate::layout::choose`]); the default layout with the chips
    /// the model uses if the model cannot be planned (setup then reports why).
    pub fn for_model(model: &QuantizedModel) -> Self {
        crate::layout::choose(model).map_or_else(|_| Self::with_chips_of(model), |(params, _)| params)
    }

    /// The default layout with exactly the chips `model` uses.
    pub fn with_chips_of(model: &QuantizedModel) -> Self {
        let uses = |f: fn(&Op) -> bool| model.layers.iter().any(|l| f(&l.op));
        Self {
            max_pool: uses(|op| matches!(op, Op::MaxPool(_))),
            tables: uses(|op| matches!(op, Op::Table(_))),
            ..Self::default()
        }
    }
}

/// The private part of a request: the salt of the commitment, the nonce and the quantized input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// Salt of the input commitment.
    pub salt: Fr,
    /// Request nonce (public, but carried here so the circuit can bind it).
    pub nonce: Fr,
    /// int8 input, flattened.
    pub input: Vec<i64>,
}

/// All columns of the model circuit.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    poseidon: PoseidonConfig,
    linear: LinearConfig,
    requant: RequantConfig,
    range: RangeCheckConfig,
    max_pool: Option<MaxPoolConfig>,
    table: Option<TableConfig>,
    freivalds: Option<FreivaldsConfig>,
    instance: Column<Instance>,
}

/// A matrix product left for the second phase: `Y = W·X` with `X` and `Y` already assigned (the bias is added by
/// the requantization offset).
struct ProductCheck {
    weights: Vec<Vec<i64>>,
    x: Vec<Vec<Option<AssignedValue>>>,
    y: Vec<Vec<AssignedValue>>,
}

/// The circuit proving one inference of a quantized model.
#[derive(Clone, Debug)]
pub struct ModelCircuit {
    model: QuantizedModel,
    params: CircuitParams,
    witness: Witness,
    tamper: Option<Tamper>,
    record: Arc<Mutex<SynthesisRecord>>,
}

/// What the last synthesis of a circuit wrote, for tests that compare it with the native engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthesisRecord {
    /// Advice cells assigned, by kind.
    pub cell_counts: HashMap<CellKind, usize>,
    /// The values bound to the output rows of the instance column.
    pub outputs: Vec<Fr>,
    /// The value bound to the commitment row.
    pub commitment: Fr,
}

impl ModelCircuit {
    /// A circuit proving `model` on `witness`.
    pub fn new(model: QuantizedModel, params: CircuitParams, witness: Witness) -> Self {
        Self {
            model,
            params,
            witness,
            tamper: None,
            record: Arc::default(),
        }
    }

    /// A circuit for key generation: an all-zero input (the layout does not depend on the values).
    pub fn for_keygen(model: QuantizedModel, params: CircuitParams) -> Self {
        let input = vec![0; model.input_len()];
        Self::new(
            model,
            params,
            Witness {
                salt: Fr::ZERO,
                nonce: Fr::ZERO,
                input,
            },
        )
    }

    /// The same circuit with one cell changed or one attack mounted (soundness tests only).
    pub fn with_tamper(mut self, tamper: Tamper) -> Self {
        self.tamper = Some(tamper);
        self
    }

    /// How many advice cells of each kind the last synthesis assigned (the tampering harness picks from these).
    pub fn assigned_cell_counts(&self) -> HashMap<CellKind, usize> {
        self.last_synthesis().cell_counts
    }

    /// What the last synthesis of this circuit (or a clone of it) wrote.
    pub fn last_synthesis(&self) -> SynthesisRecord {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The model this circuit proves.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }
}

/// Allocates every chip's columns.
pub fn configure(meta: &mut ConstraintSystem<Fr>, params: CircuitParams) -> ModelConfig {
    let instance = meta.instance_column();
    meta.enable_equality(instance);
    let range = RangeCheckConfig::configure(meta, params.range_columns);
    // The requantization rows and the sponge's rows share six advice columns: the sponge comes first, then one
    // requantization per row.
    let shared = [(); 6].map(|_| meta.advice_column());
    let [acc, r, y, b, d, extra] = shared;
    ModelConfig {
        poseidon: PoseidonConfig::configure(meta, [d, b, extra], [acc, r, y]),
        requant: RequantConfig::configure(meta, [acc, r, y, b, d]),
        linear: LinearConfig::configure(meta, params.mac_lanes.max(1)),
        max_pool: params.max_pool.then(|| MaxPoolConfig::configure(meta, range.table())),
        table: params.tables.then(|| TableConfig::configure(meta)),
        // Last: its second-phase columns need a first-phase column allocated before them.
        freivalds: (params.freivalds_layers != 0).then(|| FreivaldsConfig::configure(meta, params.freivalds_pairs)),
        range,
        instance,
    }
}

impl ModelConfig {
    /// Requantizes one accumulator of `kernel` in the next requantization row, range-checking in the range
    /// columns; returns the output and accumulator cells.
    fn requantize(
        &self,
        a: &mut Assigner,
        rows: &mut Cursors,
        kernel: &Kernel,
        out: OutputRange,
        acc: Accumulator<'_>,
    ) -> Result<(AssignedValue, AssignedValue), Error> {
        let cells = self
            .requant
            .assign(a, rows.requant, &self.range, &mut rows.range, kernel, out, acc)?;
        rows.requant += 1;
        Ok(cells)
    }
}

/// Next free row of each column group.
#[derive(Default)]
struct Cursors {
    linear: usize,
    requant: usize,
    range: ColumnRows,
    pool: usize,
    table: usize,
}

impl ModelCircuit {
    /// Lays out one layer on the cells of earlier tensors and returns its output cells. A linear layer checked
    /// with Freivalds' test leaves its product check in `products`.
    #[allow(clippy::too_many_arguments)]
    fn assign_layer(
        &self,
        config: &ModelConfig,
        a: &mut Assigner,
        rows: &mut Cursors,
        tensors: &[Vec<AssignedValue>],
        tables: &HashMap<Vec<i8>, u64>,
        layer: &Layer,
        freivalds: bool,
        products: &mut Vec<ProductCheck>,
    ) -> Result<Vec<AssignedValue>, Error> {
        let cell = |s: &Source| {
            tensors
                .get(s.tensor)
                .and_then(|t| t.get(s.index))
                .copied()
                .ok_or(Error::Synthesis)
        };
        let mut out: Vec<Option<AssignedValue>> = vec![None; layer.output_len()];
        match &layer.op {
            Op::Linear(linear) if freivalds => {
                let shape = product_shape(linear).ok_or(Error::Synthesis)?;
                let taps = linear
                    .groups
                    .iter()
                    .map(|g| g.taps.iter().map(|t| t.as_ref().map(cell).transpose()).collect())
                    .collect::<Result<Vec<Vec<_>>, _>>()?;
                let mut y = vec![Vec::with_capacity(shape.positions); shape.kernels.len()];
                for (group, taps) in linear.groups.iter().zip(&taps) {
                    for (column, &(o, k)) in y.iter_mut().zip(&group.outputs) {
                        let kernel = linear.kernels.get(k).ok_or(Error::Synthesis)?;
                        let acc = taps.iter().zip(&kernel.weights).fold(Fr::ZERO, |sum, (x, &w)| {
                            sum + x.map_or(Fr::ZERO, |x| x.value * field::from_i64(w))
                        });
                        let (output, acc) =
                            config.requantize(a, rows, kernel, linear.output_range(), Accumulator::Witness(acc))?;
                        column.push(acc);
                        out[o] = Some(output);
                    }
                }
                products.push(ProductCheck {
                    weights: shape
                        .kernels
                        .iter()
                        .map(|&k| linear.kernels[k].weights.clone())
                        .collect(),
                    x: (0..shape.taps).map(|t| taps.iter().map(|g| g[t]).collect()).collect(),
                    y,
                });
            }
            Op::Linear(linear) => {
                for group in &linear.groups {
                    let taps = group
                        .taps
                        .iter()
                        .map(|t| t.as_ref().map(cell).transpose())
                        .collect::<Result<Vec<_>, _>>()?;
                    let (accumulators, next) = config.linear.assign_group(a, rows.linear, linear, group, &taps)?;
                    rows.linear = next;
                    for (&(o, k), acc) in group.outputs.iter().zip(&accumulators) {
                        let kernel = &linear.kernels[k];
                        let (y, _) =
                            config.requantize(a, rows, kernel, linear.output_range(), Accumulator::Copy(acc))?;
                        out[o] = Some(y);
                    }
                }
            }
            Op::MaxPool(pool) => {
                let chip = config.max_pool.as_ref().ok_or(Error::Synthesis)?;
                for (o, window) in pool.windows.iter().enumerate() {
                    let cells = window.iter().map(cell).collect::<Result<Vec<_>, _>>()?;
                    let (max, next) = chip.assign(a, rows.pool, &cells)?;
                    rows.pool = next;
                    out[o] = Some(max);
                }
            }
            Op::Table(table) => {
                let chip = config.table.as_ref().ok_or(Error::Synthesis)?;
                let id = *tables.get(&table.values).ok_or(Error::Synthesis)?;
                let input = tensors.get(table.input).ok_or(Error::Synthesis)?;
                for (o, x) in input.iter().enumerate() {
                    out[o] = Some(chip.assign(a, rows.table, id, table, x)?);
                    rows.table += 1;
                }
            }
            Op::Gather(sources) => {
                for (o, s) in sources.iter().enumerate() {
                    out[o] = Some(cell(s)?);
                }
            }
        }
        out.into_iter().collect::<Option<Vec<_>>>().ok_or(Error::Synthesis)
    }
}

impl Circuit<Fr> for ModelCircuit {
    type Config = ModelConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = CircuitParams;

    fn without_witnesses(&self) -> Self {
        Self::for_keygen(self.model.clone(), self.params)
    }

    fn params(&self) -> CircuitParams {
        self.params
    }

    fn configure_with_params(meta: &mut ConstraintSystem<Fr>, params: CircuitParams) -> ModelConfig {
        configure(meta, params)
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> ModelConfig {
        configure(meta, CircuitParams::default())
    }

    fn synthesize(&self, config: ModelConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        config.range.load_table(&mut layouter)?;
        if let Some(table) = &config.table {
            table.load(&mut layouter, &self.model)?;
        }
        let (commitment, nonce, outputs) = layouter.assign_region(
            || "model",
            |mut region| {
                let mut a = Assigner::new(&mut region, self.tamper);
                let input: Vec<Fr> = self.witness.input.iter().map(|&x| field::from_i64(x)).collect();
                // Row 0 of the multiply-accumulate columns is left blank (zeros) so that its gate never reads an
                // unassigned cell; the sponge starts with such a row of its own.
                config.linear.assign_blank_row(&mut a, 0);
                let (input, packed, linear_row) = config.linear.assign_pack(&mut a, 1, &input)?;
                let (commitment, sponge_end) = config.poseidon.assign(&mut a, 0, self.witness.salt, &packed)?;
                let mut rows = Cursors {
                    linear: linear_row,
                    requant: sponge_end,
                    range: ColumnRows::new(config.range.columns(), 0),
                    ..Cursors::default()
                };
                // Every input is an int8 (which also makes the packing injective).
                for x in &input {
                    config.range.check(&mut a, &mut rows.range, x, Range::INT8)?;
                }
                let mut tensors = vec![input];
                let tables = table_ids(&self.model);
                let mut products = Vec::new();
                for (i, layer) in self.model.layers.iter().enumerate() {
                    let freivalds = self.params.uses_freivalds(i);
                    let output = self.assign_layer(
                        &config,
                        &mut a,
                        &mut rows,
                        &tensors,
                        &tables,
                        layer,
                        freivalds,
                        &mut products,
                    )?;
                    tensors.push(output);
                }
                let outputs = tensors.pop().unwrap_or_default();
                let nonce = a.advice(CellKind::Nonce, config.requant.acc, rows.requant, self.witness.nonce);
                if let Some(chip) = &config.freivalds {
                    // Every product is committed now; the challenge comes after.
                    a.next_phase();
                    let gamma = a.challenge(chip.challenge());
                    chip.assign_blank_rows(&mut a);
                    let mut rows = ColumnRows::new(chip.pairs(), 1);
                    for p in &products {
                        chip.assign_product(&mut a, &mut rows, gamma, &p.weights, &p.x, &p.y)?;
                    }
                } else if !products.is_empty() {
                    return Err(Error::Synthesis);
                }
                if let Ok(mut record) = self.record.lock() {
                    *record = SynthesisRecord {
                        cell_counts: a.counts().clone(),
                        outputs: outputs.iter().map(|y| y.value).collect(),
                        commitment: commitment.value,
                    };
                }
                Ok((commitment, nonce, outputs))
            },
        )?;
        layouter.constrain_instance(commitment.cell, config.instance, COMMITMENT_ROW);
        layouter.constrain_instance(nonce.cell, config.instance, NONCE_ROW);
        for (i, y) in outputs.iter().enumerate() {
            layouter.constrain_instance(y.cell, config.instance, OUTPUTS_ROW + i);
        }
        Ok(())
    }
}
