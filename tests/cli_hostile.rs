//! The command line against hostile and careless input: exit codes stay 0 (accepted), 1 (rejected) and 2
//! (unusable input) for every file a miner can hand out, and values that would silently mean something else are
//! refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use zkinfer_prover::{prove, save_model, write_keys, ProveRequest};
use zkinfer_verifier::ProofBundle;

fn zkinfer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args(args)
        .env_remove("MAX_DEGREE")
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

/// The digits model, its keys and one proof (nonce 0x1234), written once for all tests of this file.
struct Fixture {
    dir: PathBuf,
    zkm: PathBuf,
    keys: PathBuf,
    bundle: PathBuf,
    model_id: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = common::temp_dir("cli-hostile");
        let (zkm, keys, bundle) = (dir.join("m.zkm"), dir.join("keys"), dir.join("p.bundle"));
        save_model(&zkm, common::digits_model()).expect("model");
        write_keys(common::digits_keys(), &keys).expect("keys");
        let (salt, _) = common::salt_and_nonce();
        let pair = common::digits_keys();
        let proven = prove(
            common::digits_model(),
            &pair.prover,
            &pair.verifier,
            &ProveRequest {
                input: &common::digits_test().inputs[0],
                salt,
                nonce: zkinfer_circuits::Fr::from(0x1234u64),
            },
        )
        .expect("prove");
        std::fs::write(&bundle, proven.bundle.to_bytes()).expect("bundle");
        Fixture {
            model_id: hex::encode(pair.verifier.model_id()),
            dir,
            zkm,
            keys,
            bundle,
        }
    })
}

fn verify(bundle: &Path, extra: &[&str]) -> Output {
    let f = fixture();
    let mut args = vec![
        "verify",
        path(bundle),
        "--keys",
        path(&f.keys),
        "--allow-insecure-dev-srs",
    ];
    args.extend(extra);
    zkinfer(&args)
}

fn assert_code(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(text(o).contains(needle), "expected `{needle}` in: {}", text(o));
    assert!(!text(o).contains("panicked"), "{}", text(o));
}

#[test]
fn a_dev_key_is_refused_unless_allowed_and_the_genuine_bundle_verifies() {
    let f = fixture();
    let o = zkinfer(&[
        "verify",
        path(&f.bundle),
        "--keys",
        path(&f.keys),
        "--model-id",
        &f.model_id,
    ]);
    assert_code(&o, 2, "--allow-insecure-dev-srs");
    assert!(text(&o).contains("INSECURE"), "{}", text(&o));
    let o = verify(&f.bundle, &["--model-id", &f.model_id, "--nonce", "0x1234"]);
    assert_code(&o, 0, "ACCEPTED");
    assert!(
        text(&o).contains("INSECURE"),
        "an accepted dev key is still called out: {}",
        text(&o)
    );
    let o = zkinfer(&["verify-batch", path(&f.bundle), "--keys", path(&f.keys)]);
    assert_code(&o, 2, "--allow-insecure-dev-srs");
}

#[test]
fn crafted_length_fields_exit_2_and_lose_nothing_in_a_batch() {
    let f = fixture();
    let bundle = ProofBundle::from_bytes(&std::fs::read(&f.bundle).unwrap()).unwrap();
    let bytes = bundle.to_bytes();
    let at = bytes.len() - bundle.proof.len() - 3;
    assert_eq!(bytes[at], 251, "the proof's varint length");
    let mut crafted_files = Vec::new();
    for claimed in [1u64 << 36, 1 << 40, u64::MAX] {
        let mut crafted = bytes[..at].to_vec();
        crafted.push(253);
        crafted.extend_from_slice(&claimed.to_le_bytes());
        crafted.extend_from_slice(&bytes[at + 3..]);
        let file = f.dir.join(format!("crafted-{claimed}.bundle"));
        std::fs::write(&file, &crafted).unwrap();
        let o = verify(&file, &[]);
        assert_code(&o, 2, "length field");
        crafted_files.push(file);
    }
    // A vk.bin whose model name claims 2^40 bytes.
    let vk = std::fs::read(f.keys.join("vk.bin")).unwrap();
    let name_len_at = zkinfer_verifier::envelope::HEADER_LEN;
    assert_eq!(vk[name_len_at] as usize, common::digits_model().name.len());
    let mut crafted_vk = vk[..name_len_at].to_vec();
    crafted_vk.push(253);
    crafted_vk.extend_from_slice(&(1u64 << 40).to_le_bytes());
    crafted_vk.extend_from_slice(&vk[name_len_at + 1..]);
    let bad_keys = f.dir.join("crafted-keys");
    std::fs::create_dir_all(&bad_keys).unwrap();
    std::fs::write(bad_keys.join("vk.bin"), &crafted_vk).unwrap();
    let o = zkinfer(&["verify", path(&f.bundle), "--keys", path(&bad_keys)]);
    assert_code(&o, 2, "length field");

    // In a batch, crafted bundles are named and rejected; the good one is still judged and accepted.
    let mut args = vec![
        "verify-batch",
        "--allow-insecure-dev-srs",
        "--keys",
        path(&f.keys),
        path(&f.bundle),
    ];
    args.extend(crafted_files.iter().map(|p| path(p)));
    let o = zkinfer(&args);
    assert_code(&o, 1, &format!("ACCEPTED {}", path(&f.bundle)));
    for file in &crafted_files {
        assert!(text(&o).contains(&format!("REJECTED {}", path(file))), "{}", text(&o));
    }
    assert!(text(&o).contains("1 accepted, 3 rejected"), "{}", text(&o));
}

