//! The bodies of the fuzz targets, one function per parser or endpoint. Each takes arbitrary bytes and returns
//! normally on any input it refuses or accepts; it panics only on a bug: a panic (or abort) of the code under test,
//! or a broken invariant checked here (a forged bundle accepted, a file that parses but does not write back, an
//! HTTP error without a JSON `{"error"}` body, ...).
//!
//! The libFuzzer binaries (`fuzz/fuzz_targets/*.rs`) call these functions; so does the workspace test
//! `tests/fuzz_regressions.rs` (which includes this file with `#[path]`), over the checked-in corpus and
//! deterministic mutations of it. `examples/fuzz_seeds.rs` writes [`Target::seeds`] into `fuzz/corpus/<target>/`.
//!
//! The fixtures (the shipped digits MLP compiled, its keys from the insecure development SRS, a genuine proof,
//! an in-process miner) are built once per process, on first use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use halo2_proofs::poly::commitment::Params;
use halo2_proofs::SerdeFormat;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use zkinfer_circuits::{layout, CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::keys::{prover_key_from_bytes, PK_FILE};
use zkinfer_prover::model_file::{model_from_bytes, model_to_bytes};
use zkinfer_prover::srs::{insecure_dev_srs, raw_params_len, srs_from_bytes, SRS_VERSION};
use zkinfer_prover::{
    import_onnx, import_onnx_bytes, infer, prove, quantize, setup, write_keys, Dataset, KeyPair, ProveRequest,
    SrsSource,
};
use zkinfer_service::models::ModelRegistry;
use zkinfer_service::queue::JobQueue;
use zkinfer_service::state::AppState;
use zkinfer_service::store::JobStore;
use zkinfer_verifier::decode::{decode_exact, encode};
use zkinfer_verifier::envelope::{self, FileKind};
use zkinfer_verifier::{model_id_of_file, verify_bundle, Expectations, ModelMeta, ProofBundle, VerifierKey};

/// One fuzz target.
pub struct Target {
    /// Name of the libFuzzer binary and of its corpus directory `fuzz/corpus/<name>/`.
    pub name: &'static str,
    /// The body: runs the code under test on one input.
    pub run: fn(&[u8]),
    /// Valid (and a few invalid) inputs to start from, by file name. Names starting with `generated-` are large
    /// and not checked in (`scripts/fuzz` writes them).
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
    /// Builds the fixtures the body uses, so that the first input is not charged for them.
    pub warm_up: fn(),
    /// How many mutated inputs the workspace test runs (fewer for the slow targets).
    pub regression_mutations: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "zkm",
        run: zkm,
        seeds: zkm_seeds,
        warm_up: no_fixture,
        regression_mutations: 3000,
    },
    Target {
        name: "pk",
        run: pk,
        seeds: pk_seeds,
        warm_up: warm_up_model,
        regression_mutations: 40,
    },
    Target {
        name: "vk",
        run: vk,
        seeds: vk_seeds,
        warm_up: warm_up_digits,
        regression_mutations: 2000,
    },
    Target {
        name: "bundle",
        run: bundle,
        seeds: bundle_seeds,
        warm_up: warm_up_digits,
        regression_mutations: 1500,
    },
    Target {
        name: "srs",
        run: srs,
        seeds: srs_seeds,
        warm_up: no_fixture,
        regression_mutations: 2000,
    },
    Target {
        name: "input_json",
        run: input_json,
        seeds: input_json_seeds,
        warm_up: no_fixture,
        regression_mutations: 3000,
    },
    Target {
        name: "onnx",
        run: onnx,
        seeds: onnx_seeds,
        warm_up: no_fixture,
        regression_mutations: 2000,
    },
    Target {
        name: "http",
        run: http,
        seeds: http_seeds,
        warm_up: warm_up_http,
        regression_mutations: 3000,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target `{name}`"))
}

/// Builds the fixtures of the target called `name` (the libFuzzer binaries call it once, before the first input).
pub fn warm_up(name: &str) {
    (target(name).warm_up)()
}

fn no_fixture() {}

fn warm_up_model() {
    digits_model();
}

fn warm_up_digits() {
    digits();
    genuine_bundles();
}

fn warm_up_http() {
    miner();
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

/// The repository's root directory (this file is compiled from `fuzz/` and from the root package).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("models").is_dir() {
        here.to_path_buf()
    } else {
        here.parent().expect("fuzz/ has a parent").to_path_buf()
    }
}

