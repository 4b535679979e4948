//! KZG parameters (the SRS): deterministic insecure ones for tests and demos, or a ceremony file.
//!
//! The insecure parameters are derived from a fixed public seed, so anyone can forge proofs against keys made with
//! them. They exist so the demo and the tests run anywhere; production keys must come from a powers-of-tau file.

use std::path::Path;

use halo2_proofs::{
    halo2curves::bn256::Bn256,
    poly::{commitment::Params, kzg::commitment::ParamsKZG},
    SerdeFormat,
};
use zkinfer_verifier::envelope::{self, FileKind};

use crate::error::{ProverError, Result};

/// Format version of zkinfer SRS files.
pub const SRS_VERSION: u16 = 1;

/// Where the SRS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrsSource {
    /// Parameters from a fixed public seed: anyone can forge proofs. Tests and demos only.
    InsecureDev,
    /// A halo2 KZG parameters file (raw halo2 format, or a zkinfer SRS file), cut down to the circuit size.
    File(std::path::PathBuf),
}

impl SrsSource {
    /// Whether proofs under these parameters can be forged.
    pub fn is_insecure(&self) -> bool {
        matches!(self, SrsSource::InsecureDev)
    }

    /// Loads or derives parameters for circuits of `2^k` rows.
    pub fn params(&self, k: u32) -> Result<ParamsKZG<Bn256>> {
        match self {
            SrsSource::InsecureDev => Ok(insecure_dev_srs(k)),
            SrsSource::File(path) => load_srs(path, k),
        }
    }
}

/// Deterministic, INSECURE parameters for `2^k` rows (the toxic waste is derivable from a public seed, and every
/// verifier recognises keys made with them: [`zkinfer_verifier::SrsPoints::is_insecure_dev`]).
pub fn insecure_dev_srs(k: u32) -> ParamsKZG<Bn256> {
    zkinfer_verifier::insecure_dev_params(k)
}

/// Largest `k` a parameters file may hold (halo2's FFTs over BN254 stop at 2^28).
pub const MAX_SRS_K: u32 = 28;

/// Size of halo2's raw encoding of parameters for `2^k` rows: `k`, `2^k` monomial and `2^k` Lagrange G1 points
/// (64 bytes each), `g_2` and `s·g_2` (128 bytes each).
pub fn raw_params_len(k: u32) -> u64 {
    4 + (1u64 << k) * 2 * 64 + 2 * 128
}

/// Reads a parameters file (zkinfer SRS file or raw halo2 `ParamsKZG::write` output) and cuts it to `2^k` rows.
/// A file whose length is not that of parameters for the `k` it starts with is refused before anything is
/// allocated: it is not a parameters file, or it is truncated.
pub fn load_srs(path: &Path, k: u32) -> Result<ParamsKZG<Bn256>> {
    let len = std::fs::metadata(path).map_err(|e| ProverError::io(path, e))?.len();
    if len > max_file_len() {
        return Err(too_large(path, len));
    }
    let bytes = std::fs::read(path).map_err(|e| ProverError::io(path, e))?;
    srs_from_bytes(&bytes, k, path)
}

/// The largest SRS file: parameters for `2^MAX_SRS_K` rows with a zkinfer header.
fn max_file_len() -> u64 {
    raw_params_len(MAX_SRS_K) + envelope::HEADER_LEN as u64
}

fn refusal(label: &Path, reason: String) -> ProverError {
    ProverError::SrsFile {
        path: label.to_path_buf(),
        reason,
    }
}

fn too_large(label: &Path, len: u64) -> ProverError {
    refusal(
        label,
        format!("{len} bytes is larger than any halo2 KZG parameters file; check the path"),
    )
}

/// Parses the bytes of a parameters file as [`load_srs`] does (zkinfer SRS file or raw halo2 encoding) and cuts
/// them to `2^k` rows; `label` (the file's path) only names the file in error messages.
pub fn srs_from_bytes(bytes: &[u8], k: u32, label: &Path) -> Result<ParamsKZG<Bn256>> {
    let refuse = |reason: String| refusal(label, reason);
    if bytes.len() as u64 > max_file_len() {
        return Err(too_large(label, bytes.len() as u64));
    }
    let raw = match envelope::open(FileKind::Srs, SRS_VERSION, bytes) {
        Ok(payload) => payload,
        Err(envelope::EnvelopeError::NotZkinfer { .. }) => bytes,
        Err(e) => return Err(refuse(e.to_string())),
    };
    let Some(file_k) = raw.get(0..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) else {
        return Err(refuse("empty; it is not a halo2 KZG parameters file".into()));
    };
    if file_k > MAX_SRS_K || raw.len() as u64 != raw_params_len(file_k) {
        return Err(refuse(format!(
            "not a halo2 KZG parameters file in raw format, or truncated: its {} bytes are not the {} bytes of \
             parameters for the 2^{file_k} rows its header claims; download a powers-of-tau file converted to \
             halo2's format (see the README)",
            raw.len(),
            if file_k <= MAX_SRS_K {
                raw_params_len(file_k).to_string()
            } else {
                "(impossibly many)".into()
            }
        )));
    }
    if file_k < k {
        return Err(refuse(format!(
            "supports 2^{file_k} rows, the circuit needs 2^{k}; use a larger powers-of-tau file"
        )));
    }
    let mut params = ParamsKZG::<Bn256>::read_custom(&mut &raw[..], SerdeFormat::RawBytes)
        .map_err(|e| refuse(format!("corrupted: {e}")))?;
    zkinfer_verifier::SrsPoints::of(&params)
        .check()
        .map_err(|e| refuse(format!("unusable points: {e}")))?;
    if params.k() > k {
        params.downsize(k);
    }
    Ok(params)
}

/// Writes parameters as a zkinfer SRS file (header + raw halo2 encoding).
pub fn save_srs(params: &ParamsKZG<Bn256>, path: &Path) -> Result<()> {
    let mut raw = Vec::new();
    params
        .write_custom(&mut raw, SerdeFormat::RawBytes)
        .map_err(|e| ProverError::io(path, e))?;
    std::fs::write(path, envelope::seal(FileKind::Srs, SRS_VERSION, &raw)).map_err(|e| ProverError::io(path, e))
}
