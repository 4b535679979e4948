//! Real KZG proofs of the shipped model: accepted when honest; every kind of forgery rejected with its own error.

mod common;

use zkinfer_circuits::{field, poseidon, CircuitParams, Fr};
use zkinfer_prover::{prove, quantize, setup, Dataset, ProveRequest, Proven, Prover, ProverError, SrsSource};
use zkinfer_verifier::{envelope, verify_bundle, Expectations, ProofBundle, VerifierKey, VerifyError};

fn proven() -> &'static Proven {
    static PROVEN: std::sync::OnceLock<Proven> = std::sync::OnceLock::new();
    PROVEN.get_or_init(|| common::prove_digit(0))
}

fn pinned() -> Expectations {
    let (salt, nonce) = common::salt_and_nonce();
    Expectations {
        model_id: Some(common::digits_keys().verifier.model_id()),
        input_commitment: Some(poseidon::commit_input(salt, &proven().input_q)),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    }
}

fn verify(bundle: &ProofBundle, expect: &Expectations) -> Result<(), VerifyError> {
    verify_bundle(&common::digits_keys().verifier, bundle, expect).map(|_| ())
}

#[test]
fn honest_proof_is_accepted_with_every_pin() {
    let bundle = &proven().bundle;
    let verified = verify_bundle(&common::digits_keys().verifier, bundle, &pinned()).expect("accepted");
    assert_eq!(verified.outputs, bundle.outputs);
    let label = common::digits_test().labels.as_ref().expect("labels")[0];
    assert_eq!(
        bundle.argmax(),
        Some(label),
        "the shipped model should classify test image 0 correctly"
    );
}

#[test]
fn flipped_proof_bytes_are_rejected() {
    let bundle = &proven().bundle;
    for position in [
        0,
        1,
        100,
        bundle.proof.len() / 2,
        bundle.proof.len() - 33,
        bundle.proof.len() - 1,
    ] {
        let mut forged = bundle.clone();
        forged.proof[position] ^= 0x01;
        match verify(&forged, &pinned()) {
            Err(VerifyError::ProofRejected | VerifyError::MalformedProof(_)) => {}
            other => panic!("flipped byte {position}: {other:?}"),
        }
    }
    let mut forged = bundle.clone();
    forged.proof[bundle.proof.len() / 2] ^= 0x01;
    assert!(matches!(verify(&forged, &pinned()), Err(VerifyError::ProofRejected)));
}

#[test]
fn other_outputs_are_rejected() {
    for i in 0..proven().bundle.outputs.len() {
        let mut forged = proven().bundle.clone();
        forged.outputs[i] += 1;
        assert!(
            matches!(verify(&forged, &pinned()), Err(VerifyError::ProofRejected)),
            "output {i}"
        );
    }
}

#[test]
fn other_nonce_is_rejected_by_pin_and_by_the_proof() {
    let (_, nonce) = common::salt_and_nonce();
    let other = Expectations {
        nonce: Some(nonce + Fr::from(1u64)),
        ..pinned()
    };
    assert!(matches!(
        verify(&proven().bundle, &other),
        Err(VerifyError::NonceMismatch { .. })
    ));
    let mut replayed = proven().bundle.clone();
    replayed.nonce = field::to_bytes(&(nonce + Fr::from(1u64)));
    assert!(matches!(
        verify(&replayed, &Expectations::for_insecure_dev_keys()),
        Err(VerifyError::ProofRejected)
    ));
}

#[test]
fn other_input_commitment_is_rejected_by_pin_and_by_the_proof() {
    let commitment = pinned().input_commitment.expect("pinned");
    let other = Expectations {
        input_commitment: Some(commitment + Fr::from(1u64)),
        ..pinned()
    };
    assert!(matches!(
        verify(&proven().bundle, &other),
        Err(VerifyError::InputCommitmentMismatch { .. })
    ));
    let mut forged = proven().bundle.clone();
    forged.input_commitment = field::to_bytes(&(commitment + Fr::from(1u64)));
    assert!(matches!(
        verify(&forged, &Expectations::for_insecure_dev_keys()),
        Err(VerifyError::ProofRejected)
    ));
}

