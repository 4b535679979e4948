//! The HTTP handlers of the miner API (routes in [`crate::server::router`], wire types in [`crate::api`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde::Deserialize;
use zkinfer_circuits::poseidon;
use zkinfer_prover::{causal_outputs, greedy, infer, quantize_input, IntegerEngine, ProverError};
use zkinfer_verifier::bundle::{argmax, dequantize, sample_outputs};
use zkinfer_verifier::{field_from_hex, field_to_hex, GenerationBundle, ProofBundle};

use crate::api::{GenerationView, InferRequest, JobStatus, JobView, ModelInfo};
use crate::dashboard::DASHBOARD_HTML;
use crate::error::ApiError;
use crate::models::ServedModel;
use crate::state::AppState;
use crate::store::{now_ms, JobRecord, JobStore, StoreError};

/// Longest long-poll of `GET /v1/jobs/{id}?wait_ms=`.
pub const MAX_WAIT_MS: u64 = 30_000;

type Shared = State<Arc<AppState>>;

/// Runs `f` on the job store on tokio's blocking pool: SQLite reads and fsynced writes (`synchronous=FULL`) must not
/// stall the threads that serve every other request.
async fn with_store<T: Send + 'static>(
    state: &Arc<AppState>,
    what: &'static str,
    f: impl FnOnce(&JobStore) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state.store))
        .await
        .map_err(|e| ApiError::internal(format!("{what}: the store task failed: {e}")))
}

/// The `{model_id}` or `{job_id}` of a route, or why it could not be read (a segment that is not UTF-8).
type PathId = Result<Path<String>, PathRejection>;

/// The id in the path; 400 with a JSON error when it is not text.
fn path_id(path: PathId) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::rejected(StatusCode::BAD_REQUEST, "invalid", e.body_text()))
}

/// `GET /v1/models`.
pub async fn list_models(State(state): Shared) -> Json<Vec<ModelInfo>> {
    Json(state.models.iter().map(|m| m.info()).collect())
}

fn model<'a>(state: &'a AppState, id: &str) -> Result<&'a Arc<ServedModel>, ApiError> {
    state.models.get(id).ok_or_else(|| {
        ApiError::not_found(
            "unknown_model",
            format!("no model {id} on this server; GET /v1/models lists the served ones"),
        )
    })
}

/// `GET /v1/models/{model_id}/vk`: the verifying key file. A client checks that its model id is the pinned one.
pub async fn verifier_key(State(state): Shared, id: PathId) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let served = model(&state, &id)?;
    Ok(octet_stream(served.verifier_key_bytes.clone()))
}

