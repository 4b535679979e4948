//! The verifying key a validator holds: halo2's verifying key, the three SRS points KZG verification needs, and the
//! model's quantization metadata. The model id is computed from these bytes, never read from the file.

use blake2::{digest::consts::U32, Blake2b, Digest};
use halo2_proofs::{
    halo2curves::bn256::{Bn256, G1Affine, G2Affine},
    plonk::VerifyingKey,
    poly::{commitment::ParamsProver, kzg::commitment::ParamsKZG},
    SerdeCurveAffine, SerdeFormat,
};
use serde::{Deserialize, Serialize};
use zkinfer_circuits::{layout::MAX_K, CircuitParams, ModelCircuit};

use crate::envelope::{self, FileKind};
use crate::error::VerifyError;

/// Format version of verifying-key files.
pub const VERIFYING_KEY_VERSION: u16 = 4;

/// What a verifier needs to know about the model besides its constraint system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model name.
    pub name: String,
    /// Float input shape of the ONNX model.
    pub input_shape: Vec<usize>,
    /// Number of (flattened) inputs.
    pub input_len: usize,
    /// Number of outputs.
    pub output_len: usize,
    /// Scale of the int8 input.
    pub input_scale: f32,
    /// Scale of the int8 outputs.
    pub output_scale: f32,
    /// Circuit size (log2 rows).
    pub k: u32,
    /// Layout choices of the circuit.
    pub circuit_params: CircuitParams,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    meta: ModelMeta,
    vk: Vec<u8>,
    srs: Vec<u8>,
}

/// A loaded verifying key.
#[derive(Clone, Debug)]
pub struct VerifierKey {
    /// Model metadata.
    pub meta: ModelMeta,
    /// halo2 verifying key.
    pub vk: VerifyingKey<G1Affine>,
    /// The verifier's part of the SRS (`g_0`, `g_2`, `s·g_2`).
    pub srs: ParamsKZG<Bn256>,
    model_id: [u8; 32],
}

/// `blake2b-256("zkinfer model id v1" ‖ len ‖ vk ‖ len ‖ metadata)`.
pub fn model_id(vk_bytes: &[u8], meta: &ModelMeta) -> [u8; 32] {
    let meta_bytes = bincode::serde::encode_to_vec(meta, bincode::config::standard()).unwrap_or_default();
    let mut h = Blake2b::<U32>::new();
    h.update(b"zkinfer model id v1");
    h.update((vk_bytes.len() as u64).to_le_bytes());
    h.update(vk_bytes);
    h.update((meta_bytes.len() as u64).to_le_bytes());
    h.update(&meta_bytes);
    h.finalize().into()
}

fn self_k(vk: &VerifyingKey<G1Affine>) -> u32 {
    vk.get_domain().k()
}

/// KZG verification reads only `g_0`, `g_2`, `s·g_2` and the size `2^k`; this builds parameters holding just those
/// (`from_parts` needs a receiver, so a throwaway one-point setup provides it).
fn verifier_srs(k: u32, g0: G1Affine, g2: G2Affine, s_g2: G2Affine) -> ParamsKZG<Bn256> {
    ParamsKZG::<Bn256>::setup(0, rand_core::OsRng).from_parts(k, vec![g0], Some(vec![g0]), g2, s_g2)
}

fn malformed(reason: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what: "verifying key",
        reason: reason.to_string(),
    }
}

impl VerifierKey {
    /// Builds the key from halo2's verifying key and the full SRS it was made with.
    pub fn new(meta: ModelMeta, vk: VerifyingKey<G1Affine>, full_srs: &ParamsKZG<Bn256>) -> Self {
        let g0 = full_srs.get_g()[0];
        let srs = verifier_srs(self_k(&vk), g0, full_srs.g2(), full_srs.s_g2());
        let model_id = model_id(&vk.to_bytes(SerdeFormat::Processed), &meta);
        Self {
            meta,
            vk,
            srs,
            model_id,
        }
    }

    /// The model id.
    pub fn model_id(&self) -> [u8; 32] {
        self.model_id
    }

    /// Serializes the key with the zkinfer header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut srs = Vec::new();
        for write in [
            self.srs.get_g()[0].write(&mut srs, SerdeFormat::Processed),
            self.srs.g2().write(&mut srs, SerdeFormat::Processed),
            self.srs.s_g2().write(&mut srs, SerdeFormat::Processed),
        ] {
            write.unwrap_or_default();
        }
        let file = KeyFile {
            meta: self.meta.clone(),
            vk: self.vk.to_bytes(SerdeFormat::Processed),
            srs,
        };
        let payload = bincode::serde::encode_to_vec(&file, bincode::config::standard()).unwrap_or_default();
        envelope::seal(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, &payload)
    }

    /// Reads a key, checking every size before halo2 allocates anything.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let payload = envelope::open(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, bytes)?;
        let (file, used): (KeyFile, usize) =
            bincode::serde::decode_from_slice(payload, bincode::config::standard()).map_err(malformed)?;
        if used != payload.len() {
            return Err(malformed("trailing bytes"));
        }
        let k = file.meta.k;
        // halo2's layout: version byte, then k as u32 little endian.
        let vk_k = file.vk.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if k == 0 || k > MAX_K || vk_k != Some(k) {
            return Err(malformed(format!(
                "circuit size k = {k} is inconsistent or out of range"
            )));
        }
        let circuit_params = file.meta.circuit_params;
        if circuit_params.mac_lanes == 0 || circuit_params.mac_lanes > 64 {
            return Err(malformed("invalid circuit parameters"));
        }
        let vk = std::panic::catch_unwind(|| {
            VerifyingKey::<G1Affine>::from_bytes::<ModelCircuit>(&file.vk, SerdeFormat::Processed, circuit_params)
        })
        .map_err(|_| malformed("halo2 verifying key could not be decoded"))?
        .map_err(malformed)?;
        let reader = &mut &file.srs[..];
        let g0 = G1Affine::read(reader, SerdeFormat::Processed).map_err(malformed)?;
        let g2 = G2Affine::read(reader, SerdeFormat::Processed).map_err(malformed)?;
        let s_g2 = G2Affine::read(reader, SerdeFormat::Processed).map_err(malformed)?;
        if !reader.is_empty() {
            return Err(malformed("trailing bytes after the SRS points"));
        }
        let srs = verifier_srs(k, g0, g2, s_g2);
        let model_id = model_id(&file.vk, &file.meta);
        Ok(Self {
            meta: file.meta,
            vk,
            srs,
            model_id,
        })
    }
}
