//! The CPU side of the MSM without a GPU: digits, window choice, and the whole bucket pipeline simulated with
//! halo2curves' arithmetic on the plan (what the kernels compute), against halo2curves' `msm_best`.

use ff::Field;
use halo2curves::bn256::G1Affine;
use halo2curves::group::prime::PrimeCurveAffine;
use halo2curves::group::Curve;
use halo2curves::msm::msm_best;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;

const BIG: u64 = 1 << 30;

/// The magnitude as an F_r element.
fn magnitude(p: &Prepared) -> Fr {
    let mut bytes = [0u8; 32];
    for (chunk, limb) in bytes.chunks_exact_mut(8).zip(p.limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    Fr::from_repr(bytes).unwrap()
}

fn edge_scalars() -> Vec<Fr> {
    let two = Fr::from(2);
    let mut s = vec![Fr::ZERO, Fr::ONE, two, -Fr::ONE, -two, Fr::from(127), -Fr::from(128)];
    for x in [
        two.pow([16]) + Fr::ONE,
        two.pow([16]) - Fr::ONE,
        Fr::from(u64::MAX),
        two.pow([128]),
        two.pow([252]),
    ] {
        s.extend([x, -x]);
    }
    s.push(Fr::from(2).invert().unwrap()); // (p + 1)/2: 253 bits either way
    s
}

#[test]
fn prepared_scalars_keep_their_value_with_the_fewer_bits() {
    for s in edge_scalars()
        .into_iter()
        .chain((0..200).map(|i| Fr::random(ChaCha20Rng::seed_from_u64(i))))
    {
        let p = prepare(&s);
        let m = magnitude(&p);
        assert_eq!(if p.negate { -m } else { m }, s);
        assert!(p.bits() <= 253, "{s:?}");
        assert!(bit_length(&prepare(&-s).limbs) == p.bits() || s == Fr::ZERO);
    }
    assert_eq!(
        prepare(&-Fr::from(3)),
        Prepared {
            limbs: [3, 0, 0, 0],
            negate: true
        }
    );
    assert_eq!(
        prepare(&Fr::from(3)),
        Prepared {
            limbs: [3, 0, 0, 0],
            negate: false
        }
    );
    assert_eq!(prepare(&Fr::ZERO).bits(), 0);
}

#[test]
fn signed_digits_rebuild_the_magnitude_for_every_window_size() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let scalars: Vec<Fr> = edge_scalars()
        .into_iter()
        .chain((0..50).map(|_| Fr::random(&mut rng)))
        .collect();
    for c in 1..=MAX_WINDOW {
        for s in &scalars {
            let p = prepare(s);
            let w_count = windows(p.bits(), c);
            let mut sum = Fr::ZERO;
            for w in 0..w_count + 2 {
                let d = digit(&p.limbs, w, c);
                assert!(d.unsigned_abs() <= 1 << (c - 1), "digit {d} for c = {c}");
                if w >= w_count {
                    assert_eq!(d, 0, "digit beyond the windows, c = {c}, {s:?}");
                }
                let d_abs = Fr::from(u64::from(d.unsigned_abs()));
                let term = Fr::from(2).pow([u64::from(c * w)]) * if d < 0 { -d_abs } else { d_abs };
                sum += term;
            }
            assert_eq!(sum, magnitude(&p), "c = {c}, {s:?}");
        }
    }
}

#[test]
fn windows_follow_the_scalar_sizes() {
    let choose = |bits: usize, n: u64| {
        let mut h = [0u64; 257];
        h[bits] = n;
        choose_window(&h, BIG)
    };
    // int8 magnitudes (≤ 128, 8 bits): one window of 8 or 9 bits.
    let c = choose(8, 1 << 16);
    assert!(c == 8 || c == 9, "{c}");
    // Full-size scalars: wider windows for more points.
    assert!((9..=10).contains(&choose(253, 1 << 12)), "{}", choose(253, 1 << 12));
    assert_eq!(choose(253, 1 << 16), 13);
    assert_eq!(choose(253, 1 << 22), MAX_WINDOW);
    assert!(choose(253, 1) <= 3);
    // A small binding forbids wide windows (their bucket sums would not fit).
    let mut h = [0u64; 257];
    h[253] = 1 << 16;
    let c = choose_window(&h, MIN_TEST_BINDING);
    let (b, _, _) = bucket_layout(c);
    assert!(u64::from(windows(253, c) * b) * POINT_BYTES <= MIN_TEST_BINDING);
    assert_eq!(segment_length(0), MIN_SEGMENT);
    assert_eq!(segment_length(1024), MIN_SEGMENT);
    assert_eq!(segment_length(4097), 65);
    assert_eq!(bucket_layout(1), (1, 1, 1));
    assert_eq!(bucket_layout(13), (4096, 64, 64));
    assert_eq!(bucket_layout(16), (32768, 256, 128));
}