/// `POST /v1/models/{model_id}/infer`: answers the output at once and queues the proof.
pub async fn infer_request(
    State(state): Shared,
    id: PathId,
    body: Result<Json<InferRequest>, JsonRejection>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<JobView>), ApiError> {
    let id = path_id(id)?;
    let served = model(&state, &id)?.clone();
    let Json(request) = body.map_err(|r| ApiError::from_json_rejection(r, state.max_body_bytes))?;
    let input = match request.generate {
        Some(_) => prompt_input(&served, request.input_data)?,
        None => single_input(&served, request.input_data)?,
    };
    let salt = field_from_hex(&request.salt).map_err(|e| ApiError::invalid(format!("salt: {e}")))?;
    let nonce = field_from_hex(&request.nonce).map_err(|e| ApiError::invalid(format!("nonce: {e}")))?;

    // A replay is refused before anything else (retrying it would never succeed); the insert below still
    // enforces one answer per nonce against a concurrent duplicate.
    let nonce_hex = field_to_hex(&nonce);
    let (model_id, nonce_for_store) = (served.id.clone(), nonce_hex.clone());
    let used = with_store(&state, "reading the jobs", move |store| {
        store.nonce_used(&model_id, &nonce_for_store)
    });
    match used.await? {
        Ok(true) => return Err(replay(&nonce_hex, &served.id)),
        Ok(false) => {}
        Err(e) => return Err(ApiError::internal(format!("reading the jobs: {e}"))),
    }

    // Back-pressure before any work: a full queue answers 429 with an estimate of when to come back.
    let slot = if request.proof {
        let slot = state.queue.try_reserve().ok_or_else(|| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the proving queue is full ({} jobs waiting); retry after the Retry-After seconds",
                state.queue.capacity()
            ),
            retry_after_s: Some(state.retry_after_s()),
            reason: Some("queue_full"),
        })?;
        Some(slot)
    } else {
        None
    };

    let started = std::time::Instant::now();
    let inference_model = served.clone();
    let generate = request.generate;
    let answer = tokio::task::spawn_blocking(move || match generate {
        Some(tokens) => generate_answer(&inference_model, &input, tokens, salt),
        None => infer_answer(&inference_model, input, salt),
    })
    .await
    .map_err(|e| ApiError::internal(format!("inference task failed: {e}")))?
    .map_err(|e| match e {
        // The request's fault: ids outside the vocabulary, a prompt the context cannot hold.
        ProverError::BadInput { .. } | ProverError::Generation { .. } => ApiError::invalid(e.to_string()),
        e => ApiError::internal(format!("inference failed: {e}")),
    })?;
    let Answer {
        outputs,
        commitment,
        input,
        generation,
    } = answer;
    state.metrics.inference_seconds.observe(started.elapsed().as_secs_f64());

    let mut id_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let job = JobRecord {
        id: hex::encode(id_bytes),
        model_id: served.id.clone(),
        nonce: nonce_hex,
        salt: request.proof.then(|| field_to_hex(&salt)),
        input: request.proof.then_some(input),
        proof_requested: request.proof,
        status: if request.proof {
            JobStatus::Queued
        } else {
            JobStatus::Done
        },
        outputs,
        input_commitment: field_to_hex(&commitment),
        output_scale: served.model().output_scale(),
        bundle: None,
        error: None,
        created_ms: now_ms(),
        finished_ms: (!request.proof).then(now_ms),
        proving_ms: None,
        generation,
    };
    let stored = job.clone();
    match with_store(&state, "storing the job", move |store| store.insert(&stored)).await? {
        Ok(()) => {}
        Err(StoreError::NonceUsed) => return Err(replay(&job.nonce, &served.id)),
        Err(e) => return Err(ApiError::internal(format!("storing the job: {e}"))),
    }
    let status = match slot {
        Some(slot) => {
            slot.push(job.id.clone());
            state.metrics.queue_depth.set(state.queue.depth() as i64);
            StatusCode::ACCEPTED
        }
        None => StatusCode::OK,
    };
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(view(&job, served.model().batch())),
    ))
}

/// What the inference of a request answers at once.
struct Answer {
    /// The model's outputs (a generation's: on the proven sequence).
    outputs: Vec<i64>,
    /// The commitment of the input a proof will cover.
    commitment: zkinfer_circuits::Fr,
    /// The input a proof will cover (a generation's: the proven sequence).
    input: Vec<f32>,
    /// A generation's prompt length and tokens.
    generation: Option<GenerationView>,
}

/// One inference, on the model's engine (on the GPU when the server proves on one; a GPU fault falls back to the
/// CPU).
fn infer_answer(served: &ServedModel, input: Vec<f32>, salt: zkinfer_circuits::Fr) -> Result<Answer, ProverError> {
    let model = served.model();
    let q = quantize_input(model, &input)?;
    let outputs = match served.prover.engine().infer(&q) {
        Ok(outputs) => outputs,
        Err(_) if served.prover.engine().is_on_gpu() => infer(model, &q)?,
        Err(e) => return Err(e),
    };
    Ok(Answer {
        outputs,
        commitment: poseidon::commit_words(salt, &q, model.input.word_bits()),
        input,
        generation: None,
    })
}

