//! Reading halo2's verifying key without the prover's FFT tables.
//!
//! halo2-axiom's `VerifyingKey::read` rebuilds the constraint system and an `EvaluationDomain` whose constructor
//! also computes FFT twiddle tables for `2^k`, `2^(k+1)`, …, `2^extended_k` points: at `k` = 15 that was a third of
//! a one-shot `zkinfer verify` process (tens of milliseconds and megabytes of page faults), and a verifier never
//! runs an FFT. [`read_verifying_key`] reads the same bytes (halo2-axiom 0.5's layout: version byte 2, `k` as a
//! little-endian `u32`, the selector-compression flag, the number of fixed commitments as a little-endian `u32`,
//! the fixed commitments and the permutation's, each a compressed point) and builds the domain's constants (roots
//! of unity, the vanishing polynomial on the coset, the inverses) without the tables; the key itself is halo2's
//! `VerifyingKey::from_parts`, so its transcript representation is halo2's. Tests compare the domain's constants
//! with `EvaluationDomain::new`'s and the key with `VerifyingKey::read`'s.

use std::collections::HashMap;

use ff::{BatchInvert, Field, PrimeField, WithSmallOrderMulGroup};
use group::GroupEncoding;
use halo2_proofs::{
    halo2curves::bn256::{Fr, G1Affine},
    plonk::{permutation, Circuit, ConstraintSystem, VerifyingKey},
    poly::EvaluationDomain,
};
use rayon::prelude::*;
use zkinfer_circuits::{CircuitParams, ModelCircuit};

/// halo2-axiom's verifying-key version byte.
const HALO2_KEY_VERSION: u8 = 0x02;

/// The evaluation domain of `2^k` rows for a constraint system of degree `degree`, with every constant a verifier
/// reads and no FFT tables (a verifier never transforms a polynomial); `None` when BN254's scalar field has no
/// domain that large.
pub fn verifier_domain(degree: u32, k: u32) -> Option<EvaluationDomain<Fr>> {
    let quotient_poly_degree = u64::from(degree.saturating_sub(1));
    let n = 1u64.checked_shl(k).filter(|_| k <= Fr::S)?;
    // The extended domain holds the quotient polynomial: the smallest power of two of at least n · (degree − 1).
    let mut extended_k = k;
    while (1u64 << extended_k) < n.checked_mul(quotient_poly_degree)? {
        extended_k += 1;
        if extended_k > Fr::S {
            return None;
        }
    }
    // The 2^j-th root of unity is the field's 2^S-th root squared S − j times.
    let root = |log: u32| (log..Fr::S).fold(Fr::ROOT_OF_UNITY, |w, _| w.square());
    let (omega, extended_omega) = (root(k), root(extended_k));
    let g_coset = Fr::ZETA;
    // t(X) = X^n − 1 on the coset ζ·⟨ω_ext⟩ takes 2^(extended_k − k) values, repeating; the domain keeps their
    // inverses.
    let zeta_n = g_coset.pow_vartime([n]);
    let step = extended_omega.pow_vartime([n]);
    let mut t_evaluations: Vec<Fr> = std::iter::successors(Some(zeta_n), |x| Some(*x * step))
        .take(1 << (extended_k - k))
        .map(|x| x - Fr::ONE)
        .collect();
    let mut inverses = [Fr::from(n), Fr::from(1u64 << extended_k), omega, extended_omega];
    t_evaluations.iter_mut().chain(inverses.iter_mut()).batch_invert();
    let [ifft_divisor, extended_ifft_divisor, omega_inv, extended_omega_inv] = inverses;
    Some(EvaluationDomain {
        n,
        k,
        extended_k,
        omega,
        omega_inv,
        extended_omega,
        extended_omega_inv,
        g_coset,
        g_coset_inv: g_coset.square(),
        quotient_poly_degree,
        ifft_divisor,
        extended_ifft_divisor,
        t_evaluations,
        // 1 / ∏_{i≠0} (1 − ω^i) = 1 / n.
        barycentric_weight: ifft_divisor,
        fft_data: HashMap::new(),
    })
}

/// Decompresses `count` points from the front of `reader` (in parallel: decompression is a square root each, most of
/// reading a key).
fn read_points(reader: &mut &[u8], count: usize, what: &str) -> Result<Vec<G1Affine>, String> {
    let len = <G1Affine as GroupEncoding>::Repr::default().as_ref().len();
    let bytes = take(reader, count * len)?;
    bytes
        .par_chunks(len)
        .map(|chunk| {
            let mut repr = <G1Affine as GroupEncoding>::Repr::default();
            repr.as_mut().copy_from_slice(chunk);
            Option::from(G1Affine::from_bytes(&repr)).ok_or_else(|| format!("a {what} commitment is not a curve point"))
        })
        .collect()
}

