//! Proving on a GPU (wgpu; Mesa's software Vulkan driver in CI): a proof made with the GPU verifies with the
//! ordinary verifier, every commitment the GPU computes in a real proof equals the CPU's, the proof starts with the
//! same bytes as the CPU's from the same randomness, and the GPU integer inference equals the CPU's on every
//! shipped model.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::{Arc, OnceLock};

use zkinfer_circuits::{poseidon, ModelCircuit, PublicInputs, QuantizedModel, Witness};
use zkinfer_prover::{
    import_onnx, infer_trace, prove, quantize, Dataset, GpuBackend, IntegerEngine, KeyPair, ProveRequest, ProverKey,
};
use zkinfer_verifier::{verify_bundle, Expectations};

/// A backend on the best adapter (lavapipe here) that puts every MSM on the GPU, or `None` after a loud skip.
fn backend() -> Option<Arc<GpuBackend>> {
    static BACKEND: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let context = zkinfer_gpu::context_or_skip("gpu_proof")?;
            Some(Arc::new(GpuBackend::on(context, 1).expect("kernels build")))
        })
        .clone()
}

/// The digits keys with the prover on the GPU.
fn gpu_keys(backend: &Arc<GpuBackend>) -> (ProverKey, &'static KeyPair) {
    let keys = common::digits_keys();
    let mut prover = keys.prover.clone();
    prover.use_gpu(backend.clone()).expect("bases upload");
    (prover, keys)
}

#[test]
fn a_proof_made_on_the_gpu_verifies_with_the_ordinary_verifier() {
    let Some(backend) = backend() else { return };
    let (prover, keys) = gpu_keys(&backend);
    let (salt, nonce) = common::salt_and_nonce();
    let input = &common::digits_test().inputs[3];
    let proven = prove(
        common::digits_model(),
        &prover,
        &keys.verifier,
        &ProveRequest { input, salt, nonce },
    )
    .expect("prove on the GPU");
    assert!(
        !proven.cpu_retry,
        "the GPU's proof did not verify; the CPU had to prove again"
    );
    let counts = prover.srs.gpu().expect("attached").counts();
    assert!(counts.gpu >= 10, "expected the commitments on the GPU, got {counts:?}");
    assert_eq!((counts.small, counts.failed), (0, 0), "{counts:?}");
    let expect = Expectations {
        model_id: Some(keys.verifier.model_id()),
        input_commitment: Some(poseidon::commit_input(salt, &proven.input_q)),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    };
    let verified = verify_bundle(&keys.verifier, &proven.bundle, &expect).expect("the verifier accepts it");
    assert_eq!(verified.outputs, proven.bundle.outputs);
    let cpu = prove(
        common::digits_model(),
        &keys.prover,
        &keys.verifier,
        &ProveRequest { input, salt, nonce },
    )
    .expect("prove on the CPU");
    assert_eq!(proven.bundle.outputs, cpu.bundle.outputs);
    assert_eq!(proven.bundle.input_commitment, cpu.bundle.input_commitment);
}

#[test]
fn a_gpu_computing_wrong_commitments_costs_time_not_the_request() {
    let Some(backend) = backend() else { return };
    let (prover, keys) = gpu_keys(&backend);
    let committer = prover.srs.gpu().expect("attached");
    committer.set_fault_injection(true);
    let (salt, nonce) = common::salt_and_nonce();
    let input = &common::digits_test().inputs[5];
    let proven = prove(
        common::digits_model(),
        &prover,
        &keys.verifier,
        &ProveRequest { input, salt, nonce },
    );
    committer.set_fault_injection(false);
    let proven = proven.expect("the CPU proves again");
    assert!(proven.cpu_retry, "the faulty GPU proof was not noticed");
    let expect = Expectations {
        model_id: Some(keys.verifier.model_id()),
        input_commitment: Some(poseidon::commit_input(salt, &proven.input_q)),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    };
    verify_bundle(&keys.verifier, &proven.bundle, &expect).expect("the CPU's proof verifies");
}

