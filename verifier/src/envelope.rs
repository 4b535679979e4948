//! The header every zkinfer file starts with: magic bytes naming the kind of file, then a format version.
//!
//! `ZKINF` + one kind byte + two bytes of version (little endian). A file of another kind or another version is
//! refused with a message that says what was found and what to do, never parsed blindly.

use std::fmt;

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 8;
const MAGIC: &[u8; 5] = b"ZKINF";

/// The kinds of files zkinfer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A quantized model (`.zkm`).
    Model,
    /// A proving key.
    ProvingKey,
    /// A verifying key.
    VerifyingKey,
    /// KZG parameters (SRS) cut to the circuit size.
    Srs,
    /// A proof bundle.
    Bundle,
    /// A greedy generation: a proof bundle with its prompt length and tokens.
    Generation,
}

impl FileKind {
    fn byte(self) -> u8 {
        match self {
            FileKind::Model => b'M',
            FileKind::ProvingKey => b'P',
            FileKind::VerifyingKey => b'V',
            FileKind::Srs => b'S',
            FileKind::Bundle => b'B',
            FileKind::Generation => b'G',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        [
            Self::Model,
            Self::ProvingKey,
            Self::VerifyingKey,
            Self::Srs,
            Self::Bundle,
            Self::Generation,
        ]
        .into_iter()
        .find(|k| k.byte() == b)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Model => "quantized model",
            FileKind::ProvingKey => "proving key",
            FileKind::VerifyingKey => "verifying key",
            FileKind::Srs => "SRS parameters",
            FileKind::Bundle => "proof bundle",
            FileKind::Generation => "generation bundle",
        })
    }
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The bytes do not start with a zkinfer header at all.
    #[error("not a zkinfer {expected} file (no ZKINF header); check the path")]
    NotZkinfer {
        /// The kind the caller expected.
        expected: FileKind,
    },
    /// A zkinfer file, but of another kind.
    #[error("expected a zkinfer {expected} file, found a {found} file")]
    WrongKind {
        /// The kind the caller expected.
        expected: FileKind,
        /// The kind found.
        found: FileKind,
    },
    /// A file of the right kind written by another format version.
    #[error(
        "{kind} file has format version {found}, this build reads version {supported}; regenerate it with this zkinfer"
    )]
    WrongVersion {
        /// The kind of file.
        kind: FileKind,
        /// Version found.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
}

/// Prepends the header for `kind` at `version` to `payload`.
pub fn seal(kind: FileKind, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(kind.byte());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The kind of file `bytes` are, by their header (`None` without a zkinfer header).
pub fn kind_of(bytes: &[u8]) -> Option<FileKind> {
    match bytes {
        [m0, m1, m2, m3, m4, kind, ..] if [*m0, *m1, *m2, *m3, *m4] == *MAGIC => FileKind::from_byte(*kind),
        _ => None,
    }
}

/// Checks the header of `bytes` and returns the payload after it.
pub fn open(kind: FileKind, version: u16, bytes: &[u8]) -> Result<&[u8], EnvelopeError> {
    if bytes.len() < HEADER_LEN || &bytes[..5] != MAGIC {
        return Err(EnvelopeError::NotZkinfer { expected: kind });
    }
    let found = FileKind::from_byte(bytes[5]).ok_or(EnvelopeError::NotZkinfer { expected: kind })?;
    if found != kind {
        return Err(EnvelopeError::WrongKind { expected: kind, found });
    }
    let v = u16::from_le_bytes([bytes[6], bytes[7]]);
    if v != version {
        return Err(EnvelopeError::WrongVersion {
            kind,
            found: v,
            supported: version,
        });
    }
    Ok(&bytes[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let sealed = seal(FileKind::Bundle, 3, b"abc");
        assert_eq!(open(FileKind::Bundle, 3, &sealed), Ok(&b"abc"[..]));
        assert!(matches!(
            open(FileKind::Bundle, 4, &sealed),
            Err(EnvelopeError::WrongVersion { found: 3, .. })
        ));
        assert!(matches!(
            open(FileKind::Model, 3, &sealed),
            Err(EnvelopeError::WrongKind { .. })
        ));
        assert!(matches!(
            open(FileKind::Bundle, 3, b"ZKIN"),
            Err(EnvelopeError::NotZkinfer { .. })
        ));
        assert!(matches!(
            open(FileKind::Bundle, 3, b"{\"json\": 1}"),
            Err(EnvelopeError::NotZkinfer { .. })
        ));
    }
}
