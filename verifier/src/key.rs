//! The verifying key a validator holds: halo2's verifying key, the three SRS points KZG verification needs, and the
//! model's metadata — and the model id, which is the hash of the whole file.
//!
//! # Trust
//! A verifying-key file is handed out by the miner. A validator pins the model id and nothing else, so the id is
//! `blake2b-256` of **every byte of the file** (header, metadata, halo2 key, SRS points): a file that differs in
//! any byte has another id. [`VerifierKey::from_pinned_bytes`] checks the hash on the raw bytes before anything is
//! parsed (a lying miner cannot make a pinned validator build a constraint system of its choosing). Parsing then
//! refuses everything the id alone cannot rule out: sizes and circuit parameters out of range, SRS points a forger
//! could exploit ([`SrsPoints::check`]), and any encoding that is not the one zkinfer writes (the file must
//! re-encode to itself, so one key has one id).

use blake2::{digest::consts::U32, Blake2b, Digest};
use halo2_proofs::{
    halo2curves::bn256::{Bn256, G1Affine},
    plonk::VerifyingKey,
    poly::kzg::commitment::ParamsKZG,
    SerdeFormat,
};
use serde::{Deserialize, Serialize};
use zkinfer_circuits::layout::{proof_bytes, proof_bytes_of, MAX_K};
use zkinfer_circuits::model::{batch_of_shape, CausalOutputs, InputQuantization, MAX_BATCH};
use zkinfer_circuits::CircuitParams;

use crate::decode::{decode_exact, encode};
use crate::envelope::{self, FileKind};
use crate::error::VerifyError;
use crate::halo2_key::{configured, read_verifying_key};
use crate::srs_points::SrsPoints;

/// Format version of verifying-key files (5: the model id hashes the whole file; 6: circuit parameters name the
/// optional chips and the Freivalds layers as sets, and the product chip exists; 7: input scales per channel; 8: the
/// requantization's upper clamp bound a fixed column; 9: that column only with the optional `WideRelu` chip; 10: selectors are plain fixed columns, so the halo2 key
/// carries no `2^k`-bit selector bitmaps, and circuit parameters name the requantization column sets; 11: range-check
/// limbs of 8 to 15 bits, a circuit parameter; 12: the Freivalds chip's window widths, a circuit parameter; 13: the clamp table's
/// width, a circuit parameter; 18: the metadata says whether the outputs are a causal model's next-token rows; 19: the layer-norm
/// chip, a circuit parameter; 20: the outputs packed fifteen to an instance row).
pub const VERIFYING_KEY_VERSION: u16 = 21;

/// Domain separation of the model id.
const MODEL_ID_DOMAIN: &[u8] = b"zkinfer model id v2: blake2b-256 of the whole vk.bin";

/// Longest model name a key may carry.
pub const MAX_NAME_BYTES: usize = 1024;

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
    /// Scales of the int8 input (per channel, or one for the tensor): how a client quantizes its input before
    /// committing to it.
    pub input: InputQuantization,
    /// Scale of the int8 outputs.
    pub output_scale: f32,
    /// Circuit size (log2 rows).
    pub k: u32,
    /// Layout choices of the circuit.
    pub circuit_params: CircuitParams,
    /// Present for a language model whose output row `r` reads the token ids at positions `0..=r` only (setup
    /// analyses the layer graph): what lets one proof cover a whole greedy generation.
    pub causal_outputs: Option<CausalOutputs>,
}

impl ModelMeta {
    /// Inputs one proof covers: the leading dimension of the input shape when it has several (1 for a model that
    /// proves one input at a time). The input and the outputs are the samples' one after another.
    pub fn batch(&self) -> usize {
        batch_of_shape(&self.input_shape)
    }

    /// Refuses metadata no zkinfer setup writes: sizes out of range or inconsistent, scales that are not positive
    /// numbers, absurd circuit parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.len() > MAX_NAME_BYTES {
            return Err(format!("the model name is longer than {MAX_NAME_BYTES} bytes"));
        }
        if self.k == 0 || self.k > MAX_K {
            return Err(format!("circuit size k = {} outside [1, {MAX_K}]", self.k));
        }
        let rows = 1usize << self.k;
        let shape_len = self
            .input_shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|_| !self.input_shape.is_empty());
        if self.input_len == 0 || self.input_len > rows || shape_len != Some(self.input_len) {
            return Err(format!(
                "input shape {:?} and {} inputs do not fit a circuit of 2^{} rows",
                self.input_shape, self.input_len, self.k
            ));
        }
        if self.output_len == 0 || self.output_len > rows {
            return Err(format!(
                "{} outputs do not fit a circuit of 2^{} rows",
                self.output_len, self.k
            ));
        }
        let batch = self.batch();
        if batch == 0 || batch > MAX_BATCH || !self.output_len.is_multiple_of(batch) {
            return Err(format!(
                "a batch of {batch} inputs: give 1 to {MAX_BATCH} that divide the {} outputs",
                self.output_len
            ));
        }
        self.input.check(self.input_len)?;
        if let Some(c) = self.causal_outputs {
            if self.input.vocab.is_none() || batch != 1 || c.positions != self.input_len {
                return Err(format!(
                    "causal outputs of {} positions, but the input is not one sequence of {} token ids",
                    c.positions, self.input_len
                ));
            }
            if c.positions.checked_mul(c.row_len) != Some(self.output_len) {
                return Err(format!(
                    "causal outputs of {} rows of {} are not the model's {} outputs",
                    c.positions, c.row_len, self.output_len
                ));
            }
        }
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return Err(format!("output scale {} is not a positive number", self.output_scale));
        }
        self.circuit_params.validate()
    }
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
    meta: ModelMeta,
    vk: VerifyingKey<G1Affine>,
    srs: ParamsKZG<Bn256>,
    points: SrsPoints,
    proof_len: usize,
    file: Vec<u8>,
    model_id: [u8; 32],
}

