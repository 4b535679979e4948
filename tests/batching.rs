//! A batch of inputs in one proof, on the shipped models: the batched model's native inference and circuit compute
//! each sample's integers exactly as the single-sample model does, a batch is proven and verified with each
//! sample's class, and a proof whose outputs are moved between samples, or made for the single-sample model, is
//! refused by the batched model's key.

mod common;

use zkinfer_circuits::{poseidon, CircuitParams, QuantizedModel};
use zkinfer_prover::{import_onnx, infer, quantize, setup, Dataset, ProveRequest, SrsSource};
use zkinfer_verifier::{verify_bundle, Expectations, VerifyError};

/// A shipped model quantized with its calibration set, and its test set.
fn shipped(name: &str) -> (QuantizedModel, Dataset) {
    let float = import_onnx(common::model_file(name, "model.onnx")).expect("import");
    let calibration = Dataset::load(common::model_file(name, "calibration.json")).expect("calibration");
    let test = Dataset::load(common::model_file(name, "test.json")).expect("test set");
    (quantize(&float, &calibration.inputs).expect("quantize"), test)
}

/// The first `batch` test samples, quantized, one after another.
fn batch_of(model: &QuantizedModel, test: &Dataset, batch: usize) -> Vec<i64> {
    test.inputs[..batch]
        .iter()
        .flat_map(|x| model.input.quantize(x))
        .collect()
}

#[test]
fn batched_shipped_models_compute_each_sample_bit_exactly() {
    for (name, batch, synthesize) in [
        ("digits-mlp", 8, true),
        ("digits-cnn", 4, true),
        ("digits-resnet", 8, false),
    ] {
        let (model, test) = shipped(name);
        let batched = model.batched(batch).expect("batch");
        let input = batch_of(&model, &test, batch);
        let alone: Vec<i64> = (input.chunks(model.input_len()))
            .flat_map(|x| infer(&model, x).expect("infer"))
            .collect();
        let together = infer(&batched, &input).expect("infer the batch");
        assert_eq!(together, alone, "{name}: the native engine");
        if synthesize {
            let s = common::synthesize(&batched, &input, &alone);
            assert_eq!(s.outputs, alone, "{name}: the circuit");
            assert!(
                s.prover.verify().is_ok(),
                "{name}: the batch's circuit is not satisfied"
            );
        }
    }
}

#[test]
fn a_batch_of_digits_is_proven_with_each_class_and_its_outputs_cannot_move() {
    const BATCH: usize = 4;
    let (model, test) = shipped("digits-mlp");
    let batched = model.batched(BATCH).expect("batch");
    let keys = setup(&batched, CircuitParams::for_model(&batched), &SrsSource::InsecureDev).expect("setup");
    assert_eq!(keys.verifier.meta().batch(), BATCH);
    let input: Vec<f32> = test.inputs[..BATCH].concat();
    let (salt, nonce) = common::salt_and_nonce();
    let request = ProveRequest {
        input: &input,
        salt,
        nonce,
    };
    let proven = zkinfer_prover::prove(&batched, &keys.prover, &keys.verifier, &request).expect("prove");
    let expect = Expectations {
        model_id: Some(keys.verifier.model_id()),
        input_commitment: Some(poseidon::commit_input(salt, &batch_of(&model, &test, BATCH))),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    };
    let verified = verify_bundle(&keys.verifier, &proven.bundle, &expect).expect("the batch verifies");
    let classes: Vec<Option<usize>> = (test.inputs[..BATCH].iter())
        .map(|x| zkinfer_verifier::bundle::argmax(&infer(&model, &model.input.quantize(x)).expect("infer")))
        .collect();
    assert_eq!(verified.classes, classes);
    assert_eq!(verified.argmax, classes[0]);

    let per_sample = model.output_len();
    let mut moved = proven.bundle.clone();
    moved.outputs.rotate_left(per_sample);
    assert_ne!(
        moved.outputs, proven.bundle.outputs,
        "the samples have the same outputs"
    );
    assert!(matches!(
        verify_bundle(&keys.verifier, &moved, &expect),
        Err(VerifyError::ProofRejected)
    ));

    // One sample's proof, relabelled with the batch's model id, is refused before any pairing: its proof has the
    // single-sample circuit's length and it answers for one input's outputs.
    let mut single = common::prove_digit(0).bundle;
    single.model_id = keys.verifier.model_id();
    assert!(matches!(
        verify_bundle(&keys.verifier, &single, &Expectations::for_insecure_dev_keys()),
        Err(VerifyError::MalformedProof(_) | VerifyError::OutputCount { .. })
    ));
}

/// `zkinfer serve` with a batched model next to the digits model: one request of three digits (one row of `3·64`
/// values) is answered and proven with each digit's class, which the proof's bundle verifies.
#[test]
fn the_service_answers_a_batch_with_each_samples_class() {
    use common::miner::{http, job, request, wait_until, Miner};
    const BATCH: usize = 3;
    let (model, test) = shipped("digits-mlp");
    let batched = model.batched(BATCH).expect("batch");
    let keys = setup(&batched, CircuitParams::for_model(&batched), &SrsSource::InsecureDev).expect("setup");
    let dir = common::temp_dir("service-batch");
    let (zkm, key_dir) = (dir.join("batch.zkm"), dir.join("keys"));
    zkinfer_prover::save_model(&zkm, &batched).expect("save model");
    zkinfer_prover::write_keys(&keys, &key_dir).expect("write keys");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    let (zkm, key_dir) = (path(&zkm), path(&key_dir));
    let miner = Miner::start(&dir.join("jobs.sqlite"), &["--model", &zkm, "--keys", &key_dir]);

    let model_id = hex::encode(keys.verifier.model_id());
    let input: Vec<f32> = test.inputs[..BATCH].concat();
    let answer: serde_json::Value = http()
        .post(miner.at(&format!("/v1/models/{model_id}/infer")))
        .json(&request(&input, 7, 8))
        .send()
        .expect("POST infer")
        .json()
        .expect("answer JSON");
    let id = answer["job_id"].as_str().expect("a job id").to_string();
    let classes: Vec<Option<usize>> = (test.inputs[..BATCH].iter())
        .map(|x| zkinfer_verifier::bundle::argmax(&infer(&model, &model.input.quantize(x)).expect("infer")))
        .collect();
    let mut view = job(&miner, &id, 0);
    assert_eq!(view.classes, classes, "{answer}");
    assert!(wait_until(std::time::Duration::from_secs(120), || {
        view = job(&miner, &id, 1000);
        view.status.is_final()
    }));
    let bundle = view.bundle.expect("a proof bundle");
    let verified = verify_bundle(&keys.verifier, &bundle, &Expectations::for_insecure_dev_keys()).expect("verifies");
    assert_eq!((verified.classes, view.classes), (classes.clone(), classes));
}