/// The checked-in corpus of a target: `fuzz/corpus/<name>/`.
pub fn corpus_dir(name: &str) -> PathBuf {
    repo_root().join("fuzz").join("corpus").join(name)
}

fn shipped(model: &str, file: &str) -> PathBuf {
    repo_root().join("models").join(model).join(file)
}

/// A shipped model (`models/<name>/model.onnx`) quantized with its calibration set, as `zkinfer compile` does.
fn compile_shipped(name: &str) -> QuantizedModel {
    let float = import_onnx(shipped(name, "model.onnx")).expect("import a shipped model");
    let calibration = Dataset::load(shipped(name, "calibration.json")).expect("calibration set");
    quantize(&float, &calibration.inputs).expect("quantize a shipped model")
}

/// The shipped digits MLP, compiled.
pub fn digits_model() -> &'static QuantizedModel {
    static MODEL: OnceLock<QuantizedModel> = OnceLock::new();
    MODEL.get_or_init(|| compile_shipped("digits-mlp"))
}

/// The digits MLP's keys (insecure development SRS) and a genuine proof made with them.
pub struct Digits {
    /// The proving and verifying keys.
    pub keys: KeyPair,
    /// A bundle proven in this process for [`digits_input`] with the fixed salt and nonce.
    pub bundle: ProofBundle,
}

/// The input the genuine bundle proves (`models/digits-mlp/input.json`).
pub fn digits_input() -> Vec<f32> {
    let input = Dataset::load(shipped("digits-mlp", "input.json")).expect("input.json");
    input.inputs[0].clone()
}

/// Keys and a genuine bundle of the digits MLP, made once per process.
pub fn digits() -> &'static Digits {
    static DIGITS: OnceLock<Digits> = OnceLock::new();
    DIGITS.get_or_init(|| {
        let model = digits_model();
        let keys = setup(model, CircuitParams::for_model(model), &SrsSource::InsecureDev).expect("setup");
        let input = digits_input();
        let request = ProveRequest {
            input: &input,
            salt: Fr::from(0xa11ce_u64),
            nonce: Fr::from(0x0bad_cafe_u64),
        };
        let bundle = prove(model, &keys.prover, &keys.verifier, &request)
            .expect("prove")
            .bundle;
        Digits { keys, bundle }
    })
}

/// The bundles the bundle target may see accepted: the one proven in this process and the checked-in seeds
/// (`fuzz/corpus/bundle/seed-*`, proven by the seed generator with the same deterministic keys). Anything else
/// that verifies is a forgery.
pub fn genuine_bundles() -> &'static [ProofBundle] {
    static GENUINE: OnceLock<Vec<ProofBundle>> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let mut genuine = vec![digits().bundle.clone()];
        if let Ok(entries) = std::fs::read_dir(corpus_dir("bundle")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("seed-") {
                    if let Ok(b) = std::fs::read(entry.path())
                        .map_err(drop)
                        .and_then(|b| ProofBundle::from_any(&b).map_err(drop))
                    {
                        genuine.push(b);
                    }
                }
            }
        }
        genuine
    })
}

// ---------------------------------------------------------------------------------------------------------------
// 1. `.zkm` model files

/// Largest model (sum of the layers' outputs) the zkm and onnx targets run the planner and the inference on.
const MAX_FUZZ_ACTIVATIONS: usize = 1 << 16;

/// `model_from_bytes`; a model that loads must write back to a file that loads to the same bytes, and the
/// planner and the integer inference must take it without panicking.
pub fn zkm(data: &[u8]) {
    let label = Path::new("fuzz.zkm");
    let Ok(model) = model_from_bytes(data, label) else {
        return;
    };
    let bytes = model_to_bytes(&model).expect("a model that loads writes back");
    let again = model_from_bytes(&bytes, label).expect("a written model loads");
    assert_eq!(
        model_to_bytes(&again).expect("writes back"),
        bytes,
        "a model changes when written and read again"
    );
    exercise_model(&model);
}

