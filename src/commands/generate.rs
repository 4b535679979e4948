//! `zkinfer generate`: greedy tokens after a prompt, every step proven by one proof (a causal language model).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_prover::{load_model, GenerateRequest, Prover};
use zkinfer_verifier::{field_to_hex, Vocabulary};

use super::prove::RequestArgs;
use crate::report::{ensure_writable, ms, print_json, spinner, INSECURE_SRS_WARNING};

/// Arguments of `generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The compiled model (`.zkm`) of a causal language model (token ids in, next-token logits per position out).
    pub model: PathBuf,
    /// Key directory written by `zkinfer setup`.
    #[arg(long)]
    pub keys: PathBuf,
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Tokens to generate (the prompt's length plus this, less one, must fit the model's context).
    #[arg(short = 'n', long = "max-tokens", default_value_t = 16)]
    pub max_tokens: usize,
    // The nonce, the salt of the commitment of the proven sequence (the prompt and the tokens), the device.
    #[command(flatten)]
    pub request: RequestArgs,
    /// Where to write the generation bundle (JSON form when the name ends in .json).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// The prompt of a generation, as text or as token ids.
#[derive(Args)]
pub struct PromptArgs {
    /// The prompt as text, encoded with --vocab.
    #[arg(long, conflicts_with = "tokens")]
    pub prompt: Option<String>,
    /// The prompt as token ids, separated by commas or spaces.
    #[arg(long)]
    pub tokens: Option<String>,
    /// The model's character vocabulary (`vocab.json` next to the ONNX file): encodes --prompt, prints the
    /// generated tokens as text.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
}

impl PromptArgs {
    /// Whether a prompt was given.
    pub fn given(&self) -> bool {
        self.prompt.is_some() || self.tokens.is_some()
    }

    /// The vocabulary, if one was given.
    pub fn vocabulary(&self) -> Result<Option<Vocabulary>> {
        self.vocab
            .as_deref()
            .map(Vocabulary::load)
            .transpose()
            .context("--vocab")
    }

    /// The prompt's token ids.
    pub fn ids(&self, vocab: Option<&Vocabulary>) -> Result<Vec<i64>> {
        match (&self.prompt, &self.tokens, vocab) {
            (Some(text), _, Some(vocab)) => Ok(vocab.encode(text).context("--prompt")?),
            (Some(_), _, None) => bail!("--prompt needs --vocab (the model's vocab.json) to become token ids"),
            (None, Some(ids), _) => parse_ids(ids),
            (None, None, _) => bail!("give the prompt with --prompt TEXT (and --vocab) or --tokens IDS"),
        }
    }
}

/// Token ids separated by commas or white space.
pub fn parse_ids(text: &str) -> Result<Vec<i64>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .with_context(|| format!("--tokens: `{t}` is not a token id"))
        })
        .collect()
}

/// Writes a generation bundle in the form its file name asks for; returns its size.
fn write_generation(bundle: &zkinfer_verifier::GenerationBundle, path: &Path) -> Result<usize> {
    let bytes = if path.extension().is_some_and(|e| e == "json") {
        bundle.to_json().into_bytes()
    } else {
        bundle.to_bytes()
    };
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(bytes.len())
}

/// Runs `generate`.
pub fn run(args: &GenerateArgs, json: bool) -> Result<ExitCode> {
    let vocab = args.prompt.vocabulary()?;
    let prompt = args.prompt.ids(vocab.as_ref())?;
    let (nonce, salt) = args.request.nonce_and_salt()?;
    ensure_writable(&args.output)?;
    let model = load_model(&args.model)?;
    let prover = Prover::open(model, &args.keys, args.request.device)?;
    let bar = spinner("generating and proving", json);
    let started = Instant::now();
    let generated = prover.generate(&GenerateRequest {
        prompt: &prompt,
        tokens: args.max_tokens,
        salt,
        nonce,
    })?;
    let total = started.elapsed();
    bar.finish_and_clear();
    let size = write_generation(&generated.bundle, &args.output)?;
    let insecure = prover.key().insecure_srs;
    if insecure {
        eprintln!("{INSECURE_SRS_WARNING}");
    }
    let commitment = generated.bundle.bundle.public_inputs()?.input_commitment;
    let text = vocab.as_ref().map(|v| v.decode(&generated.bundle.tokens));
    if json {
        print_json(&json!({
            "bundle": args.output, "model_id": hex::encode(generated.bundle.bundle.model_id),
            "prompt_tokens": prompt, "tokens": generated.bundle.tokens, "text": text,
            "salt": field_to_hex(&salt), "nonce": field_to_hex(&nonce), "input_commitment": field_to_hex(&commitment),
            "proof_bytes": generated.bundle.bundle.proof.len(), "bundle_bytes": size,
            "first_token_ms": ms(generated.first_token), "inference_ms": ms(generated.inference),
            "proving_ms": ms(generated.proving), "first_verified_token_ms": ms(total),
            "cpu_retry": generated.cpu_retry,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    match &text {
        Some(text) => println!("generated {} tokens: {text:?}", generated.bundle.tokens.len()),
        None => println!("generated {} tokens", generated.bundle.tokens.len()),
    }
    println!("token ids: {:?}", generated.bundle.tokens);
    println!("salt: {} (the verifier needs it with the prompt)", field_to_hex(&salt));
    println!("commitment of the proven sequence: {}", field_to_hex(&commitment));
    println!(
        "first token after {} ms, all {} after {} ms (native); one proof of every step in {} ms ({} bytes); \
         first verified token after {} ms; bundle written to {}",
        ms(generated.first_token),
        generated.bundle.tokens.len(),
        ms(generated.inference),
        ms(generated.proving),
        generated.bundle.bundle.proof.len(),
        ms(total),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
