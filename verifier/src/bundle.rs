//! The proof bundle: what a miner returns and a validator checks.
//!
//! Binary form: the zkinfer header (kind `B`, version [`BUNDLE_VERSION`]) then bincode 2 of the fields. JSON form
//! (for HTTP and files named `*.json`): `{"version": 2, "model_id", "input_commitment", "nonce", "outputs",
//! "proof"}` with the field elements as big-endian hex, the same form the command line takes and prints
//! ([`field_to_hex`]), so a nonce copied from a bundle into `--nonce` means the same number.
//!
//! A bundle carries nothing the proof does not cover except the model id, which must equal the verifying key's:
//! the float scale of the outputs comes from the verifying key, never from the bundle.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zkinfer_circuits::{field, Fr, PublicInputs};

use crate::decode::{decode_exact, encode};
use crate::envelope::{self, FileKind};
use crate::error::VerifyError;

/// Format version of proof bundles, binary and JSON (2: no output scale; JSON field elements big-endian).
pub const BUNDLE_VERSION: u16 = 2;

/// A proof together with the public inputs it proves.
#[derive(Clone, Debug, PartialEq)]
pub struct ProofBundle {
    /// The model id (hash of the verifying-key file).
    pub model_id: [u8; 32],
    /// `Poseidon(salt, input…)`, canonical little-endian field encoding.
    pub input_commitment: [u8; 32],
    /// The request nonce, canonical little-endian field encoding.
    pub nonce: [u8; 32],
    /// The quantized outputs.
    pub outputs: Vec<i64>,
    /// The halo2 proof (KZG, SHPLONK, Blake2b transcript).
    pub proof: Vec<u8>,
}

/// The binary layout (bincode of these fields, in this order).
#[derive(Serialize, Deserialize)]
struct BinaryBundle {
    model_id: [u8; 32],
    input_commitment: [u8; 32],
    nonce: [u8; 32],
    outputs: Vec<i64>,
    proof: Vec<u8>,
}

/// The JSON layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBundle {
    version: u16,
    model_id: String,
    input_commitment: String,
    nonce: String,
    outputs: Vec<i64>,
    proof: String,
}

fn malformed(what: &'static str, reason: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

impl From<BinaryBundle> for ProofBundle {
    fn from(b: BinaryBundle) -> Self {
        Self {
            model_id: b.model_id,
            input_commitment: b.input_commitment,
            nonce: b.nonce,
            outputs: b.outputs,
            proof: b.proof,
        }
    }
}

impl ProofBundle {
    fn binary(&self) -> BinaryBundle {
        BinaryBundle {
            model_id: self.model_id,
            input_commitment: self.input_commitment,
            nonce: self.nonce,
            outputs: self.outputs.clone(),
            proof: self.proof.clone(),
        }
    }

    fn json(&self) -> JsonBundle {
        JsonBundle {
            version: BUNDLE_VERSION,
            model_id: hex::encode(self.model_id),
            input_commitment: bytes_to_hex(&self.input_commitment),
            nonce: bytes_to_hex(&self.nonce),
            outputs: self.outputs.clone(),
            proof: hex::encode(&self.proof),
        }
    }

    fn from_json_layout(j: JsonBundle) -> Result<Self, String> {
        if j.version != BUNDLE_VERSION {
            return Err(format!(
                "JSON bundle version {}, this build reads version {BUNDLE_VERSION}; prove again with this zkinfer",
                j.version
            ));
        }
        let model_id = hex::decode(&j.model_id)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("model_id: expected 64 hex digits")?;
        let field = |what: &str, text: &str| {
            field_from_hex(text)
                .map(|f| field::to_bytes(&f))
                .map_err(|e| format!("{what}: {e}"))
        };
        Ok(Self {
            model_id,
            input_commitment: field("input_commitment", &j.input_commitment)?,
            nonce: field("nonce", &j.nonce)?,
            outputs: j.outputs,
            proof: hex::decode(&j.proof).map_err(|e| format!("proof: {e}"))?,
        })
    }

    /// Binary encoding with the zkinfer header.
    pub fn to_bytes(&self) -> Vec<u8> {
        envelope::seal(FileKind::Bundle, BUNDLE_VERSION, &encode(&self.binary()))
    }

    /// Decodes the binary form; refuses other kinds and versions, truncated or trailing bytes and length fields
    /// beyond the file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let payload = envelope::open(FileKind::Bundle, BUNDLE_VERSION, bytes)?;
        let binary: BinaryBundle = decode_exact(payload).map_err(|e| malformed("proof bundle", e))?;
        Ok(binary.into())
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.json()).unwrap_or_default()
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        let layout: JsonBundle = serde_json::from_str(text).map_err(|e| malformed("proof bundle JSON", e))?;
        Self::from_json_layout(layout).map_err(|e| malformed("proof bundle JSON", e))
    }

    /// Reads either form: JSON if it starts (after white space) with `{`, binary otherwise.
    pub fn from_any(bytes: &[u8]) -> Result<Self, VerifyError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            let text = std::str::from_utf8(bytes).map_err(|e| malformed("proof bundle JSON", e))?;
            Self::from_json(text)
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

    /// Index of the largest output (the predicted class), first on ties. Trust it only after verification.
    pub fn argmax(&self) -> Option<usize> {
        argmax(&self.outputs)
    }
}

