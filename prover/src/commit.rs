//! KZG commitments that exploit small witness values, plugged into halo2 as a commitment scheme.
//!
//! Most advice columns of a model circuit hold small integers (int8 activations, byte limbs, flags, accumulators
//! below 2^40) and zeros; only a few rows (halo2's blinding rows, sponge states, second-phase columns) hold full
//! field elements. halo2's `commit_lagrange` runs one Pippenger MSM whose window count is set by the largest
//! scalar, so a single random blinding value makes every entry pay for 254 bits. [`SmallValueParams`] splits a
//! column instead: zeros are skipped, entries whose value or negation fits in 16 or 64 bits go to their own MSM
//! (a negative value `−u` becomes `u` times the negated base), and the few full-size entries are multiplied one by
//! one. The commitment is the same group element, so a proof is one that `KZGCommitmentScheme<Bn256>` with
//! `ProverSHPLONK` makes from the same randomness, and the verifier needs nothing new. Measured on 2 vCPUs
//! (BENCHMARKS.md): proving takes 7 % less on the shipped CNN and ResNet; most of the remaining commitment time
//! is in full-size columns (lookup and permutation arguments, second-phase columns).
//!
//! With a GPU attached ([`SmallValueParams::attach_gpu`]) both kinds of commitment are GPU MSMs on resident bases
//! instead ([`GpuCommitter`]), with the CPU path above as the fallback.
//!
//! [`SmallValueKzg`] is the `CommitmentScheme` (its verifier side is plain KZG) and [`SmallValueShplonk`] the
//! multi-open prover, which commits to the quotient and opening polynomials (full-size values) exactly as before.

use std::io;
use std::sync::Arc;

use ff::{Field, PrimeField};
use group::Group;
use halo2_proofs::halo2curves::serde::SerdeObject;
use halo2_proofs::{
    arithmetic::best_multiexp,
    halo2curves::bn256::{Bn256, Fr, G1Affine, G1},
    poly::{
        commitment::{Blind, CommitmentScheme, Params, ParamsProver, Prover},
        kzg::{
            commitment::{KZGCommitmentScheme, ParamsKZG},
            msm::MSMKZG,
            multiopen::ProverSHPLONK,
        },
        Coeff, LagrangeCoeff, Polynomial, ProverQuery,
    },
    transcript::{EncodedChallenge, TranscriptWrite},
    SerdeFormat,
};
use rand::RngCore;
use rayon::prelude::*;

use crate::device::GpuBackend;
use crate::error::Result;
use crate::gpu_commit::{Basis, GpuCommitter};

/// Size classes of a committed value: at most 16 bits, at most 64 bits (both as the smaller of `v` and `−v`).
const CLASS_BYTES: [usize; 2] = [2, 8];
/// Up to this many full-size entries are multiplied one by one instead of by a Pippenger MSM.
const DIRECT_LIMIT: usize = 32;

/// The KZG commitment scheme over BN254 with [`SmallValueParams`] on the prover side.
#[derive(Debug)]
pub struct SmallValueKzg;

impl CommitmentScheme for SmallValueKzg {
    type Scalar = Fr;
    type Curve = G1Affine;
    type ParamsProver = SmallValueParams;
    type ParamsVerifier = ParamsKZG<Bn256>;

    fn new_params(k: u32) -> Self::ParamsProver {
        SmallValueParams::new(<KZGCommitmentScheme<Bn256> as CommitmentScheme>::new_params(k))
    }

    fn read_params<R: io::Read>(reader: &mut R) -> io::Result<Self::ParamsProver> {
        Ok(SmallValueParams::new(ParamsKZG::read(reader)?))
    }
}

/// KZG prover parameters with their Lagrange bases at hand, committing by value size.
#[derive(Clone, Debug)]
pub struct SmallValueParams {
    kzg: ParamsKZG<Bn256>,
    /// `[L_i(s)]·G` for every row `i`: the bases of a commitment in Lagrange form.
    lagrange: Vec<G1Affine>,
    /// The same bases resident on a GPU, when the prover uses one.
    gpu: Option<Arc<GpuCommitter>>,
}

impl SmallValueParams {
    /// Wraps `kzg`, copying out its Lagrange bases.
    pub fn new(kzg: ParamsKZG<Bn256>) -> Self {
        let lagrange = lagrange_bases(&kzg);
        Self {
            kzg,
            lagrange,
            gpu: None,
        }
    }

    /// Uploads the Lagrange and monomial bases to `backend`'s GPU; from then on commitments are GPU MSMs (those
    /// shorter than the backend's threshold, and any the GPU fails, stay on the CPU).
    pub fn attach_gpu(&mut self, backend: Arc<GpuBackend>) -> Result<()> {
        let committer = GpuCommitter::new(backend, &self.lagrange, self.kzg.get_g())?;
        self.gpu = Some(Arc::new(committer));
        Ok(())
    }

