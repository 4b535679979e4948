//! `zkinfer verify`: exit 0 when the bundle is accepted, 1 when it is rejected, 2 when a file is unusable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_verifier::bundle::argmax;
use zkinfer_verifier::{
    key_dir::read_bounded, load_verifier_key, verify_bundle, verify_generation, Expectations, GenerationBundle,
    ProofBundle, VerifierKey, VerifyError,
};

use super::generate::PromptArgs;
use super::prove::{parse_hex, parse_model_id};
use crate::report::{ms, print_json};

/// The largest bundle file read (a proof is a few KiB; outputs a few per class).
pub const MAX_BUNDLE_FILE_BYTES: u64 = 64 << 20;

/// Arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The proof bundle (binary or JSON).
    pub bundle: PathBuf,
    /// Key directory (its vk.bin is used).
    #[arg(long)]
    pub keys: PathBuf,
    /// Require this model id (hex): the hash of vk.bin is checked before the key is parsed. Validators should
    /// always pin the id of the model they pay for.
    #[arg(long)]
    pub model_id: Option<String>,
    /// Require this nonce (hex).
    #[arg(long)]
    pub nonce: Option<String>,
    /// Require this input commitment (hex).
    #[arg(long)]
    pub input_commitment: Option<String>,
    /// Accept a key made with the insecure development SRS (anyone can forge its proofs): tests and demos only.
    #[arg(long)]
    pub allow_insecure_dev_srs: bool,
    /// A generation bundle's prompt (the one you sent): its tokens are checked one by one against the proof.
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// A generation bundle's salt (hex, the one you sent or `generate` printed): the proven sequence's commitment
    /// is recomputed from the prompt, the tokens and this salt.
    #[arg(long)]
    pub salt: Option<String>,
}

/// Whether an error means "rejected" (exit 1) rather than "could not check" (exit 2).
pub fn is_rejection(e: &VerifyError) -> bool {
    e.is_rejection()
}

/// Reads a bundle file (binary or JSON), refusing files larger than any bundle.
pub fn read_bundle(path: &std::path::Path) -> Result<ProofBundle, VerifyError> {
    let bytes = read_bounded(path, MAX_BUNDLE_FILE_BYTES)?;
    ProofBundle::from_any(&bytes).map_err(|e| e.in_file(path))
}

/// Runs `verify`.
pub fn run(args: &VerifyArgs, json: bool) -> Result<ExitCode> {
    let model_id = args.model_id.as_deref().map(parse_model_id).transpose()?;
    let expect = Expectations {
        model_id,
        nonce: args.nonce.as_deref().map(|n| parse_hex("nonce", n)).transpose()?,
        input_commitment: args
            .input_commitment
            .as_deref()
            .map(|c| parse_hex("input-commitment", c))
            .transpose()?,
        allow_insecure_dev_srs: args.allow_insecure_dev_srs,
    };
    let bytes = read_bounded(&args.bundle, MAX_BUNDLE_FILE_BYTES).context("verify")?;
    if GenerationBundle::is_generation(&bytes) {
        return run_generation(args, &bytes, model_id, &expect, json);
    }
    if args.prompt.given() || args.salt.is_some() {
        anyhow::bail!(
            "{} is a proof bundle, not a generation bundle: --prompt, --tokens and --salt are for generations \
             (give a plain proof's --input-commitment instead)",
            args.bundle.display()
        );
    }
    let parse = || ProofBundle::from_any(&bytes).map_err(|e| e.in_file(&args.bundle));
    let check = |key: &VerifierKey, bundle: &ProofBundle| verify_bundle(key, bundle, &expect);
    judge(args, model_id, json, parse, check, |key, verified, elapsed| {
        if json {
            print_json(&json!({"accepted": true, "outputs": verified.outputs,
                "float_outputs": verified.float_outputs, "argmax": verified.argmax, "classes": verified.classes,
                "model_id": hex::encode(key.model_id()), "insecure_dev_srs": key.is_insecure_dev_srs(),
                "verify_ms": elapsed}));
        } else if let Some(causal) = key.meta().causal_outputs {
            // A language model's outputs: a next-token prediction per position, not 3,000 logits and one class.
            let per_row: Vec<Option<usize>> = verified.outputs.chunks(causal.row_len.max(1)).map(argmax).collect();
            println!(
                "ACCEPTED in {elapsed} ms: {} rows of {} logits; the argmax of each row (the next token after each \
                 position): {}",
                per_row.len(),
                causal.row_len,
                crate::report::class_list(&per_row)
            );
        } else {
            let predicted = match verified.classes.as_slice() {
                [one] => format!("predicted class {}", crate::report::class_list(&[*one])),
                many => format!(
                    "predicted classes of the {} samples {}",
                    many.len(),
                    crate::report::class_list(many)
                ),
            };
            println!("ACCEPTED in {elapsed} ms: outputs {:?}, {predicted}", verified.outputs);
        }
    })
}

