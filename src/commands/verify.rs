//! `zkinfer verify`: exit 0 when the bundle is accepted, 1 when it is rejected, 2 when a file is unusable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_prover::keys;
use zkinfer_verifier::{verify_bundle, Expectations, ProofBundle, VerifyError};

use super::prove::{parse_hex, parse_model_id};
use crate::report::{ms, print_json};

/// Arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The proof bundle (binary or JSON).
    pub bundle: PathBuf,
    /// Key directory (its vk.bin is used).
    #[arg(long)]
    pub keys: PathBuf,
    /// Require this model id (hex).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Require this nonce (hex).
    #[arg(long)]
    pub nonce: Option<String>,
    /// Require this input commitment (hex).
    #[arg(long)]
    pub input_commitment: Option<String>,
}

/// Whether an error means "rejected" (exit 1) rather than "could not check" (exit 2).
pub fn is_rejection(e: &VerifyError) -> bool {
    !matches!(e, VerifyError::Envelope(_) | VerifyError::Malformed { .. })
}

/// Runs `verify`.
pub fn run(args: &VerifyArgs, json: bool) -> Result<ExitCode> {
    let key = keys::load_verifier_key(&args.keys)?;
    let bytes = std::fs::read(&args.bundle).with_context(|| format!("reading {}", args.bundle.display()))?;
    let bundle = ProofBundle::from_any(&bytes).with_context(|| format!("reading {}", args.bundle.display()))?;
    let model_id = args.model_id.as_deref().map(parse_model_id).transpose()?;
    let expect = Expectations {
        model_id,
        nonce: args.nonce.as_deref().map(|n| parse_hex("nonce", n)).transpose()?,
        input_commitment: args
            .input_commitment
            .as_deref()
            .map(|c| parse_hex("input-commitment", c))
            .transpose()?,
    };
    let started = Instant::now();
    let outcome = verify_bundle(&key, &bundle, &expect);
    let elapsed = ms(started.elapsed());
    match outcome {
        Ok(verified) => {
            if json {
                print_json(
                    &json!({"accepted": true, "outputs": verified.outputs, "float_outputs": verified.float_outputs,
                    "argmax": bundle.argmax(), "model_id": hex::encode(key.model_id()), "verify_ms": elapsed}),
                );
            } else {
                println!(
                    "ACCEPTED in {elapsed} ms: outputs {:?}, predicted class {}",
                    verified.outputs,
                    bundle.argmax().map_or("-".into(), |c| c.to_string())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if is_rejection(&e) => {
            if json {
                print_json(&json!({"accepted": false, "reason": e.to_string(), "verify_ms": elapsed}));
            } else {
                println!("REJECTED: {e}");
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", args.bundle.display())),
    }
}