/// Runs the planner and the integer inference (on a zero input) on a validated model of moderate size.
fn exercise_model(model: &QuantizedModel) {
    let activations = model
        .layers
        .iter()
        .try_fold(model.input_len(), |sum, l| sum.checked_add(l.output_len()));
    if activations.is_none_or(|n| n > MAX_FUZZ_ACTIVATIONS) {
        return;
    }
    let _ = layout::plan(model, &CircuitParams::with_chips_of(model));
    let outputs = infer(model, &vec![0; model.input_len()]).expect("a validated model runs on a zero input");
    assert_eq!(outputs.len(), model.output_len());
}

fn zkm_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = ["digits-mlp", "digits-cnn", "digits-resnet"]
        .iter()
        .map(|name| {
            let bytes = model_to_bytes(&compile_shipped(name)).expect("model file");
            (format!("seed-{name}.zkm"), bytes)
        })
        .collect();
    let squared = model_to_bytes(&squared_logits()).expect("model file");
    seeds.push(("seed-digits-mlp-squared.zkm".into(), squared));
    seeds
}

/// The digits MLP with an elementwise product after it (its logits squared, 16-bit outputs), so that the corpus
/// holds a `Mul` layer for the fuzzer to mutate.
fn squared_logits() -> QuantizedModel {
    use zkinfer_circuits::model::{Activation, Layer, Mul, Op, Source};
    let mut model = compile_shipped("digits-mlp");
    let (logits, len) = (model.layers.len(), model.output_len());
    let scale = model.output_scale();
    model.layers.push(Layer {
        name: "square".into(),
        op_type: "Mul".into(),
        output_shape: vec![len],
        output_scale: scale * scale * 64.0,
        op: Op::Mul(Mul {
            operands: (0..len).map(|index| [Source { tensor: logits, index }; 2]).collect(),
            multiplier: 1 << 18,
            shift: 24,
            activation: Activation::Identity,
            output_bits: 16,
        }),
    });
    model
}

// ---------------------------------------------------------------------------------------------------------------
// 2. `pk.bin`

/// The layout of `pk.bin`'s payload (`prover/src/keys.rs`), to recompute the checksum of a mutated file.
#[derive(Serialize, Deserialize)]
struct PkFileLayout {
    meta: ModelMeta,
    model_digest: [u8; 32],
    checksum: [u8; 32],
    pk: Vec<u8>,
    srs: Vec<u8>,
}

/// `pk.bin`'s checksum of the halo2 key and the SRS.
fn pk_checksum(parts: &[&[u8]]) -> [u8; 32] {
    use blake2::{digest::consts::U32, Blake2b, Digest};
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// `data` with the checksum recomputed, when it has `pk.bin`'s layout (so mutations reach halo2's parser).
fn with_valid_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let version = zkinfer_prover::keys::PROVING_KEY_VERSION;
    let payload = envelope::open(FileKind::ProvingKey, version, data).ok()?;
    let mut file: PkFileLayout = decode_exact(payload).ok()?;
    let checksum = pk_checksum(&[&file.pk, &file.srs]);
    if checksum == file.checksum {
        return None;
    }
    file.checksum = checksum;
    Some(envelope::seal(FileKind::ProvingKey, version, &encode(&file)))
}

/// `prover_key_from_bytes` against the digits model, on the input and on the input with its checksum fixed.
pub fn pk(data: &[u8]) {
    let model = digits_model();
    let _ = prover_key_from_bytes(data, model);
    if let Some(fixed) = with_valid_checksum(data) {
        let _ = prover_key_from_bytes(&fixed, model);
    }
}