/// The model id of a verifying-key file: `blake2b-256(domain ‖ the file's bytes)`.
pub fn model_id_of_file(file: &[u8]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(MODEL_ID_DOMAIN);
    h.update((file.len() as u64).to_le_bytes());
    h.update(file);
    h.finalize().into()
}

fn malformed(reason: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what: "verifying key",
        reason: reason.to_string(),
    }
}

fn seal(meta: &ModelMeta, vk: &[u8], points: &SrsPoints) -> Vec<u8> {
    let file = KeyFile {
        meta: meta.clone(),
        vk: vk.to_vec(),
        srs: points.to_bytes(),
    };
    envelope::seal(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, &encode(&file))
}

/// Refuses `MAX_DEGREE` set in the environment to anything but zkinfer's degree bound: halo2-axiom reads it while
/// rebuilding a constraint system, and another value would change the system the verifier checks against.
pub fn check_max_degree_env() -> Result<(), String> {
    match std::env::var("MAX_DEGREE") {
        Err(std::env::VarError::NotPresent) => Ok(()),
        Ok(v) if v.trim() == zkinfer_circuits::layout::MAX_DEGREE.to_string() => Ok(()),
        Ok(v) => Err(format!(
            "the environment sets MAX_DEGREE={v}; halo2 would rebuild another constraint system than the one the \
             keys were made for: unset MAX_DEGREE (or set it to {})",
            zkinfer_circuits::layout::MAX_DEGREE
        )),
        Err(e) => Err(format!(
            "the environment variable MAX_DEGREE is unreadable ({e}); unset it"
        )),
    }
}

impl VerifierKey {
    /// Model metadata: name, shapes, scales, `k` and circuit parameters (covered by the model id).
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The halo2 verifying key.
    pub fn vk(&self) -> &VerifyingKey<G1Affine> {
        &self.vk
    }

    /// The verifier's part of the SRS (`g_0`, `g_2`, `s·g_2`) as KZG parameters.
    pub fn srs(&self) -> &ParamsKZG<Bn256> {
        &self.srs
    }

    /// Builds the key from halo2's verifying key and the full SRS it was made with.
    pub fn new(meta: ModelMeta, vk: VerifyingKey<G1Affine>, full_srs: &ParamsKZG<Bn256>) -> Self {
        let points = SrsPoints::of(full_srs);
        let file = seal(&meta, &vk.to_bytes(SerdeFormat::Processed), &points);
        let model_id = model_id_of_file(&file);
        Self {
            srs: points.params(meta.k),
            proof_len: proof_bytes_of(&meta.circuit_params),
            meta,
            vk,
            points,
            file,
            model_id,
        }
    }

    /// The model id: the hash of the key file, [`model_id_of_file`].
    pub fn model_id(&self) -> [u8; 32] {
        self.model_id
    }

    /// The SRS points the key verifies with.
    pub fn srs_points(&self) -> SrsPoints {
        self.points
    }

    /// The exact length of this model's proofs, bytes (from its constraint system).
    pub fn proof_len(&self) -> usize {
        self.proof_len
    }

    /// Whether the key was made with the insecure development SRS (whose trapdoor is public: anyone can forge
    /// proofs for it). Verification refuses such keys unless the caller opts in.
    pub fn is_insecure_dev_srs(&self) -> bool {
        self.points.is_insecure_dev()
    }

    /// The key file (`vk.bin`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.file.clone()
    }

    /// Reads a key whose model id must be `expected`: the hash is checked on the raw bytes before anything is
    /// parsed.
    pub fn from_pinned_bytes(bytes: &[u8], expected: &[u8; 32]) -> Result<Self, VerifyError> {
        let found = model_id_of_file(bytes);
        if found != *expected {
            return Err(VerifyError::KeyModelMismatch {
                expected: hex::encode(expected),
                found: hex::encode(found),
            });
        }
        Self::from_bytes(bytes)
    }

    /// Reads a key file, checking every size and value before halo2 allocates anything, and refusing any file
    /// that is not exactly what [`to_bytes`](Self::to_bytes) writes for the key it holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        check_max_degree_env().map_err(VerifyError::Environment)?;
        let payload = envelope::open(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, bytes)?;
        let file: KeyFile = decode_exact(payload).map_err(malformed)?;
        file.meta.validate().map_err(malformed)?;
        let k = file.meta.k;
        // halo2's layout: version byte, then k as u32 little endian.
        let vk_k = file.vk.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if vk_k != Some(k) {
            return Err(malformed(format!(
                "the halo2 key's circuit size differs from the metadata's k = {k}"
            )));
        }
        let points = SrsPoints::from_bytes(&file.srs).map_err(|e| malformed(format!("SRS points: {e}")))?;
        let params = file.meta.circuit_params.clone();
        // halo2's own reader would also build FFT tables for up to 2^(k+2) points, which a verifier never uses.
        let (vk, proof_len) = std::panic::catch_unwind(|| {
            let cs = configured(params);
            let proof_len = proof_bytes(&cs);
            read_verifying_key(&file.vk, cs).map(|vk| (vk, proof_len))
        })
        .map_err(|_| malformed("the halo2 verifying key could not be decoded"))?
        .map_err(malformed)?;
        if seal(&file.meta, &vk.to_bytes(SerdeFormat::Processed), &points) != bytes {
            return Err(malformed("not in the canonical encoding zkinfer writes"));
        }
        Ok(Self {
            srs: points.params(k),
            proof_len,
            meta: file.meta,
            vk,
            points,
            file: bytes.to_vec(),
            model_id: model_id_of_file(bytes),
        })
    }
}
