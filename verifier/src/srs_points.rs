//! The three SRS points a KZG verifier reads (`g_0`, `g_2`, `s·g_2`), checked before they are used, and the
//! recognisable points of the insecure development SRS.
//!
//! The pairing check `e(L, s·g_2) = e(R, g_2)` is only as good as these points: with `s·g_2` of a trapdoor the
//! forger knows (or the identity, or a point outside the prime-order subgroup) any proof can be made to pass. So a
//! verifying-key file's points are refused unless `g_0` and `g_2` are the standard BN254 generators (every
//! powers-of-tau ceremony for BN254 uses them) and `s·g_2` is a point of the prime-order subgroup other than `±g_2`
//! and the identity. Which `s` a key uses is then pinned by the model id, which hashes the whole key file.

use group::GroupEncoding;
use halo2_proofs::halo2curves::serde::SerdeObject;
use halo2_proofs::{
    halo2curves::bn256::{Bn256, Fq, G1Affine, G2Affine, G2},
    poly::{commitment::ParamsProver, kzg::commitment::ParamsKZG},
    SerdeCurveAffine, SerdeFormat,
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

/// The public seed of the insecure development SRS: anyone can derive its trapdoor `s` and forge proofs.
pub const INSECURE_DEV_SRS_SEED: [u8; 32] = *b"zkinfer insecure dev SRS -- v1!!";

/// Bytes of the three points in a verifying-key file (compressed: 32 + 64 + 64).
pub const SRS_POINTS_BYTES: usize = 32 + 64 + 64;

/// The verifier's part of an SRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrsPoints {
    /// `g_0 = [1]G1`.
    pub g0: G1Affine,
    /// `g_2 = [1]G2`.
    pub g2: G2Affine,
    /// `[s]G2`.
    pub s_g2: G2Affine,
}

/// The insecure development parameters for `2^k` rows (`s` derived from [`INSECURE_DEV_SRS_SEED`]). For tests
/// and demos only.
pub fn insecure_dev_params(k: u32) -> ParamsKZG<Bn256> {
    ParamsKZG::setup(k, ChaCha20Rng::from_seed(INSECURE_DEV_SRS_SEED))
}

/// `s·g_2` of the insecure development SRS, compressed (the same for every `k`: halo2 draws `s` first), written
/// out so that recognising it costs no setup; a test derives it from [`INSECURE_DEV_SRS_SEED`].
const INSECURE_DEV_S_G2: [u8; 64] = [
    62, 2, 15, 151, 86, 104, 100, 100, 55, 228, 150, 4, 247, 72, 24, 185, 114, 104, 157, 113, 220, 252, 51, 117, 247,
    160, 91, 81, 194, 33, 124, 17, 250, 154, 36, 107, 249, 11, 18, 194, 220, 248, 234, 64, 83, 243, 59, 7, 77, 194,
    100, 229, 34, 37, 15, 155, 101, 68, 114, 42, 150, 12, 116, 31,
];

impl SrsPoints {
    /// The points of `params`.
    pub fn of(params: &ParamsKZG<Bn256>) -> Self {
        Self {
            g0: params.get_g()[0],
            g2: params.g2(),
            s_g2: params.s_g2(),
        }
    }

    /// Whether these are the points of the insecure development SRS, whose trapdoor is public.
    pub fn is_insecure_dev(&self) -> bool {
        self.s_g2.to_bytes().as_ref() == INSECURE_DEV_S_G2
    }

    /// Refuses points a forger could exploit: other generators, or an `s·g_2` that is the identity, `±g_2`, or
    /// outside the prime-order subgroup.
    pub fn check(&self) -> Result<(), String> {
        use group::{cofactor::CofactorGroup, prime::PrimeCurveAffine};
        if self.g0 != G1Affine::generator() {
            return Err("g_0 is not the BN254 G1 generator".into());
        }
        if self.g2 != G2Affine::generator() {
            return Err("g_2 is not the BN254 G2 generator".into());
        }
        let s_g2 = self.s_g2;
        if bool::from(s_g2.is_identity()) {
            return Err("s·g_2 is the point at infinity".into());
        }
        if s_g2 == self.g2 || s_g2 == -self.g2 {
            return Err("s·g_2 is ±g_2 (a trapdoor of ±1)".into());
        }
        if !bool::from(G2::from(s_g2).is_torsion_free()) {
            return Err("s·g_2 is not in the prime-order subgroup of G2".into());
        }
        Ok(())
    }

