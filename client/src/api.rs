//! The wire format of the miner's HTTP API, shared by the server and the client.
//!
//! | method and path                     | body / answer                                                        |
//! |-------------------------------------|----------------------------------------------------------------------|
//! | `GET /v1/models`                    | `[ModelInfo]`                                                        |
//! | `GET /v1/models/{model_id}/vk`      | the verifying key file (binary) — check its model id before use     |
//! | `POST /v1/models/{model_id}/infer`  | [`InferRequest`] → [`JobView`] (200 when done, 202 when proving)     |
//! | `GET /v1/jobs/{id}[?wait_ms=N]`     | [`JobView`]; `wait_ms` long-polls until the job ends (≤ 30 s)        |
//! | `GET /v1/jobs/{id}/bundle`          | the proof bundle, binary (a generation bundle for a generation job)  |
//! | `GET /metrics`                      | Prometheus text format                                               |
//! | `GET /dashboard` (and `/`)          | the live dashboard page                                              |
//!
//! Errors are `{"error": "..."}` ([`ErrorBody`]) with a 4xx status for a bad request (400 malformed, 404 unknown
//! model or job, 409 nonce already used, 413 too large, 415 not JSON, 422 invalid values, 429 queue full with a
//! `Retry-After` header) and 5xx for the server's own failures.

use serde::{Deserialize, Serialize};
use zkinfer_verifier::ProofBundle;

/// A model the server proves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model id (hex): hash of the verifying key and the quantization metadata.
    pub model_id: String,
    /// Model name.
    pub name: String,
    /// Float input shape of the ONNX model.
    pub input_shape: Vec<usize>,
    /// Number of flattened input values a request carries.
    pub input_len: usize,
    /// Number of outputs.
    pub output_len: usize,
    /// Circuit size (log2 rows).
    pub k: u32,
}

/// `POST /v1/models/{model_id}/infer`: one input, its commitment's salt and the request nonce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// EZKL's layout: one row, the flattened input.
    pub input_data: Vec<Vec<f32>>,
    /// Salt of the input commitment (hex field element); the client keeps it.
    pub salt: String,
    /// Request nonce (hex field element); one nonce per model is answered once.
    pub nonce: String,
    /// Whether a proof is wanted (default true). Without it the answer is the output alone.
    #[serde(default = "yes")]
    pub proof: bool,
    /// Generate this many greedy tokens after the prompt `input_data[0]` (token ids, shorter than the context) with
    /// a causal language model; the answer's `generation` holds them, and one proof covers every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<usize>,
}

/// The tokens of a generation job: what the client checks against the proof with
/// `zkinfer_verifier::verify_generation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationView {
    /// Tokens of the prompt.
    pub prompt_len: usize,
    /// The generated token ids.
    pub tokens: Vec<i64>,
}

fn yes() -> bool {
    true
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for a prover worker.
    Queued,
    /// A worker is proving it.
    Proving,
    /// Finished: the proof is ready (or none was asked for).
    Done,
    /// Proving failed; `error` says why.
    Failed,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }

    /// The name stored in the database and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Proving => "proving",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses [`JobStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => JobStatus::Queued,
            "proving" => JobStatus::Proving,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }
}

/// A job as the API shows it: the answer to an inference request and, once proven, its proof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id (hex).
    pub job_id: String,
    /// Model id (hex).
    pub model_id: String,
    /// Where the job is.
    pub status: JobStatus,
    /// Whether a proof was asked for.
    pub proof_requested: bool,
    /// The quantized outputs of the inference.
    pub outputs: Vec<i64>,
    /// The outputs as floats (`output_scale · q`).
    pub float_outputs: Vec<f32>,
    /// Index of the largest output (of the first sample, for a model that proves a batch).
    pub argmax: Option<usize>,
    /// The predicted class of each sample (one entry unless the model proves a batch).
    #[serde(default)]
    pub classes: Vec<Option<usize>>,
    /// The input commitment the server computed (hex); a client compares it with its own.
    pub input_commitment: String,
    /// The request nonce (hex).
    pub nonce: String,
    /// Why proving failed.
    pub error: Option<String>,
    /// Unix time of acceptance, milliseconds.
    pub created_ms: u64,
    /// Unix time the job ended, milliseconds.
    pub finished_ms: Option<u64>,
    /// Proving time, milliseconds.
    pub proving_ms: Option<f64>,
    /// The proof bundle (JSON form), once done.
    pub bundle: Option<ProofBundle>,
    /// A generation's prompt length and tokens (its outputs are the logits of the proven sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationView>,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong and what to do.
    pub error: String,
}
