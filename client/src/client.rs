//! The client of a miner: sends inputs, and trusts nothing it is sent. The verifying key must hash to the pinned
//! model id, the server's input commitment must equal the one computed here from the input and the client's salt,
//! the proven outputs must equal the outputs answered first, and the proof must verify for the client's nonce
//! (once: a replay cache refuses a second answer to a nonce).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use zkinfer_circuits::Fr;
use zkinfer_verifier::bundle::{argmax, dequantize, sample_outputs};
use zkinfer_verifier::generation::{causal_outputs, greedy_token, proven_sequence};
use zkinfer_verifier::{
    field_to_hex, input_commitment, model_id_of_file, verify_fresh, verify_generation_fresh, Expectations,
    GenerationBundle, ProofBundle, ReplayCache, VerifierKey, VerifyError,
};

use crate::api::{ErrorBody, InferRequest, JobStatus, JobView, ModelInfo};
use crate::stats::Percentiles;

/// Why a request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("{what}: {reason}")]
    Http {
        /// What was being done.
        what: String,
        /// The transport's error and its causes.
        reason: String,
    },
    /// The server answered with an error.
    #[error("{what}: the server answered {status}: {message}")]
    Server {
        /// What was being done.
        what: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server's verifying key is not the pinned model's.
    #[error("the server's verifying key is for model {found}, not the pinned model {expected}: refusing to trust it")]
    KeyMismatch {
        /// The pinned model id.
        expected: String,
        /// The served key's model id.
        found: String,
    },
    /// The server's answer contradicts what the client knows (commitment, outputs, nonce).
    #[error("the server's answer is wrong: {0}")]
    Mismatch(String),
    /// The proof was rejected.
    #[error("the proof was rejected: {0}")]
    Rejected(#[from] VerifyError),
    /// Proving failed on the server.
    #[error("the server failed to prove job {job_id}: {error}")]
    ProvingFailed {
        /// The job.
        job_id: String,
        /// The server's reason.
        error: String,
    },
    /// No proof in time.
    #[error("job {job_id} was still {status} at the deadline; wait longer (--timeout-s) or ask the miner")]
    Timeout {
        /// The job.
        job_id: String,
        /// Where it was.
        status: &'static str,
    },
    /// The client could not be set up (URL, certificate).
    #[error("{0}")]
    Setup(String),
}

/// A client of one miner.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// How to send one request.
#[derive(Clone, Debug)]
pub struct RequestOptions {
    /// Whether to ask for a proof (and wait for it and verify it).
    pub proof: bool,
    /// How long to wait for the proof (and for queue slots, on 429).
    pub timeout: Duration,
    /// Accept a model whose key was made with the insecure development SRS (anyone can forge its proofs):
    /// tests and demos only.
    pub allow_insecure_dev_srs: bool,
    /// Generate this many greedy tokens after the input, a prompt of token ids (a causal language model).
    pub generate: Option<usize>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            proof: true,
            timeout: Duration::from_secs(600),
            allow_insecure_dev_srs: false,
            generate: None,
        }
    }
}

/// The verified answer to one request.
#[derive(Clone, Debug)]
pub struct VerifiedAnswer {
    /// The job id on the server.
    pub job_id: String,
    /// The proven (or, without a proof, answered and unproven) integer outputs.
    pub outputs: Vec<i64>,
    /// The outputs as floats, with the verifying key's output scale.
    pub float_outputs: Vec<f32>,
    /// Index of the largest output, computed here from `outputs` (never taken from the server); of the first
    /// sample for a model that proves a batch.
    pub argmax: Option<usize>,
    /// The predicted class of each sample, computed here (one entry unless the model proves a batch).
    pub classes: Vec<Option<usize>>,
    /// From sending the request to receiving the output.
    pub time_to_output: Duration,
    /// From sending the request to holding a verified proof.
    pub time_to_proof: Option<Duration>,
    /// Size of the halo2 proof, bytes.
    pub proof_bytes: Option<usize>,
    /// The proof bundle.
    pub bundle: Option<ProofBundle>,
    /// A generation's tokens: checked against the answered outputs and the commitment at once, against the proof
    /// once it is verified (they all arrive with the answer, so `time_to_output` is the time to the first token).
    pub tokens: Option<Vec<i64>>,
    /// A generation's verified bundle (prompt length, tokens, proof).
    pub generation: Option<GenerationBundle>,
    /// How often the server said 429 before accepting.
    pub retries: u32,
}

