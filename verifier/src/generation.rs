//! A greedy generation proven by one proof, and its check.
//!
//! A causal language model (its verifying key's [`ModelMeta::causal_outputs`], which setup derives from the layer
//! graph and the model id covers) computes output row `r` from the token ids at positions `0..=r` only. So one
//! proof over the sequence `prompt, t₁, …, tₙ₋₁`, padded with [`PAD_TOKEN`] to the model's context, proves every
//! greedy step at once: row `p − 1 + j` (for a prompt of `p` tokens) is what the model predicts after the prompt
//! and `t₁ … tⱼ`, and `tⱼ₊₁` must be its argmax (the first maximum on ties). The verifier rebuilds that sequence
//! from the prompt it sent and the tokens it received, commits to it under its own salt, and checks the proof
//! against that commitment: every step's input is the previous step's input plus its token, bound in the public
//! inputs, not merely claimed by the bundle.
//!
//! Binary form: the zkinfer header (kind `G`, version [`GENERATION_VERSION`]) then bincode 2 of the prompt length,
//! the tokens and the binary proof bundle. JSON form: `{"version": 1, "prompt_len", "tokens", "bundle"}` with the
//! bundle in its JSON form.

use serde::{Deserialize, Serialize};
use zkinfer_circuits::model::CausalOutputs;
use zkinfer_circuits::Fr;

use crate::bundle::{argmax, ProofBundle};
use crate::commitment::input_commitment;
use crate::decode::{decode_exact, encode};
use crate::envelope::{self, FileKind};
use crate::error::VerifyError;
use crate::key::{ModelMeta, VerifierKey};
use crate::verify::{verify_bundle, Expectations, Verified};

/// Format version of generation bundles, binary and JSON.
pub const GENERATION_VERSION: u16 = 1;

/// The token id that fills the proven sequence after its last token: the positions no checked row reads.
pub const PAD_TOKEN: i64 = 0;

/// The most tokens a generation bundle may carry (a context longer than any model's is refused before it is
/// decoded further).
pub const MAX_GENERATED_TOKENS: usize = 1 << 16;

/// What a miner returns for a generation request: the prompt's length, the generated tokens, and the proof over
/// the prompt and the tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationBundle {
    /// Tokens of the prompt.
    pub prompt_len: usize,
    /// The generated token ids, in order.
    pub tokens: Vec<i64>,
    /// The proof over the prompt, all tokens but the last, and padding ([`proven_sequence`]).
    pub bundle: ProofBundle,
}

#[derive(Serialize, Deserialize)]
struct BinaryGeneration {
    prompt_len: u64,
    tokens: Vec<i64>,
    bundle: ProofBundle,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonGeneration {
    version: u16,
    prompt_len: usize,
    tokens: Vec<i64>,
    bundle: ProofBundle,
}

fn malformed(what: &'static str, reason: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

impl GenerationBundle {
    /// Binary encoding with the zkinfer header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let binary = BinaryGeneration {
            prompt_len: self.prompt_len as u64,
            tokens: self.tokens.clone(),
            bundle: self.bundle.clone(),
        };
        envelope::seal(FileKind::Generation, GENERATION_VERSION, &encode(&binary))
    }

    /// Decodes the binary form; refuses other kinds and versions, truncated or trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let payload = envelope::open(FileKind::Generation, GENERATION_VERSION, bytes)?;
        let b: BinaryGeneration = decode_exact(payload).map_err(|e| malformed("generation bundle", e))?;
        let prompt_len = usize::try_from(b.prompt_len).map_err(|e| malformed("generation bundle", e))?;
        Self::checked(prompt_len, b.tokens, b.bundle).map_err(|e| malformed("generation bundle", e))
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        let json = JsonGeneration {
            version: GENERATION_VERSION,
            prompt_len: self.prompt_len,
            tokens: self.tokens.clone(),
            bundle: self.bundle.clone(),
        };
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        let j: JsonGeneration = serde_json::from_str(text).map_err(|e| malformed("generation bundle JSON", e))?;
        if j.version != GENERATION_VERSION {
            return Err(malformed(
                "generation bundle JSON",
                format!(
                    "version {}, this build reads version {GENERATION_VERSION}; generate again with this zkinfer",
                    j.version
                ),
            ));
        }
        Self::checked(j.prompt_len, j.tokens, j.bundle).map_err(|e| malformed("generation bundle JSON", e))
    }

    /// Reads either form: JSON if it starts (after white space) with `{`, binary otherwise.
    pub fn from_any(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let text = std::str::from_utf8(bytes).map_err(|e| malformed("generation bundle JSON", e))?;
            Self::from_json(text)
        } else {
            Self::from_bytes(bytes)
        }
    }

    /// Whether `bytes` look like a generation bundle rather than a plain proof bundle (its header, or a JSON
    /// object with a `prompt_len`).
    pub fn is_generation(bytes: &[u8]) -> bool {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            return serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("prompt_len").is_some());
        }
        envelope::kind_of(bytes) == Some(FileKind::Generation)
    }

    fn checked(prompt_len: usize, tokens: Vec<i64>, bundle: ProofBundle) -> Result<Self, String> {
        if prompt_len == 0 || tokens.is_empty() {
            return Err("a generation needs a prompt of one token at least and one generated token".into());
        }
        if prompt_len.saturating_add(tokens.len()) > MAX_GENERATED_TOKENS {
            return Err(format!(
                "{prompt_len} prompt and {} generated tokens: more than {MAX_GENERATED_TOKENS}",
                tokens.len()
            ));
        }
        Ok(Self {
            prompt_len,
            tokens,
            bundle,
        })
    }
}