/// Greedy generation of `tokens` tokens after the prompt `prompt` (token ids): the tokens at once, the proven
/// sequence as the job's input.
fn generate_answer(
    served: &ServedModel,
    prompt: &[f32],
    tokens: usize,
    salt: zkinfer_circuits::Fr,
) -> Result<Answer, ProverError> {
    let model = served.model();
    let ids: Vec<i64> = prompt.iter().map(|&v| v as i64).collect();
    if let Some(i) = (prompt.iter().zip(&ids)).position(|(&v, &id)| v != id as f32) {
        return Err(ProverError::BadInput {
            reason: format!("prompt value {i} ({}) is not a token id", prompt[i]),
        });
    }
    let causal = causal_outputs(model, served.prover.verifier())?;
    let run = match greedy(served.prover.engine(), &causal, &ids, tokens) {
        Err(e @ (ProverError::Generation { .. } | ProverError::BadInput { .. })) => return Err(e),
        Err(_) if served.prover.engine().is_on_gpu() => greedy(&IntegerEngine::new(model)?, &causal, &ids, tokens)?,
        run => run?,
    };
    Ok(Answer {
        commitment: poseidon::commit_words(salt, &run.sequence, model.input.word_bits()),
        input: run.sequence.iter().map(|&id| id as f32).collect(),
        outputs: run.outputs,
        generation: Some(GenerationView {
            prompt_len: ids.len(),
            tokens: run.tokens,
        }),
    })
}

/// The prompt of a generation request: one row of at most the context's token ids, for a causal model.
fn prompt_input(served: &ServedModel, mut rows: Vec<Vec<f32>>) -> Result<Vec<f32>, ApiError> {
    let meta = served.prover.verifier().meta();
    let Some(causal) = meta.causal_outputs else {
        return Err(ApiError::invalid(format!(
            "model {} is not a causal language model, so it cannot generate; send its input without \"generate\"",
            meta.name
        )));
    };
    if rows.len() != 1 {
        return Err(ApiError::invalid(format!(
            "input_data holds {} rows; send exactly one prompt",
            rows.len()
        )));
    }
    let prompt = rows.remove(0);
    if prompt.is_empty() || prompt.len() > causal.positions {
        return Err(ApiError::invalid(format!(
            "the prompt has {} token ids; model {} takes 1 to {} (its context)",
            prompt.len(),
            meta.name,
            causal.positions
        )));
    }
    Ok(prompt)
}

/// 409: this model already answered this nonce. The earlier job is not named: it may be another client's, and
/// its id is all it takes to read that client's outputs.
fn replay(nonce: &str, model_id: &str) -> ApiError {
    ApiError::rejected(
        StatusCode::CONFLICT,
        "replay",
        format!("nonce {nonce} was already used for model {model_id}; send each request with a fresh (random) nonce"),
    )
}

/// The one sample of `input_data`, checked against the model.
fn single_input(served: &ServedModel, mut rows: Vec<Vec<f32>>) -> Result<Vec<f32>, ApiError> {
    let meta = served.prover.verifier().meta();
    if rows.len() != 1 {
        return Err(ApiError::invalid(format!(
            "input_data holds {} rows; send exactly one (one request per input)",
            rows.len()
        )));
    }
    let input = rows.remove(0);
    if input.len() != meta.input_len {
        return Err(ApiError::invalid(format!(
            "the input has {} values; model {} takes {} (shape {:?}, flattened)",
            input.len(),
            meta.name,
            meta.input_len,
            meta.input_shape
        )));
    }
    if let Some(i) = input.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::invalid(format!("input value {i} is not a finite number")));
    }
    Ok(input)
}

/// Query of `GET /v1/jobs/{id}`.
#[derive(Deserialize)]
pub struct JobQuery {
    /// Wait up to this long for the job to end.
    #[serde(default)]
    pub wait_ms: u64,
}

