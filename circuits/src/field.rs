//! Conversions between signed integers, bytes and BN254 scalars: a signed `v` is the field element `v mod p`.

use ff::PrimeField;
use halo2_proofs::halo2curves::bn256::Fr;

/// The field element `v mod p`.
pub fn from_i64(v: i64) -> Fr {
    if v >= 0 {
        Fr::from(v as u64)
    } else {
        -Fr::from(v.unsigned_abs())
    }
}

/// The field element `v mod p` of a 128-bit integer.
pub fn from_i128(v: i128) -> Fr {
    let magnitude = v.unsigned_abs();
    let f = Fr::from((magnitude >> 64) as u64) * Fr::from_u128(1 << 64) + Fr::from(magnitude as u64);
    if v < 0 {
        -f
    } else {
        f
    }
}

/// The signed integer a field element stands for, when it is within `i64` (either side of zero).
pub fn to_i64(f: &Fr) -> Option<i64> {
    let small = |f: &Fr| -> Option<u64> {
        let repr = f.to_repr();
        let bytes = repr.as_ref();
        if bytes[8..].iter().all(|&b| b == 0) {
            Some(u64::from_le_bytes(bytes[..8].try_into().ok()?))
        } else {
            None
        }
    };
    match small(f) {
        Some(v) if v <= i64::MAX as u64 => Some(v as i64),
        _ => small(&-*f)
            .filter(|&v| v <= 1u64 << 63)
            .map(|v| (v as i128).wrapping_neg() as i64),
    }
}

/// Canonical 32-byte little-endian encoding.
pub fn to_bytes(f: &Fr) -> [u8; 32] {
    f.to_repr()
}

/// Decodes a canonical 32-byte little-endian encoding; `None` if not below p.
pub fn from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    Option::from(Fr::from_repr(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_round_trip() {
        for v in [0i64, 1, -1, 127, -128, i64::MAX, i64::MIN + 1, 1 << 40, -(1 << 40)] {
            assert_eq!(to_i64(&from_i64(v)), Some(v), "{v}");
        }
        assert_eq!(to_i64(&Fr::from_u128(1 << 100)), None);
    }

    #[test]
    fn wide_integers_map_to_their_residues() {
        for v in [0i64, 5, -5, i64::MAX, i64::MIN] {
            assert_eq!(from_i128(i128::from(v)), from_i64(v), "{v}");
        }
        assert_eq!(from_i128(1 << 100), Fr::from_u128(1 << 100));
        assert_eq!(from_i128(-(1 << 100)), -Fr::from_u128(1 << 100));
        assert_eq!(from_i128(i128::MIN), -Fr::from_u128(1 << 127));
    }
}
