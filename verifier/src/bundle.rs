//! The proof bundle: what a miner returns and a validator checks. Binary form: the zkinfer header (kind `B`) then
//! bincode 2 of [`ProofBundle`]; JSON form: the same fields with hex strings, for HTTP.

use serde::{Deserialize, Serialize};
use zkinfer_circuits::{field, Fr, PublicInputs};

use crate::envelope::{self, FileKind};
use crate::error::VerifyError;

/// Format version of proof bundles.
pub const BUNDLE_VERSION: u16 = 1;

/// A proof together with the public inputs it proves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofBundle {
    /// The model id (hash of the verifying key and the quantization metadata).
    #[serde(with = "hex_bytes")]
    pub model_id: [u8; 32],
    /// `Poseidon(salt, input…)`, canonical little-endian field encoding.
    #[serde(with = "hex_bytes")]
    pub input_commitment: [u8; 32],
    /// The request nonce, canonical little-endian field encoding.
    #[serde(with = "hex_bytes")]
    pub nonce: [u8; 32],
    /// The quantized outputs.
    pub outputs: Vec<i64>,
    /// Float scale of the outputs: `output ≈ output_scale · q`.
    pub output_scale: f32,
    /// The halo2 proof (KZG, SHPLONK, Blake2b transcript).
    #[serde(with = "hex_vec")]
    pub proof: Vec<u8>,
}

impl ProofBundle {
    /// Binary encoding with the zkinfer header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default();
        envelope::seal(FileKind::Bundle, BUNDLE_VERSION, &payload)
    }

    /// Decodes the binary form; refuses other kinds, versions and truncated or trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let payload = envelope::open(FileKind::Bundle, BUNDLE_VERSION, bytes)?;
        let (bundle, used): (Self, usize) = bincode::serde::decode_from_slice(payload, bincode::config::standard())
            .map_err(|e| VerifyError::Malformed {
                what: "proof bundle",
                reason: e.to_string(),
            })?;
        if used != payload.len() {
            return Err(VerifyError::Malformed {
                what: "proof bundle",
                reason: "trailing bytes".into(),
            });
        }
        Ok(bundle)
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        serde_json::from_str(text).map_err(|e| VerifyError::Malformed {
            what: "proof bundle JSON",
            reason: e.to_string(),
        })
    }

    /// Reads either form: binary if it starts with the zkinfer header, JSON otherwise.
    pub fn from_any(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.starts_with(b"ZKINF") {
            Self::from_bytes(bytes)
        } else if let Ok(text) = std::str::from_utf8(bytes) {
            if text.trim_start().starts_with('{') {
                return Self::from_json(text);
            }
            Self::from_bytes(bytes)
        } else {
            Self::from_bytes(bytes)
        }
    }

    /// The public inputs the proof is checked against.
    pub fn public_inputs(&self) -> Result<PublicInputs, VerifyError> {
        let decode = |bytes: &[u8; 32], what: &'static str| {
            field::from_bytes(bytes).ok_or(VerifyError::Malformed {
                what,
                reason: "not a canonical field element".into(),
            })
        };
        Ok(PublicInputs {
            input_commitment: decode(&self.input_commitment, "input commitment")?,
            nonce: decode(&self.nonce, "nonce")?,
            outputs: self.outputs.clone(),
        })
    }

    /// The dequantized outputs.
    pub fn float_outputs(&self) -> Vec<f32> {
        dequantize(&self.outputs, self.output_scale)
    }

    /// Index of the largest output (the predicted class), first on ties.
    pub fn argmax(&self) -> Option<usize> {
        argmax(&self.outputs)
    }
}

/// Quantized outputs as floats: `q · scale`.
pub fn dequantize(outputs: &[i64], scale: f32) -> Vec<f32> {
    outputs.iter().map(|&q| q as f32 * scale).collect()
}

/// Index of the largest output (the predicted class), first on ties.
pub fn argmax(outputs: &[i64]) -> Option<usize> {
    let max = *outputs.iter().max()?;
    outputs.iter().position(|&v| v == max)
}

/// Hex form of a field element as it appears in bundles and on the command line (big-endian, `0x`-less).
pub fn field_to_hex(f: &Fr) -> String {
    let mut bytes = field::to_bytes(f);
    bytes.reverse();
    hex::encode(bytes)
}

/// Parses a hex field element (big-endian, optional `0x`, at most 32 bytes and below the BN254 scalar modulus).
pub fn field_from_hex(text: &str) -> Result<Fr, String> {
    let t = text.trim().trim_start_matches("0x");
    let t = if t.len() % 2 == 1 {
        format!("0{t}")
    } else {
        t.to_string()
    };
    let bytes = hex::decode(&t).map_err(|e| format!("`{text}` is not hex: {e}"))?;
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    if significant.len() > 32 {
        return Err(format!("`{text}` is longer than 32 bytes"));
    }
    let mut le = [0u8; 32];
    for (i, b) in significant.iter().rev().enumerate() {
        le[i] = *b;
    }
    field::from_bytes(&le).ok_or_else(|| format!("`{text}` is not below the BN254 scalar field modulus"))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            serde::Serialize::serialize(v, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
            bytes
                .try_into()
                .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
        } else {
            serde_bytes_vec(d)
        }
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_field_elements() {
        assert_eq!(field_from_hex("0x0100"), Ok(Fr::from(256u64)));
        assert_eq!(field_from_hex("abc"), Ok(Fr::from(0xabcu64)));
        let big = Fr::from(0u64) - Fr::from(1u64);
        assert_eq!(field_from_hex(&field_to_hex(&big)), Ok(big));
        assert!(field_from_hex(&"ff".repeat(32)).unwrap_err().contains("modulus"));
        assert!(field_from_hex(&"01".repeat(33)).unwrap_err().contains("32 bytes"));
        assert!(field_from_hex("xyz").is_err());
    }
}
