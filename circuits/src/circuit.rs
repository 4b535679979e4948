//! The model circuit: commitment → range-checked input → layers (linear → requantize/clamp, max pool, activation
//! table, data movement) → public outputs.
//!
//! Layers compose chips and own no constraints. Public inputs are bound here and only here: the Poseidon output to
//! instance row 0, the nonce cell to row 1, the last layer's outputs to rows 2…

#[cfg(feature = "test-hooks")]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ff::Field;
use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    halo2curves::bn256::Fr,
    plonk::{Circuit, Column, ConstraintSystem, Error, Instance},
};

#[cfg(feature = "test-hooks")]
use crate::assign::Tamper;
use crate::assign::{Assigner, CellKind};
use crate::chips::{
    argmax::ArgMaxConfig,
    clamp_table::ClampTable,
    freivalds::FreivaldsConfig,
    fusion::Fusion,
    linear::LinearConfig,
    max_pool::MaxPoolConfig,
    norm::NormConfig,
    poseidon::PoseidonConfig,
    product::ProductConfig,
    range_check::{Range, RangeCheckConfig},
    requantize::RequantConfig,
    softmax::SoftmaxConfig,
    table::{table_ids, TableConfig},
};
use crate::column_rows::ColumnRows;
use crate::error::{CircuitError, CircuitProblem};
use crate::field;
use crate::layers::{chip_of, AssignContext, Cursors};
use crate::model::{Layer, QuantizedModel};
use crate::params::{Chip, CircuitParams};
use crate::public_inputs::{COMMITMENT_ROW, NONCE_ROW, OUTPUTS_ROW, OUTPUT_WORD_BITS};

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

/// All columns of the model circuit: the chips every circuit has, and the optional ones its parameters ask for.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub(crate) poseidon: PoseidonConfig,
    pub(crate) linear: LinearConfig,
    /// Requantization column sets (the first shares its advice columns with the sponge).
    pub(crate) requant: Vec<RequantConfig>,
    pub(crate) range: RangeCheckConfig,
    /// The clamp table, in a circuit with one.
    pub(crate) clamp: Option<ClampTable>,
    pub(crate) max_pool: Option<MaxPoolConfig>,
    pub(crate) table: Option<TableConfig>,
    pub(crate) product: Option<ProductConfig>,
    pub(crate) softmax: Option<SoftmaxConfig>,
    pub(crate) argmax: Option<ArgMaxConfig>,
    pub(crate) norm: Option<NormConfig>,
    pub(crate) freivalds: Option<FreivaldsConfig>,
    pub(crate) instance: Column<Instance>,
}

/// The circuit proving one inference of a quantized model.
#[derive(Clone, Debug)]
pub struct ModelCircuit {
    model: QuantizedModel,
    params: CircuitParams,
    witness: Witness,
    /// Why the last synthesis failed, when a layer could not be laid out (halo2 only reports `Error::Synthesis`).
    failure: Arc<Mutex<Option<String>>>,
    #[cfg(feature = "test-hooks")]
    tamper: Option<Tamper>,
    #[cfg(feature = "test-hooks")]
    record: Arc<Mutex<SynthesisRecord>>,
}

/// What the last synthesis of a circuit wrote, for tests that compare it with the native engine (`test-hooks`).
#[cfg(feature = "test-hooks")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthesisRecord {
    /// Advice cells assigned, by kind.
    pub cell_counts: HashMap<CellKind, usize>,
    /// The values bound to the output rows of the instance column.
    pub outputs: Vec<Fr>,
    /// The value bound to the commitment row.
    pub commitment: Fr,
    /// The next free row of every column group after the synthesis (the nonce takes the requantization row at
    /// `rows.requant`).
    pub rows: Cursors,
}

