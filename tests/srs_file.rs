//! Keys from an SRS file given by path: a large enough file works (cut down to the circuit), a small one is refused.

mod common;

use zkinfer_circuits::CircuitParams;
use zkinfer_prover::srs::{insecure_dev_srs, save_srs};
use zkinfer_prover::{prove, setup, ProveRequest, SrsSource};
use zkinfer_verifier::{verify_bundle, Expectations};

#[test]
fn setup_from_a_params_file() {
    let dir = common::temp_dir("srs");
    let model = common::digits_model();
    let k = zkinfer_circuits::layout::plan(model, CircuitParams::for_model(model))
        .expect("plan")
        .k;

    let big = dir.join("big.srs");
    save_srs(&insecure_dev_srs(k + 1), &big).expect("save");
    let keys = setup(model, CircuitParams::for_model(model), &SrsSource::File(big)).expect("setup from file");
    assert!(!keys.prover.insecure_srs, "a file SRS is not labelled insecure");
    let (salt, nonce) = common::salt_and_nonce();
    let input = &common::digits_test().inputs[1];
    let proven = prove(
        model,
        &keys.prover,
        &keys.verifier,
        &ProveRequest { input, salt, nonce },
    )
    .expect("prove");
    assert!(verify_bundle(&keys.verifier, &proven.bundle, &Expectations::default()).is_ok());

    let small = dir.join("small.srs");
    save_srs(&insecure_dev_srs(k - 1), &small).expect("save");
    let err = setup(model, CircuitParams::for_model(model), &SrsSource::File(small))
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().unwrap_or_default().contains("larger powers-of-tau"),
        "{err:?}"
    );

    let truncated = dir.join("truncated.srs");
    let bytes = std::fs::read(dir.join("big.srs")).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = setup(model, CircuitParams::for_model(model), &SrsSource::File(truncated))
        .err()
        .map(|e| e.to_string());
    assert!(err.as_deref().unwrap_or_default().contains("truncated"), "{err:?}");
}