    /// Commits on the CPU again.
    pub fn detach_gpu(&mut self) {
        self.gpu = None;
    }

    /// The GPU committer, when one is attached.
    pub fn gpu(&self) -> Option<&Arc<GpuCommitter>> {
        self.gpu.as_ref()
    }

    /// The plain KZG parameters (for key generation, writing and verifying).
    pub fn kzg(&self) -> &ParamsKZG<Bn256> {
        &self.kzg
    }
}

/// The Lagrange bases of `kzg`, read back from its uncompressed serialization (`k`, the `n` monomial bases, the
/// `n` Lagrange bases, `g2`, `s·g2`): halo2 keeps them private, and recomputing them is an FFT over the curve.
fn lagrange_bases(kzg: &ParamsKZG<Bn256>) -> Vec<G1Affine> {
    let n = kzg.n() as usize;
    let mut bytes = Vec::new();
    kzg.write_custom(&mut bytes, SerdeFormat::RawBytesUnchecked)
        .expect("writing to a Vec cannot fail");
    let point = G1Affine::default().to_raw_bytes().len();
    let start = 4 + n * point;
    bytes[start..start + n * point]
        .par_chunks_exact(point)
        .map(G1Affine::from_raw_bytes_unchecked)
        .collect()
}

/// `Σ scalars[i]·bases[i]`, by size class of the scalars.
pub fn commit_by_size(scalars: &[Fr], bases: &[G1Affine]) -> G1 {
    assert!(
        bases.len() >= scalars.len(),
        "{} bases for {} scalars",
        bases.len(),
        scalars.len()
    );
    // (class, |value|, base with the value's sign) of every nonzero entry; class CLASS_BYTES.len() is full size.
    let classified: Vec<(usize, Fr, G1Affine)> = scalars
        .par_iter()
        .zip(bases)
        .filter(|(v, _)| !bool::from(v.is_zero()))
        .map(|(v, base)| {
            // The negation is only worth its representation when `v` itself is not already in the smallest class.
            let bytes = significant_bytes(v);
            let negated = if bytes <= CLASS_BYTES[0] {
                bytes
            } else {
                significant_bytes(&-*v)
            };
            let (len, value, base) = if negated < bytes {
                (negated, -*v, -*base)
            } else {
                (bytes, *v, *base)
            };
            let class = CLASS_BYTES.iter().position(|&c| len <= c).unwrap_or(CLASS_BYTES.len());
            (class, value, base)
        })
        .collect();
    let mut total = G1::identity();
    for class in 0..=CLASS_BYTES.len() {
        let (values, points): (Vec<Fr>, Vec<G1Affine>) = classified
            .iter()
            .filter(|(c, _, _)| *c == class)
            .map(|&(_, v, b)| (v, b))
            .unzip();
        total += if class == CLASS_BYTES.len() && values.len() <= DIRECT_LIMIT {
            values
                .par_iter()
                .zip(&points)
                .map(|(v, b)| *b * v)
                .reduce(G1::identity, |a, b| a + b)
        } else if values.is_empty() {
            G1::identity()
        } else {
            // halo2curves' MSM sizes its windows by the largest scalar it is given.
            best_multiexp(&values, &points)
        };
    }
    total
}

/// Bytes of the canonical little-endian representation up to the last nonzero one.
fn significant_bytes(v: &Fr) -> usize {
    let repr = v.to_repr();
    let bytes = repr.as_ref();
    bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count()
}

impl<'params> Params<'params, G1Affine> for SmallValueParams {
    type MSM = MSMKZG<Bn256>;

    fn k(&self) -> u32 {
        Params::k(&self.kzg)
    }

    fn n(&self) -> u64 {
        Params::n(&self.kzg)
    }

    fn downsize(&mut self, k: u32) {
        self.kzg.downsize(k);
        self.lagrange = lagrange_bases(&self.kzg);
        // The resident bases are those of the old size: commit on the CPU until a GPU is attached again.
        self.gpu = None;
    }

    fn empty_msm(&'params self) -> Self::MSM {
        self.kzg.empty_msm()
    }

    fn commit_lagrange(&self, poly: &Polynomial<Fr, LagrangeCoeff>, _: Blind<Fr>) -> G1 {
        let cpu = || commit_by_size(poly.values(), &self.lagrange);
        match &self.gpu {
            Some(gpu) => gpu.commit(Basis::Lagrange, poly.values(), cpu),
            None => cpu(),
        }
    }