/// The genuine `pk.bin` and, as regression inputs, variants of it with a valid checksum that made halo2's reader
/// panic or allocate what a length field claims (BENCHMARKS.md, "Fuzzing"). They are 2.3 MB each, so they are
/// generated rather than checked in.
fn pk_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = scratch_dir("pk-seed");
    write_keys(&digits().keys, &dir).expect("write keys");
    let genuine = std::fs::read(dir.join(PK_FILE)).expect("pk.bin");
    let _ = std::fs::remove_dir_all(&dir);
    let version = zkinfer_prover::keys::PROVING_KEY_VERSION;
    let payload = envelope::open(FileKind::ProvingKey, version, &genuine).expect("genuine pk.bin");
    let file: PkFileLayout = decode_exact(payload).expect("pk.bin layout");
    // `l_0` starts right after halo2's verifying key: its length (u32, big-endian), then its coefficients.
    let l0 = digits().keys.prover.pk.get_vk().to_bytes(SerdeFormat::RawBytes).len();
    let variant = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut pk = file.pk.clone();
        edit(&mut pk);
        let checksum = pk_checksum(&[&pk, &file.srs]);
        let variant = PkFileLayout {
            meta: file.meta.clone(),
            model_digest: file.model_digest,
            checksum,
            pk,
            srs: file.srs.clone(),
        };
        envelope::seal(FileKind::ProvingKey, version, &encode(&variant))
    };
    vec![
        ("generated-digits-pk.bin".into(), genuine.clone()),
        (
            "generated-regression-pk-not-a-field-element.bin".into(),
            variant(&|pk| pk[l0 + 4..l0 + 36].fill(0xff)),
        ),
        (
            "generated-regression-pk-polynomial-length.bin".into(),
            variant(&|pk| pk[l0..l0 + 4].copy_from_slice(&u32::MAX.to_be_bytes())),
        ),
        (
            "generated-regression-pk-truncated.bin".into(),
            variant(&|pk| pk.truncate(l0 + 100)),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// 3. `vk.bin`

/// `VerifierKey::from_bytes` and `from_pinned_bytes` (pinned to the input's own id, so the parser runs). A key
/// that loads writes back to the same bytes, and checking the genuine proof with it never panics and succeeds only
/// when it holds the genuine halo2 key and SRS points.
pub fn vk(data: &[u8]) {
    let parsed = VerifierKey::from_bytes(data);
    let pinned = VerifierKey::from_pinned_bytes(data, &model_id_of_file(data));
    assert_eq!(
        parsed.is_ok(),
        pinned.is_ok(),
        "pinning to the file's own id changed the verdict"
    );
    let Ok(key) = parsed else {
        return;
    };
    assert_eq!(key.to_bytes(), data, "a key file that loads is not what it writes");
    assert_eq!(key.model_id(), model_id_of_file(data));
    let genuine = &digits().keys.verifier;
    let mut bundle = digits().bundle.clone();
    bundle.model_id = key.model_id();
    if verify_bundle(&key, &bundle, &Expectations::for_insecure_dev_keys()).is_ok() {
        let halo2_key = |k: &VerifierKey| k.vk().to_bytes(SerdeFormat::Processed);
        assert!(
            halo2_key(&key) == halo2_key(genuine) && key.srs_points().to_bytes() == genuine.srs_points().to_bytes(),
            "a verifying key with another halo2 key or SRS accepted the genuine proof"
        );
    }
}

fn vk_seeds() -> Vec<(String, Vec<u8>)> {
    vec![("seed-digits-vk.bin".into(), digits().keys.verifier.to_bytes())]
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Proof bundles

/// `ProofBundle::from_bytes`, `from_json` and `from_any`; every bundle that decodes re-encodes to itself and is
/// checked against the genuine digits key, which must accept nothing but the genuine bundles.
pub fn bundle(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    let decoded = [
        ProofBundle::from_bytes(data).ok(),
        text.and_then(|t| ProofBundle::from_json(t).ok()),
        ProofBundle::from_any(data).ok(),
    ];
    let key = &digits().keys.verifier;
    for b in decoded.into_iter().flatten() {
        assert_eq!(
            ProofBundle::from_bytes(&b.to_bytes()).ok().as_ref(),
            Some(&b),
            "binary round trip"
        );
        if b.public_inputs().is_ok() {
            assert_eq!(
                ProofBundle::from_json(&b.to_json()).ok().as_ref(),
                Some(&b),
                "JSON round trip"
            );
        }
        check_verdict(key, &b);
        if b.model_id != key.model_id() {
            // The same bundle claiming the key's model, so its proof reaches the verifier.
            let mut relabelled = b.clone();
            relabelled.model_id = key.model_id();
            check_verdict(key, &relabelled);
        }
    }
}

fn check_verdict(key: &VerifierKey, b: &ProofBundle) {
    if let Ok(verified) = verify_bundle(key, b, &Expectations::for_insecure_dev_keys()) {
        assert!(
            genuine_bundles().contains(b),
            "a bundle that is not a genuine one was accepted: {}",
            b.to_json()
        );
        assert_eq!(verified.outputs, b.outputs);
    }
}

fn bundle_seeds() -> Vec<(String, Vec<u8>)> {
    let genuine = &digits().bundle;
    let binary = genuine.to_bytes();
    let mut other_nonce = genuine.clone();
    other_nonce.nonce[0] ^= 1;
    vec![
        ("seed-digits.bundle".into(), binary.clone()),
        ("seed-digits.bundle.json".into(), genuine.to_json().into_bytes()),
        ("truncated.bundle".into(), binary[..binary.len() - 100].to_vec()),
        ("other-nonce.bundle".into(), other_nonce.to_bytes()),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// 5. SRS files

/// `srs_from_bytes(data[1..], k)` with `k = data[0] % 6`: parameters that load have `2^k` rows and usable points.
pub fn srs(data: &[u8]) {
    let Some((&first, file)) = data.split_first() else {
        return;
    };
    let k = u32::from(first % 6);
    if let Ok(params) = srs_from_bytes(file, k, Path::new("fuzz.srs")) {
        assert_eq!(params.k(), k);
        zkinfer_verifier::SrsPoints::of(&params)
            .check()
            .expect("loaded parameters have usable points");
    }
}

fn srs_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![];
    for file_k in 1..=3u32 {
        let mut raw = Vec::new();
        insecure_dev_srs(file_k)
            .write_custom(&mut raw, SerdeFormat::RawBytes)
            .expect("write parameters");
        assert_eq!(raw.len() as u64, raw_params_len(file_k));
        let sealed = envelope::seal(FileKind::Srs, SRS_VERSION, &raw);
        let k = (file_k - 1) as u8;
        seeds.push((format!("seed-k{file_k}.srs"), [&[k][..], &sealed].concat()));
        seeds.push((format!("seed-k{file_k}-raw.params"), [&[k + 1][..], &raw].concat()));
    }
    seeds
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Input JSON

/// `Dataset::from_json`: a dataset that parses passes its own checks and survives a round trip through JSON.
pub fn input_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(dataset) = Dataset::from_json(&text) else {
        return;
    };
    dataset.check().expect("a parsed dataset passes its checks");
    let json = serde_json::json!({ "input_data": dataset.inputs, "labels": dataset.labels }).to_string();
    assert_eq!(Dataset::from_json(&json).expect("written dataset parses"), dataset);
}

fn input_json_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = ["digits-mlp", "digits-cnn"]
        .iter()
        .map(|m| {
            let text = std::fs::read(shipped(m, "input.json")).expect("input.json");
            (format!("seed-{m}-input.json"), text)
        })
        .collect();
    seeds.push((
        "seed-labelled.json".into(),
        br#"{"input_data": [[0.5, -1e3, 2.5e-7], [1, 2, 3]], "labels": [0, 9]}"#.to_vec(),
    ));
    seeds.push((
        "bad-label.json".into(),
        br#"{"input_data": [[1]], "labels": [-1]}"#.to_vec(),
    ));
    seeds
}

// ---------------------------------------------------------------------------------------------------------------
// 7. ONNX import

/// `import_onnx_bytes`; a model that imports is quantized (one calibration sample), and a quantized model must
/// pass the `.zkm` checks and run.
pub fn onnx(data: &[u8]) {
    let Ok(float) = import_onnx_bytes(data, "fuzz") else {
        return;
    };
    let input_len: usize = float.input_shape.iter().product();
    let activations = float
        .nodes
        .iter()
        .try_fold(input_len, |sum, n| sum.checked_add(n.output_shape.iter().product()));
    if activations.is_none_or(|n| n > MAX_FUZZ_ACTIVATIONS) {
        return;
    }
    let calibration = vec![(0..input_len).map(|i| (i % 7) as f32 / 7.0 - 0.5).collect::<Vec<f32>>()];
    let Ok(model) = quantize(&float, &calibration) else {
        return;
    };
    model_to_bytes(&model).expect("a quantized model passes the model file's checks");
    exercise_model(&model);
}

fn onnx_seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("digits-mlp", "model.onnx"),
        ("digits-mlp", "model-matmul.onnx"),
        ("digits-cnn", "model.onnx"),
        ("digits-resnet", "model.onnx"),
        ("cancer-mlp", "model.onnx"),
    ]
    .iter()
    .filter_map(|(m, f)| {
        let bytes = std::fs::read(shipped(m, f)).ok()?;
        Some((format!("seed-{m}-{f}"), bytes))
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// 8. The miner's HTTP API

/// The in-process miner: the digits model served from an in-memory job store, no prover workers (proof jobs stay
/// queued), driven through the router with `tower::ServiceExt::oneshot` on a current-thread runtime.
struct Miner {
    runtime: tokio::runtime::Runtime,
    state: Arc<AppState>,
    model_id: String,
    /// The last job answered without a proof (it is done, so `GET /v1/jobs/{id}?wait_ms=` never waits on it).
    done_job: Mutex<Option<String>>,
}

/// Largest request body of the in-process miner.
const MAX_BODY_BYTES: usize = 16 * 1024;

fn miner() -> &'static Miner {
    static MINER: OnceLock<Miner> = OnceLock::new();
    MINER.get_or_init(|| {
        let dir = scratch_dir("miner");
        let zkm = dir.join("model.zkm");
        let keys = dir.join("keys");
        zkinfer_prover::save_model(&zkm, digits_model()).expect("save model");
        write_keys(&digits().keys, &keys).expect("write keys");
        let models = ModelRegistry::load(&[(zkm, keys)], None).expect("load the served model");
        let _ = std::fs::remove_dir_all(&dir);
        let store = JobStore::open(Path::new(":memory:")).expect("in-memory job store");
        let state = Arc::new(AppState::new(
            models,
            store,
            JobQueue::new(4),
            1,
            MAX_BODY_BYTES,
            Duration::ZERO,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Miner {
            runtime,
            state,
            model_id: hex::encode(digits().keys.verifier.model_id()),
            done_job: Mutex::new(None),
        }
    })
}

/// Percent-encodes every byte that is not unreserved in a URI path segment.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One request from the input: `data[0] % 5` picks the route, the bytes up to the first newline are its parameter
/// (a content type, a model id, a job id, a query or a path) and the rest is the body.
///
/// | `data[0] % 5` | request |
/// |---|---|
/// | 0 | `POST /v1/models/{served model}/infer`, `Content-Type: <parameter>` (none if empty or invalid), body |
/// | 1 | `POST /v1/models/{parameter, percent-encoded}/infer`, `Content-Type: application/json`, body |
/// | 2 | `GET /v1/jobs/{parameter, percent-encoded}` |
/// | 3 | `GET /v1/jobs/{last done job}<parameter>` (raw: `/bundle`, `?wait_ms=...`), if it forms a URI |
/// | 4 | `<body as method> <parameter as path>`, if they form a request |
pub fn http(data: &[u8]) {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let (parameter, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let miner = miner();
    let request = match route % 5 {
        0 => {
            let mut r = Request::post(format!("/v1/models/{}/infer", miner.model_id));
            if let Ok(value) = HeaderValue::from_bytes(parameter) {
                if !parameter.is_empty() {
                    r = r.header(header::CONTENT_TYPE, value);
                }
            }
            r.body(Body::from(body.to_vec()))
        }
        1 => Request::post(format!("/v1/models/{}/infer", percent_encode(parameter)))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_vec())),
        2 => Request::get(format!("/v1/jobs/{}", percent_encode(parameter))).body(Body::empty()),
        3 => {
            let Some(job) = miner.done_job.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
                return;
            };
            let Ok(suffix) = std::str::from_utf8(parameter) else {
                return;
            };
            Request::get(format!("/v1/jobs/{job}{suffix}")).body(Body::empty())
        }
        _ => {
            let Ok(method) = Method::from_bytes(body) else {
                return;
            };
            let Ok(path) = std::str::from_utf8(parameter) else {
                return;
            };
            Request::builder().method(method).uri(path).body(Body::empty())
        }
    };
    let Ok(request) = request else {
        return;
    };
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let router = zkinfer_service::server::router(miner.state.clone());
    let (status, content_type, body) = miner.runtime.block_on(async {
        let response = router.oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the answer");
        (status, content_type, body)
    });
    let what = format!("{method} {uri} answered {status}");
    assert!(!status.is_server_error(), "{what}: {}", String::from_utf8_lossy(&body));
    if status.is_client_error() && method != Method::HEAD {
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{what} without a JSON body"
        );
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            error.get("error").is_some_and(serde_json::Value::is_string),
            "{what}: {error} has no \"error\""
        );
    }
    if method == Method::POST && status.is_success() {
        let job: zkinfer_service::JobView =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: not a job ({e})"));
        if status == StatusCode::OK {
            assert_eq!(job.status, zkinfer_service::JobStatus::Done, "{what}");
            *miner.done_job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job.job_id);
        }
    }
}

