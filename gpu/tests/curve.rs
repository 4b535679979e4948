//! The GPU's G1 arithmetic (Fq on the Montgomery template, the complete formulas) against halo2curves, bit for bit:
//! every output coordinate must equal halo2curves' own, for random points in random projective representations,
//! P + P, P + (−P), the identity on either side, and off-curve inputs whose coordinates are F_q's edge values (the
//! formulas are polynomials, so those test the field arithmetic too).
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::OnceLock;

use common::{gpu_or_skip, random_points};
use ff::Field;
use halo2curves::bn256::{Fq, G1Affine, G1};
use halo2curves::group::prime::PrimeCurveAffine;
use halo2curves::group::{Curve, Group};
use halo2curves::serde::SerdeObject;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{G1Kernels, GpuError};

fn kernels() -> Option<&'static G1Kernels> {
    static KERNELS: OnceLock<G1Kernels> = OnceLock::new();
    let ctx = gpu_or_skip()?;
    Some(KERNELS.get_or_init(|| G1Kernels::new(ctx).expect("G1 kernels build")))
}

/// q − k as a field element, k small.
fn q_minus(k: u64) -> Fq {
    -Fq::from(k)
}

/// F_q edge values: 0, 1, 2, −1, −2, R, raw limbs 1 and q − 1, long carry chains.
fn edge_coordinates() -> Vec<Fq> {
    let raw = |limbs: [u64; 4]| {
        let bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        Fq::from_raw_bytes(&bytes).expect("below q")
    };
    vec![
        Fq::ZERO,
        Fq::ONE,
        Fq::from(2),
        q_minus(1),
        q_minus(2),
        Fq::from(2).pow_vartime([256]),
        raw([1, 0, 0, 0]),
        raw([
            0x3c208c16d87cfd46,
            0x97816a916871ca8d,
            0xb85045b68181585d,
            0x30644e72e131a029,
        ]),
        raw([u64::MAX, u64::MAX, u64::MAX, 0x30644e72e131a028]),
        raw([u64::MAX, 0, u64::MAX, 0]),
    ]
}

fn same(got: &[G1], want: &[G1], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g.x, g.y, g.z) == (w.x, w.y, w.z),
            "{what}[{i}]: got {:?}, want {:?}",
            (g.x, g.y, g.z),
            (w.x, w.y, w.z)
        );
    }
}

/// The same points in random projective representations (x·λ : y·λ : λ), identities as (0 : 1 : 0) scaled too.
fn rescaled(points: &[G1Affine], seed: u64) -> Vec<G1> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    points
        .iter()
        .map(|p| {
            let q = p.to_curve();
            let l = Fq::random(&mut rng);
            G1 {
                x: q.x * l,
                y: q.y * l,
                z: q.z * l,
            }
        })
        .collect()
}

/// Left and right operands covering the cases: random pairs, P + P, P + (−P), identity on either side.
fn operands() -> (Vec<G1>, Vec<G1Affine>) {
    let points = random_points(64, 1);
    let others = random_points(64, 2);
    let mut left: Vec<G1Affine> = Vec::new();
    let mut right: Vec<G1Affine> = Vec::new();
    for i in 0..16 {
        left.extend([points[i], points[i], points[i], G1Affine::identity(), points[i]]);
        right.extend([others[i], points[i], -points[i], points[i], G1Affine::identity()]);
    }
    left.push(G1Affine::identity());
    right.push(G1Affine::identity());
    (rescaled(&left, 3), right)
}

#[test]
fn projective_addition_matches_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let (a, b) = operands();
    let b = rescaled(&b, 4);
    let want: Vec<G1> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    same(&kernels.add(&a, &b).expect("add"), &want, "add");
    // The rescaled representations are the right points: their sums equal the sums of the affine forms.
    let affine_want: Vec<G1> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.to_affine().to_curve() + y.to_affine())
        .collect();
    assert!(want.iter().zip(&affine_want).all(|(x, y)| x == y));
}

#[test]
fn mixed_addition_matches_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let (a, b) = operands();
    let want: Vec<G1> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    same(&kernels.add_mixed(&a, &b).expect("add_mixed"), &want, "add_mixed");
}

#[test]
fn doubling_matches_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let (a, _) = operands();
    let want: Vec<G1> = a.iter().map(|x| x.double()).collect();
    same(&kernels.double(&a).expect("double"), &want, "double");
}

#[test]
fn off_curve_edge_coordinates_match_halo2curves() {
    let Some(kernels) = kernels() else { return };
    let edges = edge_coordinates();
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut b_affine = Vec::new();
    for (i, &x) in edges.iter().enumerate() {
        for (j, &y) in edges.iter().enumerate() {
            let z = edges[(i + 3 * j) % edges.len()];
            a.push(G1 { x, y, z });
            let (u, v) = (edges[(i * 7 + j) % edges.len()], edges[(j * 5 + i + 1) % edges.len()]);
            b.push(G1 { x: u, y: v, z: y });
            b_affine.push(G1Affine { x: u, y: v });
        }
    }
    let want: Vec<G1> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    same(&kernels.add(&a, &b).expect("add"), &want, "add of edge coordinates");
    let want: Vec<G1> = a.iter().zip(&b_affine).map(|(x, y)| x + y).collect();
    same(
        &kernels.add_mixed(&a, &b_affine).expect("add_mixed"),
        &want,
        "add_mixed of edge coordinates",
    );
    let want: Vec<G1> = a.iter().map(|x| x.double()).collect();
    same(
        &kernels.double(&a).expect("double"),
        &want,
        "double of edge coordinates",
    );
}

#[test]
fn empty_inputs_and_mismatched_lengths() {
    let Some(kernels) = kernels() else { return };
    assert!(kernels.add(&[], &[]).expect("empty").is_empty());
    assert!(kernels.double(&[]).expect("empty").is_empty());
    let err = kernels.add_mixed(&[G1::generator()], &[]).expect_err("lengths differ");
    assert!(matches!(err, GpuError::LengthMismatch { left: 1, right: 0 }), "{err}");
}
