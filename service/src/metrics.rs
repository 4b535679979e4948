//! The server's Prometheus metrics (OpenMetrics text at `GET /metrics`): requests, queue depth, inference and
//! proving latency, proofs and rejections.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set of a family: `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route and status.
    pub requests: Family<Labels, Counter>,
    /// Jobs waiting for a prover worker.
    pub queue_depth: Gauge,
    /// Jobs being proven.
    pub jobs_proving: Gauge,
    /// Prover workers.
    pub workers: Gauge,
    /// Native inference time per request, seconds.
    pub inference_seconds: Histogram,
    /// Proving time per job, seconds.
    pub proving_seconds: Histogram,
    /// Finished proofs by outcome (`ok`, `failed`).
    pub proofs: Family<Labels, Counter>,
    /// Rejected requests by reason (`queue_full`, `invalid`, `replay`, `unknown_model`, `too_large`).
    pub rejections: Family<Labels, Counter>,
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let jobs_proving = Gauge::default();
        let workers = Gauge::default();
        // 0.1 ms … 3.3 s, and 25 ms … 14 min.
        let inference_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let proving_seconds = Histogram::new(exponential_buckets(0.025, 2.0, 16));
        let proofs = Family::<Labels, Counter>::default();
        let rejections = Family::<Labels, Counter>::default();
        registry.register(
            "zkinfer_http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "zkinfer_queue_depth",
            "Jobs waiting for a prover worker",
            queue_depth.clone(),
        );
        registry.register("zkinfer_jobs_proving", "Jobs being proven", jobs_proving.clone());
        registry.register("zkinfer_prover_workers", "Prover workers", workers.clone());
        registry.register(
            "zkinfer_inference_seconds",
            "Native integer inference time per request",
            inference_seconds.clone(),
        );
        registry.register(
            "zkinfer_proving_seconds",
            "Proving time per job",
            proving_seconds.clone(),
        );
        registry.register("zkinfer_proofs", "Finished proofs by outcome", proofs.clone());
        registry.register("zkinfer_rejections", "Rejected requests by reason", rejections.clone());
        Metrics {
            registry,
            requests,
            queue_depth,
            jobs_proving,
            workers,
            inference_seconds,
            proving_seconds,
            proofs,
            rejections,
        }
    }

    /// Counts a finished proof.
    pub fn proof_finished(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.proofs
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    /// Counts a rejected request.
    pub fn rejected(&self, reason: &str) {
        self.rejections
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
