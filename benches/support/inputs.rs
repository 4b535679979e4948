//! Inputs of the GPU benchmarks (`benches/gpu_msm.rs`, `examples/gpu_sweep.rs`): bases and scalars that are cheap to
//! make at 2^22, and the sizes to measure from an environment variable.

#![allow(dead_code)]

use halo2_proofs::halo2curves::bn256::{Fr, G1Affine, G1};
use halo2_proofs::halo2curves::ff::PrimeField;
use halo2_proofs::halo2curves::group::prime::PrimeCurveAffine;
use halo2_proofs::halo2curves::group::{Curve, Group};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;

/// The comma list of log2 sizes in the environment variable `var` (e.g. "12,14"), or `default`.
pub fn log_sizes(var: &str, default: &[u32]) -> Vec<u32> {
    match std::env::var(var) {
        Ok(list) => list
            .split(',')
            .map(|k| {
                k.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{var}: a comma list of log2 sizes, not {list:?}"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// `n` distinct points (a random start and step, batch-normalized: cheap to make for 2^16 and more).
pub fn points(n: usize, rng: &mut ChaCha20Rng) -> Vec<G1Affine> {
    let step = G1::random(&mut *rng);
    let mut p = G1::random(&mut *rng);
    let mut projective = Vec::with_capacity(n);
    for _ in 0..n {
        projective.push(p);
        p += step;
    }
    let mut affine = vec![G1Affine::identity(); n];
    G1::batch_normalize(&projective, &mut affine);
    affine
}

/// A uniformly random int8 value (−128 … 127) as a field element: what witness columns mostly hold.
pub fn int8(rng: &mut ChaCha20Rng) -> Fr {
    let v = (rng.next_u32() % 256) as i64 - 128;
    if v < 0 {
        -Fr::from(v.unsigned_abs())
    } else {
        Fr::from(v as u64)
    }
}

/// A primitive `2^log_n`-th root of unity.
pub fn omega(log_n: u32) -> Fr {
    (log_n..Fr::S).fold(Fr::ROOT_OF_UNITY, |w, _| w.square())
}
