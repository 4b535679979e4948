//! Shared fixtures for the workspace tests: the shipped digits model, compiled once per test binary, and its keys.

#![allow(dead_code)]

pub mod miner;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zkinfer_circuits::{CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{import_onnx, quantize, setup, Dataset, KeyPair, SrsSource};

/// Path of a file of a shipped model (`models/<model>/<file>`).
pub fn model_file(model: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(model)
        .join(file)
}

/// Path of a file in the shipped digits MLP directory.
pub fn digits(file: &str) -> PathBuf {
    model_file("digits-mlp", file)
}

/// The digits model quantized with its calibration set.
pub fn digits_model() -> &'static QuantizedModel {
    static MODEL: OnceLock<QuantizedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let float = import_onnx(digits("model.onnx")).expect("import");
        let calibration = Dataset::load(digits("calibration.json")).expect("calibration");
        quantize(&float, &calibration.inputs).expect("quantize")
    })
}

/// The digits test split.
pub fn digits_test() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| Dataset::load(digits("test.json")).expect("test set"))
}

/// Keys of the digits model (insecure development SRS).
pub fn digits_keys() -> &'static KeyPair {
    static KEYS: OnceLock<KeyPair> = OnceLock::new();
    KEYS.get_or_init(|| {
        setup(
            digits_model(),
            CircuitParams::for_model(digits_model()),
            &SrsSource::InsecureDev,
        )
        .expect("setup")
    })
}

/// A fixed salt and nonce.
pub fn salt_and_nonce() -> (Fr, Fr) {
    (Fr::from(0xa11ce_u64), Fr::from(0x0bad_cafe_u64))
}

/// A proof of test digit `index` of the digits model, with [`salt_and_nonce`].
pub fn prove_digit(index: usize) -> zkinfer_prover::Proven {
    let keys = digits_keys();
    let (salt, nonce) = salt_and_nonce();
    let input = &digits_test().inputs[index];
    let request = zkinfer_prover::ProveRequest { input, salt, nonce };
    zkinfer_prover::prove(digits_model(), &keys.prover, &keys.verifier, &request).expect("prove")
}

/// A fresh temporary directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A model's circuit synthesized on one input (with the fixed salt and nonce) by the mock prover.
pub struct Synthesized {
    /// The circuit (clone it to tamper with it).
    pub circuit: zkinfer_circuits::ModelCircuit,
    /// Its public inputs, with `expected` as the outputs.
    pub public: zkinfer_circuits::PublicInputs,
    /// The mock prover after synthesis (call `verify` for the full constraint check).
    pub prover: halo2_proofs::dev::MockProver<Fr>,
    /// The outputs the circuit itself computed.
    pub outputs: Vec<i64>,
    /// The commitment the circuit itself computed.
    pub commitment: Fr,
    /// The circuit size.
    pub k: u32,
}

/// Synthesizes `model`'s circuit (the planner's layout) on the int8 `input`, claiming `expected` as the public
/// outputs.
pub fn synthesize(model: &QuantizedModel, input: &[i64], expected: &[i64]) -> Synthesized {
    synthesize_with(model, CircuitParams::for_model(model), input, expected)
}

/// [`synthesize`] with the layout `params`.
pub fn synthesize_with(model: &QuantizedModel, params: CircuitParams, input: &[i64], expected: &[i64]) -> Synthesized {
    use zkinfer_circuits::{field, layout, poseidon, ModelCircuit, PublicInputs, Witness};
    let k = layout::plan(model, &params).expect("plan").k;
    let (salt, nonce) = salt_and_nonce();
    let circuit = ModelCircuit::new(
        model.clone(),
        params,
        Witness {
            salt,
            nonce,
            input: input.to_vec(),
        },
    );
    let public = PublicInputs {
        input_commitment: poseidon::commit_words(salt, input, model.input.word_bits()),
        nonce,
        outputs: expected.to_vec(),
    };
    let prover = halo2_proofs::dev::MockProver::run(k, &circuit, vec![public.to_instance()]).expect("synthesis");
    let record = circuit.last_synthesis();
    let outputs = record
        .outputs
        .iter()
        .map(|f| field::to_i64(f).expect("int8 output"))
        .collect();
    Synthesized {
        circuit,
        public,
        prover,
        outputs,
        commitment: record.commitment,
        k,
    }
}