/// Takes the next `n` bytes.
fn take<'a>(reader: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    let bytes = reader.get(..n).ok_or("the halo2 key is truncated")?;
    *reader = &reader[n..];
    Ok(bytes)
}

/// The constraint system of zkinfer's circuit laid out with `params`, as configured (selectors not yet turned into
/// fixed columns): what [`read_verifying_key`] reads a key of.
pub fn configured(params: CircuitParams) -> ConstraintSystem<Fr> {
    let mut cs = ConstraintSystem::<Fr>::default();
    ModelCircuit::configure_with_params(&mut cs, params);
    cs
}

/// Reads halo2's verifying key of the circuit whose constraint system is `cs` ([`configured`]) from exactly `bytes`
/// (uncompressed selectors only, which is what zkinfer writes), building its domain with [`verifier_domain`].
pub fn read_verifying_key(bytes: &[u8], cs: ConstraintSystem<Fr>) -> Result<VerifyingKey<G1Affine>, String> {
    let mut reader = bytes;
    if take(&mut reader, 1)? != [HALO2_KEY_VERSION] {
        return Err("unexpected halo2 key version".into());
    }
    let k = u32::from_le_bytes(take(&mut reader, 4)?.try_into().map_err(|_| "truncated k")?);
    if take(&mut reader, 1)? != [0] {
        return Err("the halo2 key compresses its selectors; zkinfer's keys keep them as fixed columns".into());
    }
    let degree = cs.degree() as u32;
    let permuted = cs.permutation().get_columns().len();
    let selectors = vec![vec![false]; cs.num_selectors()];
    let (cs, _) = cs.directly_convert_selectors_to_fixed(selectors);
    let fixed = u32::from_le_bytes(take(&mut reader, 4)?.try_into().map_err(|_| "truncated count")?) as usize;
    // halo2's verifier indexes the fixed commitments by the constraint system's fixed columns (and panics on a key
    // with fewer): the count must be exactly theirs.
    if fixed != cs.num_fixed_columns() {
        return Err(format!(
            "the halo2 key has {fixed} fixed commitments for {} fixed columns",
            cs.num_fixed_columns()
        ));
    }
    let point_len = <G1Affine as GroupEncoding>::Repr::default().as_ref().len();
    if fixed.checked_add(permuted).and_then(|c| c.checked_mul(point_len)) != Some(reader.len()) {
        return Err(format!(
            "the halo2 key holds {} bytes for {fixed} fixed and {permuted} permutation commitments",
            reader.len()
        ));
    }
    let fixed_commitments = read_points(&mut reader, fixed, "fixed")?;
    let permutation_commitments = read_points(&mut reader, permuted, "permutation")?;
    let domain = verifier_domain(degree, k).ok_or_else(|| format!("no evaluation domain of 2^{k} rows"))?;
    Ok(VerifyingKey::from_parts(
        domain,
        fixed_commitments,
        permutation::VerifyingKey::from_commitments(permutation_commitments),
        cs,
        vec![],
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every constant of a domain but its FFT tables.
    fn constants(d: &EvaluationDomain<Fr>) -> (u64, u32, u32, u64, [Fr; 9], Vec<Fr>) {
        let scalars = [
            d.omega,
            d.omega_inv,
            d.extended_omega,
            d.extended_omega_inv,
            d.g_coset,
            d.g_coset_inv,
            d.ifft_divisor,
            d.extended_ifft_divisor,
            d.barycentric_weight,
        ];
        (
            d.n,
            d.k,
            d.extended_k,
            d.quotient_poly_degree,
            scalars,
            d.t_evaluations.clone(),
        )
    }

    #[test]
    fn the_domain_has_every_constant_of_halo2s() {
        for k in [1, 4, 10, 15] {
            for degree in [2, 3, 4, 5, 7, 9] {
                let ours = verifier_domain(degree, k).expect("a domain");
                let theirs = EvaluationDomain::<Fr>::new(degree, k);
                assert_eq!(constants(&ours), constants(&theirs), "k {k}, degree {degree}");
                assert!(ours.fft_data.is_empty() && !theirs.fft_data.is_empty());
            }
        }
        assert!(verifier_domain(5, Fr::S).is_none(), "an extended domain past 2^S");
        assert!(verifier_domain(3, 64).is_none());
    }
}