/// A seeded proof of the digits model on test image 0 with `prover`'s parameters.
fn seeded_proof(prover: &ProverKey, keys: &KeyPair) -> Vec<u8> {
    use halo2_proofs::{
        halo2curves::bn256::G1Affine,
        plonk::create_proof,
        transcript::{Blake2bWrite, Challenge255, TranscriptWriterBuffer},
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
    use zkinfer_prover::commit::{SmallValueKzg, SmallValueShplonk};

    let model = common::digits_model();
    let (salt, nonce) = common::salt_and_nonce();
    let input = zkinfer_prover::quantize_input(model, &common::digits_test().inputs[0]).expect("quantize");
    let outputs = zkinfer_prover::infer(model, &input).expect("infer");
    let public = PublicInputs {
        input_commitment: poseidon::commit_input(salt, &input),
        nonce,
        outputs,
    };
    let instance = public.to_instance();
    let circuit = ModelCircuit::new(
        model.clone(),
        prover.meta.circuit_params.clone(),
        Witness { salt, nonce, input },
    );
    let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
    create_proof::<SmallValueKzg, SmallValueShplonk<'_>, _, _, _, _>(
        &prover.srs,
        &prover.pk,
        &[circuit],
        &[&[&instance]],
        ChaCha20Rng::seed_from_u64(11),
        &mut transcript,
    )
    .expect("proof");
    let proof = transcript.finalize();
    zkinfer_verifier::verify::check_proof(&keys.verifier, &instance, &proof).expect("verifies");
    proof
}

#[test]
fn every_commitment_of_a_gpu_proof_equals_the_cpus_and_the_bytes_agree() {
    let Some(backend) = backend() else { return };
    let (prover, keys) = gpu_keys(&backend);
    let committer = prover.srs.gpu().expect("attached");
    // Cross-checked: every GPU MSM of a whole proof (advice, lookup, permutation, vanishing and quotient
    // commitments) is recomputed on the CPU and compared.
    committer.set_cross_check(true);
    seeded_proof(&prover, keys);
    committer.set_cross_check(false);
    let counts = committer.counts();
    assert!(counts.gpu >= 10, "{counts:?}");
    assert_eq!((counts.mismatched, counts.failed), (0, 0), "{counts:?}");

    // Without cross-checking, the GPU's commitments go into the proof: from the same randomness the proof opens
    // with the same advice commitments as the CPU's (halo2 orders the lookup arguments after them through a
    // HashMap, so later bytes differ between any two runs, CPU or GPU).
    let gpu = seeded_proof(&prover, keys);
    let cpu = seeded_proof(&keys.prover, keys);
    let advice = keys.prover.pk.get_vk().cs().num_advice_columns() * 32;
    assert_eq!(gpu[..advice], cpu[..advice], "advice commitments differ");
    assert_eq!(gpu.len(), cpu.len());
}

/// A shipped model quantized with its calibration set.
fn shipped(name: &str) -> (QuantizedModel, Dataset) {
    let float = import_onnx(common::model_file(name, "model.onnx")).expect("import");
    let calibration = Dataset::load(common::model_file(name, "calibration.json")).expect("calibration");
    let test = Dataset::load(common::model_file(name, "test.json")).expect("test set");
    (quantize(&float, &calibration.inputs).expect("quantize"), test)
}

#[test]
fn gpu_inference_is_bit_identical_on_every_shipped_model() {
    let Some(backend) = backend() else { return };
    for (name, samples) in [("digits-mlp", 360), ("digits-cnn", 60), ("digits-resnet", 12)] {
        let (model, test) = shipped(name);
        let inputs: Vec<Vec<i64>> = test.inputs[..samples]
            .iter()
            .map(|x| zkinfer_prover::quantize_input(&model, x).expect("quantize input"))
            .collect();
        let cpu = IntegerEngine::new(&model).expect("engine");
        let gpu = IntegerEngine::on_gpu(&model, backend.clone()).expect("GPU engine");
        assert!(gpu.is_on_gpu());
        assert_eq!(
            gpu.infer_batch(&inputs).expect("GPU batch"),
            cpu.infer_batch(&inputs).expect("CPU batch"),
            "{name}: outputs"
        );
        // Every layer's accumulators, not just the outputs.
        for input in inputs.iter().take(3) {
            assert_eq!(
                gpu.trace(input).expect("GPU trace"),
                infer_trace(&model, input).expect("CPU trace"),
                "{name}: layer trace"
            );
        }
    }
}
