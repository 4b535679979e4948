//! Criterion benchmarks of the shipped models (digits-mlp, digits-cnn, digits-resnet): proving, verifying, native
//! integer inference and keygen, in one set of groups per model (`<model>/prove`, `<model>/verify`,
//! `<model>/native-inference`, `<model>/keygen`; with a GPU adapter also `<model>/prove-gpu` and
//! `<model>/gpu-inference`: every MSM on the GPU, as `zkinfer prove --device gpu` does), and the layout planner checked against measurement:
//! `<model>-layouts/<rank>` proves with the planner's [`LAYOUT_CANDIDATES`] cheapest candidate layouts and the plain
//! one (4 lanes, 1 range column, no Freivalds), and prints each one's estimated cost next to its name; and
//! batching: `<model>-batch/prove/<B>` proves the first `B` test samples of digits-mlp and digits-cnn in one proof
//! (`QuantizedModel::batched`), for `B` in [`BATCHES`], with the time per input as criterion's throughput.
//!
//! Everything that is not measured (ONNX import, calibration, quantization, keygen for the other groups, the proof
//! that `verify` checks) happens once per model, before its measured loops, and only when one of the model's
//! benchmarks is selected: `cargo bench --bench prove_verify -- digits-cnn/` sets up digits-cnn alone.
//!
//! The slow groups (prove, keygen) take 10 flat samples of one call each, criterion's minimum; for those criterion
//! prints "Unable to complete 10 samples in 1.0s", which is expected here: a longer target time would only make it
//! run two calls per sample. The slowest model, digits-resnet, takes about 5 s a proof and 6.5 s a keygen on a
//! 2-core machine, so its two slow groups alone take about two and a half minutes.
//!
//! `cargo bench --bench prove_verify` runs the benchmarks (about 4 minutes on an idle 2-core machine);
//! `cargo bench --bench prove_verify -- --test` runs each one once as a quick check. BENCHMARKS.md records the
//! latest figures.

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use zkinfer_circuits::{layout, poseidon, CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{
    import_onnx, infer, quantize, quantize_input, setup, Dataset, GpuBackend, IntegerEngine, KeyPair, ProveRequest,
    Proven, ProverKey, SrsSource,
};
use zkinfer_verifier::{verify_bundle, Expectations};

/// The shipped models.
const MODELS: [&str; 3] = ["digits-mlp", "digits-cnn", "digits-resnet"];

/// Inputs per proof of the `<model>-batch/prove/<B>` groups.
const BATCHES: [usize; 3] = [1, 8, 32];

/// Salt and nonce of every request.
const SALT: u64 = 0x5a17;
const NONCE: u64 = 0x1234_5678;

/// A shipped model's directory.
fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)
}

/// The state a model's groups share: the quantized model, its circuit parameters and keys, the input of its
/// `input.json` (what `scripts/bench` proves through the CLI), and one proof of it for the verify group.
struct Fixture {
    model: QuantizedModel,
    params: CircuitParams,
    keys: KeyPair,
    input: Vec<f32>,
    input_q: Vec<i64>,
    proven: Proven,
    expect: Expectations,
}

impl Fixture {
    fn new(name: &str) -> Self {
        Self::batched(name, 1)
    }

    /// The fixture of `name` compiled to prove `batch` inputs at once: the input of `input.json`, or the first
    /// `batch` samples of `test.json`.
    fn batched(name: &str, batch: usize) -> Self {
        let dir = model_dir(name);
        let float = import_onnx(dir.join("model.onnx")).expect("importing model.onnx");
        let calibration = Dataset::load(dir.join("calibration.json")).expect("loading calibration.json");
        let single = quantize(&float, &calibration.inputs).expect("quantizing the model");
        let model = single.batched(batch).expect("batching the model");
        let input = match batch {
            1 => {
                Dataset::load(dir.join("input.json"))
                    .expect("loading input.json")
                    .inputs
            }
            _ => Dataset::load(dir.join("test.json")).expect("loading test.json").inputs,
        };
        let input = input.get(..batch).expect("too few samples for the batch").concat();
        let input_q = quantize_input(&model, &input).expect("quantizing the input");

        let params = CircuitParams::for_model(&model);
        let plan = layout::plan(&model, &params).expect("laying out the circuit");
        eprintln!("{name} cost model: {}", describe_plan(&params, &plan));

        let started = Instant::now();
        let keys = setup(&model, params.clone(), &SrsSource::InsecureDev).expect("keygen");
        let keygen = started.elapsed();

        let (salt, nonce) = (Fr::from(SALT), Fr::from(NONCE));
        let request = ProveRequest {
            input: &input,
            salt,
            nonce,
        };
        let proven = zkinfer_prover::prove(&model, &keys.prover, &keys.verifier, &request).expect("proving the input");
        let expect = Expectations {
            model_id: Some(keys.verifier.model_id()),
            input_commitment: Some(poseidon::commit_input(salt, &proven.input_q)),
            nonce: Some(nonce),
            allow_insecure_dev_srs: true,
        };
        verify_bundle(&keys.verifier, &proven.bundle, &expect).expect("the proof verifies");
        eprintln!(
            "{name} setup: keygen {:.1?}, first proof {:.1?}; proof {} bytes, outputs {:?}",
            keygen,
            proven.proving,
            proven.bundle.proof.len(),
            proven.bundle.outputs
        );
        Fixture {
            model,
            params,
            keys,
            input,
            input_q,
            proven,
            expect,
        }
    }

