//! The GPU MSM against halo2curves' `msm_best` (what halo2's `best_multiexp` calls), as group elements: random
//! scalars and points at sizes that are and are not powers of two, edge scalars (0, 1, 2, p − 1, p − 2, 2^16 ± 1,
//! 2^64 − 1 and their negations), all-equal scalars (one bucket per window holds every point), small signed
//! integers, mixes of small and full-size scalars, identity and repeated bases, P and −P, fewer scalars than bases,
//! resident bases reused, bases spread over many buffers, and length errors.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{gpu_or_skip, random_elements, random_points};
use ff::Field;
use halo2curves::bn256::{Fr, G1Affine, G1};
use halo2curves::group::prime::PrimeCurveAffine;
use halo2curves::group::Group;
use halo2curves::msm::msm_best;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{GpuError, MsmKernels, ResidentBases};

/// 2^12 + 1 random points, uploaded once for the tests that share them.
const SHARED_POINTS: usize = 4097;

fn kernels() -> Option<&'static MsmKernels> {
    static KERNELS: OnceLock<MsmKernels> = OnceLock::new();
    let ctx = gpu_or_skip()?;
    Some(KERNELS.get_or_init(|| {
        let started = Instant::now();
        let kernels = MsmKernels::new(ctx).expect("MSM kernels build");
        eprintln!("MSM kernels built on {} in {:.2?}", ctx.info.name, started.elapsed());
        kernels
    }))
}

/// The shared points (with a few identities among them) and their resident copy.
fn shared() -> Option<&'static (Vec<G1Affine>, ResidentBases)> {
    static SHARED: OnceLock<(Vec<G1Affine>, ResidentBases)> = OnceLock::new();
    let kernels = kernels()?;
    Some(SHARED.get_or_init(|| {
        let mut points = random_points(SHARED_POINTS, 11);
        for i in [0, 7, 100, SHARED_POINTS - 1] {
            points[i] = G1Affine::identity();
        }
        let resident = kernels.upload_bases(&points).expect("upload");
        (points, resident)
    }))
}

/// The GPU MSM of `scalars` over the first bases equals halo2curves'.
fn check(kernels: &MsmKernels, resident: &ResidentBases, points: &[G1Affine], scalars: &[Fr], what: &str) {
    let started = Instant::now();
    let got = kernels.msm(resident, scalars).unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = started.elapsed();
    let want = msm_best(scalars, &points[..scalars.len()]);
    assert!(got == want, "{what}, n = {}: GPU {got:?}, CPU {want:?}", scalars.len());
    eprintln!("{what}: {} scalars in {elapsed:.2?}", scalars.len());
}

fn small_signed(n: usize, seed: u64, range: std::ops::Range<i64>) -> Vec<Fr> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v = rng.gen_range(range.clone());
            if v < 0 {
                -Fr::from(v.unsigned_abs())
            } else {
                Fr::from(v as u64)
            }
        })
        .collect()
}

/// 0, 1, 2, p − 1, p − 2, 2^16 ± 1, 2^64 − 1 and their negations, 2^128, (p + 1)/2.
fn edge_scalars() -> Vec<Fr> {
    let two = Fr::from(2);
    let mut s = vec![Fr::ZERO, Fr::ONE, two, -Fr::ONE, -two];
    for x in [
        two.pow([16]) + Fr::ONE,
        two.pow([16]) - Fr::ONE,
        Fr::from(u64::MAX),
        two.pow([128]),
    ] {
        s.extend([x, -x]);
    }
    s.push(two.invert().unwrap());
    s
}

#[test]
fn random_scalars_and_points_match_halo2curves() {
    let (Some(kernels), Some((points, resident))) = (kernels(), shared()) else {
        return;
    };
    for (seed, n) in [0usize, 1, 3, 100, 1000, 4096, 4097].into_iter().enumerate() {
        check(
            kernels,
            resident,
            points,
            &random_elements(n, 50 + seed as u64),
            "random",
        );
    }
}

#[test]
fn edge_scalars_match_halo2curves() {
    let (Some(kernels), Some((points, resident))) = (kernels(), shared()) else {
        return;
    };
    let edges = edge_scalars();
    check(kernels, resident, points, &edges, "each edge scalar once");
    for x in &edges {
        check(kernels, resident, points, &vec![*x; 300], "all equal");
    }
    let cycled: Vec<Fr> = edges.iter().cycle().take(1000).copied().collect();
    check(kernels, resident, points, &cycled, "edge scalars cycled");
    check(kernels, resident, points, &vec![Fr::ZERO; 1000], "zeros");
}