const MIN_TEST_BINDING: u64 = 64 << 10;

/// What the three kernels compute, on the CPU, then `combine`.
fn simulate(scalars: &[Fr], bases: &[G1Affine], max_binding: u64) -> Result<G1, TooLarge> {
    let prepared: Vec<Prepared> = scalars.iter().map(prepare).collect();
    let Some(plan) = plan(&prepared, 0, max_binding)? else {
        return Ok(G1::identity());
    };
    let signed = |e: u32| {
        let p = bases[(e >> 1) as usize];
        if e & 1 == 1 {
            -p
        } else {
            p
        }
    };
    let segment_sums: Vec<G1> = plan
        .segments
        .chunks_exact(2)
        .map(|s| {
            assert!(s[0] < s[1] && (s[1] - s[0]) as usize <= segment_length(plan.entries.len()).max(MIN_SEGMENT));
            (s[0]..s[1]).fold(G1::identity(), |acc, k| acc + signed(plan.entries[k as usize]))
        })
        .collect();
    let (buckets, chunk, chunks) = bucket_layout(plan.window);
    assert_eq!(plan.segment_offsets.len() as u32, plan.windows * buckets + 1);
    let bucket_sums: Vec<G1> = plan
        .segment_offsets
        .windows(2)
        .map(|o| {
            segment_sums[o[0] as usize..o[1] as usize]
                .iter()
                .fold(G1::identity(), |a, b| a + b)
        })
        .collect();
    let mut partials = Vec::new();
    for t in 0..plan.windows * chunks {
        let first = (t / chunks) * buckets + (t % chunks) * chunk;
        let (mut running, mut sum) = (G1::identity(), G1::identity());
        for b in (0..chunk).rev() {
            running += bucket_sums[(first + b) as usize];
            sum += running;
        }
        partials.extend([sum, running]);
    }
    Ok(combine(&partials, plan.window, plan.windows))
}

fn random_bases(n: usize, seed: u64) -> Vec<G1Affine> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let g = G1::random(&mut rng);
    // Cheap distinct points: g, 2g, 3g, … with a random start, and an identity now and then.
    let mut points = Vec::with_capacity(n);
    let mut p = g * Fr::random(&mut rng);
    for i in 0..n {
        points.push(if i % 17 == 5 { G1::identity() } else { p });
        p += g;
    }
    let mut affine = vec![G1Affine::identity(); n];
    G1::batch_normalize(&points, &mut affine);
    affine
}

#[test]
fn the_simulated_bucket_pipeline_equals_msm_best() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for n in [1usize, 3, 100, 1000] {
        let bases = random_bases(n, n as u64);
        let cases: Vec<Vec<Fr>> = vec![
            (0..n).map(|_| Fr::random(&mut rng)).collect(),
            vec![Fr::from(5); n],
            vec![-Fr::ONE; n],
            (0..n)
                .map(|_| Fr::from(rng.gen_range(0..256u64)) - Fr::from(128))
                .collect(),
            edge_scalars().into_iter().cycle().take(n).collect(),
            vec![Fr::ZERO; n],
        ];
        for scalars in cases {
            let want = msm_best(&scalars, &bases);
            assert_eq!(simulate(&scalars, &bases, BIG).unwrap(), want, "n = {n}");
        }
    }
}

#[test]
fn all_equal_scalars_make_bounded_segments() {
    let n = 5000;
    let prepared = vec![prepare(&Fr::from(3)); n];
    let plan = plan(&prepared, 0, BIG).unwrap().unwrap();
    let longest = plan.segments.chunks_exact(2).map(|s| s[1] - s[0]).max().unwrap();
    assert_eq!(longest as usize, segment_length(n));
    assert!(plan
        .segment_offsets
        .windows(2)
        .all(|o| (o[1] - o[0]) as usize <= n.div_ceil(segment_length(n))));
    // Offsets of a later run of bases are added to every entry.
    let shifted = super::plan(&prepared, 1000, BIG).unwrap().unwrap();
    assert!(shifted.entries.iter().zip(&plan.entries).all(|(s, e)| s - e == 2000));
}

#[test]
fn a_plan_too_large_for_the_binding_is_refused_and_halves_fit() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let scalars: Vec<Fr> = (0..4000).map(|_| Fr::random(&mut rng)).collect();
    let prepared: Vec<Prepared> = scalars.iter().map(prepare).collect();
    assert_eq!(plan(&prepared, 0, MIN_TEST_BINDING).unwrap_err(), TooLarge);
    assert!(plan(&prepared[..100], 0, MIN_TEST_BINDING).is_ok());
    let bases = random_bases(100, 9);
    assert_eq!(
        simulate(&scalars[..100], &bases, MIN_TEST_BINDING).unwrap(),
        msm_best(&scalars[..100], &bases)
    );
}
