//! Keys from an SRS file given by path: a large enough ceremony file works (cut down to the circuit) and its keys
//! verify without any opt-in; the development SRS is recognised by its points wherever it comes from (also saved to
//! a file) and refused unless the caller opts in; small, truncated and garbage files are refused with a message
//! that says what they are.

mod common;

use halo2_proofs::poly::kzg::commitment::ParamsKZG;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use zkinfer_circuits::CircuitParams;
use zkinfer_prover::srs::{insecure_dev_srs, save_srs};
use zkinfer_prover::{prove, setup, KeyPair, ProveRequest, SrsSource};
use zkinfer_verifier::{verify_bundle, Expectations, ProofBundle, VerifyError};

fn k() -> u32 {
    let model = common::digits_model();
    zkinfer_circuits::layout::plan(model, &CircuitParams::for_model(model))
        .expect("plan")
        .k
}

fn setup_from(path: &std::path::Path) -> Result<KeyPair, String> {
    let model = common::digits_model();
    setup(
        model,
        CircuitParams::for_model(model),
        &SrsSource::File(path.to_path_buf()),
    )
    .map_err(|e| e.to_string())
}

fn prove_with(keys: &KeyPair) -> ProofBundle {
    let (salt, nonce) = common::salt_and_nonce();
    let input = &common::digits_test().inputs[1];
    prove(
        common::digits_model(),
        &keys.prover,
        &keys.verifier,
        &ProveRequest { input, salt, nonce },
    )
    .expect("prove")
    .bundle
}

/// Parameters from another trapdoor, as a ceremony file would hold, verify with no opt-in at all.
#[test]
fn a_ceremony_file_gives_keys_every_verifier_accepts() {
    let dir = common::temp_dir("srs-ceremony");
    let ceremony = dir.join("ceremony.srs");
    save_srs(&ParamsKZG::setup(k() + 1, ChaCha20Rng::from_seed([42; 32])), &ceremony).expect("save");
    let keys = setup_from(&ceremony).expect("setup from file");
    assert!(!keys.prover.insecure_srs && !keys.verifier.is_insecure_dev_srs());
    let bundle = prove_with(&keys);
    let verified = verify_bundle(&keys.verifier, &bundle, &Expectations::default()).expect("accepted");
    assert_eq!(verified.outputs, bundle.outputs);
}

/// The development SRS saved to a file is still the development SRS: labelled and refused without the opt-in.
#[test]
fn the_dev_srs_is_recognised_even_from_a_file() {
    let dir = common::temp_dir("srs-dev");
    let big = dir.join("dev.srs");
    save_srs(&insecure_dev_srs(k() + 1), &big).expect("save");
    let keys = setup_from(&big).expect("setup from file");
    assert!(keys.prover.insecure_srs && keys.verifier.is_insecure_dev_srs());
    let bundle = prove_with(&keys);
    let refused = verify_bundle(&keys.verifier, &bundle, &Expectations::default()).expect_err("refused");
    assert!(matches!(refused, VerifyError::InsecureDevSrs { .. }), "{refused}");
    assert!(refused.to_string().contains("--allow-insecure-dev-srs"), "{refused}");
    assert!(!refused.is_rejection(), "a refused key is not a verdict on the proof");
    assert!(verify_bundle(&keys.verifier, &bundle, &Expectations::for_insecure_dev_keys()).is_ok());
}

#[test]
fn small_truncated_and_garbage_files_are_refused_with_what_they_are() {
    let dir = common::temp_dir("srs-bad");
    let small = dir.join("small.srs");
    save_srs(&insecure_dev_srs(k() - 1), &small).expect("save");
    let err = setup_from(&small).expect_err("too small");
    assert!(err.contains("larger powers-of-tau"), "{err}");

    let big = dir.join("big.srs");
    save_srs(&insecure_dev_srs(k()), &big).expect("save");
    let bytes = std::fs::read(&big).expect("read");
    let truncated = dir.join("truncated.srs");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = setup_from(&truncated).expect_err("truncated");
    assert!(err.contains("truncated"), "{err}");

    // Random bytes whose first four bytes claim 2^1651663207 rows, and a text file.
    let garbage = dir.join("garbage.srs");
    std::fs::write(&garbage, b"garbage that is no parameters file at all").expect("write");
    let err = setup_from(&garbage).expect_err("garbage");
    assert!(err.contains("not a halo2 KZG parameters file"), "{err}");
    let empty = dir.join("empty.srs");
    std::fs::write(&empty, b"").expect("write");
    assert!(setup_from(&empty)
        .expect_err("empty")
        .contains("not a halo2 KZG parameters file"));
}
