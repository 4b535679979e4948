//! `zkinfer serve`: the routes, the request metrics, and the listener (plain HTTP, or TLS with rustls).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use zkinfer_prover::{Device, GpuBackend};

use crate::error::{RejectionReason, ServiceError};
use crate::handlers;
use crate::models::ModelRegistry;
use crate::queue::JobQueue;
use crate::state::AppState;
use crate::store::JobStore;
use crate::worker::spawn_workers;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// `(model.zkm, key directory)` of each served model.
    pub models: Vec<(PathBuf, PathBuf)>,
    /// SQLite database of the jobs.
    pub db: PathBuf,
    /// Prover workers.
    pub workers: usize,
    /// Jobs that may wait for a worker before requests get 429.
    pub queue_capacity: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where to prove.
    pub device: Device,
    /// Pause before each proof (for crash tests).
    pub prove_delay: Duration,
    /// Longest a connection may take to send a request's headers (and a TLS handshake); then it is closed.
    pub header_timeout: Duration,
}

/// What a started server tells its caller.
#[derive(Clone, Debug)]
pub struct Started {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Jobs resumed from the database.
    pub resumed: usize,
    /// Unfinished jobs left waiting because their model is not served now.
    pub orphaned: usize,
    /// The proving device, in words.
    pub device: String,
    /// The served models.
    pub models: Vec<crate::api::ModelInfo>,
}

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/dashboard", get(handlers::dashboard))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{model_id}/vk", get(handlers::verifier_key))
        .route("/v1/models/{model_id}/infer", post(handlers::infer_request))
        .route("/v1/jobs/{job_id}", get(handlers::get_job))
        .route("/v1/jobs/{job_id}/bundle", get(handlers::get_bundle))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        // One span per request (method, path, status, latency) for whatever subscriber the binary installs.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts every request by method, route template and status, and every rejection by reason.
async fn count_request(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    if let Some(RejectionReason(reason)) = response.extensions().get::<RejectionReason>() {
        state.metrics.rejected(reason);
    }
    state
        .metrics
        .requests
        .get_or_create(&vec![
            ("method".into(), method),
            ("route".into(), route),
            ("status".into(), response.status().as_u16().to_string()),
        ])
        .inc();
    response
}

/// Closes HTTP/1 connections that take longer than `timeout` to send a request's headers (slowloris), and
/// HTTP/2 connections that stop answering keep-alive pings.
fn limit_header_time(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>, timeout: Duration) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(timeout)
        .keep_alive_timeout(timeout);
}

/// Loads the models, resumes unfinished jobs, starts the workers and serves until `shutdown` resolves; calls
/// `on_start` once the socket is bound.
pub async fn serve(
    config: ServeConfig,
    on_start: impl FnOnce(&Started),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    if config.workers == 0 || config.queue_capacity == 0 {
        return Err(ServiceError::Config("--workers and --queue must be at least 1".into()));
    }
    let backend = GpuBackend::open(config.device).map_err(|e| ServiceError::Config(e.to_string()))?;
    let device = match &backend {
        Some(b) => format!("GPU {}", b.describe()),
        None if config.device == Device::Auto => "CPU (no hardware GPU found)".into(),
        None => "CPU".into(),
    };
    let models = ModelRegistry::load(&config.models, backend.as_ref())?;
    let store = JobStore::open(&config.db).map_err(|e| ServiceError::Store {
        path: config.db.display().to_string(),
        reason: e.to_string(),
    })?;
    let unfinished = store.take_unfinished().map_err(|e| ServiceError::Store {
        path: config.db.display().to_string(),
        reason: e.to_string(),
    })?;
    let queue = JobQueue::new(config.queue_capacity);
    let (mut resumed, mut orphaned) = (0, 0);
    for (id, model_id) in unfinished {
        if models.get(&model_id).is_some() {
            queue.push_resumed(id);
            resumed += 1;
        } else {
            orphaned += 1;
        }
    }
    let state = Arc::new(AppState::new(
        models,
        store,
        queue,
        config.workers,
        config.max_body_bytes,
        config.prove_delay,
    ));
    state.metrics.queue_depth.set(state.queue.depth() as i64);
    spawn_workers(&state);

    let handle = Handle::new();
    let app = router(state.clone()).into_make_service();
    let listen = config.listen;
    let listen_error = |e: std::io::Error| ServiceError::Listen {
        addr: listen.to_string(),
        reason: e.to_string(),
    };
    let server = match &config.tls {
        Some((cert, key)) => {
            // One crypto provider for the whole process (rustls refuses to guess between several).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                ServiceError::Tls(format!(
                    "loading {} and {}: {e} (PEM certificate chain and PEM private key expected)",
                    cert.display(),
                    key.display()
                ))
            })?;
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(config.header_timeout);
            let mut server = axum_server::bind(listen).acceptor(acceptor).handle(handle.clone());
            limit_header_time(server.http_builder(), config.header_timeout);
            tokio::spawn(async move { server.serve(app).await })
        }
        None => {
            let mut server = axum_server::bind(listen).handle(handle.clone());
            limit_header_time(server.http_builder(), config.header_timeout);
            tokio::spawn(async move { server.serve(app).await })
        }
    };
    let Some(addr) = handle.listening().await else {
        let outcome = server.await.map_err(|e| ServiceError::Listen {
            addr: listen.to_string(),
            reason: e.to_string(),
        })?;
        outcome.map_err(listen_error)?;
        return Err(ServiceError::Listen {
            addr: listen.to_string(),
            reason: "the server stopped before listening".into(),
        });
    };
    on_start(&Started {
        addr,
        scheme: if config.tls.is_some() { "https" } else { "http" },
        resumed,
        orphaned,
        device,
        models: state.models.iter().map(|m| m.info()).collect(),
    });
    let graceful = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        graceful.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let outcome = server.await.map_err(|e| ServiceError::Listen {
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    outcome.map_err(listen_error)
}
