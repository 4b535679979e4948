//! `zkinfer demo`: the whole flow on the shipped digits model, then two forgeries that must be rejected.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use zkinfer_circuits::Fr;
use zkinfer_prover::{Dataset, Device, ProveRequest, SrsSource};
use zkinfer_verifier::{field_to_hex, verify_bundle, Expectations, ProofBundle};

use super::{compile, prove, setup};
use crate::report::{ms, print_json, INSECURE_SRS_WARNING};

/// Runs the demo on `model_dir`, proving test sample `sample`, writing artefacts under `out`.
pub fn run(model_dir: &Path, sample: usize, out: &Path, device: Device, json: bool) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    let (onnx, calibration, test) = (
        model_dir.join("model.onnx"),
        model_dir.join("calibration.json"),
        model_dir.join("test.json"),
    );
    let zkm = out.join("model.zkm");
    say(format!(
        "1. compile {} (calibration: {})",
        onnx.display(),
        calibration.display()
    ));
    let started = Instant::now();
    let compiled = compile::compile(
        &onnx,
        &calibration,
        Some(&test),
        &zkm,
        Default::default(),
        &Default::default(),
        1,
    )?;
    let compile_ms = ms(started.elapsed());
    say(compile::describe(&compiled));

    say("2. setup with the insecure development SRS".into());
    let key_dir = out.join("keys");
    let (keys, setup_ms) = setup::setup_keys(&zkm, &SrsSource::InsecureDev, &key_dir, json)?;
    let model_id = keys.verifier.model_id();
    say(format!(
        "   model id {} (k = {}, {setup_ms} ms)\n   {INSECURE_SRS_WARNING}",
        hex::encode(model_id),
        keys.verifier.meta().k
    ));

    let data = Dataset::load(&test)?;
    let Some(input) = data.inputs.get(sample) else {
        bail!("test set has {} samples, no sample {sample}", data.len())
    };
    let label = data.labels.as_ref().and_then(|l| l.get(sample)).copied();
    let (salt, nonce) = (Fr::from(0x5a17u64), Fr::from(0x1234_5678u64));
    say(format!(
        "3. prove test sample {sample} (label {}) with nonce {}",
        label.map_or("?".into(), |l| l.to_string()),
        field_to_hex(&nonce)
    ));
    let request = ProveRequest { input, salt, nonce };
    let (proven, info) = prove::prove_file(&compiled.model, &key_dir, &request, device, json)?;
    let bundle_path = out.join("proof.bundle");
    let bundle_bytes = prove::write_bundle(&proven, &bundle_path)?;
    let bundle = &proven.bundle;
    let predicted = bundle.argmax();
    say(format!(
        "   predicted class {} (outputs {:?}); proved in {} ms on {}; proof {} bytes, bundle {bundle_bytes} bytes",
        predicted.map_or("-".into(), |p| p.to_string()),
        bundle.outputs,
        ms(proven.proving),
        info.device,
        bundle.proof.len()
    ));

    say(
        "4. verify against the model id, the input commitment and the nonce (the development SRS explicitly allowed)"
            .into(),
    );
    let vk = zkinfer_verifier::load_verifier_key(&key_dir, Some(&model_id))?;
    let word_bits = compiled.model.input.word_bits();
    let commitment = zkinfer_circuits::poseidon::commit_words(salt, &proven.input_q, word_bits);
    let expect = Expectations {
        model_id: Some(model_id),
        input_commitment: Some(commitment),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    };
    let started = Instant::now();
    let verdict = verify_bundle(&vk, &ProofBundle::from_bytes(&std::fs::read(&bundle_path)?)?, &expect);
    let verify_ms = ms(started.elapsed());
    say(format!(
        "   {} in {verify_ms} ms",
        if verdict.is_ok() { "ACCEPTED" } else { "REJECTED" }
    ));

    say("5. tampering must be rejected".into());
    let mut flipped = bundle.clone();
    let middle = flipped.proof.len() / 2;
    flipped.proof[middle] ^= 1;
    let flipped_verdict = verify_bundle(&vk, &flipped, &expect);
    say(format!(
        "   proof with one flipped bit: {}",
        flipped_verdict
            .as_ref()
            .err()
            .map_or("ACCEPTED (BUG)".into(), |e| format!("rejected: {e}"))
    ));
    let mut forged = bundle.clone();
    let winner = predicted.unwrap_or(0);
    forged.outputs[winner] = -128;
    let runner_up = (winner + 1) % forged.outputs.len();
    forged.outputs[runner_up] = 127;
    let forged_verdict = verify_bundle(
        &vk,
        &forged,
        &Expectations {
            model_id: Some(model_id),
            allow_insecure_dev_srs: true,
            ..Default::default()
        },
    );
    say(format!(
        "   made-up output (another class wins): {}",
        forged_verdict
            .as_ref()
            .err()
            .map_or("ACCEPTED (BUG)".into(), |e| format!("rejected: {e}"))
    ));
    let replay = Expectations {
        nonce: Some(Fr::from(0xbeefu64)),
        ..expect.clone()
    };
    let replay_verdict = verify_bundle(&vk, bundle, &replay);
    say(format!(
        "   replay for another request: {}",
        replay_verdict
            .as_ref()
            .err()
            .map_or("ACCEPTED (BUG)".into(), |e| format!("rejected: {e}"))
    ));

    // A miner hands out a vk.bin with the genuine halo2 key but SRS points of its choosing: the id changes.
    let mut doctored = vk.to_bytes();
    let points_at = doctored.len() - zkinfer_verifier::srs_points::SRS_POINTS_BYTES;
    let genuine = vk.srs_points();
    let chosen = zkinfer_verifier::SrsPoints {
        s_g2: -genuine.s_g2,
        ..genuine
    };
    doctored[points_at..].copy_from_slice(&chosen.to_bytes());
    let doctored_verdict = zkinfer_verifier::VerifierKey::from_pinned_bytes(&doctored, &model_id).map(|_| ());
    say(format!(
        "   verifying key with doctored SRS points, model id pinned: {}",
        doctored_verdict
            .as_ref()
            .err()
            .map_or("ACCEPTED (BUG)".into(), |e| format!("refused before parsing: {e}"))
    ));

    let ok = verdict.is_ok()
        && flipped_verdict.is_err()
        && forged_verdict.is_err()
        && replay_verdict.is_err()
        && doctored_verdict.is_err();
    if json {
        print_json(&json!({
            "model_id": hex::encode(model_id), "layout": compiled.layout, "accuracy": compiled.accuracy,
            "sample": sample, "label": label, "predicted": predicted, "outputs": bundle.outputs,
            "proof_bytes": bundle.proof.len(), "bundle_bytes": bundle_bytes, "compile_ms": compile_ms, "setup_ms": setup_ms,
            "inference_ms": ms(proven.inference), "proving_ms": ms(proven.proving), "verify_ms": verify_ms,
            "accepted": verdict.is_ok(), "tampered_rejected": flipped_verdict.is_err() && forged_verdict.is_err() && replay_verdict.is_err() && doctored_verdict.is_err(),
        }));
    } else {
        say(format!("demo {}", if ok { "passed" } else { "FAILED" }));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
