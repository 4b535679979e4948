//! Key generation and key files: `setup` lays out the model's circuit at the smallest `k`, runs halo2's keygen and
//! returns the prover's and the verifier's keys. A key directory holds `pk.bin`, `vk.bin` and `model-id.txt`.

use std::path::Path;
use std::sync::Arc;

use blake2::{digest::consts::U32, Blake2b, Digest};
use halo2_proofs::{
    halo2curves::bn256::{Bn256, G1Affine},
    plonk::{keygen_pk, keygen_vk, ProvingKey},
    poly::kzg::commitment::ParamsKZG,
    SerdeFormat,
};
use serde::{Deserialize, Serialize};
use zkinfer_circuits::{layout, CircuitParams, ModelCircuit, QuantizedModel};
use zkinfer_verifier::envelope::{self, FileKind};
use zkinfer_verifier::{ModelMeta, VerifierKey};

use crate::commit::SmallValueParams;
use crate::device::GpuBackend;
use crate::error::{ProverError, Result};
use crate::srs::SrsSource;

/// Format version of proving-key files.
pub const PROVING_KEY_VERSION: u16 = 4;
/// File name of the proving key in a key directory.
pub const PK_FILE: &str = "pk.bin";
/// File name of the verifying key in a key directory.
pub const VK_FILE: &str = "vk.bin";
/// File name of the model id (hex) in a key directory.
pub const MODEL_ID_FILE: &str = "model-id.txt";

/// Everything the prover needs besides the model.
#[derive(Clone, Debug)]
pub struct ProverKey {
    /// Model metadata, as in the verifying key.
    pub meta: ModelMeta,
    /// halo2 proving key.
    pub pk: ProvingKey<G1Affine>,
    /// The SRS cut to `2^k`, with the Lagrange bases the prover commits with.
    pub srs: SmallValueParams,
    /// Whether the SRS is the insecure development one.
    pub insecure_srs: bool,
    /// The model id.
    pub model_id: [u8; 32],
    /// Digest of the quantized model the key was made for.
    pub model_digest: [u8; 32],
}

impl ProverKey {
    /// Proves on `backend`'s GPU from now on: uploads the SRS bases once (they stay resident for every proof made
    /// with this key), after which commitments are GPU MSMs and [`prove`](crate::prove) runs the integer inference
    /// on the GPU. The proofs are the ones the CPU makes.
    pub fn use_gpu(&mut self, backend: Arc<GpuBackend>) -> Result<()> {
        self.srs.attach_gpu(backend)
    }

    /// The GPU this key proves on, if any.
    pub fn gpu(&self) -> Option<&Arc<GpuBackend>> {
        self.srs.gpu().map(|committer| committer.backend())
    }
}

/// The output of `setup`.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// For the prover.
    pub prover: ProverKey,
    /// For validators and clients.
    pub verifier: VerifierKey,
}

#[derive(Serialize, Deserialize)]
struct PkFile {
    meta: ModelMeta,
    model_digest: [u8; 32],
    insecure_srs: bool,
    checksum: [u8; 32],
    pk: Vec<u8>,
    srs: Vec<u8>,
}