    /// The verifier-only KZG parameters (`2^k` rows) holding these points. KZG verification reads only `g_0`,
    /// `g_2`, `s·g_2` and the size; `from_parts` needs a receiver, a one-point parameter set read from bytes.
    pub fn params(&self, k: u32) -> ParamsKZG<Bn256> {
        // halo2 makes parameters by setup (a trapdoor, a scalar multiplication in G2) or by reading them: a
        // one-point set read from its raw encoding costs nothing.
        let mut one_point = 0u32.to_le_bytes().to_vec();
        for g1 in [self.g0, self.g0] {
            g1.write_raw(&mut one_point).unwrap_or(());
        }
        for g2 in [self.g2, self.s_g2] {
            g2.write_raw(&mut one_point).unwrap_or(());
        }
        let receiver = ParamsKZG::<Bn256>::read_custom(&mut &one_point[..], SerdeFormat::RawBytesUnchecked)
            .unwrap_or_else(|_| insecure_dev_params(0));
        receiver.from_parts(k, vec![self.g0], Some(vec![self.g0]), self.g2, self.s_g2)
    }

    /// The compressed encoding: `g_0 ‖ g_2 ‖ s·g_2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SRS_POINTS_BYTES);
        // Writing into a Vec cannot fail.
        let _ = self.g0.write(&mut out, SerdeFormat::Processed);
        let _ = self.g2.write(&mut out, SerdeFormat::Processed);
        let _ = self.s_g2.write(&mut out, SerdeFormat::Processed);
        out
    }

    /// Decodes and [checks](Self::check) the compressed encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != SRS_POINTS_BYTES {
            return Err(format!(
                "the SRS points take {SRS_POINTS_BYTES} bytes, found {}",
                bytes.len()
            ));
        }
        // halo2curves panics (instead of failing) on a G2 x coordinate whose halves are not below the modulus.
        for (what, point) in [("g_2", &bytes[32..96]), ("s·g_2", &bytes[96..160])] {
            if !g2_coordinate_in_range(point) {
                return Err(format!("{what}: its x coordinate is not a field element"));
            }
        }
        let reader = &mut &bytes[..];
        let g0 = G1Affine::read(reader, SerdeFormat::Processed).map_err(|e| format!("g_0: {e}"))?;
        let g2 = G2Affine::read(reader, SerdeFormat::Processed).map_err(|e| format!("g_2: {e}"))?;
        let s_g2 = G2Affine::read(reader, SerdeFormat::Processed).map_err(|e| format!("s·g_2: {e}"))?;
        let points = Self { g0, g2, s_g2 };
        points.check()?;
        Ok(points)
    }
}

