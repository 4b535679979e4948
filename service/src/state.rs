//! What the handlers and the workers share.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::models::ModelRegistry;
use crate::queue::JobQueue;
use crate::store::JobStore;

/// The server's shared state.
pub struct AppState {
    /// Served models.
    pub models: ModelRegistry,
    /// Persisted jobs.
    pub store: JobStore,
    /// Jobs waiting for a worker.
    pub queue: Arc<JobQueue>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Bumped whenever a job ends, to wake long-polling `GET /v1/jobs/{id}?wait_ms=`.
    pub job_ended: watch::Sender<u64>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Prover workers.
    pub workers: usize,
    /// Pause before each proof (tests use it to stop the server mid-proof).
    pub prove_delay: Duration,
    /// Moving average of proving time, seconds (for `Retry-After`).
    mean_proving_s: Mutex<f64>,
}

impl AppState {
    /// The state of a server with these parts.
    pub fn new(
        models: ModelRegistry,
        store: JobStore,
        queue: Arc<JobQueue>,
        workers: usize,
        max_body_bytes: usize,
        prove_delay: Duration,
    ) -> Self {
        let metrics = Metrics::new();
        metrics.workers.set(workers as i64);
        AppState {
            models,
            store,
            queue,
            metrics,
            job_ended: watch::channel(0).0,
            max_body_bytes,
            workers,
            prove_delay,
            mean_proving_s: Mutex::new(1.0),
        }
    }

    /// Records a proving time in the moving average.
    pub fn record_proving_time(&self, seconds: f64) {
        let mut mean = self.mean_proving_s.lock().unwrap_or_else(|p| p.into_inner());
        *mean = 0.8 * *mean + 0.2 * seconds;
    }

    /// Seconds until a queue slot is likely free: the queue ahead drained by the workers.
    pub fn retry_after_s(&self) -> u64 {
        let mean = *self.mean_proving_s.lock().unwrap_or_else(|p| p.into_inner());
        let ahead = self.queue.depth() as f64 / self.workers.max(1) as f64;
        (mean * ahead.max(1.0)).ceil().clamp(1.0, 600.0) as u64
    }

    /// Wakes the long-polls: a job ended.
    pub fn announce_job_end(&self) {
        self.job_ended.send_modify(|n| *n = n.wrapping_add(1));
    }
}
