//! The command-line flow of the README, its exit codes (0 accepted, 1 rejected, 2 unusable input) and its errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn zkinfer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args(args)
        .output()
        .expect("run zkinfer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn compile_setup_prove_verify_and_exit_codes() {
    let dir = common::temp_dir("cli");
    let (zkm, keys, bundle) = (dir.join("m.zkm"), dir.join("keys"), dir.join("p.bundle"));
    let (onnx, cal, test, input) = (
        common::digits("model.onnx"),
        common::digits("calibration.json"),
        common::digits("test.json"),
        common::digits("input.json"),
    );
    let o = zkinfer(&[
        "compile",
        path(&onnx),
        "--calibration",
        path(&cal),
        "--test",
        path(&test),
        "-o",
        path(&zkm),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("top-1"), "{}", text(&o));

    let o = zkinfer(&["setup", path(&zkm), "-o", path(&keys)]);
    assert_eq!(o.status.code(), Some(2), "setup without an SRS choice: {}", text(&o));
    let o = zkinfer(&["setup", path(&zkm), "--insecure-dev-srs", "-o", path(&keys)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("INSECURE"),
        "the insecure SRS must be called out: {}",
        text(&o)
    );
    let model_id = std::fs::read_to_string(keys.join("model-id.txt")).expect("model id");

    // Proves the input with `--device device` into `out`, with --json.
    let prove_on = |device: &str, out: &Path| {
        zkinfer(&[
            "--json",
            "prove",
            path(&zkm),
            "--keys",
            path(&keys),
            "--input",
            path(&input),
            "--nonce",
            "0x1234",
            "--salt",
            "77",
            "--device",
            device,
            "-o",
            path(out),
        ])
    };
    let o = prove_on("cpu", &bundle);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["device"], "CPU", "{report}");
    let commitment = report["input_commitment"].as_str().expect("commitment").to_string();

    let ok = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        path(&bundle),
        "--keys",
        path(&keys),
        "--model-id",
        model_id.trim(),
        "--nonce",
        "1234",
        "--input-commitment",
        &commitment,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let replay = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        path(&bundle),
        "--keys",
        path(&keys),
        "--nonce",
        "1235",
    ]);
    assert_eq!(replay.status.code(), Some(1), "{}", text(&replay));
    assert!(text(&replay).contains("nonce"), "{}", text(&replay));

    // The same request proven with `--device gpu` (Mesa's software Vulkan driver in CI) verifies the same way.
    let gpu_bundle = dir.join("gpu.bundle");
    let o = prove_on("gpu", &gpu_bundle);
    if o.status.success() {
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert!(
            report["device"].as_str().expect("device").starts_with("GPU "),
            "{report}"
        );
        assert_eq!(report["input_commitment"], commitment.as_str());
        let ok = zkinfer(&[
            "verify",
            "--allow-insecure-dev-srs",
            path(&gpu_bundle),
            "--keys",
            path(&keys),
            "--nonce",
            "1234",
        ]);
        assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    } else {
        assert!(
            std::env::var("ZKINFER_REQUIRE_GPU").as_deref() != Ok("1"),
            "--device gpu failed: {}",
            text(&o)
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("--device cpu"), "no advice: {}", text(&o));
    }
    let o = prove_on("cuda", &gpu_bundle);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("auto, cpu or gpu"), "{}", text(&o));

    let bytes = std::fs::read(&bundle).expect("bundle");
    let truncated = dir.join("truncated.bundle");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let o = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        path(&truncated),
        "--keys",
        path(&keys),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));
    let mut flipped = bytes.clone();
    let at = bytes.len() - 100;
    flipped[at] ^= 1;
    let forged = dir.join("forged.bundle");
    std::fs::write(&forged, &flipped).expect("write");
    let o = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        path(&forged),
        "--keys",
        path(&keys),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A batch names the forged bundle and accepts the honest one; the replay cache file rejects a second showing.
    let o = zkinfer(&[
        "verify-batch",
        "--allow-insecure-dev-srs",
        path(&forged),
        path(&bundle),
        "--keys",
        path(&keys),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("REJECTED {}", path(&forged))),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains(&format!("ACCEPTED {}", path(&bundle))),
        "{}",
        text(&o)
    );
    let cache = dir.join("replay-cache.txt");
    let batch = |files: &[&Path]| {
        let mut args = vec![
            "--json",
            "verify-batch",
            "--allow-insecure-dev-srs",
            "--keys",
            path(&keys),
            "--replay-cache",
            path(&cache),
        ];
        args.extend(files.iter().map(|f| path(f)));
        zkinfer(&args)
    };
    let o = batch(&[&bundle]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["accepted"], 1, "{report}");
    let o = batch(&[&bundle, &truncated]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["rejected"], 2, "{report}");
    let replay = report["bundles"][0]["error"].as_str().expect("error");
    assert!(replay.contains("replay"), "{report}");
    std::fs::write(&cache, "not hex\n").expect("write");
    let o = batch(&[&bundle]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("line 1"), "{}", text(&o));
}

