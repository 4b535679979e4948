//! Prover workers: each takes the next job from the queue, proves it on a blocking thread (the prover itself is
//! parallel with rayon, or on the GPU), and stores the bundle or the error.

use std::sync::Arc;
use std::time::Instant;

use zkinfer_prover::ProveRequest;
use zkinfer_verifier::field_from_hex;

use crate::state::AppState;

/// Starts `state.workers` workers on the current tokio runtime.
pub fn spawn_workers(state: &Arc<AppState>) {
    for _ in 0..state.workers {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let id = state.queue.pop().await;
                state.metrics.queue_depth.set(state.queue.depth() as i64);
                let job_state = state.clone();
                let outcome = tokio::task::spawn_blocking(move || prove_job(&job_state, &id)).await;
                if let Err(e) = outcome {
                    tracing::error!("a prover worker panicked: {e}");
                }
            }
        });
    }
}

/// Proves one stored job and records the outcome; never panics across a request.
fn prove_job(state: &AppState, id: &str) {
    state.metrics.jobs_proving.inc();
    let outcome = try_prove_job(state, id);
    state.metrics.jobs_proving.dec();
    match outcome {
        Ok(None) => {}
        Ok(Some(seconds)) => {
            state.metrics.proof_finished(true);
            state.metrics.proving_seconds.observe(seconds);
            state.record_proving_time(seconds);
        }
        Err(message) => {
            tracing::warn!(job = id, "proving failed: {message}");
            state.metrics.proof_finished(false);
            if let Err(e) = state.store.fail(id, &message) {
                tracing::error!(job = id, "could not record the failure: {e}");
            }
        }
    }
    state.announce_job_end();
}

/// `Ok(Some(seconds))` when proven, `Ok(None)` when there was nothing to do.
fn try_prove_job(state: &AppState, id: &str) -> Result<Option<f64>, String> {
    let job = state
        .store
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("job {id} is not in the database"))?;
    if job.status.is_final() {
        return Ok(None);
    }
    let served = state
        .models
        .get(&job.model_id)
        .ok_or_else(|| format!("model {} is not served any more", job.model_id))?;
    let (Some(input), Some(salt)) = (&job.input, &job.salt) else {
        return Err("the job's input or salt is missing from the database".into());
    };
    let salt = field_from_hex(salt).map_err(|e| format!("stored salt: {e}"))?;
    let nonce = field_from_hex(&job.nonce).map_err(|e| format!("stored nonce: {e}"))?;
    state.store.mark_proving(id).map_err(|e| e.to_string())?;
    if !state.prove_delay.is_zero() {
        std::thread::sleep(state.prove_delay);
    }
    let started = Instant::now();
    let request = ProveRequest { input, salt, nonce };
    let proven = served.prover.prove(&request).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if proven.bundle.outputs != job.outputs {
        return Err(format!(
            "the proven outputs {:?} differ from the outputs answered first {:?}",
            proven.bundle.outputs, job.outputs
        ));
    }
    state
        .store
        .finish(id, &proven.bundle.outputs, &proven.bundle.to_bytes(), seconds * 1e3)
        .map_err(|e| e.to_string())?;
    Ok(Some(seconds))
}
