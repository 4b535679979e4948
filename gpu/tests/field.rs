//! The GPU field kernels against halo2curves, bit for bit: seeded random inputs, edge values, odd lengths, and
//! inputs split over several passes and a two-dimensional grid.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

use ff::Field;
use halo2curves::bn256::Fr;
use halo2curves::serde::SerdeObject;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{list_adapters, FieldKernels, GpuContext, GpuError};

/// The modulus p as four little-endian u64 limbs.
const P: [u64; 4] = [
    0x43e1f593f0000001,
    0x2833e84879b97091,
    0xb85045b68181585d,
    0x30644e72e131a029,
];

fn gpu_required() -> bool {
    std::env::var("ZKINFER_REQUIRE_GPU").as_deref() == Ok("1")
}

/// Prints a framed message on the real stderr: `eprintln!` would be captured by the test harness and shown only
/// for failing tests, and a skipped GPU test must be seen.
fn loud(message: &str) {
    let frame = "!".repeat(100);
    let _ = writeln!(std::io::stderr(), "\n{frame}\n{message}\n{frame}\n");
}

/// The shared GPU context, or `None` (after a loud message) when there is no adapter; panics instead when
/// `ZKINFER_REQUIRE_GPU=1`.
fn gpu_or_skip() -> Option<&'static GpuContext> {
    static CONTEXT: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    match CONTEXT.get_or_init(|| GpuContext::new().map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            let message = format!("NO GPU ADAPTER: GPU test skipped ({e}); set ZKINFER_REQUIRE_GPU=1 to fail instead");
            if gpu_required() {
                panic!("{message}");
            }
            loud(&message);
            None
        }
    }
}

/// The field kernels on the shared context (compiled once for all tests).
fn kernels() -> Option<&'static FieldKernels> {
    static KERNELS: OnceLock<FieldKernels> = OnceLock::new();
    let ctx = gpu_or_skip()?;
    Some(KERNELS.get_or_init(|| {
        let started = Instant::now();
        let kernels = FieldKernels::new(ctx).expect("field kernels build");
        eprintln!("field kernels built on {} in {:.2?}", ctx.info.name, started.elapsed());
        kernels
    }))
}

/// The element whose Montgomery representation (raw limbs) is `limbs`.
fn raw(limbs: [u64; 4]) -> Fr {
    let bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    Fr::from_raw_bytes(&bytes).expect("limbs below p")
}

/// Edge values (0, 1, 2, −1, −2, R, R²) and edge representations (raw limbs 1, 2, p − 1, p − 2, and long runs of
/// ones that make every carry chain ripple).
fn edge_elements() -> Vec<Fr> {
    let r = Fr::from(2).pow_vartime([256]);
    vec![
        Fr::ZERO,
        Fr::ONE,
        Fr::from(2),
        -Fr::ONE,
        -Fr::from(2),
        r,
        r.square(),
        raw([1, 0, 0, 0]),
        raw([2, 0, 0, 0]),
        raw([P[0] - 1, P[1], P[2], P[3]]),
        raw([P[0] - 2, P[1], P[2], P[3]]),
        raw([u64::MAX, u64::MAX, u64::MAX, P[3] - 1]),
        raw([u64::MAX, 0, u64::MAX, 0]),
    ]
}

fn random_elements(n: usize, seed: u64) -> Vec<Fr> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| Fr::random(&mut rng)).collect()
}

/// Checks one operation against the CPU, naming the first wrong index.
fn check_op(name: &str, got: Result<Vec<Fr>, GpuError>, a: &[Fr], b: &[Fr], op: fn(Fr, Fr) -> Fr) {
    let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got.len(), a.len(), "{name}: result length");
    if let Some(i) = (0..a.len()).find(|&i| got[i] != op(a[i], b[i])) {
        panic!(
            "{name}[{i}] of {}: {:?} and {:?} gave {:?}, want {:?}",
            a.len(),
            a[i],
            b[i],
            got[i],
            op(a[i], b[i])
        );
    }
}

