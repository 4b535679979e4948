//! The GPU field kernels against halo2curves, bit for bit: seeded random inputs, edge values, odd lengths, and
//! inputs split over several passes and a two-dimensional grid.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{edge_elements, gpu_or_skip, random_elements};
use ff::Field;
use halo2curves::bn256::Fr;
use zkinfer_gpu::{list_adapters, FieldKernels, GpuError};

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
    if adapters.is_empty() {
        zkinfer_gpu::skip_loudly("the adapter listing test", "list_adapters() found none");
    }
}
