//! Shared by the GPU test files: the context or a loud skip, and test inputs.

#![allow(dead_code)]

use std::sync::OnceLock;

use ff::Field;
use halo2curves::bn256::{Fr, G1Affine, G1};
use halo2curves::group::prime::PrimeCurveAffine;
use halo2curves::group::{Curve, Group};
use halo2curves::serde::SerdeObject;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::GpuContext;

/// The modulus p as four little-endian u64 limbs.
pub const P: [u64; 4] = [
    0x43e1f593f0000001,
    0x2833e84879b97091,
    0xb85045b68181585d,
    0x30644e72e131a029,
];

/// The shared GPU context, or `None` after a loud skip (`zkinfer_gpu::context_or_skip`); a panic instead when
/// `ZKINFER_REQUIRE_GPU=1`.
pub fn gpu_or_skip() -> Option<&'static GpuContext> {
    static CONTEXT: OnceLock<Option<GpuContext>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| zkinfer_gpu::context_or_skip("GPU test"))
        .as_ref()
}

/// The element whose Montgomery representation (raw limbs) is `limbs`.
pub fn raw(limbs: [u64; 4]) -> Fr {
    let bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    Fr::from_raw_bytes(&bytes).expect("limbs below p")
}

/// Edge values (0, 1, 2, −1, −2, R, R²) and edge representations (raw limbs 1, 2, p − 1, p − 2, and long runs of
/// ones that make every carry chain ripple).
pub fn edge_elements() -> Vec<Fr> {
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

pub fn random_elements(n: usize, seed: u64) -> Vec<Fr> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n).map(|_| Fr::random(&mut rng)).collect()
}

/// `n` affine points: a random start and random step (s, s + t, s + 2t, …, cheap to make), batch-normalized.
pub fn random_points(n: usize, seed: u64) -> Vec<G1Affine> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let step = G1::random(&mut rng);
    let mut p = G1::random(&mut rng);
    let mut points = Vec::with_capacity(n);
    for _ in 0..n {
        points.push(p);
        p += step;
    }
    let mut affine = vec![G1Affine::identity(); n];
    G1::batch_normalize(&points, &mut affine);
    affine
}
