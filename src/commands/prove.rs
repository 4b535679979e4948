//! `zkinfer prove`: one input (or one batch of inputs), one nonce, one proof bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_circuits::{Fr, QuantizedModel};
use zkinfer_prover::{load_model, random_salt, Dataset, Device, ProveRequest, Proven, Prover};
use zkinfer_verifier::bundle::{argmax, sample_outputs};
use zkinfer_verifier::{field_from_hex, field_to_hex};

use crate::report::{class_list, ensure_writable, ms, print_json, spinner, INSECURE_SRS_WARNING};

/// Arguments of `prove`.
#[derive(Args)]
pub struct ProveArgs {
    /// The compiled model (`.zkm`).
    pub model: PathBuf,
    /// Key directory written by `zkinfer setup`.
    #[arg(long)]
    pub keys: PathBuf,
    /// Input file: {"input_data": [[f32, ...]]} (the first row is proven; the first B rows for a model compiled
    /// with --batch B).
    #[arg(long)]
    pub input: PathBuf,
    #[command(flatten)]
    pub request: RequestArgs,
    /// Where to write the proof bundle (JSON form when the name ends in .json).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// What a proof is bound to and where it is made: the arguments `prove` and `generate` share.
#[derive(Args)]
pub struct RequestArgs {
    /// Request nonce (hex, below the BN254 scalar modulus).
    #[arg(long)]
    pub nonce: String,
    /// Salt of the input commitment (hex, below the BN254 scalar modulus); random when omitted (and printed: the
    /// verifier needs it with the input).
    #[arg(long)]
    pub salt: Option<String>,
    /// Where to prove: auto (a hardware GPU if there is one, else the CPU), cpu, or gpu (any adapter, Mesa's
    /// software driver included). `zkinfer gpu-info` lists the adapters.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|gpu")]
    pub device: Device,
}

impl RequestArgs {
    /// The nonce, and the salt given or a fresh random one.
    pub fn nonce_and_salt(&self) -> Result<(Fr, Fr)> {
        let nonce = parse_hex("nonce", &self.nonce)?;
        let salt = match &self.salt {
            Some(s) => parse_hex("salt", s)?,
            None => random_salt(),
        };
        Ok((nonce, salt))
    }
}

/// What `prove_file` did besides the proof.
pub struct ProveInfo {
    /// Whether the key was made with the insecure development SRS.
    pub insecure_srs: bool,
    /// The processor that proved, in words.
    pub device: String,
}

/// Parses a hex field element given on the command line.
pub fn parse_hex(what: &str, text: &str) -> Result<Fr> {
    field_from_hex(text).map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

/// Parses a model id given on the command line (64 hex digits, one optional `0x`).
pub fn parse_model_id(text: &str) -> Result<[u8; 32]> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let raw = hex::decode(digits).with_context(|| format!("--model-id `{text}` is not hex"))?;
    <[u8; 32]>::try_from(raw).map_err(|_| anyhow::anyhow!("--model-id must be 32 bytes (64 hex digits)"))
}

/// Proves `input` with the keys in `key_dir` on `device`.
pub fn prove_file(
    model: &QuantizedModel,
    key_dir: &Path,
    request: &ProveRequest,
    device: Device,
    json: bool,
) -> Result<(Proven, ProveInfo)> {
    let prover = Prover::open(model.clone(), key_dir, device)?;
    let device = match prover.gpu() {
        Some(backend) => format!("GPU {}", backend.describe()),
        None if device == Device::Auto => "CPU (no hardware GPU found)".to_string(),
        None => "CPU".to_string(),
    };
    if !json {
        eprintln!("device: {device}");
    }
    let bar = spinner("proving", json);
    let proven = prover.prove(request)?;
    bar.finish_and_clear();
    let info = ProveInfo {
        insecure_srs: prover.key().insecure_srs,
        device,
    };
    Ok((proven, info))
}

/// Writes a bundle in the form its file name asks for.
pub fn write_bundle(proven: &Proven, path: &Path) -> Result<usize> {
    let bytes = if path.extension().is_some_and(|e| e == "json") {
        proven.bundle.to_json().into_bytes()
    } else {
        proven.bundle.to_bytes()
    };
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(bytes.len())
}

/// The input `model` proves from the samples of `data`: the first row, or for a model that proves a batch of `B`
/// the first `B` rows one after another.
pub fn batch_input(model: &QuantizedModel, data: &Dataset) -> Result<Vec<f32>> {
    let (batch, width) = (model.batch(), model.sample_input_len());
    if batch == 1 {
        return data.inputs.first().cloned().context("input_data is empty");
    }
    if data.inputs.len() < batch {
        bail!(
            "the model proves a batch of {batch} samples per proof and the file holds {}; give {batch} rows of \
             input_data (or compile with a smaller --batch)",
            data.inputs.len()
        );
    }
    if let Some((i, row)) = data.inputs[..batch].iter().enumerate().find(|(_, r)| r.len() != width) {
        bail!(
            "sample {i} has {} values, the model expects {width} per sample",
            row.len()
        );
    }
    Ok(data.inputs[..batch].concat())
}

/// Runs `prove`.
pub fn run(args: &ProveArgs, json: bool) -> Result<ExitCode> {
    let model = load_model(&args.model)?;
    let data = Dataset::load(&args.input)?;
    let input = batch_input(&model, &data).with_context(|| format!("{}", args.input.display()))?;
    let (nonce, salt) = args.request.nonce_and_salt()?;
    ensure_writable(&args.output)?;
    let request = ProveRequest {
        input: &input,
        salt,
        nonce,
    };
    let (proven, info) = prove_file(&model, &args.keys, &request, args.request.device, json)?;
    write_bundle(&proven, &args.output)?;
    if info.insecure_srs {
        eprintln!("{INSECURE_SRS_WARNING}");
    }
    let b = &proven.bundle;
    let commitment = b.public_inputs()?.input_commitment;
    let classes: Vec<Option<usize>> = sample_outputs(&b.outputs, model.batch()).map(argmax).collect();
    if json {
        print_json(&json!({
            "bundle": args.output, "model_id": hex::encode(b.model_id), "outputs": b.outputs,
            "float_outputs": zkinfer_verifier::bundle::dequantize(&b.outputs, model.output_scale()), "argmax": classes.first().copied().flatten(),
            "batch": model.batch(), "classes": classes, "salt": field_to_hex(&salt),
            "input_commitment": field_to_hex(&commitment), "nonce": field_to_hex(&nonce),
            "proof_bytes": b.proof.len(), "inference_ms": ms(proven.inference), "proving_ms": ms(proven.proving),
            "device": info.device,
        }));
    } else {
        let shape = model.layers.last().map_or(&[][..], |l| l.output_shape.as_slice());
        match shape {
            // A prediction per row (a sequence's next-token logits): the argmax of each row, not of the whole output.
            [rows @ .., row_len] if model.batch() == 1 && rows.iter().product::<usize>() > 1 => {
                let per_row: Vec<Option<usize>> = b.outputs.chunks((*row_len).max(1)).map(argmax).collect();
                println!("outputs (int8): {} values of shape {shape:?}", b.outputs.len());
                println!("argmax of each of the {} rows: {}", per_row.len(), class_list(&per_row));
            }
            _ => {
                println!("outputs (int8): {:?}", b.outputs);
                match classes.as_slice() {
                    [one] => println!("predicted class: {}", class_list(&[*one])),
                    many => println!("predicted classes of the {} samples: {}", many.len(), class_list(many)),
                }
            }
        }
        println!("salt: {} (keep it to open the input commitment)", field_to_hex(&salt));
        println!("input commitment: {}", field_to_hex(&commitment));
        println!(
            "proof: {} bytes, proved in {} ms on {}; bundle written to {}",
            b.proof.len(),
            ms(proven.proving),
            info.device,
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
