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
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
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

/// Deterministic, INSECURE parameters for `2^k` rows (the toxic waste is derivable from a public seed).
pub fn insecure_dev_srs(k: u32) -> ParamsKZG<Bn256> {
    ParamsKZG::setup(k, ChaCha20Rng::from_seed(*b"zkinfer insecure dev SRS -- v1!!"))
}

/// Reads a parameters file (zkinfer SRS file or raw halo2 `ParamsKZG::write` output) and cuts it to `2^k` rows.
pub fn load_srs(path: &Path, k: u32) -> Result<ParamsKZG<Bn256>> {
    let bytes = std::fs::read(path).map_err(|e| ProverError::io(path, e))?;
    let raw = match envelope::open(FileKind::Srs, SRS_VERSION, &bytes) {
        Ok(payload) => payload,
        Err(envelope::EnvelopeError::NotZkinfer { .. }) => &bytes[..],
        Err(e) => return Err(ProverError::Other(format!("SRS file `{}`: {e}", path.display()))),
    };
    let file_k = raw.get(0..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match file_k {
        Some(file_k) if (k..=28).contains(&file_k) => {}
        Some(file_k) => {
            return Err(ProverError::Other(format!(
                "SRS file `{}` supports 2^{file_k} rows, the circuit needs 2^{k}; use a larger powers-of-tau file",
                path.display()
            )))
        }
        None => {
            return Err(ProverError::Other(format!(
                "SRS file `{}` is empty or truncated",
                path.display()
            )))
        }
    }
    let mut params = ParamsKZG::<Bn256>::read_custom(&mut &raw[..], SerdeFormat::RawBytes)
        .map_err(|e| ProverError::Other(format!("SRS file `{}` is truncated or corrupted: {e}", path.display())))?;
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
