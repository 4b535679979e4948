//! The GPU MSM (`zkinfer_gpu::MsmKernels`, wgpu) against halo2's CPU MSM (`best_multiexp`, rayon) on the same
//! inputs: `msm/gpu/2^k` and `msm/cpu/2^k` on random full-size scalars, `msm/gpu-int8/2^k` and `msm/cpu-int8/2^k`
//! on int8-valued scalars (−128 … 127, what the prover's witness columns mostly hold). The bases are uploaded once,
//! outside the timing (they stay resident, as the SRS would); the GPU figure includes preparing and uploading the
//! scalars' bucket lists, the kernels and reading the result back.
//!
//! `cargo bench --bench gpu_msm`; sizes from `ZKINFER_MSM_LOG_SIZES` (comma list of log2 sizes, default 12,14,16).
//! On Mesa's software Vulkan driver the GPU side runs on the CPU cores, so there the ratio measures the kernels'
//! overhead, not a GPU. Without any adapter the GPU side is skipped with a message.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use halo2_proofs::arithmetic::best_multiexp;
use halo2_proofs::halo2curves::bn256::Fr;
use halo2_proofs::halo2curves::ff::Field;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{GpuContext, MsmKernels};

#[path = "support/inputs.rs"]
mod inputs;

use inputs::{int8, log_sizes, points};

fn bench_msm(c: &mut Criterion) {
    let kernels = match GpuContext::new().and_then(|ctx| {
        eprintln!("gpu_msm: adapter {} ({})", ctx.info.name, ctx.info.device_type_name());
        MsmKernels::new(&ctx)
    }) {
        Ok(kernels) => Some(kernels),
        Err(e) => {
            eprintln!("gpu_msm: NO GPU ADAPTER ({e}): only the CPU side is measured");
            None
        }
    };
    let mut group = c.benchmark_group("msm");
    group.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for log_n in log_sizes("ZKINFER_MSM_LOG_SIZES", &[12, 14, 16]) {
        let n = 1usize << log_n;
        let bases = points(n, &mut rng);
        let resident = kernels
            .as_ref()
            .map(|k| k.upload_bases(&bases).expect("upload the bases"));
        let full: Vec<Fr> = (0..n).map(|_| Fr::random(&mut rng)).collect();
        let small: Vec<Fr> = (0..n).map(|_| int8(&mut rng)).collect();
        for (suffix, scalars) in [("", &full), ("-int8", &small)] {
            let size = format!("2^{log_n}");
            group.bench_with_input(BenchmarkId::new(format!("cpu{suffix}"), &size), scalars, |b, s| {
                b.iter(|| black_box(best_multiexp(s, &bases)))
            });
            if let (Some(kernels), Some(resident)) = (&kernels, &resident) {
                let gpu = kernels.msm(resident, scalars).expect("GPU MSM");
                assert!(gpu == best_multiexp(scalars, &bases), "GPU and CPU MSMs differ");
                group.bench_with_input(BenchmarkId::new(format!("gpu{suffix}"), &size), scalars, |b, s| {
                    b.iter(|| black_box(kernels.msm(resident, s).expect("GPU MSM")))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_msm);
criterion_main!(benches);
