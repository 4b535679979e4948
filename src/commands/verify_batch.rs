//! `zkinfer verify-batch`: many bundles, possibly of several models, checked with accumulated pairing checks
//! (`zkinfer_verifier::verify_batch`); every bundle named as accepted or rejected, and a replay cache of
//! (model id, nonce) pairs that can persist in a file between runs. Exit 0 when every bundle is accepted, 1 when any
//! is rejected (or unreadable), 2 when a key or the cache file is unusable.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_verifier::key_dir::{read_bounded, MAX_VK_FILE_BYTES, VK_FILE};
use zkinfer_verifier::{
    load_verifier_key, model_id_of_file, verify_batch, BatchItem, Expectations, ReplayCache, VerifierKey, VerifyError,
};

use super::prove::parse_model_id;
use super::verify::read_bundle;
use crate::report::{ms, print_json};

/// Pairs a replay cache holds when none is configured (about 200 bytes each).
const DEFAULT_CACHE_CAPACITY: usize = 1_000_000;

/// Arguments of `verify-batch`.
#[derive(Args)]
pub struct VerifyBatchArgs {
    /// The proof bundles (binary or JSON).
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// Key directories (their vk.bin); each bundle is checked against the key of the model id it claims. Repeat
    /// for bundles of several models.
    #[arg(long = "keys", required = true)]
    pub keys: Vec<PathBuf>,
    /// Replay cache file: (model id, nonce) pairs already accepted, one `MODEL_ID NONCE` hex line each. Bundles
    /// repeating a pair are rejected as replays, and the newly accepted pairs are appended. Without it, replays
    /// are caught within this batch only.
    #[arg(long)]
    pub replay_cache: Option<PathBuf>,
    /// Only accept keys with these model ids (hex; repeat for several): each vk.bin's hash is checked before it
    /// is parsed. Validators should pin the models they pay for.
    #[arg(long = "model-id")]
    pub model_ids: Vec<String>,
    /// Accept keys made with the insecure development SRS (anyone can forge their proofs): tests and demos only.
    #[arg(long)]
    pub allow_insecure_dev_srs: bool,
}

/// The largest replay cache file read (about 7 million pairs).
const MAX_CACHE_FILE_BYTES: u64 = 1 << 30;

/// One line of the cache file.
fn cache_line(model_id: &[u8; 32], nonce: &[u8; 32]) -> String {
    format!("{} {}\n", hex::encode(model_id), hex::encode(nonce))
}

/// The pairs of a cache file (missing: empty).
fn read_cache(path: &Path, cache: &ReplayCache) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let bytes = read_bounded(path, MAX_CACHE_FILE_BYTES).context("reading the replay cache")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("replay cache {} is not text; fix or remove it", path.display()))?;
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parse = |field: Option<&str>| -> Option<[u8; 32]> { hex::decode(field?).ok()?.try_into().ok() };
        let mut fields = line.split_whitespace();
        match (parse(fields.next()), parse(fields.next()), fields.next()) {
            (Some(model_id), Some(nonce), None) => {
                cache.insert(&model_id, &nonce);
            }
            _ => bail!(
                "replay cache {} line {}: expected `MODEL_ID NONCE` (64 hex digits each); fix or remove the line",
                path.display(),
                number + 1
            ),
        }
    }
    Ok(())
}