    fn write<W: io::Write>(&self, writer: &mut W) -> io::Result<()> {
        Params::write(&self.kzg, writer)
    }

    fn read<R: io::Read>(reader: &mut R) -> io::Result<Self> {
        Ok(Self::new(Params::read(reader)?))
    }
}

impl<'params> ParamsProver<'params, G1Affine> for SmallValueParams {
    type ParamsVerifier = ParamsKZG<Bn256>;

    fn new(k: u32) -> Self {
        Self::new(ParamsKZG::new(k))
    }

    fn commit(&self, poly: &Polynomial<Fr, Coeff>, r: Blind<Fr>) -> G1 {
        // KZG commitments carry no blinding term (halo2 blinds through random rows), so `r` plays no part.
        let cpu = || self.kzg.commit(poly, r);
        match &self.gpu {
            Some(gpu) => gpu.commit(Basis::Monomial, poly.values(), cpu),
            None => cpu(),
        }
    }

    fn get_g(&self) -> &[G1Affine] {
        self.kzg.get_g()
    }

    fn verifier_params(&'params self) -> &'params Self::ParamsVerifier {
        &self.kzg
    }
}

/// SHPLONK multi-open prover for [`SmallValueKzg`]: halo2's own, on the plain KZG parameters.
#[derive(Debug)]
pub struct SmallValueShplonk<'params>(ProverSHPLONK<'params, Bn256>);

impl<'params> Prover<'params, SmallValueKzg> for SmallValueShplonk<'params> {
    const QUERY_INSTANCE: bool =
        <ProverSHPLONK<'params, Bn256> as Prover<'params, KZGCommitmentScheme<Bn256>>>::QUERY_INSTANCE;

    fn new(params: &'params SmallValueParams) -> Self {
        Self(ProverSHPLONK::new(&params.kzg))
    }

    fn create_proof<'com, E: EncodedChallenge<G1Affine>, T: TranscriptWrite<G1Affine, E>, R, I>(
        &self,
        rng: R,
        transcript: &mut T,
        queries: I,
    ) -> io::Result<()>
    where
        I: IntoIterator<Item = ProverQuery<'com, G1Affine>> + Clone,
        R: RngCore,
    {
        self.0.create_proof(rng, transcript, queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use group::Curve;
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn commit_lagrange_affine(params: &SmallValueParams, values: &[Fr]) -> G1Affine {
        commit_by_size(values, &params.lagrange).to_affine()
    }

    fn params(k: u32) -> SmallValueParams {
        SmallValueParams::new(ParamsKZG::setup(k, ChaCha20Rng::seed_from_u64(k as u64)))
    }

    fn halo2(p: &SmallValueParams, values: &[Fr]) -> G1Affine {
        p.kzg
            .commit_lagrange(&Polynomial::new(values.to_vec()), Blind::default())
            .to_affine()
    }

    #[test]
    fn every_mix_of_sizes_commits_like_halo2() {
        let p = params(6);
        let n = 64;
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let small = |i: usize| Fr::from((i * 37 % 300) as u64) - Fr::from(128);
        let cases: Vec<(&str, Vec<Fr>)> = vec![
            ("zeros", vec![Fr::ZERO; n]),
            ("small, both signs", (0..n).map(small).collect()),
            (
                "p − 1 and 1",
                (0..n).map(|i| if i % 2 == 0 { -Fr::ONE } else { Fr::ONE }).collect(),
            ),
            ("edges of the classes", {
                let edges = [1u64 << 16, (1 << 16) - 1, u64::MAX, 1 << 40];
                (0..n)
                    .map(|i| Fr::from(edges[i % 4]) * if i % 8 < 4 { Fr::ONE } else { -Fr::ONE })
                    .collect()
            }),
            (
                "small with random blinding rows",
                (0..n)
                    .map(|i| if i >= n - 6 { Fr::random(&mut rng) } else { small(i) })
                    .collect(),
            ),
            ("random", (0..n).map(|_| Fr::random(&mut rng)).collect()),
            ("all equal", vec![Fr::from(77u64); n]),
            ("shorter than n", (0..n - 5).map(small).collect()),
        ];
        for (name, values) in cases {
            assert_eq!(commit_lagrange_affine(&p, &values), halo2(&p, &values), "{name}");
        }
    }

    #[test]
    fn the_lagrange_bases_survive_downsizing() {
        let mut p = params(7);
        Params::downsize(&mut p, 5);
        let values: Vec<Fr> = (0..32u64).map(Fr::from).collect();
        assert_eq!(p.lagrange.len(), 32);
        assert_eq!(commit_lagrange_affine(&p, &values), halo2(&p, &values));
    }
}