/// Synthesizes `model` with `params` on `input`, claiming `expected`, checks that the mock prover accepts it and
/// that the circuit computed `expected` itself; then that one cell of each of `kinds` (every kind assigned but
/// padding when empty; the first, middle and last of its kind) tampered with is rejected, and so is a wrong
/// output. Returns the kinds tampered with.
pub fn assert_bit_exact(
    name: &str,
    model: &QuantizedModel,
    params: CircuitParams,
    (input, expected): (&[i64], &[i64]),
    kinds: &[zkinfer_circuits::assign::CellKind],
) -> Vec<zkinfer_circuits::assign::CellKind> {
    use zkinfer_circuits::assign::{CellKind, Tamper};
    let s = synthesize_with(model, params, input, expected);
    assert_eq!(s.prover.verify(), Ok(()), "{name}: the honest circuit is not satisfied");
    assert_eq!(s.outputs, expected, "{name}: circuit and native inference differ");
    let counts = s.circuit.assigned_cell_counts();
    let kinds: Vec<CellKind> = if kinds.is_empty() {
        // Padding is constrained by nothing, by design: a fixed zero multiplies it.
        (counts.iter())
            .filter(|(&k, &n)| n > 0 && k != CellKind::Padding)
            .map(|(&k, _)| k)
            .collect()
    } else {
        kinds.to_vec()
    };
    for &kind in &kinds {
        let n = counts.get(&kind).copied().unwrap_or(0);
        assert!(n > 0, "{name}: no {kind:?} cell assigned");
        for index in [0, n / 2, n - 1] {
            let tampered = s.circuit.clone().with_tamper(Tamper::Cell { kind, index, delta: 1 });
            assert!(
                !satisfied(&tampered, &s.public, s.k),
                "{name}: tampered {kind:?} #{index} accepted"
            );
        }
    }
    let mut wrong = s.public.clone();
    wrong.outputs[expected.len() / 2] += 1;
    assert!(!satisfied(&s.circuit, &wrong, s.k), "{name}: a wrong output accepted");
    kinds
}

/// Whether `circuit` (a tampered clone) satisfies its constraints with `public`.
pub fn satisfied(circuit: &zkinfer_circuits::ModelCircuit, public: &zkinfer_circuits::PublicInputs, k: u32) -> bool {
    halo2_proofs::dev::MockProver::run(k, circuit, vec![public.to_instance()])
        .expect("synthesis")
        .verify()
        .is_ok()
}

/// Proves `input` (quantized: `input_q`) of `model` with `keys` and [`salt_and_nonce`], checks that the bundle's
/// outputs are `expected`, that it verifies with the model id, commitment and nonce pinned, and that a bundle with
/// its first output changed does not; returns the proof and the pins. `name` labels the failures.
pub fn prove_and_check(
    name: &str,
    model: &QuantizedModel,
    keys: &KeyPair,
    input: &[f32],
    input_q: &[i64],
    expected: &[i64],
) -> (zkinfer_prover::Proven, zkinfer_verifier::Expectations) {
    use zkinfer_verifier::{verify_bundle, Expectations};
    let (salt, nonce) = salt_and_nonce();
    let request = zkinfer_prover::ProveRequest { input, salt, nonce };
    let proven = zkinfer_prover::prove(model, &keys.prover, &keys.verifier, &request).expect("prove");
    assert_eq!(proven.bundle.outputs, expected, "{name}: proven outputs");
    let expect = Expectations {
        model_id: Some(keys.verifier.model_id()),
        input_commitment: Some(zkinfer_circuits::poseidon::commit_words(
            salt,
            input_q,
            model.input.word_bits(),
        )),
        nonce: Some(nonce),
        allow_insecure_dev_srs: true,
    };
    // Verified with the key as a validator reads it from vk.bin (the verifier's own reader of halo2's key).
    let verifier = zkinfer_verifier::VerifierKey::from_bytes(&keys.verifier.to_bytes()).expect("vk.bin reads back");
    assert_reads_halo2s_key(&verifier);
    verify_bundle(&verifier, &proven.bundle, &expect).expect("accepted");
    let mut forged = proven.bundle.clone();
    forged.outputs[0] += 1;
    assert!(
        verify_bundle(&verifier, &forged, &expect).is_err(),
        "{name}: forged output accepted"
    );
    (proven, expect)
}

/// The verifier's reader of halo2's verifying key (which builds no FFT tables) gives the key halo2's own reader
/// gives: the same pinned form (domain, constraint system, commitments), transcript representation and bytes.
pub fn assert_reads_halo2s_key(key: &zkinfer_verifier::VerifierKey) {
    use halo2_proofs::{halo2curves::bn256::G1Affine, plonk::VerifyingKey, SerdeFormat};
    use zkinfer_verifier::halo2_key::{configured, read_verifying_key};
    let params = key.meta().circuit_params.clone();
    let bytes = key.vk().to_bytes(SerdeFormat::Processed);
    let ours = read_verifying_key(&bytes, configured(params.clone())).expect("the verifier's reader");
    let theirs = VerifyingKey::<G1Affine>::read::<_, zkinfer_circuits::ModelCircuit>(
        &mut &bytes[..],
        SerdeFormat::Processed,
        params,
    )
    .expect("halo2's reader");
    assert_eq!(format!("{:?}", ours.pinned()), format!("{:?}", theirs.pinned()));
    assert_eq!(ours.transcript_repr(), theirs.transcript_repr());
    assert_eq!(ours.to_bytes(SerdeFormat::Processed), bytes);
    assert!(ours.get_domain().fft_data.is_empty());
}