/// Whether both halves of a compressed G2 point's x coordinate (flags cleared) are canonical `F_q` elements.
fn g2_coordinate_in_range(compressed: &[u8]) -> bool {
    let mut c0 = [0u8; 32];
    let mut c1 = [0u8; 32];
    c0.copy_from_slice(&compressed[..32]);
    c1.copy_from_slice(&compressed[32..64]);
    c1[31] &= 0b0011_1111;
    bool::from(Fq::from_bytes(&c0).is_some()) && bool::from(Fq::from_bytes(&c1).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;
    use group::{prime::PrimeCurveAffine, Curve};
    use halo2_proofs::arithmetic::CurveAffine;
    use halo2_proofs::halo2curves::bn256::{Fq2, Fr};
    use halo2_proofs::poly::commitment::Params;

    fn ceremony(seed: u8) -> SrsPoints {
        SrsPoints::of(&ParamsKZG::<Bn256>::setup(1, ChaCha20Rng::from_seed([seed; 32])))
    }

    /// A point on the twist curve `y² = x³ + b'` that is not in the prime-order subgroup.
    pub(crate) fn outside_subgroup() -> G2Affine {
        let b = G2Affine::generator().y.square() - G2Affine::generator().x.square() * G2Affine::generator().x;
        let mut x = Fq2::ONE;
        loop {
            x += Fq2::ONE;
            let y2 = x.square() * x + b;
            if let Some(y) = Option::<Fq2>::from(y2.sqrt()) {
                let p = G2Affine { x, y };
                assert!(bool::from(p.is_on_curve()));
                if !bool::from(<G2 as group::cofactor::CofactorGroup>::is_torsion_free(&G2::from(p))) {
                    return p;
                }
            }
        }
    }

    #[test]
    fn the_written_dev_point_is_the_seeds() {
        let derived = insecure_dev_params(0).s_g2().to_bytes();
        assert_eq!(derived.as_ref(), INSECURE_DEV_S_G2, "{:?}", derived.as_ref());
    }

    #[test]
    fn the_verifier_params_hold_the_points() {
        let points = ceremony(4);
        for k in [1, 9, 15] {
            let params = points.params(k);
            assert_eq!((params.k(), params.n()), (k, 1u64 << k));
            assert_eq!(SrsPoints::of(&params), points);
        }
    }

    #[test]
    fn ceremony_points_round_trip_and_dev_points_are_recognised() {
        let points = ceremony(3);
        assert_eq!(SrsPoints::from_bytes(&points.to_bytes()), Ok(points));
        assert!(!points.is_insecure_dev());
        for k in [1, 4, 7] {
            assert!(SrsPoints::of(&insecure_dev_params(k)).is_insecure_dev(), "k = {k}");
        }
    }

    #[test]
    fn exploitable_points_are_refused() {
        let good = ceremony(5);
        let g2 = G2Affine::generator();
        let cases = [
            (
                "s·g_2 = ∞",
                SrsPoints {
                    s_g2: G2Affine::identity(),
                    ..good
                },
            ),
            ("s = 1", SrsPoints { s_g2: g2, ..good }),
            ("s = −1", SrsPoints { s_g2: -g2, ..good }),
            (
                "g_2 = ∞",
                SrsPoints {
                    g2: G2Affine::identity(),
                    ..good
                },
            ),
            ("g_2 = s·g_2", SrsPoints { g2: good.s_g2, ..good }),
            (
                "g_2 another point",
                SrsPoints {
                    g2: (g2 * Fr::from(7)).to_affine(),
                    ..good
                },
            ),
            (
                "g_0 another point",
                SrsPoints {
                    g0: (G1Affine::generator() * Fr::from(9)).to_affine(),
                    ..good
                },
            ),
            (
                "g_0 = ∞",
                SrsPoints {
                    g0: G1Affine::identity(),
                    ..good
                },
            ),
            (
                "s·g_2 outside the subgroup",
                SrsPoints {
                    s_g2: outside_subgroup(),
                    ..good
                },
            ),
        ];
        for (what, points) in cases {
            assert!(points.check().is_err(), "{what} accepted");
            assert!(SrsPoints::from_bytes(&points.to_bytes()).is_err(), "{what} decoded");
        }
        assert!(SrsPoints::from_bytes(&good.to_bytes()[..100]).is_err());
        // x coordinates at or above the modulus (halo2curves would panic on them) are refused.
        for at in [32, 64, 96, 128] {
            let mut bytes = good.to_bytes();
            bytes[at..at + 31].fill(0xff);
            bytes[at + 31] = 0x3f;
            assert!(
                SrsPoints::from_bytes(&bytes)
                    .unwrap_err()
                    .contains("not a field element"),
                "at {at}"
            );
        }
    }
}
