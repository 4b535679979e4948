//! `zkinfer client`: talk to a miner's `zkinfer serve` and verify every answer locally. `infer` sends one input;
//! `test-batch` sends many and reports time to output and to proof (p50/p90/p99), success rate and proof size.
//! Exit 0 when every request got a verified answer, 1 when any failed, 2 on unusable arguments or an unreachable
//! server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use zkinfer_client::client::{test_batch, Client, RequestOptions, TestBatchConfig, TestBatchReport};
use zkinfer_client::stats::Percentiles;
use zkinfer_prover::Dataset;
use zkinfer_verifier::ReplayCache;

use super::prove::parse_model_id;
use crate::report::{ms, print_json};

/// `zkinfer client …`.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Send one input, wait for its proof, verify it, and write the bundle.
    Infer(InferArgs),
    /// Send a batch of requests and report latency percentiles, success rate and proof size.
    TestBatch(TestBatchArgs),
}

/// The server and model every client command needs.
#[derive(Args)]
pub struct Target {
    /// The miner's base URL (http://HOST:PORT or https://HOST:PORT).
    #[arg(long)]
    pub url: String,
    /// The model id to pin (hex): the server's verifying key must hash to it.
    #[arg(long)]
    pub model_id: String,
    /// PEM certificate to trust for https (a self-signed server certificate or its CA).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Seconds to wait for each proof.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// Accept a model whose key was made with the insecure development SRS (anyone can forge its proofs): tests
    /// and demos only.
    #[arg(long)]
    pub allow_insecure_dev_srs: bool,
}

/// Generation requests, for a causal language model.
#[derive(Args)]
pub struct GenerationOptions {
    /// Generate this many greedy tokens after each input, a prompt of token ids (a causal language model); one
    /// proof covers every step, verified with the prompt and the client's salt.
    #[arg(long)]
    pub generate: Option<usize>,
    /// Send only the first this many ids of each input row as the prompt (default: as many as the context leaves
    /// room for after the generated tokens).
    #[arg(long, requires = "generate")]
    pub prompt_len: Option<usize>,
}

impl GenerationOptions {
    /// The prompts to send: each row cut to the prompt length (rows as they are without --generate).
    fn prompts(&self, key: &zkinfer_verifier::VerifierKey, rows: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        let Some(tokens) = self.generate else {
            return Ok(rows);
        };
        let meta = key.meta();
        let Some(causal) = meta.causal_outputs else {
            bail!(
                "model {} is not a causal language model (its verifying key says so), so it cannot generate; drop \
                 --generate",
                meta.name
            );
        };
        if tokens == 0 || tokens > causal.positions {
            bail!(
                "--generate: give 1 to {} tokens (the model's context)",
                causal.positions
            );
        }
        let room = causal.positions + 1 - tokens;
        let len = self.prompt_len.unwrap_or(room);
        if len == 0 || len > room {
            bail!(
                "--prompt-len: give 1 to {room} ids (the context is {}, and {tokens} tokens follow)",
                causal.positions
            );
        }
        Ok(rows
            .into_iter()
            .map(|row| row.into_iter().take(len).collect())
            .collect())
    }
}

/// Arguments of `client infer`.
#[derive(Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub target: Target,
    /// Input file: {"input_data": [[f32, ...]]} (the first row is sent).
    #[arg(long)]
    pub input: PathBuf,
    /// Only the output, no proof.
    #[arg(long)]
    pub no_proof: bool,
    /// Where to write the verified bundle (a generation bundle for a generation).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub generation: GenerationOptions,
}

/// Arguments of `client test-batch`.
#[derive(Args)]
pub struct TestBatchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Inputs: {"input_data": [[f32, ...], ...], "labels": [...]} (cycled; labels optional).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Number of requests.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Only outputs, no proofs.
    #[arg(long)]
    pub no_proof: bool,
    #[command(flatten)]
    pub generation: GenerationOptions,
}

/// Runs a client command.
pub fn run(command: &ClientCommand, json: bool) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match command {
        ClientCommand::Infer(args) => runtime.block_on(infer(args, json)),
        ClientCommand::TestBatch(args) => runtime.block_on(batch(args, json)),
    }
}

