//! Decoding untrusted bytes so that no length field decides how much memory is allocated.
//!
//! bincode 2 allocates a byte string or a string of the length its length field claims before reading it: a
//! 3 KB file whose length field says 2^40 aborts the process ("memory allocation failed"), and 2^64 − 1 panics
//! ("capacity overflow"). [`decode_exact`] decodes with a bincode limit derived from the payload's own length, so
//! every claim beyond what the file could hold is refused before anything is allocated, and it refuses trailing
//! bytes. (bincode claims `size_of::<T>()` for each varint-encoded integer it reads, which can be 8 times the bytes
//! that hold it; the limit leaves room for that.)

use bincode::config::{Config, Configuration};
use bincode::error::DecodeError;
use serde::de::DeserializeOwned;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeFailure {
    /// The payload ends before the value does (or a length field claims more than the rest of the file).
    #[error("the file is truncated, or a length field claims more bytes than it holds")]
    Truncated,
    /// A length field claims more bytes than the file holds.
    #[error("a length field claims more bytes than the file holds (crafted or corrupted)")]
    LengthBeyondFile,
    /// Bytes follow the value.
    #[error("{0} unexpected bytes after the data")]
    Trailing(usize),
    /// The payload is larger than any file zkinfer reads.
    #[error("the file is {0} bytes, larger than any zkinfer file")]
    TooLarge(usize),
    /// Any other decoding error (an invalid tag, a bad UTF-8 string, …).
    #[error("{0}")]
    Invalid(String),
}

/// The largest payload [`decode_exact`] reads: 2^36 bytes (64 GiB).
pub const MAX_PAYLOAD: usize = 1 << 36;

fn decode_with<T: DeserializeOwned, C: Config>(payload: &[u8], config: C) -> Result<T, DecodeFailure> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(payload, config).map_err(|e| match e {
        DecodeError::UnexpectedEnd { .. } => DecodeFailure::Truncated,
        DecodeError::LimitExceeded => DecodeFailure::LengthBeyondFile,
        DecodeError::OutsideUsizeRange(_) => DecodeFailure::LengthBeyondFile,
        e => DecodeFailure::Invalid(e.to_string()),
    })?;
    if used != payload.len() {
        return Err(DecodeFailure::Trailing(payload.len() - used));
    }
    Ok(value)
}

/// Decodes exactly one `T` (bincode 2, standard configuration) from all of `payload`, with every length claim
/// bounded by a limit of at least 8× the payload's size (a power of 16 from 2^12 to 2^40).
pub fn decode_exact<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeFailure> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeFailure::TooLarge(payload.len()));
    }
    let needed = payload.len() * 8 + 64;
    let base: Configuration = bincode::config::standard();
    macro_rules! limited {
        ($($bits:literal),*) => {
            $(if needed <= 1usize << $bits {
                return decode_with(payload, base.with_limit::<{ 1usize << $bits }>());
            })*
        };
    }
    limited!(12, 16, 20, 24, 28, 32, 36, 40);
    Err(DecodeFailure::TooLarge(payload.len()))
}

/// Encodes `value` with bincode 2's standard configuration (the counterpart of [`decode_exact`]).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec fails only for types serde cannot describe, which no zkinfer file contains.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        name: String,
        data: Vec<u8>,
        values: Vec<i64>,
    }

    fn sample() -> Sample {
        Sample {
            name: "digits".into(),
            data: vec![7; 100],
            values: vec![i64::MIN, -1, 0, 1, i64::MAX, 1 << 40],
        }
    }

    #[test]
    fn round_trip_and_every_truncation() {
        let bytes = encode(&sample());
        assert_eq!(decode_exact::<Sample>(&bytes), Ok(sample()));
        for cut in 0..bytes.len() {
            assert!(decode_exact::<Sample>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode_exact::<Sample>(&padded), Err(DecodeFailure::Trailing(1)));
    }

    /// A string length of 2^36, 2^40 or 2^64 − 1 in front of a short file is refused without allocating it.
    #[test]
    fn crafted_lengths_are_refused_not_allocated() {
        for claimed in [1u64 << 20, 1 << 36, 1 << 40, u64::MAX - 1, u64::MAX] {
            // The string's length as a bincode varint: 253, then a u64 (little endian).
            let mut bytes = vec![253u8];
            bytes.extend_from_slice(&claimed.to_le_bytes());
            bytes.extend_from_slice(b"short");
            let err = decode_exact::<Sample>(&bytes).unwrap_err();
            assert!(
                matches!(err, DecodeFailure::LengthBeyondFile | DecodeFailure::Truncated),
                "{claimed}: {err:?}"
            );
        }
    }
}