#[test]
fn empty_and_doubled_hex_values_are_refused() {
    let f = fixture();
    let input = common::digits("input.json");
    let out = f.dir.join("never.bundle");
    for (flag, value) in [
        ("--nonce", ""),
        ("--nonce", "0x"),
        ("--nonce", "0x0x12"),
        ("--nonce", " "),
        ("--salt", ""),
        ("--salt", "0x"),
    ] {
        let mut args = vec![
            "prove",
            path(&f.zkm),
            "--keys",
            path(&f.keys),
            "--input",
            path(&input),
            "-o",
            path(&out),
            "--nonce",
            "1",
        ];
        if flag == "--nonce" {
            args.truncate(args.len() - 2);
        }
        args.extend([flag, value]);
        let o = zkinfer(&args);
        assert_code(&o, 2, flag);
        assert!(!out.exists(), "{flag} {value:?}: a bundle was written");
    }
    for value in ["", "0x", "0x0x1234"] {
        assert_code(&verify(&f.bundle, &["--nonce", value]), 2, "--nonce");
    }
}

/// A nonce and commitment copied from a JSON bundle mean the same numbers on the command line.
#[test]
fn values_copied_from_a_json_bundle_verify_it() {
    let f = fixture();
    let bundle = ProofBundle::from_bytes(&std::fs::read(&f.bundle).unwrap()).unwrap();
    let json_file = f.dir.join("p.json");
    std::fs::write(&json_file, bundle.to_json()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
    let (nonce, commitment) = (
        json["nonce"].as_str().unwrap(),
        json["input_commitment"].as_str().unwrap(),
    );
    assert!(nonce.ends_with("1234"), "big-endian like --nonce: {nonce}");
    for file in [&json_file, &f.bundle] {
        let o = verify(
            file,
            &[
                "--nonce",
                nonce,
                "--input-commitment",
                commitment,
                "--model-id",
                &f.model_id,
            ],
        );
        assert_code(&o, 0, "ACCEPTED");
    }
}

#[test]
fn a_key_directory_mixing_two_models_is_refused_before_proving() {
    let f = fixture();
    let mixed = f.dir.join("mixed-keys");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(f.keys.join("pk.bin"), mixed.join("pk.bin")).unwrap();
    // Another model's verifying key: the digits model with one multiplier changed.
    let mut other = common::digits_model().clone();
    if let zkinfer_circuits::model::Op::Linear(linear) = &mut other.layers[0].op {
        linear.kernels[0].multiplier += 1;
    }
    let other_keys = zkinfer_prover::setup(
        &other,
        zkinfer_circuits::CircuitParams::for_model(&other),
        &zkinfer_prover::SrsSource::InsecureDev,
    )
    .unwrap();
    std::fs::write(mixed.join("vk.bin"), other_keys.verifier.to_bytes()).unwrap();
    let out = f.dir.join("mixed.bundle");
    let o = zkinfer(&[
        "prove",
        path(&f.zkm),
        "--keys",
        path(&mixed),
        "--input",
        path(&common::digits("input.json")),
        "--nonce",
        "7",
        "-o",
        path(&out),
    ]);
    assert_code(&o, 2, &f.model_id);
    assert!(
        text(&o).contains(&hex::encode(other_keys.verifier.model_id())),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("this is a bug"), "{}", text(&o));
    assert!(!out.exists());
}

#[test]
fn garbage_parameters_and_unwritable_outputs_are_refused_up_front() {
    let f = fixture();
    let garbage = f.dir.join("garbage.srs");
    std::fs::write(&garbage, b"\x07\x45\x7262 this is no powers of tau").unwrap();
    let o = zkinfer(&[
        "setup",
        path(&f.zkm),
        "--srs",
        path(&garbage),
        "-o",
        path(&f.dir.join("k2")),
    ]);
    assert_code(&o, 2, "not a halo2 KZG parameters file");
    assert!(!text(&o).contains("2^1651663207"), "{}", text(&o));

    let unwritable = f.dir.join("no-such-dir").join("p.bundle");
    let o = zkinfer(&[
        "prove",
        path(&f.zkm),
        "--keys",
        path(&f.keys),
        "--input",
        path(&common::digits("input.json")),
        "--nonce",
        "9",
        "-o",
        path(&unwritable),
    ]);
    assert_code(&o, 2, "no-such-dir");
    assert!(!text(&o).contains("proof:"), "refused before proving: {}", text(&o));
}

#[test]
fn max_degree_in_the_environment_is_refused() {
    let f = fixture();
    let o = Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args([
            "verify",
            path(&f.bundle),
            "--keys",
            path(&f.keys),
            "--allow-insecure-dev-srs",
        ])
        .env("MAX_DEGREE", "6")
        .output()
        .unwrap();
    assert_code(&o, 2, "MAX_DEGREE");
    let o = Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args([
            "verify",
            path(&f.bundle),
            "--keys",
            path(&f.keys),
            "--allow-insecure-dev-srs",
        ])
        .env("MAX_DEGREE", "5")
        .output()
        .unwrap();
    assert_code(&o, 0, "ACCEPTED");
}

/// A pinned model id refuses a doctored vk.bin on its bytes (exit 1: the key is not the pinned model's).
#[test]
fn a_pinned_model_id_refuses_a_doctored_key_file() {
    let f = fixture();
    let doctored = f.dir.join("doctored-keys");
    std::fs::create_dir_all(&doctored).unwrap();
    let mut vk = std::fs::read(f.keys.join("vk.bin")).unwrap();
    let last = vk.len() - 1;
    vk[last] ^= 0x80; // the sign of s·g_2: the same curve, another point
    std::fs::write(doctored.join("vk.bin"), &vk).unwrap();
    let o = zkinfer(&[
        "verify",
        path(&f.bundle),
        "--keys",
        path(&doctored),
        "--allow-insecure-dev-srs",
        "--model-id",
        &f.model_id,
    ]);
    assert_code(&o, 1, "was required");
}