#[test]
fn another_models_key_is_rejected() {
    // The same network calibrated on fewer samples: other requantization constants, so another circuit.
    let float = zkinfer_prover::import_onnx(common::digits("model.onnx")).expect("import");
    let calibration = Dataset::load(common::digits("calibration.json")).expect("calibration");
    let other_model = quantize(&float, &calibration.inputs[..16]).expect("quantize");
    assert_ne!(&other_model, common::digits_model());
    let other = setup(
        &other_model,
        CircuitParams::for_model(&other_model),
        &SrsSource::InsecureDev,
    )
    .expect("setup");
    let ours = common::digits_keys().verifier.model_id();
    assert_ne!(other.verifier.model_id(), ours);

    let bundle = &proven().bundle;
    let result = verify_bundle(&other.verifier, bundle, &Expectations::for_insecure_dev_keys());
    assert!(
        matches!(result, Err(VerifyError::BundleModelMismatch { .. })),
        "{result:?}"
    );
    let pinned_to_ours = Expectations {
        model_id: Some(ours),
        allow_insecure_dev_srs: true,
        ..Default::default()
    };
    let result = verify_bundle(&other.verifier, bundle, &pinned_to_ours);
    assert!(
        matches!(result, Err(VerifyError::KeyModelMismatch { .. })),
        "{result:?}"
    );
    // Relabelling the bundle does not help: the proof itself fails under the other key.
    let mut relabelled = bundle.clone();
    relabelled.model_id = other.verifier.model_id();
    let result = verify_bundle(&other.verifier, &relabelled, &Expectations::for_insecure_dev_keys());
    assert!(matches!(result, Err(VerifyError::ProofRejected)), "{result:?}");

    // A prover refuses keys of two models, and keys made for another model than the one it is given.
    let keys = common::digits_keys();
    let mixed = Prover::from_keys(
        common::digits_model().clone(),
        keys.prover.clone(),
        other.verifier.clone(),
        None,
    );
    assert!(matches!(mixed, Err(ProverError::KeyPairMismatch { .. })), "{mixed:?}");
    let foreign = Prover::from_keys(other_model, keys.prover.clone(), keys.verifier.clone(), None);
    assert!(
        matches!(&foreign, Err(ProverError::ProverKeyFile { reason, .. }) if reason.contains("another model")),
        "{foreign:?}"
    );
}

/// An opened prover keeps its engine across proofs: two requests, two proofs that verify, the same outputs as the
/// one-shot `prove`.
#[test]
fn an_opened_prover_proves_request_after_request() {
    let keys = common::digits_keys();
    let prover = Prover::from_keys(
        common::digits_model().clone(),
        keys.prover.clone(),
        keys.verifier.clone(),
        None,
    )
    .expect("prover");
    let (salt, nonce) = common::salt_and_nonce();
    for index in [0, 5] {
        let input = &common::digits_test().inputs[index];
        let proven = prover.prove(&ProveRequest { input, salt, nonce }).expect("prove");
        let expect = Expectations {
            model_id: Some(keys.verifier.model_id()),
            nonce: Some(nonce),
            allow_insecure_dev_srs: true,
            ..Default::default()
        };
        verify_bundle(&keys.verifier, &proven.bundle, &expect).expect("accepted");
        let one_shot = zkinfer_prover::infer(common::digits_model(), &proven.input_q).expect("infer");
        assert_eq!(proven.bundle.outputs, one_shot, "digit {index}");
    }
}

#[test]
fn trailing_proof_bytes_are_rejected() {
    let mut forged = proven().bundle.clone();
    forged.proof.push(0);
    assert!(matches!(
        verify(&forged, &pinned()),
        Err(VerifyError::MalformedProof(_))
    ));
}