    fn request(&self) -> ProveRequest<'_> {
        ProveRequest {
            input: &self.input,
            salt: Fr::from(SALT),
            nonce: Fr::from(NONCE),
        }
    }
}

/// The best GPU adapter with every MSM on it, opened once (`None` without an adapter: the GPU groups are skipped).
fn gpu_backend() -> Option<Arc<GpuBackend>> {
    static BACKEND: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let context = zkinfer_gpu::GpuContext::new().ok()?;
            let backend = GpuBackend::on(context, 1).expect("compiling the GPU kernels");
            eprintln!("GPU: {}", backend.describe());
            Some(Arc::new(backend))
        })
        .clone()
}

/// The fixture's prover key with its SRS bases resident on the GPU.
fn gpu_key(fixture: &Fixture, backend: Arc<GpuBackend>) -> ProverKey {
    let mut key = fixture.keys.prover.clone();
    key.use_gpu(backend).expect("uploading the SRS bases");
    key
}

/// Settings of the groups whose calls take a second or more: 10 flat samples of one call each.
fn slow(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    // Shorter than 10 calls, so that every sample is one call.
    group.measurement_time(Duration::from_secs(1));
}

/// How many of the planner's cheapest layouts the `<model>-layouts` groups prove.
const LAYOUT_CANDIDATES: usize = 3;

/// The cost model's inputs and output for one layout, on one line.
fn describe_plan(params: &CircuitParams, plan: &layout::Layout) -> String {
    format!(
        "lanes {} x {} taps, range columns {}, requantization sets {}, freivalds layers {:?} over {} column pairs: k = {} ({} rows); rows used: poseidon {}, linear {}, \
         freivalds {}, requantize {}, range {}, pool {}, table {}, product {}, lookup table {}, blinding {} (max {}); \
         {} advice / {} fixed columns, {} lookups, {} equality columns, degree {}; {} committed polynomials, \
         estimated cost {}",
        params.mac_lanes,
        params.mac_taps,
        params.range_columns,
        params.requant_sets,
        params.freivalds_layers,
        params.freivalds_pairs,
        plan.k,
        1u64 << plan.k,
        plan.poseidon_rows,
        plan.linear_rows,
        plan.freivalds_rows,
        plan.requant_rows,
        plan.range_rows,
        plan.pool_rows,
        plan.table_rows,
        plan.product_rows,
        plan.lookup_table_rows,
        plan.blinding_rows,
        plan.used_rows(),
        plan.advice_columns,
        plan.fixed_columns,
        plan.lookups,
        plan.equality_columns,
        plan.degree,
        plan.committed_polynomials(),
        plan.estimated_cost(),
    )
}