#[test]
fn all_equal_scalars_over_every_point_match_halo2curves() {
    let (Some(kernels), Some((points, resident))) = (kernels(), shared()) else {
        return;
    };
    check(
        kernels,
        resident,
        points,
        &vec![Fr::random(ChaCha20Rng::seed_from_u64(5)); SHARED_POINTS],
        "all equal",
    );
    check(kernels, resident, points, &vec![-Fr::from(3); SHARED_POINTS], "all −3");
}

#[test]
fn small_and_mixed_scalars_match_halo2curves() {
    let (Some(kernels), Some((points, resident))) = (kernels(), shared()) else {
        return;
    };
    check(
        kernels,
        resident,
        points,
        &small_signed(SHARED_POINTS, 1, -128..128),
        "int8",
    );
    check(kernels, resident, points, &small_signed(1000, 2, -2..3), "−2 … 2");
    check(
        kernels,
        resident,
        points,
        &small_signed(1000, 3, -(1 << 40)..(1 << 40)),
        "41-bit signed",
    );
    // Mostly small, some full size, some zero.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mixed: Vec<Fr> = small_signed(SHARED_POINTS, 5, -128..128)
        .into_iter()
        .map(|x| match rng.gen_range(0..10) {
            0 => Fr::random(&mut rng),
            1 => Fr::ZERO,
            2 => -Fr::from(rng.gen::<u64>()),
            _ => x,
        })
        .collect();
    check(kernels, resident, points, &mixed, "mixed small and full size");
}

#[test]
fn identity_repeated_and_opposite_bases_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let p = random_points(3, 21);
    let mut bases = vec![G1Affine::identity(); 50];
    bases.extend(vec![p[0]; 200]);
    for _ in 0..100 {
        bases.extend([p[1], -p[1]]);
    }
    bases.extend([p[2], G1Affine::identity(), -p[2]]);
    let resident = kernels.upload_bases(&bases).expect("upload");
    let n = bases.len();
    check(kernels, &resident, &bases, &random_elements(n, 22), "random scalars");
    check(
        kernels,
        &resident,
        &bases,
        &vec![Fr::from(7); n],
        "P and −P with equal scalars cancel",
    );
    check(kernels, &resident, &bases, &small_signed(n, 23, -128..128), "int8");
    // Only identities: the identity.
    let only_identities = kernels.msm(&resident, &random_elements(50, 24)).expect("msm");
    assert!(bool::from(only_identities.is_identity()));
}

#[test]
fn fewer_scalars_than_bases_and_reused_bases() {
    let (Some(kernels), Some((points, resident))) = (kernels(), shared()) else {
        return;
    };
    let scalars = random_elements(777, 30);
    let first = kernels.msm(resident, &scalars).expect("first");
    let second = kernels.msm(resident, &scalars).expect("second");
    assert!(first == second && first == msm_best(&scalars, &points[..777]));
    check(
        kernels,
        resident,
        points,
        &random_elements(2000, 31),
        "another MSM on the same bases",
    );
    assert_eq!(resident.len(), SHARED_POINTS);
    assert!(!resident.is_empty());
}

#[test]
fn bases_over_many_buffers_and_split_plans_match_halo2curves() {
    let Some(ctx) = gpu_or_skip() else { return };
    // 64 KiB bindings: 1024 bases a buffer, and plans of more than a few hundred full-size scalars are split.
    let kernels = MsmKernels::with_max_binding(ctx, 64 << 10).expect("MSM kernels build");
    let points = random_points(2500, 40);
    let resident = kernels.upload_bases(&points).expect("upload");
    check(
        &kernels,
        &resident,
        &points,
        &random_elements(2500, 41),
        "random, small bindings",
    );
    check(
        &kernels,
        &resident,
        &points,
        &small_signed(2100, 42, -128..128),
        "int8, small bindings",
    );
    check(
        &kernels,
        &resident,
        &points,
        &vec![-Fr::ONE; 2500],
        "all −1, small bindings",
    );
}

#[test]
fn lengths_are_checked() {
    let Some(kernels) = kernels() else { return };
    let points = random_points(3, 50);
    let resident = kernels.upload_bases(&points).expect("upload");
    let err = kernels
        .msm(&resident, &random_elements(4, 51))
        .expect_err("more scalars than bases");
    assert!(matches!(err, GpuError::LengthMismatch { left: 4, right: 3 }), "{err}");
    let empty = kernels.upload_bases(&[]).expect("no bases");
    assert!(empty.is_empty());
    assert!(bool::from(kernels.msm(&empty, &[]).expect("empty").is_identity()));
    assert!(bool::from(
        kernels.msm(&resident, &[]).expect("no scalars").is_identity()
    ));
    assert!(matches!(
        kernels.msm(&empty, &[Fr::ONE]),
        Err(GpuError::LengthMismatch { left: 1, right: 0 })
    ));
}

#[test]
fn kernels_and_bases_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MsmKernels>();
    send_sync::<ResidentBases>();
    let _ = G1::identity();
}