#[test]
fn bundle_files_round_trip_and_refuse_damage() {
    let bundle = &proven().bundle;
    let bytes = bundle.to_bytes();
    assert_eq!(&ProofBundle::from_bytes(&bytes).expect("binary"), bundle);
    assert_eq!(
        &ProofBundle::from_any(bundle.to_json().as_bytes()).expect("json"),
        bundle
    );
    for cut in [0, 5, 8, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(ProofBundle::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut newer = bytes.clone();
    newer[6] = 99;
    assert!(matches!(
        ProofBundle::from_bytes(&newer),
        Err(VerifyError::Envelope(envelope::EnvelopeError::WrongVersion {
            found: 99,
            ..
        }))
    ));
    let vk_bytes = common::digits_keys().verifier.to_bytes();
    assert!(matches!(
        ProofBundle::from_bytes(&vk_bytes),
        Err(VerifyError::Envelope(envelope::EnvelopeError::WrongKind { .. }))
    ));
}

#[test]
fn verifying_key_files_round_trip_and_refuse_damage() {
    let key = &common::digits_keys().verifier;
    let bytes = key.to_bytes();
    let read = VerifierKey::from_bytes(&bytes).expect("round trip");
    assert_eq!(read.model_id(), key.model_id());
    assert!(verify_bundle(&read, &proven().bundle, &pinned()).is_ok());
    for cut in [0, 7, 8, 64, bytes.len() / 2, bytes.len() - 1] {
        assert!(VerifierKey::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    for position in (8..bytes.len()).step_by(bytes.len() / 40) {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x55;
        // Either refused, or (a flipped bit in a commitment) a different model id under which the proof fails.
        if let Ok(k) = VerifierKey::from_bytes(&damaged) {
            assert!(
                verify_bundle(&k, &proven().bundle, &pinned()).is_err(),
                "damage at {position} went unnoticed"
            );
        }
    }
}

#[test]
fn key_directory_refuses_damaged_and_foreign_proving_keys() {
    let dir = common::temp_dir("keys");
    zkinfer_prover::write_keys(common::digits_keys(), &dir).expect("write keys");
    let model = common::digits_model();
    let loaded = zkinfer_prover::load_prover_key(&dir, model)
        .map_err(|e| e.to_string())
        .expect("load");
    assert_eq!(loaded.model_id, common::digits_keys().verifier.model_id());
    let refused = |model| {
        zkinfer_prover::load_prover_key(&dir, model)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };

    let pk_path = dir.join(zkinfer_prover::keys::PK_FILE);
    let pk = std::fs::read(&pk_path).expect("pk");
    std::fs::write(&pk_path, &pk[..pk.len() / 3]).expect("truncate");
    let err = refused(model);
    assert!(err.contains("setup"), "truncated pk: {err}");
    let mut flipped = pk.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    std::fs::write(&pk_path, &flipped).expect("corrupt");
    let err = zkinfer_prover::load_prover_key(&dir, model).expect_err("corrupted pk");
    assert!(
        err.to_string().contains("checksum") || err.to_string().contains("corrupted"),
        "{err}"
    );

    std::fs::write(&pk_path, &pk).expect("restore");
    let mut other = model.clone();
    if let zkinfer_circuits::model::Op::Linear(linear) = &mut other.layers[0].op {
        linear.kernels[0].multiplier += 1;
    }
    let err = zkinfer_prover::load_prover_key(&dir, &other).expect_err("foreign model");
    assert!(
        err.to_string().contains("another model") || err.to_string().contains("not for this model"),
        "{err}"
    );
}

#[test]
fn wrong_input_length_is_a_clear_error() {
    let keys = common::digits_keys();
    let (salt, nonce) = common::salt_and_nonce();
    let short = vec![0.5f32; 63];
    let err = prove(
        common::digits_model(),
        &keys.prover,
        &keys.verifier,
        &ProveRequest {
            input: &short,
            salt,
            nonce,
        },
    )
    .expect_err("63 inputs");
    assert!(
        matches!(
            err,
            ProverError::WrongInputLength {
                expected: 64,
                found: 63
            }
        ),
        "{err}"
    );
}

#[test]
fn small_value_commitments_equal_plain_kzg_and_verify() {
    use halo2_proofs::{
        halo2curves::bn256::{Bn256, G1Affine},
        plonk::create_proof,
        poly::kzg::{commitment::KZGCommitmentScheme, multiopen::ProverSHPLONK},
        transcript::{Blake2bWrite, Challenge255, TranscriptWriterBuffer},
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
    use zkinfer_circuits::{ModelCircuit, PublicInputs, Witness};
    use zkinfer_prover::commit::{SmallValueKzg, SmallValueShplonk};

    let (model, keys) = (common::digits_model(), common::digits_keys());
    let (salt, nonce) = common::salt_and_nonce();
    let input = proven().input_q.clone();
    let public = PublicInputs {
        input_commitment: poseidon::commit_input(salt, &input),
        nonce,
        outputs: proven().bundle.outputs.clone(),
    };
    let instance = public.to_instance();
    let circuit = ModelCircuit::new(
        model.clone(),
        keys.prover.meta.circuit_params.clone(),
        Witness { salt, nonce, input },
    );
    let transcript = || Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
    let (mut plain, mut small) = (transcript(), transcript());
    create_proof::<KZGCommitmentScheme<Bn256>, ProverSHPLONK<'_, Bn256>, _, _, _, _>(
        keys.prover.srs.kzg(),
        &keys.prover.pk,
        std::slice::from_ref(&circuit),
        &[&[&instance]],
        ChaCha20Rng::seed_from_u64(5),
        &mut plain,
    )
    .expect("plain KZG proof");
    create_proof::<SmallValueKzg, SmallValueShplonk<'_>, _, _, _, _>(
        &keys.prover.srs,
        &keys.prover.pk,
        &[circuit],
        &[&[&instance]],
        ChaCha20Rng::seed_from_u64(5),
        &mut small,
    )
    .expect("small-value proof");
    let (plain, small) = (plain.finalize(), small.finalize());
    // The advice commitments open the proof, before any lookup argument (whose permutation halo2 orders through
    // a HashMap, so the rest differs between any two runs): the same rng gives the same blinding rows there, so
    // the bytes must be equal.
    let advice = keys.prover.pk.get_vk().cs().num_advice_columns() * 32;
    assert_eq!(plain[..advice], small[..advice], "advice commitments differ");
    for proof in [&plain, &small] {
        zkinfer_verifier::verify::check_proof(&keys.verifier, &instance, proof).expect("verifies");
    }
}