impl ModelCircuit {
    /// A circuit proving `model` on `witness`.
    pub fn new(model: QuantizedModel, params: CircuitParams, witness: Witness) -> Self {
        Self {
            model,
            params,
            witness,
            failure: Arc::default(),
            #[cfg(feature = "test-hooks")]
            tamper: None,
            #[cfg(feature = "test-hooks")]
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

    /// The same circuit with one cell changed or one attack mounted (soundness tests only: `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn with_tamper(mut self, tamper: Tamper) -> Self {
        self.tamper = Some(tamper);
        self
    }

    /// How many advice cells of each kind the last synthesis assigned (the tampering harness picks from these).
    #[cfg(feature = "test-hooks")]
    pub fn assigned_cell_counts(&self) -> HashMap<CellKind, usize> {
        self.last_synthesis().cell_counts
    }

    /// What the last synthesis of this circuit (or a clone of it) wrote.
    #[cfg(feature = "test-hooks")]
    pub fn last_synthesis(&self) -> SynthesisRecord {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Why the last synthesis of this circuit (or a clone of it) failed, naming the layer, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// The model this circuit proves.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }
}

/// The range every input value is checked to: int8, or a 16-bit word for token ids (an embedding's lookup also
/// bounds each id it reads by the vocabulary).
pub fn input_range(model: &QuantizedModel) -> Range {
    match model.input.vocab {
        Some(_) => Range::Unsigned {
            bits: crate::model::TOKEN_BITS,
        },
        None => Range::INT8,
    }
}

/// The rows of `sets` requantization column sets before the first layer: the sponge's in the first.
pub fn requant_rows(sets: usize, sponge_rows: usize) -> ColumnRows {
    let mut used = vec![0; sets.max(1)];
    used[0] = sponge_rows;
    ColumnRows::from_used(used)
}

/// Allocates every chip's columns.
pub fn configure(meta: &mut ConstraintSystem<Fr>, params: &CircuitParams) -> ModelConfig {
    let instance = meta.instance_column();
    meta.enable_equality(instance);
    let range = RangeCheckConfig::configure(meta, params.range_columns, params.limb_bits);
    // The first requantization set and the sponge share six advice columns: the sponge comes first, then one
    // requantization per row. Further sets have columns of their own.
    let shared = [(); 6].map(|_| meta.advice_column());
    let [acc, r, y, b, d, extra] = shared;
    let wide_relu = params.has(Chip::WideRelu);
    let clamp = (params.clamp_bits > 0).then(|| ClampTable::configure(meta, params.clamp_bits));
    let mut requant = vec![RequantConfig::configure(
        meta,
        [acc, r, y, b, d],
        wide_relu,
        clamp.as_ref(),
    )];
    for _ in 1..params.requant_sets.max(1) {
        let columns = [(); 5].map(|_| meta.advice_column());
        requant.push(RequantConfig::configure(meta, columns, wide_relu, clamp.as_ref()));
    }
    // In this order: the column indices (and so the constraint system) of models without the later chips stay as
    // they were.
    let poseidon = PoseidonConfig::configure(meta, [d, b, extra], [acc, r, y]);
    let linear = LinearConfig::configure(meta, params.mac_lanes.max(1), params.mac_taps.max(1));
    let max_pool = (params.has(Chip::MaxPool)).then(|| MaxPoolConfig::configure(meta, range.table()));
    let table = params.has(Chip::Table).then(|| TableConfig::configure(meta));
    let product = params.has(Chip::Product).then(|| ProductConfig::configure(meta));
    let softmax = (table.as_ref())
        .filter(|_| params.has(Chip::Softmax))
        .map(|t| SoftmaxConfig::configure(meta, t.columns()));
    let argmax = params
        .has(Chip::ArgMax)
        .then(|| ArgMaxConfig::configure(meta, range.table()));
    let norm = params.has(Chip::LayerNorm).then(|| NormConfig::configure(meta));
    // Last: its second-phase columns need a first-phase column allocated before them.
    let freivalds = params.has_freivalds().then(|| {
        let widths: Vec<usize> = params.freivalds_widths.iter().copied().collect();
        FreivaldsConfig::configure(meta, params.freivalds_pairs, &widths, params.has(Chip::MatMul))
    });
    ModelConfig {
        poseidon,
        requant,
        linear,
        max_pool,
        table,
        product,
        softmax,
        argmax,
        norm,
        freivalds,
        range,
        clamp,
        instance,
    }
}

impl ModelCircuit {
    /// Records why `layer` could not be laid out and returns halo2's error for it.
    fn failed(&self, layer: &Layer, problem: CircuitProblem) -> Error {
        let error = CircuitError {
            layer: layer.name.clone(),
            problem,
        };
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(error.to_string());
        }
        Error::Synthesis
    }
}

impl Circuit<Fr> for ModelCircuit {
    type Config = ModelConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = CircuitParams;

    fn without_witnesses(&self) -> Self {
        Self::for_keygen(self.model.clone(), self.params.clone())
    }

    fn params(&self) -> CircuitParams {
        self.params.clone()
    }

