//! A model ready to prove many requests: the quantized model, its proving and verifying keys checked against it
//! and each other once, and the integer engine kept across proofs (on a GPU, the SRS bases and the linear layers
//! are uploaded once). The CLI's `prove` and the service's workers use it alike.

use std::path::Path;
use std::sync::Arc;

use zkinfer_circuits::QuantizedModel;
use zkinfer_verifier::VerifierKey;

use crate::device::{Device, GpuBackend};
use crate::error::{ProverError, Result};
use crate::generate::{generate_with, GenerateRequest, Generated};
use crate::infer::IntegerEngine;
use crate::keys::{load_prover_key, ProverKey};
use crate::prove::{prove_with, ProveRequest, Proven};

/// A model with its keys and its engine.
#[derive(Clone, Debug)]
pub struct Prover {
    key: ProverKey,
    verifier: VerifierKey,
    engine: IntegerEngine,
}

impl Prover {
    /// Opens the keys in `key_dir` (`pk.bin`, `vk.bin`) for `model` on `device` (see [`GpuBackend::open`]).
    pub fn open(model: QuantizedModel, key_dir: &Path, device: Device) -> Result<Prover> {
        Self::open_on(model, key_dir, GpuBackend::open(device)?)
    }

    /// [`Prover::open`] on an already opened GPU (a server shares one between its models), or on the CPU.
    pub fn open_on(model: QuantizedModel, key_dir: &Path, gpu: Option<Arc<GpuBackend>>) -> Result<Prover> {
        let key = load_prover_key(key_dir, &model)?;
        let verifier = zkinfer_verifier::load_verifier_key(key_dir, None).map_err(|e| ProverError::ProverKeyFile {
            path: key_dir.to_path_buf(),
            reason: format!("its verifying key: {e}"),
        })?;
        Self::from_keys(model, key, verifier, gpu)
    }

    /// A prover for keys already in memory (from [`setup`](crate::setup)); checks that they are one pair made for
    /// `model`, and attaches `gpu` when given.
    pub fn from_keys(
        model: QuantizedModel,
        mut key: ProverKey,
        verifier: VerifierKey,
        gpu: Option<Arc<GpuBackend>>,
    ) -> Result<Prover> {
        if key.model_id != verifier.model_id() {
            return Err(ProverError::KeyPairMismatch {
                proving: format!("{} (`{}`)", hex::encode(key.model_id), key.meta.name),
                verifying: format!("{} (`{}`)", hex::encode(verifier.model_id()), verifier.meta().name),
            });
        }
        if key.model_digest != crate::keys::model_digest(&model)? {
            return Err(ProverError::ProverKeyFile {
                path: "pk.bin".into(),
                reason: format!(
                    "made for another model than `{}`; run `zkinfer setup` for this model",
                    model.name
                ),
            });
        }
        let engine = match gpu {
            Some(backend) => {
                key.use_gpu(backend.clone())?;
                IntegerEngine::on_gpu(&model, backend)?
            }
            None => IntegerEngine::new(&model)?,
        };
        Ok(Prover { key, verifier, engine })
    }

    /// Proves `request` and checks the proof before returning it.
    pub fn prove(&self, request: &ProveRequest) -> Result<Proven> {
        prove_with(&self.engine, &self.key, &self.verifier, request)
    }

    /// Generates greedy tokens after a prompt and proves them with one proof (a causal language model only), checked
    /// before it is returned.
    pub fn generate(&self, request: &GenerateRequest) -> Result<Generated> {
        generate_with(&self.engine, &self.key, &self.verifier, request)
    }

    /// The model.
    pub fn model(&self) -> &QuantizedModel {
        self.engine.model()
    }

    /// The integer engine (for answering the outputs before the proof).
    pub fn engine(&self) -> &IntegerEngine {
        &self.engine
    }

    /// The proving key.
    pub fn key(&self) -> &ProverKey {
        &self.key
    }

    /// The verifying key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The GPU it proves on, if any.
    pub fn gpu(&self) -> Option<&Arc<GpuBackend>> {
        self.key.gpu()
    }
}
