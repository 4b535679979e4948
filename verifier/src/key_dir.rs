//! The key directory `zkinfer setup` writes (`pk.bin`, `vk.bin`, `model-id.txt`) as a verifier reads it: only
//! `vk.bin`, checked against a pinned model id before it is parsed.

use std::path::{Path, PathBuf};

use crate::error::VerifyError;
use crate::key::VerifierKey;

/// File name of the proving key in a key directory.
pub const PK_FILE: &str = "pk.bin";
/// File name of the verifying key in a key directory.
pub const VK_FILE: &str = "vk.bin";
/// File name of the model id (hex) in a key directory. Informational: a validator pins the id it pays for, not
/// the one a directory names.
pub const MODEL_ID_FILE: &str = "model-id.txt";

/// The largest verifying-key file read (2^24 rows of compressed selectors would be far smaller).
pub const MAX_VK_FILE_BYTES: u64 = 1 << 30;

/// Reads `dir/vk.bin`; with `pinned`, its model id is checked on the raw bytes before it is parsed.
pub fn load_verifier_key(dir: &Path, pinned: Option<&[u8; 32]>) -> Result<VerifierKey, VerifyError> {
    let path = dir.join(VK_FILE);
    let bytes = read_bounded(&path, MAX_VK_FILE_BYTES)?;
    let key = match pinned {
        Some(id) => VerifierKey::from_pinned_bytes(&bytes, id),
        None => VerifierKey::from_bytes(&bytes),
    };
    key.map_err(|e| e.in_file(&path))
}

/// Reads a whole file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, VerifyError> {
    let io = |e: std::io::Error| VerifyError::Io {
        path: PathBuf::from(path),
        reason: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > limit {
        return Err(VerifyError::Io {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is larger than any file of this kind ({limit} bytes at most)"),
        });
    }
    std::fs::read(path).map_err(io)
}