/// Loads the key (pinned to `model_id` when given), reads the bundle with `parse` and checks it with `check`
/// (timed); prints the verdict, with `accepted` for an accepted bundle. Exit 0 accepted, 1 rejected; an unusable
/// file is an error (2).
fn judge<B, T>(
    args: &VerifyArgs,
    model_id: Option<[u8; 32]>,
    json: bool,
    parse: impl FnOnce() -> Result<B, VerifyError>,
    check: impl FnOnce(&VerifierKey, &B) -> Result<T, VerifyError>,
    accepted: impl FnOnce(&VerifierKey, T, f64),
) -> Result<ExitCode> {
    let outcome = load_verifier_key(&args.keys, model_id.as_ref()).and_then(|key| {
        let bundle = parse()?;
        let started = Instant::now();
        let verdict = check(&key, &bundle);
        Ok((key, verdict, ms(started.elapsed())))
    });
    let (key, verdict, elapsed) = match outcome {
        Ok(done) => done,
        Err(e) if is_rejection(&e) => return Ok(rejected(&e, None, json)),
        Err(e) => return Err(e).context("verify"),
    };
    if key.is_insecure_dev_srs() && !json {
        eprintln!("{}", crate::report::INSECURE_SRS_WARNING);
    }
    match verdict {
        Ok(verified) => {
            accepted(&key, verified, elapsed);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if is_rejection(&e) => Ok(rejected(&e, Some(elapsed), json)),
        Err(e) => Err(e).context("verify"),
    }
}

/// Verifies a generation bundle: the prompt and salt are required, the tokens are printed (as text with --vocab).
fn run_generation(
    args: &VerifyArgs,
    bytes: &[u8],
    model_id: Option<[u8; 32]>,
    expect: &Expectations,
    json: bool,
) -> Result<ExitCode> {
    if expect.input_commitment.is_some() {
        anyhow::bail!(
            "--input-commitment does not apply to a generation: its commitment covers the generated tokens, so it \
             is recomputed from --prompt/--tokens and --salt"
        );
    }
    let salt = args.salt.as_deref().map(|s| parse_hex("salt", s)).transpose()?;
    let (Some(salt), true) = (salt, args.prompt.given()) else {
        anyhow::bail!(
            "{} is a generation bundle: give the prompt you sent (--prompt TEXT with --vocab, or --tokens IDS) and \
             its --salt",
            args.bundle.display()
        );
    };
    let vocab = args.prompt.vocabulary()?;
    let prompt = args.prompt.ids(vocab.as_ref())?;
    let parse = || GenerationBundle::from_any(bytes).map_err(|e| e.in_file(&args.bundle));
    let check =
        |key: &VerifierKey, generation: &GenerationBundle| verify_generation(key, generation, &prompt, salt, expect);
    judge(args, model_id, json, parse, check, |key, verified, elapsed| {
        let text = vocab.as_ref().map(|v| v.decode(&verified.tokens));
        if json {
            print_json(&json!({"accepted": true, "tokens": verified.tokens, "text": text,
                "input_commitment": zkinfer_verifier::field_to_hex(&verified.input_commitment),
                "model_id": hex::encode(key.model_id()), "insecure_dev_srs": key.is_insecure_dev_srs(),
                "verify_ms": elapsed}));
        } else {
            let shown = text.map_or_else(|| format!("{:?}", verified.tokens), |t| format!("{t:?}"));
            println!(
                "ACCEPTED in {elapsed} ms: {} tokens after the {}-token prompt, each the model's greedy choice: \
                 {shown}",
                verified.tokens.len(),
                prompt.len()
            );
        }
    })
}

fn rejected(e: &VerifyError, elapsed: Option<f64>, json: bool) -> ExitCode {
    if json {
        print_json(&json!({"accepted": false, "reason": e.to_string(), "verify_ms": elapsed}));
    } else {
        println!("REJECTED: {e}");
    }
    ExitCode::from(1)
}
