//! Batch verification of real proofs: honest batches accepted with one pairing per chain, every kind of forgery
//! named by its index while the rest is accepted, replays rejected across calls and within a batch, keys of
//! several models and several SRS in one batch. A handful of proofs are made once and reused (run with
//! `--release`: each proof takes a few hundred milliseconds there).

mod common;

use std::sync::OnceLock;

use halo2_proofs::halo2curves::bn256::Bn256;
use halo2_proofs::poly::kzg::commitment::ParamsKZG;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use zkinfer_circuits::{poseidon, CircuitParams, Fr};
use zkinfer_prover::{prove, setup, KeyPair, ProveRequest, SrsSource};
use zkinfer_verifier::batch::CHAIN_LEN;
use zkinfer_verifier::{
    verify_batch, verify_fresh, BatchItem, BatchReport, Expectations, ProofBundle, ReplayCache, VerifierKey,
    VerifyError,
};

/// A proof with what a client would pin.
struct Sample {
    bundle: ProofBundle,
    expect: Expectations,
}

/// `n` proofs of distinct test inputs and nonces (`first_nonce`, `first_nonce + 1`, …) under `keys`.
fn samples(keys: &KeyPair, first_nonce: u64, n: usize) -> Vec<Sample> {
    let test = common::digits_test();
    (0..n)
        .map(|i| {
            let input = &test.inputs[i % test.inputs.len()];
            let salt = Fr::from(0x5a17 + i as u64);
            let nonce = Fr::from(first_nonce + i as u64);
            let proven = prove(
                common::digits_model(),
                &keys.prover,
                &keys.verifier,
                &ProveRequest { input, salt, nonce },
            )
            .expect("prove");
            Sample {
                expect: Expectations {
                    model_id: Some(keys.verifier.model_id()),
                    input_commitment: Some(poseidon::commit_input(salt, &proven.input_q)),
                    nonce: Some(nonce),
                    allow_insecure_dev_srs: true,
                },
                bundle: proven.bundle,
            }
        })
        .collect()
}

/// Keys of the digits model with another layout than `digits_keys` (same SRS, another verifying key).
fn other_layout_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| {
        let model = common::digits_model();
        let base = CircuitParams::for_model(model);
        let params = CircuitParams {
            mac_lanes: if base.mac_lanes == 2 { 4 } else { 2 },
            ..base
        };
        setup(model, params, &SrsSource::InsecureDev).expect("setup with another layout")
    })
}

/// Keys of the digits model under a second SRS (another toxic secret, so another `s·G2`).
fn other_srs_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| {
        let model = common::digits_model();
        let params = CircuitParams::for_model(model);
        let k = zkinfer_circuits::layout::plan(model, &params).expect("plan").k;
        let srs = ParamsKZG::<Bn256>::setup(k, ChaCha20Rng::from_seed([7; 32]));
        let path = common::temp_dir("batch-srs").join("second.srs");
        zkinfer_prover::srs::save_srs(&srs, &path).expect("save SRS");
        setup(model, params, &SrsSource::File(path)).expect("setup with a second SRS")
    })
}

/// Five proofs under the digits keys, two under another layout, two under another SRS.
fn fixtures() -> &'static [Vec<Sample>; 3] {
    static SAMPLES: OnceLock<[Vec<Sample>; 3]> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        [
            samples(common::digits_keys(), 1000, 5),
            samples(other_layout_keys(), 2000, 2),
            samples(other_srs_keys(), 3000, 2),
        ]
    })
}

fn digits() -> &'static [Sample] {
    &fixtures()[0]
}

fn key_a() -> &'static VerifierKey {
    &common::digits_keys().verifier
}

fn items<'a>(key: &'a VerifierKey, samples: &'a [Sample]) -> Vec<BatchItem<'a>> {
    samples
        .iter()
        .map(|s| BatchItem {
            key,
            bundle: &s.bundle,
            expect: s.expect.clone(),
        })
        .collect()
}

/// Asserts that exactly item `bad` was rejected, with an error `expected` accepts.
fn only_rejected(report: &BatchReport, bad: usize, expected: impl Fn(&VerifyError) -> bool) {
    let rejected = report.rejected();
    assert_eq!(rejected.len(), 1, "exactly one rejection expected: {rejected:?}");
    assert_eq!(rejected[0].0, bad, "wrong item named: {rejected:?}");
    assert!(expected(rejected[0].1), "unexpected reason: {}", rejected[0].1);
    assert_eq!(report.accepted().len(), report.len() - 1);
}