/// The model's causal outputs, or why a generation cannot be checked against this key.
pub fn causal_outputs(meta: &ModelMeta) -> Result<CausalOutputs, VerifyError> {
    meta.causal_outputs.ok_or_else(|| VerifyError::NotCausal {
        model: meta.name.clone(),
    })
}

/// The token ids one proof of a generation covers: the prompt, every generated token but the last (the last is
/// only predicted), then [`PAD_TOKEN`] up to the context. Refuses an empty prompt or generation and one longer
/// than the context allows (`prompt + tokens − 1` positions).
pub fn proven_sequence(causal: &CausalOutputs, prompt: &[i64], tokens: &[i64]) -> Result<Vec<i64>, VerifyError> {
    check_lengths(causal, prompt.len(), tokens.len())?;
    let mut sequence = Vec::with_capacity(causal.positions);
    sequence.extend_from_slice(prompt);
    sequence.extend_from_slice(&tokens[..tokens.len() - 1]);
    sequence.resize(causal.positions, PAD_TOKEN);
    Ok(sequence)
}

/// Refuses an empty prompt or generation, and a prompt of `prompt` tokens followed by `tokens` generated ones that
/// the context cannot hold (`prompt + tokens − 1` positions), saying how many would fit.
pub fn check_lengths(causal: &CausalOutputs, prompt: usize, tokens: usize) -> Result<(), VerifyError> {
    if prompt == 0 || tokens == 0 {
        return Err(VerifyError::Generation {
            reason: "a generation needs a prompt of one token at least and one generated token".into(),
        });
    }
    let needed = prompt.saturating_add(tokens) - 1;
    if needed > causal.positions {
        return Err(VerifyError::Generation {
            reason: format!(
                "a prompt of {prompt} tokens and {tokens} generated tokens need {needed} positions; the model's \
                 context is {} (generate at most {} tokens after this prompt)",
                causal.positions,
                (causal.positions + 1).saturating_sub(prompt)
            ),
        });
    }
    Ok(())
}

/// The token row `row` of `outputs` chooses: its argmax, the first maximum on ties (`None` past the outputs).
pub fn greedy_token(causal: &CausalOutputs, outputs: &[i64], row: usize) -> Option<i64> {
    let start = row.checked_mul(causal.row_len)?;
    let row = outputs.get(start..start.checked_add(causal.row_len)?)?;
    argmax(row).map(|i| i as i64)
}

/// A generation that passed verification.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedGeneration {
    /// The generated token ids, each the argmax of the committed model after the prompt and the tokens before it.
    pub tokens: Vec<i64>,
    /// The commitment of the proven sequence (prompt, tokens, padding) under the caller's salt.
    pub input_commitment: Fr,
    /// The proof's outputs (every row's logits).
    pub verified: Verified,
}

/// Verifies a generation after `prompt` (token ids) under the caller's `salt`: the key's model must be causal
/// (its metadata, covered by the model id), the bundle's prompt length must be the prompt's, every token must be
/// the argmax of its row of the proven outputs, and the proof must verify against the commitment of the proven
/// sequence rebuilt here ([`proven_sequence`]), and the pins of `expect` (its `input_commitment`, if any, is
/// replaced by that commitment).
pub fn verify_generation(
    key: &VerifierKey,
    generation: &GenerationBundle,
    prompt: &[i64],
    salt: Fr,
    expect: &Expectations,
) -> Result<VerifiedGeneration, VerifyError> {
    let causal = causal_outputs(key.meta())?;
    if generation.prompt_len != prompt.len() {
        return Err(VerifyError::Generation {
            reason: format!(
                "the bundle generates after a prompt of {} tokens, the prompt given has {}",
                generation.prompt_len,
                prompt.len()
            ),
        });
    }
    let sequence = proven_sequence(&causal, prompt, &generation.tokens)?;
    let outputs = &generation.bundle.outputs;
    if outputs.len() != key.meta().output_len {
        return Err(VerifyError::OutputCount {
            expected: key.meta().output_len,
            found: outputs.len(),
        });
    }
    for (j, &token) in generation.tokens.iter().enumerate() {
        let row = prompt.len() - 1 + j;
        let chosen = greedy_token(&causal, outputs, row);
        if chosen != Some(token) {
            return Err(VerifyError::Generation {
                reason: format!(
                    "token {j} is {token}, but the proven output row {row} chooses {}",
                    chosen.map_or("nothing".into(), |c| c.to_string())
                ),
            });
        }
    }
    let floats: Vec<f32> = sequence.iter().map(|&id| id as f32).collect();
    let commitment = input_commitment(key.meta(), &floats, salt)?;
    let expect = Expectations {
        input_commitment: Some(commitment),
        ..expect.clone()
    };
    let verified = verify_bundle(key, &generation.bundle, &expect)?;
    Ok(VerifiedGeneration {
        tokens: generation.tokens.clone(),
        input_commitment: commitment,
        verified,
    })
}