/// add, sub and mul of `a` and `b` on the GPU against halo2curves.
fn check_all(kernels: &FieldKernels, a: &[Fr], b: &[Fr]) {
    let started = Instant::now();
    check_op("add", kernels.add(a, b), a, b, |x, y| x + y);
    check_op("sub", kernels.sub(a, b), a, b, |x, y| x - y);
    check_op("mul", kernels.mul(a, b), a, b, |x, y| x * y);
    eprintln!(
        "add, sub, mul of {} elements checked in {:.2?}",
        a.len(),
        started.elapsed()
    );
}

#[test]
fn random_inputs_of_odd_lengths_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    for (seed, n) in [1usize, 3, 1000, 70_001].into_iter().enumerate() {
        let (a, b) = (
            random_elements(n, 2 * seed as u64),
            random_elements(n, 2 * seed as u64 + 1),
        );
        check_all(kernels, &a, &b);
    }
}

#[test]
fn every_pair_of_edge_inputs_matches_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let edges = edge_elements();
    let a: Vec<Fr> = edges
        .iter()
        .flat_map(|&x| std::iter::repeat_n(x, edges.len()))
        .collect();
    let b: Vec<Fr> = edges.iter().cycle().take(a.len()).copied().collect();
    check_all(kernels, &a, &b);
}

#[test]
fn all_equal_vectors_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    for x in edge_elements() {
        let a = vec![x; 1000];
        check_all(kernels, &a, &a);
        check_all(kernels, &a, &vec![-x; 1000]);
    }
}

#[test]
fn many_passes_on_a_two_dimensional_grid_match_halo2curves() {
    let Some(ctx) = gpu_or_skip() else { return };
    // 7 workgroups along x and 10,000 elements per pass: 70,001 elements take 8 passes on grids of up to 7 × 23.
    let kernels = FieldKernels::with_limits(ctx, 7, 10_000).expect("field kernels build");
    let (a, b) = (random_elements(70_001, 100), random_elements(70_001, 101));
    check_all(&kernels, &a, &b);
}

#[test]
fn more_than_65535_workgroups_in_one_dispatch() {
    let (Some(ctx), Some(kernels)) = (gpu_or_skip(), kernels()) else {
        return;
    };
    // 65,535 · 64 + 1 elements need 65,536 workgroups: the second row of the grid holds one of them (when the
    // device binds 128 MiB at once, as lavapipe does; otherwise the input is also split into passes).
    let n = 65_535 * 64 + 1;
    let limits = ctx.device.limits();
    eprintln!(
        "{}: max storage binding {} bytes, {} workgroups per dimension",
        ctx.info.name, limits.max_storage_buffer_binding_size, limits.max_compute_workgroups_per_dimension
    );
    let a: Vec<Fr> = (0..n as u64).map(|i| Fr::from(i) - Fr::from(7)).collect();
    let b: Vec<Fr> = (0..n as u64).map(|i| Fr::from(i * i + 3)).collect();
    let started = Instant::now();
    check_op("add", kernels.add(&a, &b), &a, &b, |x, y| x + y);
    eprintln!("add of {n} elements checked in {:.2?}", started.elapsed());
}

#[test]
fn empty_inputs_and_mismatched_lengths() {
    let Some(kernels) = kernels() else { return };
    assert!(kernels.mul(&[], &[]).expect("empty").is_empty());
    let err = kernels.add(&[Fr::ONE], &[]).expect_err("lengths differ");
    assert!(matches!(err, GpuError::LengthMismatch { left: 1, right: 0 }), "{err}");
}

#[test]
fn an_adapter_is_listed_when_a_gpu_is_required() {
    let adapters = list_adapters();
    for adapter in &adapters {
        eprintln!(
            "adapter: {} ({}, {}, driver {} {})",
            adapter.name,
            adapter.device_type_name(),
            adapter.backend_name(),
            adapter.driver,
            adapter.driver_info
        );
    }
    if gpu_required() {
        assert!(
            !adapters.is_empty(),
            "NO GPU ADAPTER: ZKINFER_REQUIRE_GPU=1 but list_adapters() found none"
        );
    } else if adapters.is_empty() {
        loud("NO GPU ADAPTER: list_adapters() found none (set ZKINFER_REQUIRE_GPU=1 to fail instead)");
    }
}