#[test]
fn honest_mixed_batch_is_accepted() {
    let [a, b, c] = fixtures();
    let mut batch = items(key_a(), a);
    batch.extend(items(&other_layout_keys().verifier, b));
    batch.extend(items(&other_srs_keys().verifier, c));
    // Interleave the models and SRS.
    batch.swap(1, 5);
    batch.swap(3, 8);
    let report = verify_batch(&batch, None);
    assert!(report.all_accepted(), "{:?}", report.rejected());
    assert_eq!(report.len(), 9);
    // Keys under one SRS may share a chain, the second SRS needs its own; each thread folds into its own chain.
    assert!(
        (2..=batch.len()).contains(&report.pairing_checks),
        "{} pairing checks",
        report.pairing_checks
    );
    assert_eq!(report.rechecked, 0);
    for (item, verified) in batch.iter().zip(report.into_result().expect("all accepted")) {
        assert_eq!(verified.outputs, item.bundle.outputs);
    }
}

#[test]
fn empty_batch_and_batch_of_one() {
    let report = verify_batch(&[], None);
    assert!(report.is_empty() && report.all_accepted());
    assert_eq!(report.pairing_checks, 0);
    assert!(report.into_result().expect("empty").is_empty());

    let one = &digits()[..1];
    let report = verify_batch(&items(key_a(), one), None);
    assert_eq!(report.accepted(), vec![0]);
    assert_eq!(report.pairing_checks, 1);
    let mut forged = one[0].bundle.clone();
    forged.outputs[0] += 1;
    let report = verify_batch(
        &[BatchItem {
            key: key_a(),
            bundle: &forged,
            expect: one[0].expect.clone(),
        }],
        None,
    );
    only_rejected(&report, 0, |e| matches!(e, VerifyError::ProofRejected));
}

/// The digits batch with item `bad` replaced by `forged` (and its expectations by `expect`).
fn forged_batch(bad: usize, forged: &ProofBundle, key: &VerifierKey, expect: Expectations) -> BatchReport {
    let mut batch = items(key_a(), digits());
    batch[bad] = BatchItem {
        key,
        bundle: forged,
        expect,
    };
    verify_batch(&batch, None)
}

#[test]
fn a_false_proof_is_named_and_the_others_accepted() {
    let bad = 2;
    let honest = &digits()[bad];

    // False only in the pairing: the accumulated check fails, the one-by-one pass names the item.
    let mut wrong_output = honest.bundle.clone();
    wrong_output.outputs[3] -= 1;
    let report = forged_batch(bad, &wrong_output, key_a(), honest.expect.clone());
    only_rejected(&report, bad, |e| matches!(e, VerifyError::ProofRejected));
    assert!(report.rechecked >= 1, "the failed chain is checked again one by one");

    for position in [100, honest.bundle.proof.len() / 2, honest.bundle.proof.len() - 1] {
        let mut flipped = honest.bundle.clone();
        flipped.proof[position] ^= 0x01;
        let report = forged_batch(bad, &flipped, key_a(), honest.expect.clone());
        only_rejected(&report, bad, |e| {
            matches!(e, VerifyError::ProofRejected | VerifyError::MalformedProof(_))
        });
    }

    let mut trailing = honest.bundle.clone();
    trailing.proof.push(0);
    let report = forged_batch(bad, &trailing, key_a(), honest.expect.clone());
    only_rejected(
        &report,
        bad,
        |e| matches!(e, VerifyError::MalformedProof(m) if m.contains("this model's proofs are")),
    );

    let mut other_nonce = honest.expect.clone();
    other_nonce.nonce = Some(Fr::from(0xdead_u64));
    let report = forged_batch(bad, &honest.bundle, key_a(), other_nonce);
    only_rejected(&report, bad, |e| matches!(e, VerifyError::NonceMismatch { .. }));
}

#[test]
fn a_proof_for_another_key_is_named() {
    let bad = 4;
    let other = &fixtures()[1][0];
    // The caller pins the digits model but hands over the other key.
    let report = forged_batch(
        bad,
        &other.bundle,
        &other_layout_keys().verifier,
        digits()[bad].expect.clone(),
    );
    only_rejected(&report, bad, |e| matches!(e, VerifyError::KeyModelMismatch { .. }));
    // Checked against the digits key: the bundle claims another model.
    let report = forged_batch(bad, &other.bundle, key_a(), Expectations::for_insecure_dev_keys());
    only_rejected(&report, bad, |e| matches!(e, VerifyError::BundleModelMismatch { .. }));
    // Relabelled as a digits-key proof: the proof itself fails under the digits key.
    let mut relabelled = other.bundle.clone();
    relabelled.model_id = key_a().model_id();
    let report = forged_batch(bad, &relabelled, key_a(), Expectations::for_insecure_dev_keys());
    only_rejected(&report, bad, |e| {
        matches!(e, VerifyError::ProofRejected | VerifyError::MalformedProof(_))
    });
    // A proof under the second SRS presented with the digits key of the first: same model, other SRS.
    let mut other_srs = fixtures()[2][0].bundle.clone();
    other_srs.model_id = key_a().model_id();
    let report = forged_batch(bad, &other_srs, key_a(), Expectations::for_insecure_dev_keys());
    only_rejected(&report, bad, |e| matches!(e, VerifyError::ProofRejected));
}

