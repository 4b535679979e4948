//! Integer arithmetic shared by the native engine and the circuit: the one place where a number is rounded.

/// Largest requantization shift the circuit accepts (the remainder is range-checked in `⌈s / L⌉` limbs of `L` bits).
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

/// Number of bits that range-check the clamp slack `|q − y|` of a channel whose accumulator is bounded by
/// `acc_bound` and whose outputs have `out_bits` bits: enough for the largest |q| it can produce plus the
/// largest |y|.
pub fn slack_bits(acc_bound: i128, m: i64, s: u32, out_bits: u32) -> u32 {
    let q_max = ((acc_bound * m as i128 + (1i128 << (s - 1))) >> s) + (1i128 << out_bits);
    128 - q_max.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

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
                for bits in [8u32, 16] {
                    let hi = (1i64 << (bits - 1)) - 1;
                    let w = requantize(acc, m, s, -hi - 1, hi);
                    assert_eq!(
                        acc as i128 * m as i128 + (1 << (s - 1)),
                        ((w.q as i128) << s) + w.r as i128
                    );
                    assert!((0..1i64 << s).contains(&w.r));
                    assert_eq!(w.q, w.y + w.over - w.under);
                    let slack = slack_bits(i128::from(acc.abs()), m, s, bits);
                    assert!(w.over >> slack == 0 && w.under >> slack == 0 && w.over >= 0 && w.under >= 0);
                }
            }
        }
    }
}
