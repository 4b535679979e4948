//! The models a server proves: each compiled model with its proving and verifying keys, by model id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zkinfer_circuits::QuantizedModel;
use zkinfer_prover::{load_model, GpuBackend, Prover};

use crate::api::ModelInfo;
use crate::error::ServiceError;

/// One served model.
pub struct ServedModel {
    /// Model id (hex).
    pub id: String,
    /// The model with its keys and its engine (on the GPU when the server proves on one).
    pub prover: Prover,
    /// The verifying key file's bytes, served to clients.
    pub verifier_key_bytes: Vec<u8>,
}

impl ServedModel {
    /// Loads `model_path` (`.zkm`) with the keys in `key_dir`, on `gpu` when given.
    pub fn load(model_path: &Path, key_dir: &Path, gpu: Option<&Arc<GpuBackend>>) -> Result<Self, ServiceError> {
        let failed = |reason: String| ServiceError::Model {
            path: model_path.display().to_string(),
            reason,
        };
        let model = load_model(model_path).map_err(|e| failed(e.to_string()))?;
        let prover = Prover::open_on(model, key_dir, gpu.cloned()).map_err(|e| failed(e.to_string()))?;
        Ok(ServedModel {
            id: hex::encode(prover.verifier().model_id()),
            verifier_key_bytes: prover.verifier().to_bytes(),
            prover,
        })
    }

    /// The quantized model.
    pub fn model(&self) -> &QuantizedModel {
        self.prover.model()
    }

    /// The model as `GET /v1/models` lists it.
    pub fn info(&self) -> ModelInfo {
        let meta = self.prover.verifier().meta();
        ModelInfo {
            model_id: self.id.clone(),
            name: meta.name.clone(),
            input_shape: meta.input_shape.clone(),
            input_len: meta.input_len,
            output_len: meta.output_len,
            k: meta.k,
        }
    }
}

/// Served models by id.
#[derive(Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<ServedModel>>,
}

impl ModelRegistry {
    /// Loads every `(model, key directory)` pair; refuses the same model twice.
    pub fn load(pairs: &[(PathBuf, PathBuf)], gpu: Option<&Arc<GpuBackend>>) -> Result<Self, ServiceError> {
        if pairs.is_empty() {
            return Err(ServiceError::Config(
                "no model to serve: give --model MODEL.zkm --keys KEYDIR (once per model)".into(),
            ));
        }
        let mut models = BTreeMap::new();
        for (model_path, key_dir) in pairs {
            let served = ServedModel::load(model_path, key_dir, gpu)?;
            if models.contains_key(&served.id) {
                return Err(ServiceError::Config(format!(
                    "model {} ({}) is given twice",
                    served.id,
                    model_path.display()
                )));
            }
            models.insert(served.id.clone(), Arc::new(served));
        }
        Ok(ModelRegistry { models })
    }

    /// The model with this id (hex, any case).
    pub fn get(&self, id: &str) -> Option<&Arc<ServedModel>> {
        self.models.get(&id.to_ascii_lowercase())
    }

    /// All models, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        self.models.values()
    }
}
