//! The GPU NTT (`zkinfer_gpu::NttKernels`, wgpu) against halo2's CPU FFT (`best_fft`, rayon) on the same inputs:
//! `ntt/gpu/2^k` and `ntt/cpu/2^k` for k = 12, 14, 16, 18, or the sizes listed in `ZKINFER_NTT_LOG_SIZES`
//! (`ZKINFER_NTT_LOG_SIZES=12,14,16,18,20,22`). The GPU figure includes uploading the values and the twiddles and
//! reading the result back, as a prover calling it would pay.
//!
//! `cargo bench --bench gpu_ntt` (on Mesa's software Vulkan driver the GPU side runs on the CPU cores, so there the
//! ratio measures the kernels' overhead, not a GPU). Without any adapter the GPU group is skipped with a message.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use halo2_proofs::halo2curves::bn256::Fr;
use halo2_proofs::halo2curves::ff::Field;
use halo2_proofs::halo2curves::fft::best_fft;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use zkinfer_gpu::{GpuContext, NttKernels};

#[path = "support/inputs.rs"]
mod inputs;

use inputs::{log_sizes, omega};

fn bench_ntt(c: &mut Criterion) {
    let kernels = match GpuContext::new().and_then(|ctx| {
        eprintln!("gpu_ntt: adapter {} ({})", ctx.info.name, ctx.info.device_type_name());
        NttKernels::new(&ctx)
    }) {
        Ok(kernels) => Some(kernels),
        Err(e) => {
            eprintln!("gpu_ntt: NO GPU ADAPTER ({e}): only the CPU side is measured");
            None
        }
    };
    let mut group = c.benchmark_group("ntt");
    group.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for log_n in log_sizes("ZKINFER_NTT_LOG_SIZES", &[12, 14, 16, 18]) {
        let values: Vec<Fr> = (0..1usize << log_n).map(|_| Fr::random(&mut rng)).collect();
        let w = omega(log_n);
        group.bench_with_input(BenchmarkId::new("cpu", format!("2^{log_n}")), &values, |b, values| {
            b.iter(|| {
                let mut a = values.clone();
                best_fft(&mut a, w, log_n);
                black_box(a)
            })
        });
        if let Some(kernels) = &kernels {
            group.bench_with_input(BenchmarkId::new("gpu", format!("2^{log_n}")), &values, |b, values| {
                b.iter(|| black_box(kernels.ntt(values, w).expect("GPU NTT")))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_ntt);
criterion_main!(benches);