    fn configure_with_params(meta: &mut ConstraintSystem<Fr>, params: CircuitParams) -> ModelConfig {
        configure(meta, &params)
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> ModelConfig {
        configure(meta, &CircuitParams::default())
    }

    fn synthesize(&self, config: ModelConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        config.range.load_table(&mut layouter)?;
        let fusion = Fusion::of(&self.model, &self.params);
        if let Some(clamp) = &config.clamp {
            clamp.load(&mut layouter, &fusion)?;
        }
        if let Some(table) = &config.table {
            table.load(&mut layouter, &self.model)?;
        }
        let (commitment, nonce, packed) = layouter.assign_region(
            || "model",
            |mut region| {
                #[cfg(feature = "test-hooks")]
                let mut a = Assigner::tampered(&mut region, self.tamper);
                #[cfg(not(feature = "test-hooks"))]
                let mut a = Assigner::new(&mut region);
                let input: Vec<Fr> = self.witness.input.iter().map(|&x| field::from_i64(x)).collect();
                // Row 0 of the multiply-accumulate columns is left blank (zeros) so that its gate never reads an
                // unassigned cell; the sponge starts with such a row of its own.
                config.linear.assign_blank_row(&mut a, 0);
                if let Some(softmax) = &config.softmax {
                    softmax.assign_blank_row(&mut a);
                }
                if let Some(argmax) = &config.argmax {
                    argmax.assign_blank_row(&mut a);
                }
                if let Some(norm) = &config.norm {
                    norm.assign_blank_row(&mut a);
                }
                let word_bits = self.model.input.word_bits();
                let (input, packed, linear_row) = config.linear.assign_pack(&mut a, 1, &input, word_bits)?;
                let (commitment, sponge_end) = config.poseidon.assign(&mut a, 0, self.witness.salt, &packed)?;
                let mut rows = Cursors {
                    linear: linear_row,
                    requant: requant_rows(config.requant.len(), sponge_end),
                    range: ColumnRows::new(config.range.columns(), 0),
                    freivalds: ColumnRows::new(config.freivalds.as_ref().map_or(1, |f| f.pairs()), 1),
                    softmax: usize::from(config.softmax.is_some()),
                    argmax: usize::from(config.argmax.is_some()),
                    norm: usize::from(config.norm.is_some()),
                    ..Cursors::default()
                };
                // Every input is an int8, or a 16-bit token id (which also makes the packing injective).
                let input_range = input_range(&self.model);
                for x in &input {
                    config.range.check(&mut a, &mut rows.range, x, input_range)?;
                }
                let mut tensors = vec![input];
                let tables = table_ids(&self.model);
                let mut products = Vec::new();
                let mut matmuls = Vec::new();
                for (index, layer) in self.model.layers.iter().enumerate() {
                    let mut ctx = AssignContext {
                        model: &self.model,
                        config: &config,
                        a: &mut a,
                        rows: &mut rows,
                        tensors: &tensors,
                        tables: &tables,
                        fusion: &fusion,
                        index,
                        products: &mut products,
                        matmuls: &mut matmuls,
                        freivalds: self.params.uses_freivalds(index),
                        freivalds_widths: &self.params.freivalds_widths,
                    };
                    match chip_of(&layer.op).assign(layer, &mut ctx) {
                        Ok(output) => tensors.push(output),
                        Err(problem) => return Err(self.failed(layer, problem)),
                    }
                }
                let outputs = tensors.pop().unwrap_or_default();
                // The outputs packed for the instance column.
                let (packed, next) =
                    config
                        .linear
                        .assign_pack_outputs(&mut a, rows.linear, &outputs, OUTPUT_WORD_BITS)?;
                rows.linear = next;
                let (set, row) = rows.requant.place(1);
                let nonce_column = config.requant.get(set).ok_or(Error::Synthesis)?.acc;
                let nonce = a.advice(CellKind::Nonce, nonce_column, row, self.witness.nonce);
                if let Some(chip) = &config.freivalds {
                    // Every product is committed now; the challenge comes after.
                    a.next_phase();
                    let gamma = a.challenge(chip.challenge());
                    chip.assign_blank_rows(&mut a);
                    for p in &products {
                        let windows = p.windows.as_ref();
                        chip.assign_product(&mut a, &mut rows.freivalds, gamma, &p.weights, &p.x, &p.y, windows)?;
                    }
                    for m in &matmuls {
                        chip.assign_matmul(&mut a, &mut rows.freivalds, gamma, &m.lhs, &m.rhs, &m.out)?;
                    }
                } else if !products.is_empty() || !matmuls.is_empty() {
                    return Err(Error::Synthesis);
                }
                #[cfg(feature = "test-hooks")]
                if let Ok(mut record) = self.record.lock() {
                    *record = SynthesisRecord {
                        cell_counts: a.counts().clone(),
                        outputs: outputs.iter().map(|y| y.value).collect(),
                        commitment: commitment.value,
                        rows: rows.clone(),
                    };
                }
                if let Ok(mut failure) = self.failure.lock() {
                    *failure = None;
                }
                Ok((commitment, nonce, packed))
            },
        )?;
        layouter.constrain_instance(commitment.cell, config.instance, COMMITMENT_ROW);
        layouter.constrain_instance(nonce.cell, config.instance, NONCE_ROW);
        for (i, word) in packed.iter().enumerate() {
            layouter.constrain_instance(word.cell, config.instance, OUTPUTS_ROW + i);
        }
        Ok(())
    }
}
