//! `zkinfer serve`: the miner's HTTP API over one or more compiled models (see `zkinfer_service::api`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_prover::Device;
use zkinfer_service::{serve, ServeConfig, Started};

/// Arguments of `serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// A compiled model (`.zkm`) to serve; repeat with a --keys each to serve several.
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// The key directory (from `zkinfer setup`) of each --model, in the same order.
    #[arg(long = "keys", required = true)]
    pub keys: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// SQLite file of the jobs; accepted jobs survive restarts and unfinished ones resume.
    #[arg(long, default_value = "zkinfer-jobs.sqlite")]
    pub db: PathBuf,
    /// Prover workers (proofs made at once; each proof already uses every core).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Jobs that may wait for a worker; beyond that requests get 429 with Retry-After.
    #[arg(long = "queue", default_value_t = 64)]
    pub queue_capacity: usize,
    /// Largest request body, bytes (larger ones get 413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to prove: auto, cpu or gpu (as for `prove`).
    #[arg(long, default_value = "auto", value_name = "auto|cpu|gpu")]
    pub device: Device,
    /// Seconds a connection may take to send a request's headers (a TLS handshake gets as long); slower ones
    /// are closed, so connections that never finish cannot pile up.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_s: u64,
    /// Milliseconds to pause before each proof (for crash-recovery tests).
    #[arg(long, default_value_t = 0, hide = true)]
    pub debug_prove_delay_ms: u64,
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs, json: bool) -> Result<ExitCode> {
    if args.models.len() != args.keys.len() {
        bail!(
            "{} --model but {} --keys: give one key directory per model, in the same order",
            args.models.len(),
            args.keys.len()
        );
    }
    let config = ServeConfig {
        listen: args.listen,
        models: args.models.iter().cloned().zip(args.keys.iter().cloned()).collect(),
        db: args.db.clone(),
        workers: args.workers,
        queue_capacity: args.queue_capacity,
        max_body_bytes: args.max_body_bytes,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        device: args.device,
        prove_delay: Duration::from_millis(args.debug_prove_delay_ms),
        header_timeout: Duration::from_secs(args.header_timeout_s.max(1)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(
        config,
        |started| announce(started, args, json),
        shutdown_signal(),
    ))?;
    eprintln!("stopped; unfinished jobs resume at the next start");
    Ok(ExitCode::SUCCESS)
}

/// Prints where the server listens (the first stdout line; scripts wait for it) and what it serves.
fn announce(started: &Started, args: &ServeArgs, json: bool) {
    let url = format!("{}://{}", started.scheme, started.addr);
    if json {
        println!(
            "{}",
            json!({"listening": url, "models": started.models, "device": started.device,
                   "resumed_jobs": started.resumed, "db": args.db})
        );
    } else {
        println!("listening on {url}");
        for m in &started.models {
            eprintln!(
                "model {} ({}): POST {url}/v1/models/{}/infer",
                m.name, m.model_id, m.model_id
            );
        }
        eprintln!(
            "device: {}; {} worker(s); queue {}; jobs in {} ({} resumed); dashboard {url}/dashboard",
            started.device,
            args.workers,
            args.queue_capacity,
            args.db.display(),
            started.resumed
        );
    }
    if started.orphaned > 0 {
        eprintln!(
            "warning: {} unfinished job(s) belong to models not served now; they resume when those are served again",
            started.orphaned
        );
    }
    let _ = std::io::stdout().flush();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
