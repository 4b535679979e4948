//! Key generation and key files: `setup` lays out the model's circuit at the smallest `k`, runs halo2's keygen and
//! returns the prover's and the verifier's keys. A key directory holds `pk.bin`, `vk.bin` and `model-id.txt`.

use std::path::Path;
use std::sync::Arc;

use blake2::{digest::consts::U32, Blake2b, Digest};
use halo2_proofs::{
    halo2curves::bn256::{Bn256, Fr, G1Affine},
    halo2curves::serde::SerdeObject,
    plonk::{keygen_pk, keygen_vk_custom, ProvingKey, VerifyingKey},
    poly::kzg::commitment::ParamsKZG,
    SerdeFormat,
};
use serde::{Deserialize, Serialize};
use zkinfer_circuits::{layout, CircuitParams, ModelCircuit, QuantizedModel};
use zkinfer_verifier::decode::decode_exact;
use zkinfer_verifier::envelope::{self, FileKind};
use zkinfer_verifier::{ModelMeta, VerifierKey};

use crate::commit::SmallValueParams;
use crate::device::GpuBackend;
use crate::error::{ProverError, Result};
use crate::srs::SrsSource;

/// Format version of proving-key files (5: the model id hashes the whole verifying-key file; 6: circuit
/// parameters as sets, the product chip; 7: input scales per channel in the metadata; 8: the requantization's upper
/// bound as a fixed column; 9: that column only with the optional `WideRelu` chip; 10: no selector bitmaps,
/// requantization sets; 11: range-check limb widths; 12: Freivalds window widths; 13: the clamp table; 18: the
/// metadata's causal outputs; 19: the layer-norm chip; 20: packed outputs in
/// the instance).
pub const PROVING_KEY_VERSION: u16 = 21;
pub use zkinfer_verifier::key_dir::{MODEL_ID_FILE, PK_FILE, VK_FILE};

