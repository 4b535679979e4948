//! One-shot GPU-vs-CPU sweep of the MSM and the NTT at sizes criterion would take too long for (2^12 … 2^22 by
//! default; `ZKINFER_SWEEP_LOG_SIZES=12,16` to choose): each operation runs `ZKINFER_SWEEP_RUNS` times (default 3)
//! and the median is printed, one markdown table row per size. Every GPU result is checked against the CPU's.
//!
//! `cargo run --release --example gpu_sweep` (used by `scripts/gpu-bench`). The CPU side is halo2's own
//! `best_multiexp` and `best_fft` (rayon, every core); the GPU side includes uploading the scalars and reading the
//! result back, with the MSM's bases resident (uploaded once, outside the timing, as the prover's SRS bases are).

#[path = "../benches/support/inputs.rs"]
mod inputs;

use std::time::{Duration, Instant};

use halo2_proofs::arithmetic::best_multiexp;
use halo2_proofs::halo2curves::bn256::Fr;
use halo2_proofs::halo2curves::ff::Field;
use halo2_proofs::halo2curves::fft::best_fft;
use inputs::{int8, log_sizes, omega, points};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{GpuContext, MsmKernels, NttKernels};

/// The median time of `runs` calls of `f`, and its last result.
fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(f());
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let runs: usize = std::env::var("ZKINFER_SWEEP_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let context = match GpuContext::new() {
        Ok(context) => context,
        Err(e) => {
            eprintln!("gpu_sweep: NO GPU ADAPTER ({e}); nothing to compare");
            std::process::exit(2);
        }
    };
    println!(
        "adapter: {} ({}, {}); {} CPU cores; median of {runs} runs",
        context.info.name,
        context.info.device_type_name(),
        context.info.backend_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let msm = MsmKernels::new(&context).expect("MSM kernels");
    let ntt = NttKernels::new(&context).expect("NTT kernels");
    println!("| size | MSM CPU ms | MSM GPU ms | ratio | int8 MSM CPU ms | int8 MSM GPU ms | ratio | NTT CPU ms | NTT GPU ms | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for log_n in log_sizes("ZKINFER_SWEEP_LOG_SIZES", &[12, 14, 16, 18, 20, 22]) {
        let n = 1usize << log_n;
        let bases = points(n, &mut rng);
        let resident = msm.upload_bases(&bases).expect("upload the bases");
        let full: Vec<Fr> = (0..n).map(|_| Fr::random(&mut rng)).collect();
        let small: Vec<Fr> = (0..n).map(|_| int8(&mut rng)).collect();
        let mut row = format!("| 2^{log_n} |");
        for scalars in [&full, &small] {
            let (cpu_time, cpu) = median(runs, || best_multiexp(scalars, &bases));
            let (gpu_time, gpu) = median(runs, || msm.msm(&resident, scalars).expect("GPU MSM"));
            assert!(gpu == cpu, "2^{log_n}: the GPU MSM differs from best_multiexp");
            let ratio = gpu_time.as_secs_f64() / cpu_time.as_secs_f64();
            row += &format!(" {} | {} | {ratio:.2}× |", ms(cpu_time), ms(gpu_time));
        }
        drop(resident);
        let w = omega(log_n);
        let (cpu_time, cpu) = median(runs, || {
            let mut a = full.clone();
            best_fft(&mut a, w, log_n);
            a
        });
        let (gpu_time, gpu) = median(runs, || ntt.ntt(&full, w).expect("GPU NTT"));
        assert!(gpu == cpu, "2^{log_n}: the GPU NTT differs from best_fft");
        let ratio = gpu_time.as_secs_f64() / cpu_time.as_secs_f64();
        row += &format!(" {} | {} | {ratio:.2}× |", ms(cpu_time), ms(gpu_time));
        println!("{row}");
    }
    println!("ratio = GPU time / CPU time (below 1: the GPU is faster)");
}
