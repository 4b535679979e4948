//! Criterion benchmark of validator-side batch verification: `n` distinct proofs of the digits MLP
//! checked one by one (`verify_bundle` in a loop, what a validator does without batching), one by one on all cores
//! (`verify_bundle` in a rayon parallel loop), and with `verify_batch` (no replay cache: the measured loop repeats
//! the same batch), for n = 16, 64 and 256. Every bundle is pinned to its model id, input commitment and nonce.
//!
//! Setup proves 256 requests with distinct inputs, salts and nonces (about a minute and a half on 2 cores) and
//! keeps the bundles under the target directory (`<target>/tmp/batch-verify/<model id>/`), so that later runs only
//! run keygen (a fraction of a second); a changed model or circuit gets another model id and is proven afresh.
//!
//! `cargo bench --bench batch_verify` runs it (about two minutes after the first run); `-- --test` runs each
//! benchmark once. BENCHMARKS.md records the figures.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use rayon::prelude::*;
use zkinfer_circuits::{poseidon, CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{import_onnx, prove, quantize, quantize_input, setup, Dataset, KeyPair, ProveRequest, SrsSource};
use zkinfer_verifier::{verify_batch, verify_bundle, BatchItem, Expectations, ProofBundle};

/// Batch sizes.
const SIZES: [usize; 3] = [16, 64, 256];

/// Nonce of request `i` is `NONCE_BASE + i`, its salt `SALT_BASE + i`.
const NONCE_BASE: u64 = 0x6e00_0000;
const SALT_BASE: u64 = 0x5a00_0000;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join("digits-mlp")
}

/// The digits model, its keys, and `max(SIZES)` bundles with the expectations a client would pin.
struct Fixture {
    keys: KeyPair,
    samples: Vec<(ProofBundle, Expectations)>,
}

impl Fixture {
    fn new() -> Self {
        let dir = model_dir();
        let float = import_onnx(dir.join("model.onnx")).expect("importing model.onnx");
        let calibration = Dataset::load(dir.join("calibration.json")).expect("loading calibration.json");
        let model = quantize(&float, &calibration.inputs).expect("quantizing the model");
        let test = Dataset::load(dir.join("test.json")).expect("loading test.json");
        let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("keygen");
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("batch-verify")
            .join(hex::encode(keys.verifier.model_id()));
        std::fs::create_dir_all(&cache).expect("creating the bundle cache");

        let n = SIZES.iter().copied().max().unwrap_or(0);
        let mut proven = 0;
        let samples = (0..n)
            .map(|i| {
                let input = &test.inputs[i % test.inputs.len()];
                let (salt, nonce) = (Fr::from(SALT_BASE + i as u64), Fr::from(NONCE_BASE + i as u64));
                let input_q = quantize_input(&model, input).expect("quantizing an input");
                let expect = Expectations {
                    model_id: Some(keys.verifier.model_id()),
                    input_commitment: Some(poseidon::commit_input(salt, &input_q)),
                    nonce: Some(nonce),
                    allow_insecure_dev_srs: true,
                };
                let path = cache.join(format!("{i}.bundle"));
                let cached = std::fs::read(&path).ok().and_then(|b| ProofBundle::from_bytes(&b).ok());
                let bundle = match cached {
                    Some(bundle) if verify_bundle(&keys.verifier, &bundle, &expect).is_ok() => bundle,
                    _ => {
                        proven += 1;
                        let bundle = prove_one(&model, &keys, input, salt, nonce);
                        std::fs::write(&path, bundle.to_bytes()).expect("caching a bundle");
                        bundle
                    }
                };
                (bundle, expect)
            })
            .collect();
        eprintln!(
            "batch_verify: {n} bundles ({proven} proven now, the rest from {})",
            cache.display()
        );
        Self { keys, samples }
    }

    fn items(&self, n: usize) -> Vec<BatchItem<'_>> {
        self.samples[..n]
            .iter()
            .map(|(bundle, expect)| BatchItem {
                key: &self.keys.verifier,
                bundle,
                expect: expect.clone(),
            })
            .collect()
    }
}

fn prove_one(model: &QuantizedModel, keys: &KeyPair, input: &[f32], salt: Fr, nonce: Fr) -> ProofBundle {
    let request = ProveRequest { input, salt, nonce };
    prove(model, &keys.prover, &keys.verifier, &request)
        .expect("proving")
        .bundle
}

fn bench(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = c.benchmark_group("batch_verify");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let items = fixture.items(n);
        let report = verify_batch(&items, None);
        assert!(
            report.all_accepted(),
            "an honest batch was rejected: {:?}",
            report.rejected()
        );
        eprintln!("batch_verify/{n}: {} pairing checks", report.pairing_checks);

        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("one-by-one", n), &items, |b, items| {
            b.iter(|| {
                for item in items {
                    black_box(verify_bundle(item.key, item.bundle, &item.expect).expect("accepted"));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("one-by-one-parallel", n), &items, |b, items| {
            b.iter(|| {
                items.par_iter().for_each(|item| {
                    black_box(verify_bundle(item.key, item.bundle, &item.expect).expect("accepted"));
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("batch", n), &items, |b, items| {
            b.iter(|| {
                let report = verify_batch(items, None);
                assert!(report.all_accepted());
                black_box(report)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