impl Client {
    /// A client of the miner at `base_url` (`http://…` or `https://…`); `ca_cert_pem` adds a trusted root (for a
    /// self-signed certificate).
    pub fn new(base_url: &str, ca_cert_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Setup(format!(
                "URL `{base_url}` must start with http:// or https://"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64);
        if let Some(pem) = ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Setup(format!("the CA certificate is not PEM: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("HTTP client: {e}")))?;
        Ok(Client { http, base })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, ClientError> {
        let what = "listing the models";
        let response = self.send(what, self.http.get(self.url("/v1/models"))).await?;
        json(what, response).await
    }

    /// The verifying key of `model_id`, fetched from the server and refused unless its bytes hash to `model_id`
    /// (checked before anything is parsed).
    pub async fn verifier_key(&self, model_id: &[u8; 32]) -> Result<VerifierKey, ClientError> {
        let id = hex::encode(model_id);
        let what = format!("fetching the verifying key of model {id}");
        let response = self
            .send(&what, self.http.get(self.url(&format!("/v1/models/{id}/vk"))))
            .await?;
        let bytes = response.bytes().await.map_err(|e| http_error(what, e))?;
        let found = model_id_of_file(&bytes);
        if found != *model_id {
            return Err(ClientError::KeyMismatch {
                expected: id,
                found: hex::encode(found),
            });
        }
        Ok(VerifierKey::from_pinned_bytes(&bytes, model_id)?)
    }

    /// `POST /v1/models/{id}/infer`, waiting out 429s (as `Retry-After` asks) until `deadline`; returns the job
    /// and how many 429s it took.
    pub async fn submit(
        &self,
        model_id: &[u8; 32],
        request: &InferRequest,
        deadline: Instant,
    ) -> Result<(JobView, u32), ClientError> {
        let url = self.url(&format!("/v1/models/{}/infer", hex::encode(model_id)));
        let what = "sending the inference request";
        let mut retries = 0;
        loop {
            let response = self
                .http
                .post(&url)
                .json(request)
                .send()
                .await
                .map_err(|e| http_error(what, e))?;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                // Jitter spreads the retries of many waiting clients.
                let jitter = Duration::from_millis(rand::random::<u64>() % 250);
                let resume = Instant::now() + Duration::from_secs(wait) + jitter;
                if resume > deadline {
                    return Err(server_error(what, response).await);
                }
                retries += 1;
                tokio::time::sleep_until(resume.into()).await;
                continue;
            }
            if !response.status().is_success() {
                return Err(server_error(what, response).await);
            }
            return Ok((json(what, response).await?, retries));
        }
    }

    /// The job, long-polling until it ends or `deadline` passes.
    pub async fn wait_job(&self, job_id: &str, deadline: Instant) -> Result<JobView, ClientError> {
        let what = format!("polling job {job_id}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_ms = left.as_millis().min(10_000) as u64;
            let url = self.url(&format!("/v1/jobs/{job_id}?wait_ms={wait_ms}"));
            let response = self.send(&what, self.http.get(url)).await?;
            let job: JobView = json(&what, response).await?;
            if job.status.is_final() {
                return Ok(job);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    job_id: job.job_id,
                    status: job.status.as_str(),
                });
            }
        }
    }

    /// `GET /v1/jobs/{id}/bundle`: the binary proof bundle (of a generation job: the proof inside its generation
    /// bundle).
    pub async fn bundle(&self, job_id: &str) -> Result<ProofBundle, ClientError> {
        let what = format!("fetching the proof of job {job_id}");
        let response = self
            .send(&what, self.http.get(self.url(&format!("/v1/jobs/{job_id}/bundle"))))
            .await?;
        let bytes = response.bytes().await.map_err(|e| http_error(what, e))?;
        // A generation job's bundle comes with its prompt length and tokens, which the job view also carries.
        if GenerationBundle::is_generation(&bytes) {
            return Ok(GenerationBundle::from_bytes(&bytes)?.bundle);
        }
        Ok(ProofBundle::from_bytes(&bytes)?)
    }

    /// Sends `input` to the model of `key` with a fresh salt and nonce, checks the answer, waits for the proof and
    /// verifies it against the model id, the input commitment computed here and the nonce, recording the nonce in
    /// `replay`.
    pub async fn infer_verified(
        &self,
        key: &VerifierKey,
        input: &[f32],
        options: &RequestOptions,
        replay: &ReplayCache,
    ) -> Result<VerifiedAnswer, ClientError> {
        if key.is_insecure_dev_srs() && !options.allow_insecure_dev_srs {
            let refused = VerifyError::InsecureDevSrs {
                model_id: hex::encode(key.model_id()),
            };
            return Err(ClientError::Setup(refused.to_string()));
        }
        let salt = random_field();
        let nonce = random_field();
        let prompt = match options.generate {
            Some(_) => Some(prompt_ids(input)?),
            None => None,
        };
        let commitment = match prompt {
            // A generation's commitment covers the tokens, known only once answered.
            Some(_) => None,
            None => Some(input_commitment(key.meta(), input, salt)?),
        };
        let request = InferRequest {
            input_data: vec![input.to_vec()],
            salt: field_to_hex(&salt),
            nonce: field_to_hex(&nonce),
            proof: options.proof,
            generate: options.generate,
        };
        let started = Instant::now();
        let deadline = started + options.timeout;
        let (answer, retries) = self.submit(&key.model_id(), &request, deadline).await?;
        let time_to_output = started.elapsed();
        let commitment = match (commitment, &prompt) {
            (Some(c), _) => c,
            (None, Some(prompt)) => generation_commitment(key, &answer, prompt, options.generate, salt)?,
            (None, None) => unreachable!("a request without a prompt has a commitment"),
        };
        if answer.input_commitment != field_to_hex(&commitment) {
            return Err(ClientError::Mismatch(format!(
                "input commitment {} is not the commitment of the input sent ({})",
                answer.input_commitment,
                field_to_hex(&commitment)
            )));
        }
        if answer.nonce != request.nonce {
            return Err(ClientError::Mismatch(format!(
                "the answer is for nonce {}, the request's is {}",
                answer.nonce, request.nonce
            )));
        }
        if answer.outputs.len() != key.meta().output_len {
            return Err(ClientError::Mismatch(format!(
                "{} outputs answered, the model has {}",
                answer.outputs.len(),
                key.meta().output_len
            )));
        }
        // Only the integer outputs are taken from the answer; floats and the class follow from them and the key.
        let classes: Vec<Option<usize>> = sample_outputs(&answer.outputs, key.meta().batch())
            .map(argmax)
            .collect();
        let mut verified = VerifiedAnswer {
            job_id: answer.job_id.clone(),
            outputs: answer.outputs.clone(),
            float_outputs: dequantize(&answer.outputs, key.meta().output_scale),
            argmax: classes.first().copied().flatten(),
            classes,
            time_to_output,
            time_to_proof: None,
            proof_bytes: None,
            bundle: None,
            tokens: answer.generation.as_ref().map(|g| g.tokens.clone()),
            generation: None,
            retries,
        };
        if !options.proof {
            return Ok(verified);
        }
        let job = self.wait_job(&answer.job_id, deadline).await?;
        if job.status == JobStatus::Failed {
            return Err(ClientError::ProvingFailed {
                job_id: job.job_id,
                error: job.error.unwrap_or_default(),
            });
        }
        let bundle = match job.bundle {
            Some(bundle) => bundle,
            None => self.bundle(&job.job_id).await?,
        };
        let expect = Expectations {
            model_id: Some(key.model_id()),
            input_commitment: Some(commitment),
            nonce: Some(nonce),
            allow_insecure_dev_srs: options.allow_insecure_dev_srs,
        };
        let proven = match (&prompt, &answer.generation) {
            (Some(prompt), Some(g)) => {
                let generation = GenerationBundle {
                    prompt_len: g.prompt_len,
                    tokens: g.tokens.clone(),
                    bundle: bundle.clone(),
                };
                let checked = verify_generation_fresh(key, &generation, prompt, salt, &expect, replay)?;
                verified.generation = Some(generation);
                checked.verified
            }
            _ => verify_fresh(key, &bundle, &expect, replay)?,
        };
        if proven.outputs != answer.outputs {
            return Err(ClientError::Mismatch(format!(
                "the proven outputs {:?} differ from the outputs answered first {:?}",
                proven.outputs, answer.outputs
            )));
        }
        verified.time_to_proof = Some(started.elapsed());
        verified.proof_bytes = Some(bundle.proof.len());
        verified.outputs = proven.outputs;
        verified.float_outputs = proven.float_outputs;
        verified.argmax = proven.argmax;
        verified.classes = proven.classes;
        verified.bundle = Some(bundle);
        Ok(verified)
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| http_error(what, e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(server_error(what, response).await)
        }
    }
}

async fn json<T: serde::de::DeserializeOwned>(what: &str, response: reqwest::Response) -> Result<T, ClientError> {
    response
        .json()
        .await
        .map_err(|e| http_error(format!("{what} (reading the answer)"), e))
}

async fn server_error(what: &str, response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |body| body.error);
    ClientError::Server {
        what: what.into(),
        status,
        message,
    }
}