#[test]
fn replays_are_rejected_across_calls_and_within_a_batch() {
    let cache = ReplayCache::new(16);
    let s = digits();
    let first = verify_batch(&items(key_a(), &s[..2]), Some(&cache));
    assert!(first.all_accepted());
    assert_eq!(cache.len(), 2);

    // s[1] again (already accepted), s[2] twice in this batch.
    let mut batch = items(key_a(), &s[1..3]);
    batch.push(batch[1].clone());
    let report = verify_batch(&batch, Some(&cache));
    let rejected = report.rejected();
    assert_eq!(report.accepted(), vec![1]);
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 2]);
    assert!(rejected.iter().all(|r| matches!(r.1, VerifyError::Replay { .. })));
    assert!(rejected[0].1.to_string().contains("fresh nonce"));

    // A rejected bundle does not use up its nonce: the honest one after it is accepted.
    let mut forged = s[3].bundle.clone();
    forged.outputs[0] += 1;
    let batch = [
        BatchItem {
            key: key_a(),
            bundle: &forged,
            expect: s[3].expect.clone(),
        },
        items(key_a(), &s[3..4]).remove(0),
    ];
    let report = verify_batch(&batch, Some(&cache));
    assert_eq!(report.accepted(), vec![1]);
    assert!(matches!(report.results[0], Err(VerifyError::ProofRejected)));

    // The single-bundle path shares the cache.
    assert!(matches!(
        verify_fresh(key_a(), &s[0].bundle, &s[0].expect, &cache),
        Err(VerifyError::Replay { .. })
    ));
    verify_fresh(key_a(), &s[4].bundle, &s[4].expect, &cache).expect("fresh nonce");
    assert!(matches!(
        verify_fresh(key_a(), &s[4].bundle, &s[4].expect, &cache),
        Err(VerifyError::Replay { .. })
    ));
    // Same nonce under another model id is another pair.
    let fresh = ReplayCache::new(4);
    assert!(fresh.insert(&key_a().model_id(), &s[0].bundle.nonce));
    assert!(fresh.insert(&other_layout_keys().verifier.model_id(), &s[0].bundle.nonce));
}

#[test]
fn long_mixed_batches_use_several_chains_and_still_name_the_false_proof() {
    // More items than two chains hold: the nine proofs of three keys (two SRS) repeated, interleaved, so that
    // chains mix proofs of both keys of the first SRS. No replay cache.
    let all: Vec<(&VerifierKey, &Sample)> = [key_a(), &other_layout_keys().verifier, &other_srs_keys().verifier]
        .into_iter()
        .zip(fixtures().iter())
        .flat_map(|(key, samples)| samples.iter().map(move |s| (key, s)))
        .collect();
    let n = 2 * CHAIN_LEN + 6;
    let bad = n - 3;
    let (bad_key, bad_sample) = all[bad % all.len()];
    let mut forged = bad_sample.bundle.clone();
    forged.outputs[0] += 1;
    let batch: Vec<BatchItem<'_>> = (0..n)
        .map(|i| {
            let (key, s) = all[i % all.len()];
            BatchItem {
                key,
                bundle: if i == bad { &forged } else { &s.bundle },
                expect: s.expect.clone(),
            }
        })
        .collect();
    assert!(std::ptr::eq(batch[bad].key, bad_key));
    let report = verify_batch(&batch, None);
    only_rejected(&report, bad, |e| matches!(e, VerifyError::ProofRejected));
    assert!(
        report.pairing_checks >= 3 && report.pairing_checks < n / 4,
        "{} chains",
        report.pairing_checks
    );
    assert!(report.rechecked <= CHAIN_LEN, "only the failed chain is checked again");
    let error = report.into_result().expect_err("one rejected");
    assert!(matches!(error, VerifyError::BatchRejected { rejected: 1, first, .. } if first == bad));
}