/// An HTTP fuzz input: route selector, parameter line, body.
fn http_input(route: u8, parameter: &str, body: &str) -> Vec<u8> {
    [&[route][..], parameter.as_bytes(), b"\n", body.as_bytes()].concat()
}

fn http_seeds() -> Vec<(String, Vec<u8>)> {
    let input = digits_input();
    let values = |v: &[f32]| serde_json::to_string(v).expect("json");
    let request = |salt: &str, nonce: &str, proof: bool| {
        format!(
            r#"{{"input_data": [{}], "salt": "{salt}", "nonce": "{nonce}", "proof": {proof}}}"#,
            values(&input)
        )
    };
    let json = "application/json";
    vec![
        (
            "seed-infer.http".into(),
            http_input(0, json, &request("0x1234", "0x5678", true)),
        ),
        (
            "seed-infer-no-proof.http".into(),
            http_input(0, json, &request("0xa1", "0x77", false)),
        ),
        ("seed-job-bundle.http".into(), http_input(3, "/bundle", "")),
        ("seed-job-wait.http".into(), http_input(3, "?wait_ms=10", "")),
        (
            "short-input.http".into(),
            http_input(0, json, r#"{"input_data": [[1.0, 2.0]], "salt": "1", "nonce": "2"}"#),
        ),
        (
            "extra-field.http".into(),
            http_input(0, json, r#"{"input_data": [[1]], "salt": "1", "nonce": "2", "x": 1}"#),
        ),
        ("bad-hex.http".into(), http_input(0, json, &request("0xzz", "", true))),
        (
            "broken-json.http".into(),
            http_input(0, json, r#"{"input_data": [[1.0,"#),
        ),
        (
            "text-plain.http".into(),
            http_input(0, "text/plain", &request("0x1", "0x2", true)),
        ),
        (
            "no-content-type.http".into(),
            http_input(0, "", &request("0x1", "0x3", false)),
        ),
        (
            "unknown-model.http".into(),
            http_input(1, "00ff", &request("0x1", "0x4", false)),
        ),
        (
            "unknown-job.http".into(),
            http_input(2, "0123456789abcdef0123456789abcdef", ""),
        ),
        ("models.http".into(), http_input(4, "/v1/models", "GET")),
        (
            "vk.http".into(),
            http_input(4, &format!("/v1/models/{}/vk", miner_model_id()), "GET"),
        ),
        ("metrics.http".into(), http_input(4, "/metrics", "GET")),
        ("wrong-method.http".into(), http_input(4, "/v1/models", "DELETE")),
    ]
}

fn miner_model_id() -> String {
    hex::encode(digits().keys.verifier.model_id())
}

// ---------------------------------------------------------------------------------------------------------------

/// A fresh scratch directory under the system's temporary directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zkinfer-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