/// A transport error with its causes, each said once (reqwest repeats the URL in nested errors).
fn http_error(what: impl Into<String>, error: reqwest::Error) -> ClientError {
    let mut causes: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = next {
        let text = e.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        next = e.source();
    }
    ClientError::Http {
        what: what.into(),
        reason: causes.join(": "),
    }
}

/// A generation request's input as token ids.
fn prompt_ids(input: &[f32]) -> Result<Vec<i64>, ClientError> {
    if input.is_empty() {
        return Err(ClientError::Setup(
            "the prompt is empty: give one token id at least".into(),
        ));
    }
    input
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let id = v as i64;
            if id as f32 == v && id >= 0 {
                Ok(id)
            } else {
                Err(ClientError::Setup(format!("prompt value {i} ({v}) is not a token id")))
            }
        })
        .collect()
}

/// The commitment a generation's answer must carry: that of the prompt, the answered tokens and padding under the
/// client's salt, after checking that the answer is the generation asked for and that each token is its row's
/// argmax of the answered outputs (the proof binds those outputs later).
fn generation_commitment(
    key: &VerifierKey,
    answer: &JobView,
    prompt: &[i64],
    tokens: Option<usize>,
    salt: Fr,
) -> Result<Fr, ClientError> {
    let Some(g) = &answer.generation else {
        return Err(ClientError::Mismatch(
            "a generation was asked for, the answer has no tokens".into(),
        ));
    };
    if g.prompt_len != prompt.len() || Some(g.tokens.len()) != tokens {
        return Err(ClientError::Mismatch(format!(
            "asked for {} tokens after a prompt of {}, answered {} after {}",
            tokens.unwrap_or(0),
            prompt.len(),
            g.tokens.len(),
            g.prompt_len
        )));
    }
    let causal = causal_outputs(key.meta())?;
    // Also refuses an empty prompt or generation before a row is computed from their lengths.
    let sequence = proven_sequence(&causal, prompt, &g.tokens)?;
    for (j, &token) in g.tokens.iter().enumerate() {
        if greedy_token(&causal, &answer.outputs, prompt.len() - 1 + j) != Some(token) {
            return Err(ClientError::Mismatch(format!(
                "token {j} ({token}) is not the argmax of its row of the answered outputs"
            )));
        }
    }
    let floats: Vec<f32> = sequence.iter().map(|&id| id as f32).collect();
    Ok(input_commitment(key.meta(), &floats, salt)?)
}

