//! Greedy generation with one proof: run the model natively once per token, then prove the last step's input,
//! which holds the prompt and every token (see `zkinfer_verifier::generation` for why one proof covers every step
//! of a causal model).

use std::time::{Duration, Instant};

use zkinfer_circuits::model::CausalOutputs;
use zkinfer_circuits::Fr;
use zkinfer_circuits::QuantizedModel;
use zkinfer_verifier::generation::{check_lengths, greedy_token, proven_sequence, GenerationBundle, PAD_TOKEN};

use crate::error::{ProverError, Result};
use crate::infer::IntegerEngine;
use crate::keys::ProverKey;
use crate::prove::{prove_with, ProveRequest};
use crate::quantize::quantize_input;
use zkinfer_verifier::VerifierKey;

/// A request to generate: the prompt's token ids, how many tokens to add, the salt and the nonce.
#[derive(Clone, Debug)]
pub struct GenerateRequest<'a> {
    /// Token ids of the prompt.
    pub prompt: &'a [i64],
    /// Tokens to generate.
    pub tokens: usize,
    /// Salt of the commitment of the proven sequence.
    pub salt: Fr,
    /// Request nonce.
    pub nonce: Fr,
}

/// A proven generation and how long its parts took.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The bundle to send back.
    pub bundle: GenerationBundle,
    /// Native inference until the first token was known.
    pub first_token: Duration,
    /// Native inference of every token.
    pub inference: Duration,
    /// Proof generation (witness and halo2 prover; the proof's own native inference not included).
    pub proving: Duration,
    /// Whether the GPU's proof did not verify and the CPU proved again.
    pub cpu_retry: bool,
}

/// Greedy tokens computed natively, before any proof: what a server answers at once.
#[derive(Clone, Debug)]
pub struct Greedy {
    /// The generated token ids.
    pub tokens: Vec<i64>,
    /// The sequence one proof covers (`zkinfer_verifier::generation::proven_sequence`).
    pub sequence: Vec<i64>,
    /// The model's outputs on that sequence (what the proof will prove).
    pub outputs: Vec<i64>,
    /// Native inference until the first token was known.
    pub first_token: Duration,
    /// Native inference of every token.
    pub inference: Duration,
}

/// The causal outputs of the model `verifier` is the key of, or why it cannot generate (the analysis is rerun on
/// the model only to say which row reads which later position).
pub fn causal_outputs(model: &QuantizedModel, verifier: &VerifierKey) -> Result<CausalOutputs> {
    verifier.meta().causal_outputs.ok_or_else(|| {
        let reason = model.causal_outputs().err().unwrap_or_else(|| "its keys say so".into());
        ProverError::Generation {
            reason: format!(
                "model `{}` is not a causal language model ({reason}); one proof can only prove the generation of \
                 a model whose output row r reads positions 0..=r",
                model.name
            ),
        }
    })
}

/// Runs `engine`'s model, whose outputs are `causal` ([`causal_outputs`]), greedily for `tokens` tokens after
/// `prompt`: one native inference per token, each on the sequence the proof will hold once that token is known
/// (earlier tokens in place, padding after them, which the rows read do not depend on). Refuses a prompt id outside
/// the vocabulary and a prompt and length the context cannot hold, naming the fix, before any work.
pub fn greedy(engine: &IntegerEngine, causal: &CausalOutputs, prompt: &[i64], tokens: usize) -> Result<Greedy> {
    let model = engine.model();
    // The verifier's own generation reason as it is ("cannot generate: …", not "cannot generate: generation
    // rejected: …").
    let reason = |e: zkinfer_verifier::VerifyError| ProverError::Generation {
        reason: match e {
            zkinfer_verifier::VerifyError::Generation { reason } => reason,
            other => other.to_string(),
        },
    };
    check_lengths(causal, prompt.len(), tokens).map_err(reason)?;
    let mut padded = prompt.to_vec();
    padded.resize(causal.positions, PAD_TOKEN);
    // Refuses a prompt id outside the vocabulary by its position.
    quantize_input(model, &padded.iter().map(|&id| id as f32).collect::<Vec<_>>())?;

    let started = Instant::now();
    let mut first_token = Duration::ZERO;
    let mut generated: Vec<i64> = Vec::with_capacity(tokens);
    let (mut sequence, mut outputs) = (padded, Vec::new());
    for step in 0..tokens {
        // With this step's token still unknown (a placeholder, replaced below), the sequence is the prompt, the
        // tokens so far and padding; at the last step it is the proven sequence itself.
        generated.push(0);
        sequence = proven_sequence(causal, prompt, &generated).map_err(reason)?;
        outputs = engine.infer(&sequence)?;
        let row = prompt.len() - 1 + step;
        let token = greedy_token(causal, &outputs, row).ok_or_else(|| ProverError::Generation {
            reason: format!("output row {row} is empty"),
        })?;
        if model.input.vocab.is_some_and(|v| token >= v as i64) && step + 1 < tokens {
            return Err(ProverError::Generation {
                reason: format!(
                    "step {step} chose {token}, which is not a token id of the model's vocabulary, so it cannot \
                     be fed back; generate {} tokens at most from this prompt",
                    step + 1
                ),
            });
        }
        generated[step] = token;
        if step == 0 {
            first_token = started.elapsed();
        }
    }
    Ok(Greedy {
        tokens: generated,
        sequence,
        outputs,
        first_token,
        inference: started.elapsed(),
    })
}

/// Generates `request.tokens` greedy tokens after the prompt with `engine`'s model, then proves the sequence that
/// holds them with `key` and checks the proof with `verifier`.
pub(crate) fn generate_with(
    engine: &IntegerEngine,
    key: &ProverKey,
    verifier: &VerifierKey,
    request: &GenerateRequest,
) -> Result<Generated> {
    let causal = causal_outputs(engine.model(), verifier)?;
    let run = greedy(engine, &causal, request.prompt, request.tokens)?;
    let tokens = run.tokens;
    let floats: Vec<f32> = run.sequence.iter().map(|&id| id as f32).collect();
    let proven = prove_with(
        engine,
        key,
        verifier,
        &ProveRequest {
            input: &floats,
            salt: request.salt,
            nonce: request.nonce,
        },
    )?;
    // The proof's outputs are the native engine's: each row chooses what the steps above chose.
    for (j, &token) in tokens.iter().enumerate() {
        let row = request.prompt.len() - 1 + j;
        if greedy_token(&causal, &proven.bundle.outputs, row) != Some(token) {
            return Err(ProverError::Proving {
                reason: format!(
                    "the proven row {row} does not choose generated token {j} ({token}); the model is not causal as \
                     analysed, this is a bug, please report it"
                ),
            });
        }
    }
    Ok(Generated {
        bundle: GenerationBundle {
            prompt_len: request.prompt.len(),
            tokens,
            bundle: proven.bundle,
        },
        first_token: run.first_token,
        inference: run.inference,
        proving: proven.proving,
        cpu_retry: proven.cpu_retry,
    })
}