/// The client and the pinned model's verifying key (fetched, and refused unless it hashes to the model id).
async fn connect(target: &Target) -> Result<(Client, zkinfer_verifier::VerifierKey)> {
    let model_id = parse_model_id(&target.model_id)?;
    let pem = match &target.ca_cert {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let client = Client::new(&target.url, pem.as_deref())?;
    let key = client.verifier_key(&model_id).await?;
    Ok((client, key))
}

async fn infer(args: &InferArgs, json: bool) -> Result<ExitCode> {
    let data = Dataset::load(&args.input)?;
    if data.inputs.is_empty() {
        bail!("{}: input_data is empty", args.input.display())
    }
    if let Some(output) = &args.output {
        crate::report::ensure_writable(output)?;
    }
    let (client, key) = connect(&args.target).await?;
    let input = args.generation.prompts(&key, data.inputs)?.swap_remove(0);
    let options = RequestOptions {
        proof: !args.no_proof,
        timeout: Duration::from_secs(args.target.timeout_s),
        allow_insecure_dev_srs: args.target.allow_insecure_dev_srs,
        generate: args.generation.generate,
    };
    let answer = match client
        .infer_verified(&key, &input, &options, &ReplayCache::new(1))
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            if json {
                print_json(&json!({"accepted": false, "error": e.to_string()}));
            } else {
                eprintln!("FAILED: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    if let (Some(path), Some(bundle)) = (&args.output, &answer.bundle) {
        let bytes = match &answer.generation {
            Some(generation) => generation.to_bytes(),
            None => bundle.to_bytes(),
        };
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let to_proof = answer.time_to_proof.map(ms);
    if json {
        print_json(&json!({
            "accepted": true, "job_id": answer.job_id, "outputs": answer.outputs,
            "float_outputs": answer.float_outputs, "argmax": answer.argmax, "classes": answer.classes, "proof_verified": answer.bundle.is_some(),
            "time_to_output_ms": ms(answer.time_to_output), "time_to_proof_ms": to_proof,
            "proof_bytes": answer.proof_bytes, "bundle": args.output, "tokens": answer.tokens,
        }));
    } else if let Some(tokens) = &answer.tokens {
        println!(
            "{} tokens in {} ms (all at once: the time to the first token){}: {tokens:?}",
            tokens.len(),
            ms(answer.time_to_output),
            if to_proof.is_some() {
                ""
            } else {
                ", NOT proven (--no-proof)"
            }
        );
        if let Some(t) = to_proof {
            println!(
                "generation VERIFIED in {t} ms from the request ({} bytes; every token the greedy choice after the \
                 prompt and the tokens before it, under the pinned model id, the nonce and this client's salt)",
                answer.proof_bytes.unwrap_or(0)
            );
        }
    } else {
        println!(
            "output in {} ms: {:?}, predicted class {}",
            ms(answer.time_to_output),
            answer.outputs,
            answer.argmax.map_or("-".into(), |c| c.to_string())
        );
        if let Some(t) = to_proof {
            println!(
                "proof VERIFIED in {t} ms from the request ({} bytes; model id, input commitment and nonce checked)",
                answer.proof_bytes.unwrap_or(0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn batch(args: &TestBatchArgs, json: bool) -> Result<ExitCode> {
    let data = Dataset::load(&args.inputs)?;
    if data.inputs.is_empty() {
        bail!("{}: input_data is empty", args.inputs.display());
    }
    if args.requests == 0 || args.concurrency == 0 {
        bail!("-n and --concurrency must be at least 1");
    }
    let (client, key) = connect(&args.target).await?;
    let generating = args.generation.generate.is_some();
    let config = TestBatchConfig {
        inputs: args.generation.prompts(&key, data.inputs)?,
        // A generation's "class" is not a label's.
        labels: data.labels.filter(|_| !generating),
        requests: args.requests,
        concurrency: args.concurrency,
        options: RequestOptions {
            proof: !args.no_proof,
            timeout: Duration::from_secs(args.target.timeout_s),
            allow_insecure_dev_srs: args.target.allow_insecure_dev_srs,
            generate: args.generation.generate,
        },
    };
    let report = test_batch(&client, &key, &config).await;
    if json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &TestBatchReport) {
    let line = |name: &str, p: &Percentiles| {
        println!(
            "{name:<16} p50 {:>9.1} ms   p90 {:>9.1} ms   p99 {:>9.1} ms   max {:>9.1} ms",
            p.p50, p.p90, p.p99, p.max
        )
    };
    println!(
        "{} requests, {} at a time, in {:.1} s: {} succeeded, {} failed ({:.1}% success)",
        r.requests,
        r.concurrency,
        r.wall_s,
        r.succeeded,
        r.failed,
        r.success_rate * 100.0
    );
    match r.generated_tokens {
        Some(n) => {
            println!("each request generated {n} tokens, answered at once and proven by one proof");
            line("to first token", &r.time_to_output_ms);
        }
        None => line("time to output", &r.time_to_output_ms),
    }
    if r.proofs_verified > 0 {
        line("time to proof", &r.time_to_proof_ms);
        println!(
            "{} proofs verified locally ({:.2} per second), {} bytes each",
            r.proofs_verified,
            r.proofs_per_s,
            r.proof_bytes.unwrap_or(0)
        );
    }
    if r.retries_429 > 0 {
        println!(
            "{} times the server's queue was full (429); waited as Retry-After asked",
            r.retries_429
        );
    }
    if let Some(agreement) = r.label_agreement {
        println!("proven class = label for {:.1}% of the requests", agreement * 100.0);
    }
    for (error, count) in &r.errors {
        println!("FAILED ×{count}: {error}");
    }
}