fn checksum(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Digest of the whole quantized model (weights included), so a proving key is never used with another model.
fn model_digest(model: &QuantizedModel) -> Result<[u8; 32]> {
    Ok(checksum(&[&crate::model_file::model_to_bytes(model)?]))
}

/// The metadata a model's keys carry.
pub fn model_meta(model: &QuantizedModel, k: u32, circuit_params: CircuitParams) -> ModelMeta {
    ModelMeta {
        name: model.name.clone(),
        input_shape: model.input_shape.clone(),
        input_len: model.input_len(),
        output_len: model.output_len(),
        input_scale: model.input_scale,
        output_scale: model.output_scale(),
        k,
        circuit_params,
    }
}

/// Generates the proving and verifying keys of `model`.
pub fn setup(model: &QuantizedModel, circuit_params: CircuitParams, srs: &SrsSource) -> Result<KeyPair> {
    let plan = layout::plan(model, circuit_params)
        .map_err(|e| ProverError::Other(format!("cannot lay out the model: {e}")))?;
    let params = srs.params(plan.k)?;
    let circuit = ModelCircuit::for_keygen(model.clone(), circuit_params);
    let vk = keygen_vk(&params, &circuit)
        .map_err(|e| ProverError::Other(format!("verifying-key generation failed: {e:?}")))?;
    let pk = keygen_pk(&params, vk.clone(), &circuit)
        .map_err(|e| ProverError::Other(format!("proving-key generation failed: {e:?}")))?;
    let meta = model_meta(model, plan.k, circuit_params);
    let verifier = VerifierKey::new(meta.clone(), vk, &params);
    let model_id = verifier.model_id();
    Ok(KeyPair {
        prover: ProverKey {
            meta,
            pk,
            srs: SmallValueParams::new(params),
            insecure_srs: srs.is_insecure(),
            model_id,
            model_digest: model_digest(model)?,
        },
        verifier,
    })
}

/// Writes `pk.bin`, `vk.bin` and `model-id.txt` into `dir` (created if missing).
pub fn write_keys(keys: &KeyPair, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ProverError::io(dir, e))?;
    let p = &keys.prover;
    let pk = p.pk.to_bytes(SerdeFormat::RawBytes);
    let mut srs = Vec::new();
    p.srs
        .kzg()
        .write_custom(&mut srs, SerdeFormat::RawBytes)
        .map_err(|e| ProverError::io(dir, e))?;
    let file = PkFile {
        meta: p.meta.clone(),
        model_digest: p.model_digest,
        insecure_srs: p.insecure_srs,
        checksum: checksum(&[&pk, &srs]),
        pk,
        srs,
    };
    let payload = bincode::serde::encode_to_vec(&file, bincode::config::standard())
        .map_err(|e| ProverError::Other(format!("cannot encode the proving key: {e}")))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| ProverError::io(path, e))
    };
    write(
        PK_FILE,
        &envelope::seal(FileKind::ProvingKey, PROVING_KEY_VERSION, &payload),
    )?;
    write(VK_FILE, &keys.verifier.to_bytes())?;
    write(MODEL_ID_FILE, format!("{}\n", hex::encode(p.model_id)).as_bytes())
}

/// Reads the verifying key of a key directory.
pub fn load_verifier_key(dir: &Path) -> Result<VerifierKey> {
    let path = dir.join(VK_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ProverError::io(&path, e))?;
    VerifierKey::from_bytes(&bytes).map_err(|e| ProverError::Other(format!("`{}`: {e}", path.display())))
}

/// Reads the proving key of a key directory and checks that it was made for `model`.
pub fn load_prover_key(dir: &Path, model: &QuantizedModel) -> Result<ProverKey> {
    let path = dir.join(PK_FILE);
    let bad = |reason: String| ProverError::Other(format!("proving key `{}`: {reason}", path.display()));
    let bytes = std::fs::read(&path).map_err(|e| ProverError::io(&path, e))?;
    let payload = envelope::open(FileKind::ProvingKey, PROVING_KEY_VERSION, &bytes).map_err(|e| bad(e.to_string()))?;
    let (file, used): (PkFile, usize) = bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map_err(|e| bad(format!("truncated or corrupted ({e}); run `zkinfer setup` again")))?;
    if used != payload.len() || checksum(&[&file.pk, &file.srs]) != file.checksum {
        return Err(bad("corrupted (checksum mismatch); run `zkinfer setup` again".into()));
    }
    let expected = model_meta(model, file.meta.k, file.meta.circuit_params);
    if file.meta != expected || file.model_digest != model_digest(model)? {
        return Err(bad(format!(
            "made for model `{}` ({} inputs, {} outputs), not for this model; run `zkinfer setup` for it",
            file.meta.name, file.meta.input_len, file.meta.output_len
        )));
    }
    let plan = layout::plan(model, file.meta.circuit_params).map_err(bad)?;
    if plan.k != file.meta.k {
        return Err(bad(format!(
            "made for 2^{} rows, the model needs 2^{}",
            file.meta.k, plan.k
        )));
    }
    let pk =
        ProvingKey::<G1Affine>::from_bytes::<ModelCircuit>(&file.pk, SerdeFormat::RawBytes, file.meta.circuit_params)
            .map_err(|e| bad(e.to_string()))?;
    let srs =
        ParamsKZG::<Bn256>::read_custom(&mut &file.srs[..], SerdeFormat::RawBytes).map_err(|e| bad(e.to_string()))?;
    let model_id = zkinfer_verifier::key::model_id(&pk.get_vk().to_bytes(SerdeFormat::Processed), &file.meta);
    Ok(ProverKey {
        meta: file.meta,
        pk,
        srs: SmallValueParams::new(srs),
        insecure_srs: file.insecure_srs,
        model_id,
        model_digest: file.model_digest,
    })
}
