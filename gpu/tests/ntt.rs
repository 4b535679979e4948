//! The GPU NTT against halo2curves' FFT (`best_fft`, what halo2 runs), bit for bit: every size from 1 to 2^12 on
//! random inputs, edge inputs (zeros, all equal, −1, the field's edge representations), the inverse transform as a
//! round trip, the coset transforms against halo2's own move into the extended domain (`coeff_to_extended`) and
//! back, and refusals of lengths that are not powers of two.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{edge_elements, gpu_or_skip, random_elements};
use ff::{Field, PrimeField};
use halo2_proofs::poly::EvaluationDomain;
use halo2curves::bn256::Fr;
use halo2curves::ff::WithSmallOrderMulGroup;
use halo2curves::fft::best_fft;
use zkinfer_gpu::{GpuError, NttKernels};

/// The NTT kernels on the shared context (compiled once for all tests).
fn kernels() -> Option<&'static NttKernels> {
    static KERNELS: OnceLock<NttKernels> = OnceLock::new();
    let ctx = gpu_or_skip()?;
    Some(KERNELS.get_or_init(|| NttKernels::new(ctx).expect("NTT kernels build")))
}

/// A primitive `2^log_n`-th root of unity: `ROOT_OF_UNITY^(2^(S − log_n))`.
fn omega(log_n: u32) -> Fr {
    let mut w = Fr::ROOT_OF_UNITY;
    for _ in log_n..Fr::S {
        w = w.square();
    }
    w
}

/// halo2curves' transform of `values` at `omega`.
fn cpu_ntt(values: &[Fr], omega: Fr) -> Vec<Fr> {
    let mut a = values.to_vec();
    best_fft(&mut a, omega, values.len().trailing_zeros());
    a
}

fn check(kernels: &NttKernels, values: &[Fr], what: &str) {
    let log_n = values.len().trailing_zeros();
    let got = kernels
        .ntt(values, omega(log_n))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = cpu_ntt(values, omega(log_n));
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}, n = {}: index {i} is {:?}, want {:?}",
            values.len(),
            got[i],
            want[i]
        );
    }
}

#[test]
fn random_inputs_of_every_size_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let started = Instant::now();
    for log_n in 0u32..=12 {
        check(kernels, &random_elements(1 << log_n, 40 + u64::from(log_n)), "random");
    }
    eprintln!("NTT of 2^0 … 2^12 random elements checked in {:.2?}", started.elapsed());
}

#[test]
fn edge_inputs_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let edges = edge_elements();
    for log_n in [1, 4, 8] {
        let n = 1 << log_n;
        check(kernels, &vec![Fr::ZERO; n], "zeros");
        for &x in &edges {
            check(kernels, &vec![x; n], "all equal");
        }
        let cycled: Vec<Fr> = edges.iter().cycle().take(n).copied().collect();
        check(kernels, &cycled, "edge values");
        let mut delta = vec![Fr::ZERO; n];
        delta[n - 1] = -Fr::ONE;
        check(kernels, &delta, "−1 at the end");
    }
}

#[test]
fn the_inverse_transform_round_trips() {
    let Some(kernels) = kernels() else { return };
    let log_n = 10;
    let values = random_elements(1 << log_n, 7);
    let forward = kernels.ntt(&values, omega(log_n)).expect("forward");
    let inverse = omega(log_n).invert().expect("ω ≠ 0");
    let n_inv = Fr::from(1u64 << log_n).invert().expect("n ≠ 0");
    let back: Vec<Fr> = kernels
        .ntt(&forward, inverse)
        .expect("inverse")
        .into_iter()
        .map(|x| x * n_inv)
        .collect();
    assert_eq!(back, values);
}

#[test]
fn lengths_that_are_not_powers_of_two_are_refused() {
    let Some(kernels) = kernels() else { return };
    assert!(kernels.ntt(&[], Fr::ONE).expect("empty").is_empty());
    for n in [3, 6, 1000] {
        let err = kernels.ntt(&vec![Fr::ONE; n], Fr::ONE).expect_err("not a power of two");
        assert!(matches!(err, GpuError::Size { len, .. } if len == n), "{err}");
    }
}

#[test]
fn the_coset_transform_is_halo2s_move_into_the_extended_domain() {
    let Some(kernels) = kernels() else { return };
    // Degree-3 constraints (j = 3) on 2^k rows: the extended domain is 4× larger, on the coset ζ·⟨ω_ext⟩.
    for k in [1u32, 4, 8] {
        let domain = EvaluationDomain::<Fr>::new(3, k);
        let n = 1usize << k;
        for (what, coefficients) in [
            ("random", random_elements(n, 90 + u64::from(k))),
            ("all equal", vec![-Fr::ONE; n]),
            ("zeros", vec![Fr::ZERO; n]),
        ] {
            let want = domain.coeff_to_extended(&domain.coeff_from_vec(coefficients.clone()));
            let mut padded = coefficients.clone();
            padded.resize(domain.extended_len(), Fr::ZERO);
            let got = kernels
                .coset_ntt(&padded, domain.get_extended_omega(), Fr::ZETA)
                .expect("coset NTT");
            assert_eq!(got, want.values(), "{what}, k = {k}");
            let back = kernels
                .coset_intt(&got, domain.get_extended_omega(), Fr::ZETA)
                .expect("inverse coset NTT");
            assert_eq!(back, padded, "{what}, k = {k}: round trip");
        }
    }
}

#[test]
fn coset_transforms_with_any_shift_round_trip_and_refuse_zero() {
    let Some(kernels) = kernels() else { return };
    let log_n = 6;
    let values = random_elements(1 << log_n, 5);
    let shift = Fr::from(7u64);
    let forward = kernels.coset_ntt(&values, omega(log_n), shift).expect("forward");
    // Reference: scale by shift^i on the CPU, then halo2curves' FFT.
    let mut power = Fr::ONE;
    let scaled: Vec<Fr> = values
        .iter()
        .map(|v| {
            let x = *v * power;
            power *= shift;
            x
        })
        .collect();
    assert_eq!(forward, cpu_ntt(&scaled, omega(log_n)));
    assert_eq!(
        kernels.coset_intt(&forward, omega(log_n), shift).expect("inverse"),
        values
    );
    assert!(matches!(
        kernels.coset_intt(&forward, omega(log_n), Fr::ZERO),
        Err(GpuError::Gpu(_))
    ));
    assert!(matches!(
        kernels.coset_ntt(&values[..3], omega(log_n), shift),
        Err(GpuError::Size { len: 3, .. })
    ));
}
