//! Criterion benchmarks of the digits MLP: proving, verifying, native integer inference and keygen.
//!
//! Everything that is not measured (ONNX import, calibration, quantization, keygen for the other groups, the proof
//! that `verify` checks) happens once, before the measured loops.
//!
//! `cargo bench --bench prove_verify` runs the benchmarks; `cargo bench --bench prove_verify -- --test` runs each
//! one once as a quick check. BENCHMARKS.md records the latest figures.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use zkinfer_circuits::{layout, poseidon, CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{import_onnx, infer, quantize, quantize_input, setup, Dataset, KeyPair, ProveRequest, SrsSource};
use zkinfer_verifier::{verify_bundle, Expectations};

/// The shipped model directory.
fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits-mlp")
}

/// The state every group shares: the quantized model, its keys and one test input.
struct Fixture {
    model: QuantizedModel,
    keys: KeyPair,
    input: Vec<f32>,
}

fn fixture() -> Fixture {
    let dir = model_dir();
    let float = import_onnx(dir.join("model.onnx")).expect("importing model.onnx");
    let calibration = Dataset::load(dir.join("calibration.json")).expect("loading calibration.json");
    let model = quantize(&float, &calibration.inputs).expect("quantizing the model");
    let test = Dataset::load(dir.join("test.json")).expect("loading test.json");
    let input = test.inputs.first().expect("test.json has no samples").clone();

    let params = CircuitParams::default();
    let plan = layout::plan(&model, params).expect("laying out the circuit");
    eprintln!(
        "digits-mlp cost model: k = {} ({} rows); rows used: poseidon {}, dense {}, requantize {}, range {}, \
         table {}, blinding {} (max {}); {} advice / {} fixed columns, {} lookups, degree {}",
        plan.k,
        1u64 << plan.k,
        plan.poseidon_rows,
        plan.dense_rows,
        plan.requant_rows,
        plan.range_rows,
        plan.table_rows,
        plan.blinding_rows,
        plan.used_rows(),
        plan.advice_columns,
        plan.fixed_columns,
        plan.lookups,
        plan.degree,
    );
    let keys = setup(&model, params, &SrsSource::InsecureDev).expect("keygen");
    Fixture { model, keys, input }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let (salt, nonce) = (Fr::from(0x5a17u64), Fr::from(0x1234_5678u64));
    let request = ProveRequest {
        input: &f.input,
        salt,
        nonce,
    };

    // One proof outside the loops, for the verify group.
    let proven =
        zkinfer_prover::prove(&f.model, &f.keys.prover, &f.keys.verifier, &request).expect("proving the test sample");
    let expect = Expectations {
        model_id: Some(f.keys.verifier.model_id()),
        input_commitment: Some(poseidon::commit_input(salt, &proven.input_q)),
        nonce: Some(nonce),
    };
    verify_bundle(&f.keys.verifier, &proven.bundle, &expect).expect("the proof verifies");
    eprintln!(
        "digits-mlp proof: {} bytes, outputs {:?}",
        proven.bundle.proof.len(),
        proven.bundle.outputs
    );

    let mut group = c.benchmark_group("digits-mlp");
    // A proof takes most of a second on a small machine: 10 flat samples of one proof each (criterion's minimum)
    // keep the run short.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("prove", |b| {
        b.iter(|| {
            zkinfer_prover::prove(&f.model, &f.keys.prover, &f.keys.verifier, black_box(&request)).expect("proving")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("digits-mlp");
    group.bench_function("verify", |b| {
        b.iter(|| verify_bundle(&f.keys.verifier, black_box(&proven.bundle), &expect).expect("verifying"))
    });
    let input_q = quantize_input(&f.model, &f.input).expect("quantizing the input");
    group.bench_function("native-inference", |b| {
        b.iter(|| infer(&f.model, black_box(&input_q)).expect("inference"))
    });
    group.finish();

    let mut group = c.benchmark_group("digits-mlp");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(12));
    group.bench_function("keygen", |b| {
        b.iter(|| setup(black_box(&f.model), CircuitParams::default(), &SrsSource::InsecureDev).expect("keygen"))
    });
    group.finish();
}

criterion_group!(prove_verify, benches);
criterion_main!(prove_verify);
