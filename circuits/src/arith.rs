//! Integer arithmetic shared by the native engine and the circuit: the one place where a number is rounded.

/// Bits per range-check limb; the lookup table holds `[0, 2^LIMB_BITS)`.
pub const LIMB_BITS: u32 = 8;

/// Largest requantization shift the circuit accepts (the remainder is range-checked in `s / 8` limbs).
pub const MAX_SHIFT: u32 = 48;

/// The pieces of one requantization, as the circuit witnesses them.
///
/// `acc · M + 2^(s−1) = q · 2^s + r` with `0 ≤ r < 2^s`, and `q = y + over − under` where
/// `y = clamp(q, lo, hi)`, `over = max(q − hi, 0)`, `under = max(lo − q, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requantized {
    /// Rounded quotient before clamping.
    pub q: i64,
    /// Remainder of the division by `2^s`.
    pub r: i64,
    /// Clamped output.
    pub y: i64,
    /// How far `q` exceeded the upper bound.
    pub over: i64,
    /// How far `q` fell below the lower bound.
    pub under: i64,
}

/// `y = clamp((acc · m + 2^(s−1)) >> s, lo, hi)` with an arithmetic (floor) shift, and its witness pieces.
pub fn requantize(acc: i64, m: i64, s: u32, lo: i64, hi: i64) -> Requantized {
    let t = acc as i128 * m as i128 + (1i128 << (s - 1));
    let q = (t >> s) as i64;
    let r = (t - ((q as i128) << s)) as i64;
    let y = q.clamp(lo, hi);
    Requantized {
        q,
        r,
        y,
        over: (q - hi).max(0),
        under: (lo - q).max(0),
    }
}

/// Number of limbs that range-check `over` and `under` of a channel whose accumulator is bounded by
/// `acc_bound`: enough bits for the largest |q| it can produce (never fewer than one limb).
pub fn slack_limbs(acc_bound: i64, m: i64, s: u32) -> usize {
    let q_max = ((acc_bound as i128 * m as i128 + (1i128 << (s - 1))) >> s) + 256;
    let bits = 128 - q_max.leading_zeros();
    bits.div_ceil(LIMB_BITS).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `v ∈ [0, 2^(8·limbs))` into little-endian limbs of [`LIMB_BITS`]; `None` when out of range.
    fn to_limbs(v: i128, limbs: usize) -> Option<Vec<u64>> {
        if v < 0 || (limbs < 16 && v >> (LIMB_BITS as usize * limbs) != 0) {
            return None;
        }
        Some(
            (0..limbs)
                .map(|i| ((v >> (LIMB_BITS as usize * i)) & 0xff) as u64)
                .collect(),
        )
    }

    #[test]
    fn requantize_rounds_half_up_and_clamps() {
        // 3 · 1 / 2^8 rounds to 0; 128 · 1 / 2^8 = 0.5 rounds up to 1; −128/256 = −0.5 rounds to 0.
        assert_eq!(requantize(3, 1, 8, -128, 127).y, 0);
        assert_eq!(requantize(128, 1, 8, -128, 127).y, 1);
        assert_eq!(requantize(-128, 1, 8, -128, 127).y, 0);
        assert_eq!(requantize(-129, 1, 8, -128, 127).y, -1);
        let big = requantize(1 << 20, 1 << 10, 8, 0, 127);
        assert_eq!((big.y, big.over, big.under), (127, big.q - 127, 0));
        let neg = requantize(-(1 << 20), 1 << 10, 8, 0, 127);
        assert_eq!((neg.y, neg.over, neg.under), (0, 0, -neg.q));
    }

    #[test]
    fn witness_pieces_satisfy_the_circuit_identities() {
        for acc in [-70_000i64, -1, 0, 1, 999, 123_456] {
            for (m, s) in [(23_456i64, 24u32), (40_000, 16), (1, 8)] {
                let w = requantize(acc, m, s, -128, 127);
                assert_eq!(
                    acc as i128 * m as i128 + (1 << (s - 1)),
                    ((w.q as i128) << s) + w.r as i128
                );
                assert!((0..1i64 << s).contains(&w.r));
                assert_eq!(w.q, w.y + w.over - w.under);
                assert!(to_limbs(w.over as i128, slack_limbs(acc.abs(), m, s)).is_some());
            }
        }
    }

    #[test]
    fn limbs_reject_out_of_range() {
        assert_eq!(to_limbs(0x1234, 2), Some(vec![0x34, 0x12]));
        assert_eq!(to_limbs(0x10000, 2), None);
        assert_eq!(to_limbs(-1, 2), None);
    }
}
