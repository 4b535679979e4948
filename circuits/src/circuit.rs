//! The model circuit: commitment → range-checked input → (dense → requantize/clamp)* → public outputs.
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

use crate::assign::{Assigner, CellKind, Tamper};
use crate::chips::{
    dense::DenseConfig, poseidon::PoseidonConfig, range_check::RangeCheckConfig, requantize::RequantConfig,
};
use crate::field;
use crate::model::{QuantizedModel, ACT_MIN};
use crate::public_inputs::{COMMITMENT_ROW, NONCE_ROW, OUTPUTS_ROW};

/// Layout choices that change the constraint system (and so the verifying key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitParams {
    /// Output channels computed side by side in the multiply-accumulate chip.
    pub mac_lanes: usize,
}

impl Default for CircuitParams {
    fn default() -> Self {
        Self { mac_lanes: 4 }
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
    dense: DenseConfig,
    requant: RequantConfig,
    range: RangeCheckConfig,
    instance: Column<Instance>,
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
    ModelConfig {
        poseidon: PoseidonConfig::configure(meta),
        dense: DenseConfig::configure(meta, params.mac_lanes.max(1)),
        requant: RequantConfig::configure(meta),
        range: RangeCheckConfig::configure(meta),
        instance,
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
        let (commitment, nonce, outputs) = layouter.assign_region(
            || "model",
            |mut region| {
                let mut a = Assigner::new(&mut region, self.tamper);
                let input: Vec<Fr> = self.witness.input.iter().map(|&x| field::from_i64(x)).collect();
                // Row 0 is left blank (zeros) so that gates reading the previous row never read an unassigned cell.
                config.poseidon.assign_blank_row(&mut a, 0);
                config.dense.assign_blank_row(&mut a, 0);
                let (message, commitment) = config.poseidon.assign(&mut a, 1, self.witness.salt, &input)?;
                let mut activations = message[1..].to_vec();

                // Every input is an int8: x + 128 ∈ [0, 256).
                let mut range_row = 0;
                for x in &activations {
                    range_row = config.range.check(&mut a, range_row, x, -ACT_MIN, 1)?;
                }
                let (mut dense_row, mut requant_row) = (1, 0);
                for layer in &self.model.layers {
                    let (accumulators, next) = config.dense.assign(&mut a, dense_row, layer, &activations)?;
                    dense_row = next;
                    activations.clear();
                    for (c, acc) in accumulators.iter().enumerate() {
                        let (y, next) =
                            config
                                .requant
                                .assign(&mut a, requant_row, &config.range, range_row, layer, c, acc)?;
                        range_row = next;
                        requant_row += 1;
                        activations.push(y);
                    }
                }
                let nonce = a.advice(CellKind::Nonce, config.requant.acc, requant_row, self.witness.nonce);
                if let Ok(mut record) = self.record.lock() {
                    *record = SynthesisRecord {
                        cell_counts: a.counts().clone(),
                        outputs: activations.iter().map(|y| y.value).collect(),
                        commitment: commitment.value,
                    };
                }
                Ok((commitment, nonce, activations))
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