/// Everything the prover needs besides the model.
#[derive(Clone, Debug)]
pub struct ProverKey {
    /// Model metadata, as in the verifying key.
    pub meta: ModelMeta,
    /// halo2 proving key.
    pub pk: ProvingKey<G1Affine>,
    /// The SRS cut to `2^k`, with the Lagrange bases the prover commits with.
    pub srs: SmallValueParams,
    /// Whether the SRS is the insecure development one (read off its points, not from a flag in the file).
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
    checksum: [u8; 32],
    // Byte strings, not sequences of `u8`: the same encoding (a length, then the bytes), decoded by one copy
    // instead of one call per byte (a 2^16-row key is ~350 MB; loading it went from 2.9 s to 1.3 s).
    #[serde(with = "serde_bytes")]
    pk: Vec<u8>,
    #[serde(with = "serde_bytes")]
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
pub(crate) fn model_digest(model: &QuantizedModel) -> Result<[u8; 32]> {
    Ok(checksum(&[&crate::model_file::model_to_bytes(model)?]))
}

/// The metadata a model's keys carry.
pub fn model_meta(model: &QuantizedModel, k: u32, circuit_params: CircuitParams) -> ModelMeta {
    ModelMeta {
        name: model.name.clone(),
        input_shape: model.input_shape.clone(),
        input_len: model.input_len(),
        output_len: model.output_len(),
        input: model.input.clone(),
        output_scale: model.output_scale(),
        k,
        circuit_params,
        causal_outputs: model.causal_outputs().ok(),
    }
}

/// Generates the proving and verifying keys of `model`.
pub fn setup(model: &QuantizedModel, circuit_params: CircuitParams, srs: &SrsSource) -> Result<KeyPair> {
    let plan = layout::plan(model, &circuit_params).map_err(|reason| ProverError::Layout { reason })?;
    let params = srs.params(plan.k)?;
    let circuit = ModelCircuit::for_keygen(model.clone(), circuit_params.clone());
    // Selectors become plain fixed columns (no compression): the key file then carries no `2^k`-bit selector
    // bitmaps and a verifier loads it in time independent of `k` (halo2 re-runs the compression on every load).
    let vk = keygen_vk_custom(&params, &circuit, false).map_err(|e| ProverError::KeyGeneration {
        which: "verifying-key",
        reason: format!("{e:?}"),
    })?;
    let pk = keygen_pk(&params, vk.clone(), &circuit).map_err(|e| ProverError::KeyGeneration {
        which: "proving-key",
        reason: format!("{e:?}"),
    })?;
    let meta = model_meta(model, plan.k, circuit_params);
    let verifier = VerifierKey::new(meta.clone(), vk, &params);
    let model_id = verifier.model_id();
    Ok(KeyPair {
        prover: ProverKey {
            meta,
            pk,
            insecure_srs: verifier.is_insecure_dev_srs(),
            srs: SmallValueParams::new(params),
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
        checksum: checksum(&[&pk, &srs]),
        pk,
        srs,
    };
    let payload = zkinfer_verifier::decode::encode(&file);
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

/// Reads the proving key of a key directory and checks that it was made for `model`. Every length in the file is
/// bounded by the file's size, and the key's size `k` by the model's layout, before halo2 parses it.
pub fn load_prover_key(dir: &Path, model: &QuantizedModel) -> Result<ProverKey> {
    let path = dir.join(PK_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ProverError::io(&path, e))?;
    prover_key_from_bytes_at(&bytes, model, &path)
}

/// Parses the bytes of a `pk.bin` file and checks that the key was made for `model`, as
/// [`load_prover_key`] does (error messages name the file `pk.bin`).
pub fn prover_key_from_bytes(bytes: &[u8], model: &QuantizedModel) -> Result<ProverKey> {
    prover_key_from_bytes_at(bytes, model, Path::new(PK_FILE))
}

/// [`prover_key_from_bytes`], with `path` labelling error messages.
fn prover_key_from_bytes_at(bytes: &[u8], model: &QuantizedModel, path: &Path) -> Result<ProverKey> {
    let bad = |reason: String| ProverError::ProverKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let payload = envelope::open(FileKind::ProvingKey, PROVING_KEY_VERSION, bytes).map_err(|e| bad(e.to_string()))?;
    let file: PkFile = decode_exact(payload).map_err(|e| bad(format!("{e}; run `zkinfer setup` again")))?;
    if checksum(&[&file.pk, &file.srs]) != file.checksum {
        return Err(bad("corrupted (checksum mismatch); run `zkinfer setup` again".into()));
    }
    let expected = model_meta(model, file.meta.k, file.meta.circuit_params.clone());
    if file.meta != expected || file.model_digest != model_digest(model)? {
        return Err(bad(format!(
            "made for model `{}` ({} inputs, {} outputs), not for this model; run `zkinfer setup` for it",
            file.meta.name, file.meta.input_len, file.meta.output_len
        )));
    }
    file.meta.validate().map_err(bad)?;
    let plan = layout::plan(model, &file.meta.circuit_params).map_err(bad)?;
    if plan.k != file.meta.k {
        return Err(bad(format!(
            "made for 2^{} rows, the model needs 2^{}",
            file.meta.k, plan.k
        )));
    }
    let srs_k = file.srs.get(0..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if srs_k != Some(plan.k) || file.srs.len() as u64 != crate::srs::raw_params_len(plan.k) {
        return Err(bad(
            "its SRS does not have the size of the circuit's; run `zkinfer setup` again".into(),
        ));
    }
    let pk_k = file.pk.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if pk_k != Some(plan.k) {
        return Err(bad(
            "its halo2 key does not have the circuit's size; run `zkinfer setup` again".into(),
        ));
    }
    let params = file.meta.circuit_params.clone();
    check_halo2_key_layout(&file.pk, plan.k, params.clone())
        .map_err(|e| bad(format!("{e}; run `zkinfer setup` again")))?;
    let pk = std::panic::catch_unwind(|| {
        ProvingKey::<G1Affine>::from_bytes::<ModelCircuit>(&file.pk, SerdeFormat::RawBytes, params)
    })
    .map_err(|_| bad("the halo2 proving key could not be decoded; run `zkinfer setup` again".into()))?
    .map_err(|e| bad(e.to_string()))?;
    let srs =
        ParamsKZG::<Bn256>::read_custom(&mut &file.srs[..], SerdeFormat::RawBytes).map_err(|e| bad(e.to_string()))?;
    let verifier = VerifierKey::new(file.meta.clone(), pk.get_vk().clone(), &srs);
    Ok(ProverKey {
        meta: file.meta,
        pk,
        insecure_srs: verifier.is_insecure_dev_srs(),
        srs: SmallValueParams::new(srs),
        model_id: verifier.model_id(),
        model_digest: file.model_digest,
    })
}

/// Checks the layout of halo2's proving-key encoding (`SerdeFormat::RawBytes`) of a `2^k`-row circuit before
/// halo2 parses it: halo2 panics on a truncated polynomial or a field element not below the modulus, and allocates
/// whatever a polynomial's length field claims. The verifying key at the start is read by halo2 itself (its reads
/// fail with errors); after it come `l_0`, `l_last`, `l_active_row`, the fixed columns' values and polynomials,
/// and the permutation's, each polynomial a big-endian `u32` length (`2^k`) and canonical field elements, each
/// list a big-endian `u32` count (that of the verifying key's commitments), and nothing else.
fn check_halo2_key_layout(pk: &[u8], k: u32, params: CircuitParams) -> std::result::Result<(), String> {
    let mut rest = pk;
    let vk = VerifyingKey::<G1Affine>::read::<_, ModelCircuit>(&mut rest, SerdeFormat::RawBytes, params)
        .map_err(|e| format!("its verifying key is unreadable ({e})"))?;
    let rows = 1usize << k;
    let element = std::mem::size_of::<Fr>();
    let take_u32 = |rest: &mut &[u8], what: &str| -> std::result::Result<usize, String> {
        let Some((bytes, tail)) = rest.split_first_chunk::<4>() else {
            return Err(format!("the halo2 proving key ends before {what}"));
        };
        *rest = tail;
        Ok(u32::from_be_bytes(*bytes) as usize)
    };
    let polynomial = |rest: &mut &[u8], what: &str| -> std::result::Result<(), String> {
        let len = take_u32(rest, what)?;
        if len != rows {
            return Err(format!("{what} has {len} coefficients, not 2^{k}"));
        }
        let Some((values, tail)) = rest.split_at_checked(rows * element) else {
            return Err(format!("the halo2 proving key ends inside {what}"));
        };
        if values.chunks_exact(element).any(|v| Fr::from_raw_bytes(v).is_none()) {
            return Err(format!("{what} holds a value that is not a field element"));
        }
        *rest = tail;
        Ok(())
    };
    for what in ["l_0", "l_last", "l_active_row"] {
        polynomial(&mut rest, what)?;
    }
    let fixed = vk.fixed_commitments().len();
    if fixed != vk.cs().num_fixed_columns() {
        return Err(format!(
            "its verifying key has {fixed} fixed commitments for {} fixed columns",
            vk.cs().num_fixed_columns()
        ));
    }
    let permutation = vk.permutation().commitments().len();
    for (what, expected) in [
        ("the fixed columns' values", fixed),
        ("the fixed columns' polynomials", fixed),
        ("the permutation's values", permutation),
        ("the permutation's polynomials", permutation),
    ] {
        let count = take_u32(&mut rest, what)?;
        if count != expected {
            return Err(format!(
                "{what} are {count} polynomials, the verifying key has {expected}"
            ));
        }
        for _ in 0..count {
            polynomial(&mut rest, what)?;
        }
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the halo2 proving key", rest.len()));
    }
    Ok(())
}