/// `GET /v1/jobs/{id}[?wait_ms=N]`.
pub async fn get_job(
    State(state): Shared,
    id: PathId,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobView>, ApiError> {
    let id = path_id(id)?;
    let Query(query) = query.map_err(|e| ApiError::rejected(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(query.wait_ms.min(MAX_WAIT_MS));
    let mut ended = state.job_ended.subscribe();
    loop {
        let job = load_job(&state, &id).await?;
        if job.status.is_final() || tokio::time::Instant::now() >= deadline {
            let batch = state.models.get(&job.model_id).map_or(1, |m| m.model().batch());
            return Ok(Json(view(&job, batch)));
        }
        // Woken when any job ends; a timeout answers the job as it is.
        let _ = tokio::time::timeout_at(deadline, ended.changed()).await;
    }
}

/// `GET /v1/jobs/{id}/bundle`: the proof bundle, binary.
pub async fn get_bundle(State(state): Shared, id: PathId) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let job = load_job(&state, &id).await?;
    match (job.status, job.bundle) {
        (JobStatus::Done, Some(bundle)) => match job.generation {
            // A generation's bundle carries its prompt length and tokens, as `zkinfer verify` reads it.
            Some(g) => {
                let bundle = ProofBundle::from_bytes(&bundle)
                    .map_err(|e| ApiError::internal(format!("stored bundle of job {id}: {e}")))?;
                let generation = GenerationBundle {
                    prompt_len: g.prompt_len,
                    tokens: g.tokens,
                    bundle,
                };
                Ok(octet_stream(generation.to_bytes()))
            }
            None => Ok(octet_stream(bundle)),
        },
        (JobStatus::Done, None) => Err(ApiError::not_found(
            "invalid",
            format!("job {id} was answered without a proof (\"proof\": false)"),
        )),
        (JobStatus::Failed, _) => Err(ApiError::rejected(
            StatusCode::CONFLICT,
            "invalid",
            format!("job {id} failed: {}", job.error.unwrap_or_default()),
        )),
        (status, _) => Err(ApiError::rejected(
            StatusCode::CONFLICT,
            "invalid",
            format!(
                "job {id} is {}; poll GET /v1/jobs/{id}?wait_ms=10000 until it is done",
                status.as_str()
            ),
        )),
    }
}

async fn load_job(state: &Arc<AppState>, id: &str) -> Result<JobRecord, ApiError> {
    let key = id.to_string();
    with_store(state, "reading a job", move |store| store.get(&key))
        .await?
        .map_err(|e| ApiError::internal(format!("reading job {id}: {e}")))?
        .ok_or_else(|| ApiError::not_found("invalid", format!("no job {id} on this server")))
}

/// The API's view of a stored job.
fn view(job: &JobRecord, batch: usize) -> JobView {
    let classes: Vec<Option<usize>> = sample_outputs(&job.outputs, batch).map(argmax).collect();
    JobView {
        job_id: job.id.clone(),
        model_id: job.model_id.clone(),
        status: job.status,
        proof_requested: job.proof_requested,
        outputs: job.outputs.clone(),
        float_outputs: dequantize(&job.outputs, job.output_scale),
        argmax: classes.first().copied().flatten(),
        classes,
        input_commitment: job.input_commitment.clone(),
        nonce: job.nonce.clone(),
        error: job.error.clone(),
        created_ms: job.created_ms,
        finished_ms: job.finished_ms,
        proving_ms: job.proving_ms,
        bundle: job.bundle.as_deref().and_then(|b| ProofBundle::from_bytes(b).ok()),
        generation: job.generation.clone(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): Shared) -> Response {
    state.metrics.queue_depth.set(state.queue.depth() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /dashboard`.
pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

/// A route called with a method it does not take (405; the router adds the `Allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError::rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        "this route does not take that method; the `Allow` header lists those it takes",
    )
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "invalid",
        "no such route; the API is GET /v1/models, POST /v1/models/{model_id}/infer, GET /v1/jobs/{id}, \
         GET /v1/jobs/{id}/bundle, GET /metrics, GET /dashboard",
    )
}

fn octet_stream(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from(bytes)).into_response()
}