/// Proves `name` with its cheapest candidate layouts and the plain one: the planner's estimate against time.
fn bench_layouts(c: &mut Criterion, name: &str) {
    let cell = OnceCell::new();
    let candidates = || {
        cell.get_or_init(|| {
            let fixture = Fixture::new(name);
            let (_, ranked) = layout::choose(&fixture.model).expect("planning");
            let plain = CircuitParams {
                mac_lanes: 4,
                range_columns: 1,
                freivalds_layers: Default::default(),
                ..CircuitParams::with_chips_of(&fixture.model)
            };
            let mut picked: Vec<(String, CircuitParams)> = ranked
                .iter()
                .take(LAYOUT_CANDIDATES)
                .enumerate()
                .map(|(rank, (params, _))| (format!("rank-{rank}"), params.clone()))
                .collect();
            picked.push(("plain".into(), plain));
            let keyed: Vec<_> = picked
                .into_iter()
                .map(|(label, params)| {
                    let plan = layout::plan(&fixture.model, &params).expect("laying out");
                    eprintln!("{name}-layouts/{label}: {}", describe_plan(&params, &plan));
                    let keys = setup(&fixture.model, params, &SrsSource::InsecureDev).expect("keygen");
                    (label, keys)
                })
                .collect();
            (fixture, keyed)
        })
    };
    let mut group = c.benchmark_group(format!("{name}-layouts"));
    slow(&mut group);
    for rank in 0..=LAYOUT_CANDIDATES {
        let label = if rank == LAYOUT_CANDIDATES {
            "plain".to_string()
        } else {
            format!("rank-{rank}")
        };
        group.bench_function(label.clone(), |b| {
            let (f, keyed) = candidates();
            let request = f.request();
            let keys = keyed
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, keys)| keys)
                .expect("every label has keys");
            b.iter(|| {
                zkinfer_prover::prove(&f.model, &keys.prover, &keys.verifier, black_box(&request)).expect("proving")
            })
        });
    }
    group.finish();
}

fn bench_model(c: &mut Criterion, name: &str) {
    let cell = OnceCell::new();
    let fixture = || cell.get_or_init(|| Fixture::new(name));

    let mut group = c.benchmark_group(name);
    slow(&mut group);
    group.bench_function("prove", |b| {
        let f = fixture();
        let request = f.request();
        b.iter(|| {
            zkinfer_prover::prove(&f.model, &f.keys.prover, &f.keys.verifier, black_box(&request)).expect("proving")
        })
    });
    if !zkinfer_gpu::list_adapters().is_empty() {
        let gpu = OnceCell::new();
        let on_gpu = || {
            gpu.get_or_init(|| {
                let backend = gpu_backend().expect("an adapter was listed");
                let engine = IntegerEngine::on_gpu(&fixture().model, backend.clone()).expect("GPU engine");
                (gpu_key(fixture(), backend), engine)
            })
        };
        group.bench_function("prove-gpu", |b| {
            let (f, (key, _)) = (fixture(), on_gpu());
            let request = f.request();
            b.iter(|| zkinfer_prover::prove(&f.model, key, &f.keys.verifier, black_box(&request)).expect("proving"))
        });
        group.bench_function("gpu-inference", |b| {
            let (f, (_, engine)) = (fixture(), on_gpu());
            b.iter(|| engine.infer(black_box(&f.input_q)).expect("inference"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("verify", |b| {
        let f = fixture();
        b.iter(|| verify_bundle(&f.keys.verifier, black_box(&f.proven.bundle), &f.expect).expect("verifying"))
    });
    group.bench_function("native-inference", |b| {
        let f = fixture();
        b.iter(|| infer(&f.model, black_box(&f.input_q)).expect("inference"))
    });
    group.finish();

    let mut group = c.benchmark_group(name);
    slow(&mut group);
    group.bench_function("keygen", |b| {
        let f = fixture();
        b.iter(|| setup(black_box(&f.model), f.params.clone(), &SrsSource::InsecureDev).expect("keygen"))
    });
    group.finish();
}

/// Proving a batch of [`BATCHES`] inputs in one proof, with criterion's throughput in inputs (so the time per
/// input is printed next to the time per proof).
fn bench_batches(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group(format!("{name}-batch"));
    slow(&mut group);
    for batch in BATCHES {
        let cell = OnceCell::new();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("prove/{batch}"), |b| {
            let f = cell.get_or_init(|| Fixture::batched(name, batch));
            let request = f.request();
            b.iter(|| {
                zkinfer_prover::prove(&f.model, &f.keys.prover, &f.keys.verifier, black_box(&request)).expect("proving")
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    for name in MODELS {
        bench_model(c, name);
    }
    for name in ["digits-mlp", "digits-cnn"] {
        bench_batches(c, name);
    }
    for name in MODELS {
        bench_layouts(c, name);
    }
}

criterion_group!(prove_verify, benches);
criterion_main!(prove_verify);