/// Serde (for the HTTP API): the JSON form for human-readable formats, the binary fields otherwise.
impl Serialize for ProofBundle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.json().serialize(s)
        } else {
            self.binary().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ProofBundle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Self::from_json_layout(JsonBundle::deserialize(d)?).map_err(serde::de::Error::custom)
        } else {
            BinaryBundle::deserialize(d).map(Into::into)
        }
    }
}

/// Big-endian hex of canonical little-endian field bytes.
fn bytes_to_hex(le: &[u8; 32]) -> String {
    let mut be = *le;
    be.reverse();
    hex::encode(be)
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

/// The outputs of each sample of a batch of `batch` (one slice for a single-sample model): `outputs` in `batch`
/// equal parts (a verifying key's metadata guarantees they divide evenly).
pub fn sample_outputs(outputs: &[i64], batch: usize) -> std::slice::Chunks<'_, i64> {
    outputs.chunks((outputs.len() / batch.max(1)).max(1))
}

/// Hex form of a field element as it appears in bundles and on the command line (big-endian, `0x`-less).
pub fn field_to_hex(f: &Fr) -> String {
    let mut bytes = field::to_bytes(f);
    bytes.reverse();
    hex::encode(bytes)
}

/// Parses a hex field element (big-endian, one optional `0x`, at most 32 significant bytes, below the BN254 scalar
/// modulus). An empty value (`""`, `0x`) is refused: an unset shell variable must not silently mean 0.
pub fn field_from_hex(text: &str) -> Result<Fr, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    if digits.is_empty() {
        return Err(format!("`{text}` is empty; give a hex number such as 0x1234"));
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("`{text}` is not hex (`{bad}`)"));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 64 {
        return Err(format!("`{text}` is longer than 32 bytes"));
    }
    let padded = format!("{significant:0>64}");
    let mut le = [0u8; 32];
    for (i, byte) in le.iter_mut().enumerate() {
        let at = 62 - 2 * i;
        *byte = u8::from_str_radix(&padded[at..at + 2], 16).map_err(|e| format!("`{text}`: {e}"))?;
    }
    field::from_bytes(&le).ok_or_else(|| format!("`{text}` is not below the BN254 scalar field modulus"))
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
        assert_eq!(
            field_from_hex("0x000000000000000000000000000000000000000000000000000000000000000000ff"),
            Ok(Fr::from(255u64))
        );
        for empty in ["", "0x", "  ", "0X"] {
            assert!(field_from_hex(empty).unwrap_err().contains("empty"), "{empty:?}");
        }
        for bad in ["0x0x12", "x12", "0x-1", "+12", "12 34", "0xg"] {
            assert!(field_from_hex(bad).unwrap_err().contains("not hex"), "{bad:?}");
        }
    }

    fn sample() -> ProofBundle {
        ProofBundle {
            model_id: [0xab; 32],
            input_commitment: field::to_bytes(&Fr::from(0x0102_0304u64)),
            nonce: field::to_bytes(&Fr::from(0x1234u64)),
            outputs: vec![-128, 0, 127, 32767],
            proof: vec![1, 2, 3, 250],
        }
    }

    /// The JSON form writes field elements as the command line takes them (big-endian), and carries its version.
    #[test]
    fn json_uses_the_command_line_byte_order_and_a_version() {
        let bundle = sample();
        let json = bundle.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], BUNDLE_VERSION);
        let nonce = value["nonce"].as_str().unwrap();
        assert_eq!(field_from_hex(nonce), Ok(Fr::from(0x1234u64)));
        assert!(nonce.ends_with("1234"), "{nonce}");
        assert_eq!(ProofBundle::from_json(&json).unwrap(), bundle);
        assert_eq!(ProofBundle::from_any(json.as_bytes()).unwrap(), bundle);
        assert_eq!(ProofBundle::from_any(&bundle.to_bytes()).unwrap(), bundle);
        assert_eq!(serde_json::from_value::<ProofBundle>(value.clone()).unwrap(), bundle);

        let mut old = value.clone();
        old["version"] = 1.into();
        assert!(ProofBundle::from_json(&old.to_string())
            .unwrap_err()
            .to_string()
            .contains("version 1"));
        let mut unversioned = value.clone();
        unversioned.as_object_mut().unwrap().remove("version");
        assert!(ProofBundle::from_json(&unversioned.to_string()).is_err());
        let mut scaled = value.clone();
        scaled["output_scale"] = (-1.0).into();
        assert!(
            ProofBundle::from_json(&scaled.to_string()).is_err(),
            "unknown fields are refused"
        );
        for (field, bad) in [
            ("nonce", ""),
            ("nonce", "0x"),
            ("input_commitment", "zz"),
            ("model_id", "00"),
        ] {
            let mut v = value.clone();
            v[field] = bad.into();
            assert!(ProofBundle::from_json(&v.to_string()).is_err(), "{field} = {bad:?}");
        }
    }

    /// Crafted length fields in the binary form are refused, never allocated.
    #[test]
    fn crafted_proof_lengths_are_refused() {
        let bytes = sample().to_bytes();
        // The proof (4 bytes) comes last, after its one-byte length.
        let proof_len_at = bytes.len() - 4 - 1;
        assert_eq!(bytes[proof_len_at], 4, "the proof's length byte");
        for claimed in [1u64 << 36, 1 << 40, u64::MAX] {
            let mut crafted = bytes[..proof_len_at].to_vec();
            crafted.push(253);
            crafted.extend_from_slice(&claimed.to_le_bytes());
            crafted.extend_from_slice(&bytes[proof_len_at + 1..]);
            assert!(ProofBundle::from_bytes(&crafted).is_err(), "{claimed}");
        }
    }
}
