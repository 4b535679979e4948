//! `zkinfer setup`: keys for a compiled model, from the insecure development SRS or a ceremony file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use zkinfer_circuits::CircuitParams;
use zkinfer_prover::{load_compiled, setup, write_keys, KeyPair, SrsSource};

use crate::report::{ms, print_json, spinner, INSECURE_SRS_WARNING};

/// Arguments of `setup`.
#[derive(Args)]
pub struct SetupArgs {
    /// The compiled model (`.zkm`).
    pub model: PathBuf,
    /// Use deterministic INSECURE parameters (anyone can forge proofs): tests and demos only.
    #[arg(long, conflicts_with = "srs")]
    pub insecure_dev_srs: bool,
    /// A halo2 KZG parameters file (BN254) from a powers-of-tau ceremony.
    #[arg(long)]
    pub srs: Option<PathBuf>,
    /// Directory for pk.bin, vk.bin and model-id.txt.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Loads the model, generates its keys and writes them into `dir`.
pub fn setup_keys(model: &Path, source: &SrsSource, dir: &Path, json: bool) -> Result<(KeyPair, f64)> {
    // The layout `compile` chose for its goal; a `.zkm` written without one gets the fastest.
    let (model, layout) = load_compiled(model)?;
    let params = layout.unwrap_or_else(|| CircuitParams::for_model(&model));
    let bar = spinner("generating keys", json);
    let started = Instant::now();
    let keys = setup(&model, params, source)?;
    let elapsed = ms(started.elapsed());
    bar.finish_and_clear();
    write_keys(&keys, dir)?;
    Ok((keys, elapsed))
}

/// Runs `setup`.
pub fn run(args: &SetupArgs, json: bool) -> Result<ExitCode> {
    let source = match (&args.srs, args.insecure_dev_srs) {
        (Some(path), false) => SrsSource::File(path.clone()),
        (None, true) => SrsSource::InsecureDev,
        _ => bail!("choose the SRS: --srs PARAMS (production) or --insecure-dev-srs (tests and demos only)"),
    };
    let (keys, elapsed) = setup_keys(&args.model, &source, &args.output, json)?;
    let id = hex::encode(keys.verifier.model_id());
    if source.is_insecure() {
        eprintln!("{INSECURE_SRS_WARNING}");
    }
    if json {
        print_json(&json!({
            "model_id": id, "keys": args.output, "k": keys.verifier.meta().k,
            "insecure_srs": source.is_insecure(), "setup_ms": elapsed,
        }));
    } else {
        println!("model id: {id}");
        println!(
            "keys written to {} (k = {}, {elapsed} ms)",
            args.output.display(),
            keys.verifier.meta().k
        );
    }
    Ok(ExitCode::SUCCESS)
}