/// Runs `verify-batch`.
pub fn run(args: &VerifyBatchArgs, json: bool) -> Result<ExitCode> {
    let pinned: Vec<[u8; 32]> = args
        .model_ids
        .iter()
        .map(|id| parse_model_id(id))
        .collect::<Result<_>>()?;
    let mut keys_by_model: HashMap<[u8; 32], VerifierKey> = HashMap::new();
    for dir in &args.keys {
        let key = if pinned.is_empty() {
            load_verifier_key(dir, None)?
        } else {
            let id = model_id_of_file(&read_bounded(&dir.join(VK_FILE), MAX_VK_FILE_BYTES)?);
            if !pinned.contains(&id) {
                bail!(
                    "{}: its model id {} is not one of the pinned --model-id values; refusing to read it",
                    dir.join(VK_FILE).display(),
                    hex::encode(id)
                );
            }
            load_verifier_key(dir, Some(&id))?
        };
        if key.is_insecure_dev_srs() && !args.allow_insecure_dev_srs {
            bail!(
                "{}: {}",
                dir.join(VK_FILE).display(),
                VerifyError::InsecureDevSrs {
                    model_id: hex::encode(key.model_id())
                }
            );
        }
        keys_by_model.insert(key.model_id(), key);
    }
    let cache = ReplayCache::new(DEFAULT_CACHE_CAPACITY);
    if let Some(path) = &args.replay_cache {
        read_cache(path, &cache)?;
    }
    // Unreadable files and unknown models are rejected here; the rest go into the batch.
    let mut outcomes: Vec<Option<Result<(), String>>> = vec![None; args.bundles.len()];
    let mut bundles = Vec::new();
    for (index, path) in args.bundles.iter().enumerate() {
        let read = read_bundle(path).map_err(|e| e.root().to_string());
        match read {
            Ok(bundle) if keys_by_model.contains_key(&bundle.model_id) => bundles.push((index, bundle)),
            Ok(bundle) => {
                outcomes[index] = Some(Err(format!(
                    "no key for its model {}; pass that model's key directory with --keys",
                    hex::encode(bundle.model_id)
                )))
            }
            Err(e) => outcomes[index] = Some(Err(e)),
        }
    }
    let items: Vec<BatchItem<'_>> = bundles
        .iter()
        .map(|(_, bundle)| BatchItem {
            key: &keys_by_model[&bundle.model_id],
            bundle,
            expect: Expectations {
                model_id: Some(bundle.model_id),
                allow_insecure_dev_srs: args.allow_insecure_dev_srs,
                ..Expectations::default()
            },
        })
        .collect();
    let started = Instant::now();
    let report = verify_batch(&items, Some(&cache));
    let elapsed = started.elapsed();
    let mut accepted_pairs = String::new();
    for ((index, bundle), result) in bundles.iter().zip(&report.results) {
        outcomes[*index] = Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        if result.is_ok() {
            accepted_pairs += &cache_line(&bundle.model_id, &bundle.nonce);
        }
    }
    if let Some(path) = &args.replay_cache {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the replay cache {}", path.display()))?;
        file.write_all(accepted_pairs.as_bytes())
            .with_context(|| format!("appending to the replay cache {}", path.display()))?;
    }
    let rejected = outcomes.iter().filter(|o| !matches!(o, Some(Ok(())))).count();
    let per_second = items.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    if json {
        let list: Vec<_> = args
            .bundles
            .iter()
            .zip(&outcomes)
            .map(|(path, outcome)| match outcome {
                Some(Ok(())) => json!({"bundle": path, "accepted": true}),
                Some(Err(e)) => json!({"bundle": path, "accepted": false, "error": e}),
                None => json!({"bundle": path, "accepted": false, "error": "not checked"}),
            })
            .collect();
        print_json(
            &json!({"bundles": list, "accepted": outcomes.len() - rejected, "rejected": rejected,
            "pairing_checks": report.pairing_checks, "rechecked": report.rechecked, "verify_ms": ms(elapsed),
            "proofs_per_second": per_second}),
        );
    } else {
        for (path, outcome) in args.bundles.iter().zip(&outcomes) {
            match outcome {
                Some(Ok(())) => println!("ACCEPTED {}", path.display()),
                Some(Err(e)) => println!("REJECTED {}: {e}", path.display()),
                None => println!("REJECTED {}: not checked", path.display()),
            }
        }
        println!(
            "{} accepted, {rejected} rejected; {} proofs in {} ms ({per_second:.0} proofs/s), {} pairing checks, {} \
             re-checked one by one",
            outcomes.len() - rejected,
            items.len(),
            ms(elapsed),
            report.pairing_checks,
            report.rechecked
        );
    }
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