fn random_field() -> Fr {
    <Fr as ff::Field>::random(rand::rngs::OsRng)
}

/// A test batch: `requests` requests over `inputs` (cycled), `concurrency` at a time.
#[derive(Clone, Debug)]
pub struct TestBatchConfig {
    /// The inputs to send, cycled.
    pub inputs: Vec<Vec<f32>>,
    /// Their classes, when known (reported as agreement of the proven argmax).
    pub labels: Option<Vec<usize>>,
    /// How many requests.
    pub requests: usize,
    /// How many in flight at once.
    pub concurrency: usize,
    /// Per request.
    pub options: RequestOptions,
}

/// What a test batch measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestBatchReport {
    /// The model id (hex).
    pub model_id: String,
    /// Requests sent.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests answered with a verified proof (or, without proofs, an output).
    pub succeeded: usize,
    /// Requests that failed.
    pub failed: usize,
    /// `succeeded / requests`.
    pub success_rate: f64,
    /// Proofs verified here.
    pub proofs_verified: usize,
    /// Time to output, ms.
    pub time_to_output_ms: Percentiles,
    /// Time to a verified proof, ms.
    pub time_to_proof_ms: Percentiles,
    /// Proof size, bytes (they are all the same size for one model).
    pub proof_bytes: Option<usize>,
    /// Tokens generated per request (a generation batch: `time_to_output_ms` is then the time to the first token,
    /// which arrives with all the others, and `time_to_proof_ms` the time to the verified generation).
    #[serde(default)]
    pub generated_tokens: Option<usize>,
    /// 429 answers waited out.
    pub retries_429: u32,
    /// Wall-clock time of the whole batch, seconds.
    pub wall_s: f64,
    /// Verified proofs per second over the batch.
    pub proofs_per_s: f64,
    /// Share of proven argmaxes equal to the label, when labels were given.
    pub label_agreement: Option<f64>,
    /// Failure messages and how often each occurred.
    pub errors: BTreeMap<String, usize>,
}