#[test]
fn bad_files_are_clear_errors_not_panics() {
    let dir = common::temp_dir("cli-bad");
    let cal = common::digits("calibration.json");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07this is not a protobuf\xff\xff").expect("write");
    let o = zkinfer(&[
        "compile",
        path(&garbage),
        "--calibration",
        path(&cal),
        "-o",
        path(&dir.join("x.zkm")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a valid ONNX"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));

    let missing = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        path(&dir.join("none.bundle")),
        "--keys",
        path(&dir),
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(!text(&missing).contains("panicked"), "{}", text(&missing));

    let zkm = dir.join("m.zkm");
    let onnx = common::digits("model.onnx");
    let o = zkinfer(&["compile", path(&onnx), "--calibration", path(&cal), "-o", path(&zkm)]);
    assert!(o.status.success(), "{}", text(&o));
    let short_input = dir.join("short.json");
    std::fs::write(
        &short_input,
        format!("{{\"input_data\": [[{}]]}}", vec!["0.5"; 63].join(",")),
    )
    .expect("write");
    let keys = dir.join("keys");
    let o = zkinfer(&["setup", path(&zkm), "--insecure-dev-srs", "-o", path(&keys)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = zkinfer(&[
        "prove",
        path(&zkm),
        "--keys",
        path(&keys),
        "--input",
        path(&short_input),
        "--nonce",
        "1",
        "-o",
        path(&dir.join("p")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("63 elements"), "{}", text(&o));

    let zkm_bytes = std::fs::read(&zkm).expect("zkm");
    std::fs::write(&zkm, &zkm_bytes[..zkm_bytes.len() / 2]).expect("truncate");
    let o = zkinfer(&["setup", path(&zkm), "--insecure-dev-srs", "-o", path(&keys)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}

/// Probing for a GPU on a machine without a desktop session (no `XDG_RUNTIME_DIR`, as on servers and in CI) says
/// nothing on stderr: Mesa's Vulkan device-select layer used to make libwayland print an `error:` line per Vulkan
/// instance (where no Vulkan driver is installed there is nothing to print either way; CI installs Mesa's).
#[test]
fn probing_for_a_gpu_without_a_desktop_session_prints_no_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .arg("gpu-info")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .expect("run zkinfer");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("error"), "a successful probe printed: {stderr}");
}

#[test]
fn gpu_info_lists_adapters_and_exits_0() {
    let o = zkinfer(&["gpu-info"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let o = zkinfer(&["gpu-info", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let adapters: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let adapters = adapters.as_array().expect("a JSON array");
    if std::env::var("ZKINFER_REQUIRE_GPU").as_deref() == Ok("1") {
        assert!(!adapters.is_empty(), "NO GPU ADAPTER: {}", text(&o));
        let chosen = adapters.iter().filter(|a| a["chosen"] == true).count();
        assert_eq!(chosen, 1, "{}", text(&o));
    }
    for adapter in adapters {
        assert!(
            adapter["name"].is_string() && adapter["backend"].is_string(),
            "{adapter}"
        );
    }
}

/// `compile --optimize size` and `--max-proof-bytes` choose the layout `setup` then uses (its proof is the size the
/// plan says and within the cap); a cap no layout meets is an error that names the smallest proof there is.
#[test]
fn the_planner_goal_reaches_setup_and_an_impossible_cap_is_a_clear_error() {
    let dir = common::temp_dir("cli-goal");
    let (onnx, cal) = (common::digits("model.onnx"), common::digits("calibration.json"));
    let compile = |zkm: &Path, extra: &[&str]| {
        let mut args = vec![
            "compile",
            path(&onnx),
            "--calibration",
            path(&cal),
            "-o",
            path(zkm),
            "--json",
        ];
        args.extend_from_slice(extra);
        zkinfer(&args)
    };
    let zkm = dir.join("small.zkm");
    let o = compile(&zkm, &["--optimize", "size", "--max-proof-bytes", "4000"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let planned = report["layout"]["proof_bytes"].as_u64().expect("proof bytes");
    let smallest = report["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["layout"]["proof_bytes"].as_u64())
        .min()
        .expect("a candidate");
    assert_eq!(planned, smallest, "--optimize size did not take the smallest proof");
    assert!(planned <= 4000);
    let keys = dir.join("keys");
    let o = zkinfer(&["setup", path(&zkm), "--insecure-dev-srs", "-o", path(&keys), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let vk = zkinfer_verifier::load_verifier_key(&keys, None).expect("vk");
    assert_eq!(
        vk.proof_len() as u64,
        planned,
        "setup did not use the layout compile chose"
    );

    let o = compile(&dir.join("never.zkm"), &["--max-proof-bytes", "1000"]);
    assert!(!o.status.success(), "{}", text(&o));
    let message = text(&o);
    assert!(
        message.contains("at most 1000 bytes") && message.contains("the smallest is"),
        "{message}"
    );
    assert!(!dir.join("never.zkm").exists());
}

/// `compile --batch 3` makes a model that proves three inputs at once: `prove` takes the first three rows of the
/// input file and `verify` reports each sample's class; a file with fewer rows, and a batch of 0, are clear errors.
#[test]
fn a_batch_is_compiled_proven_and_verified_from_the_command_line() {
    let dir = common::temp_dir("cli-batch");
    let (zkm, keys, bundle) = (dir.join("b.zkm"), dir.join("keys"), dir.join("b.bundle"));
    let (onnx, cal, test, input) = (
        common::digits("model.onnx"),
        common::digits("calibration.json"),
        common::digits("test.json"),
        common::digits("input.json"),
    );
    let compile = |batch: &str| {
        zkinfer(&[
            "compile",
            path(&onnx),
            "--calibration",
            path(&cal),
            "--batch",
            batch,
            "-o",
            path(&zkm),
        ])
    };
    let o = compile("0");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("batch size 0"), "{}", text(&o));
    let o = compile("3");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("a batch of 3 per proof"), "{}", text(&o));
    let o = zkinfer(&["setup", path(&zkm), "--insecure-dev-srs", "-o", path(&keys)]);
    assert!(o.status.success(), "{}", text(&o));

    let prove = |data: &Path| {
        let args = [
            "--json",
            "prove",
            path(&zkm),
            "--keys",
            path(&keys),
            "--input",
            path(data),
        ];
        zkinfer(&[&args[..], &["--nonce", "0x99", "--device", "cpu", "-o", path(&bundle)]].concat())
    };
    let o = prove(&input);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a one-row file for a batch of 3: {}",
        text(&o)
    );
    assert!(text(&o).contains("a batch of 3 samples"), "{}", text(&o));
    let o = prove(&test);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["batch"], 3, "{report}");
    let classes = report["classes"].as_array().expect("classes").clone();
    assert_eq!(classes.len(), 3, "{report}");

    let o = zkinfer(&[
        "--json",
        "verify",
        "--allow-insecure-dev-srs",
        path(&bundle),
        "--keys",
        path(&keys),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let verified: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(verified["classes"].as_array(), Some(&classes), "{verified}");
    let labels = common::digits_test().labels.clone().expect("labels");
    let right = (classes.iter().zip(&labels))
        .filter(|(c, &l)| c.as_u64() == Some(l as u64))
        .count();
    assert!(right >= 2, "{right} of 3 test digits classified right: {verified}");
}