/// Sends a test batch to the model of `key` and verifies every proof.
pub async fn test_batch(client: &Client, key: &VerifierKey, config: &TestBatchConfig) -> TestBatchReport {
    let replay = ReplayCache::new(config.requests.max(1));
    let started = Instant::now();
    let outcomes: Vec<(usize, Result<VerifiedAnswer, ClientError>)> = stream::iter(0..config.requests)
        .map(|i| {
            let input = &config.inputs[i % config.inputs.len().max(1)];
            let replay = &replay;
            async move { (i, client.infer_verified(key, input, &config.options, replay).await) }
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed().as_secs_f64();

    let (mut to_output, mut to_proof, mut errors) = (Vec::new(), Vec::new(), BTreeMap::new());
    let (mut succeeded, mut verified, mut retries, mut agree, mut labelled) = (0, 0, 0, 0, 0);
    let mut proof_bytes = None;
    for (i, outcome) in outcomes {
        match outcome {
            Ok(answer) => {
                succeeded += 1;
                retries += answer.retries;
                to_output.push(answer.time_to_output.as_secs_f64() * 1e3);
                if let Some(t) = answer.time_to_proof {
                    verified += 1;
                    to_proof.push(t.as_secs_f64() * 1e3);
                }
                proof_bytes = proof_bytes.or(answer.proof_bytes);
                if let Some(labels) = &config.labels {
                    labelled += 1;
                    agree += usize::from(answer.argmax == labels.get(i % labels.len().max(1)).copied());
                }
            }
            Err(e) => *errors.entry(e.to_string()).or_insert(0) += 1,
        }
    }
    TestBatchReport {
        model_id: hex::encode(key.model_id()),
        requests: config.requests,
        concurrency: config.concurrency,
        succeeded,
        failed: config.requests - succeeded,
        success_rate: if config.requests == 0 {
            1.0
        } else {
            succeeded as f64 / config.requests as f64
        },
        proofs_verified: verified,
        time_to_output_ms: Percentiles::of(&to_output),
        time_to_proof_ms: Percentiles::of(&to_proof),
        proof_bytes,
        generated_tokens: config.options.generate,
        retries_429: retries,
        wall_s: wall,
        proofs_per_s: if wall > 0.0 { verified as f64 / wall } else { 0.0 },
        label_agreement: (labelled > 0).then(|| agree as f64 / labelled as f64),
        errors,
    }
}
