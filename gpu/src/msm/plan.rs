//! The CPU side of the MSM: scalars to signed digits, the window size, the bucket lists (a counting sort) and their
//! segments, and the final combination of the GPU's per-chunk partial sums. Integer work only, except `combine`.

use ff::PrimeField;
use halo2curves::bn256::{Fr, G1};
use halo2curves::group::Group;
use rayon::prelude::*;

use crate::curve::POINT_BYTES;

/// Largest window (bits per digit): 2^15 buckets per window; larger windows only pay off beyond 2^20 points.
pub(crate) const MAX_WINDOW: u32 = 16;
/// Shortest segment of a bucket's list summed by one GPU invocation (longer when a bucket is very long: see
/// [`segment_length`]).
pub(crate) const MIN_SEGMENT: usize = 32;

/// p, the order of G1 and the modulus of F_r, as little-endian u64 limbs.
const P: [u64; 4] = [
    0x43e1f593f0000001,
    0x2833e84879b97091,
    0xb85045b68181585d,
    0x30644e72e131a029,
];

/// A scalar ready to be cut into digits: the smaller of v and p − v (as an integer), and whether that is p − v
/// (then the base is negated: (p − v)·(−B) = v·B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) limbs: [u64; 4],
    pub(crate) negate: bool,
}

impl Prepared {
    /// Significant bits of the magnitude (0 for a zero scalar).
    pub(crate) fn bits(&self) -> u32 {
        bit_length(&self.limbs)
    }
}

fn bit_length(limbs: &[u64; 4]) -> u32 {
    (0..4)
        .rev()
        .find(|&i| limbs[i] != 0)
        .map_or(0, |i| 64 * i as u32 + 64 - limbs[i].leading_zeros())
}

/// v or p − v, whichever has fewer significant bits (v on a tie).
pub(crate) fn prepare(scalar: &Fr) -> Prepared {
    let repr = scalar.to_repr();
    let mut v = [0u64; 4];
    for (limb, bytes) in v.iter_mut().zip(repr.as_ref().chunks_exact(8)) {
        *limb = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    if v == [0; 4] {
        return Prepared {
            limbs: v,
            negate: false,
        };
    }
    let mut neg = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = P[i].overflowing_sub(v[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        neg[i] = d;
        borrow = b1 || b2;
    }
    if bit_length(&neg) < bit_length(&v) {
        Prepared {
            limbs: neg,
            negate: true,
        }
    } else {
        Prepared {
            limbs: v,
            negate: false,
        }
    }
}

/// `len` (≤ 64) bits of `limbs` from bit `start` on (bits beyond 256 are 0).
fn bits_at(limbs: &[u64; 4], start: u32, len: u32) -> u64 {
    let (word, shift) = ((start / 64) as usize, start % 64);
    if word >= 4 {
        return 0;
    }
    let mut v = limbs[word] >> shift;
    if shift > 0 && shift + len > 64 && word + 1 < 4 {
        v |= limbs[word + 1] << (64 - shift);
    }
    v & ((1u64 << len) - 1)
}

/// Digit `w` of the signed (Booth) recoding with `c`-bit windows: d_w = x_w + b_(cw−1) − 2^c·b_(cw+c−1), where x_w
/// is bits cw … cw+c−1. Then x = Σ d_w·2^(cw) and d_w ∈ [−2^(c−1), 2^(c−1)]; each digit depends on c + 1 bits only,
/// so the windows are independent.
pub(crate) fn digit(limbs: &[u64; 4], w: u32, c: u32) -> i32 {
    let x = bits_at(limbs, c * w, c) as i64;
    let carry_in = if w == 0 { 0 } else { bits_at(limbs, c * w - 1, 1) as i64 };
    let top = x >> (c - 1);
    (x + carry_in - (top << c)) as i32
}

/// Windows that hold every nonzero digit of a magnitude of `bits` bits: ⌈(bits + 1)/c⌉ (the top digit needs a 0 bit
/// above it to carry nothing).
pub(crate) fn windows(bits: u32, c: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        (bits + 1).div_ceil(c)
    }
}

/// Buckets per window for `c`-bit windows, and how they are cut into chunks of consecutive buckets for the
/// parallel reduction: (buckets B = 2^(c−1), chunk length M, chunks per window K = B / M), with K ≈ M ≈ √B.
pub(crate) fn bucket_layout(c: u32) -> (u32, u32, u32) {
    let buckets = 1u32 << (c - 1);
    let chunks = 1u32 << ((c - 1) / 2);
    (buckets, buckets / chunks, chunks)
}

/// The window size for scalars with `histogram[b]` magnitudes of `b` bits: the `c` that minimizes the point
/// additions, Σ_b histogram[b]·⌈(b + 1)/c⌉ into buckets plus 2^c per window for reducing them, among the `c` whose
/// bucket sums and partial sums fit in `max_binding` bytes. Small scalars thus get one window of their size.
pub(crate) fn choose_window(histogram: &[u64; 257], max_binding: u64) -> u32 {
    let max_bits = (0..257).rev().find(|&b| histogram[b] > 0).unwrap_or(0) as u32;
    let cost = |c: u32| -> u64 {
        let bucket_adds: u64 = (1..257).map(|b| histogram[b] * u64::from(windows(b as u32, c))).sum();
        bucket_adds + (u64::from(windows(max_bits, c)) << c)
    };
    (1..=MAX_WINDOW)
        .filter(|&c| {
            let (buckets, _, chunks) = bucket_layout(c);
            let w = u64::from(windows(max_bits, c));
            w * u64::from(buckets) * POINT_BYTES <= max_binding
                && w * u64::from(2 * chunks) * POINT_BYTES <= max_binding
        })
        .min_by_key(|&c| cost(c))
        .unwrap_or(1)
}

/// Entries one invocation sums: at least [`MIN_SEGMENT`], and at least √(longest bucket), so that neither the
/// segment sums (≤ L additions each) nor combining a bucket's segments (≤ longest / L) is long: with all scalars
/// equal, one bucket per window holds every point, and n points cost about 2√n sequential additions, not n.
pub(crate) fn segment_length(longest: usize) -> usize {
    let mut root = (longest as f64).sqrt() as usize;
    while root * root < longest {
        root += 1;
    }
    root.max(MIN_SEGMENT)
}

/// What the GPU needs for one MSM over a range of bases: the bucket lists and their segments.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Window size c.
    pub(crate) window: u32,
    /// Number of windows W.
    pub(crate) windows: u32,
    /// For every window, every bucket (|digit| − 1), in that order: `(base index << 1) | negate` of each base whose
    /// digit falls in it.
    pub(crate) entries: Vec<u32>,
    /// (start, end) in `entries` of every segment, bucket after bucket.
    pub(crate) segments: Vec<u32>,
    /// For global bucket g = window·B + bucket, its segments are `segment_offsets[g] .. segment_offsets[g + 1]`.
    pub(crate) segment_offsets: Vec<u32>,
}

/// The plan's buffers would not fit in one storage binding: the caller splits the scalars.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// The plan for `prepared[i]` times base `first_base + i`, or `None` when every scalar is zero. Errors with
/// [`TooLarge`] (before building anything large) when a buffer of the plan exceeds `max_binding` bytes.
pub(crate) fn plan(prepared: &[Prepared], first_base: u32, max_binding: u64) -> Result<Option<Plan>, TooLarge> {
    let mut histogram = [0u64; 257];
    for p in prepared {
        histogram[p.bits() as usize] += 1;
    }
    histogram[0] = 0;
    let Some(max_bits) = (1..257).rev().find(|&b| histogram[b] > 0) else {
        return Ok(None);
    };
    let c = choose_window(&histogram, max_binding);
    let w_count = windows(max_bits as u32, c);
    let (buckets, _, _) = bucket_layout(c);
    let buckets = buckets as usize;

    // Counting sort, window by window (in parallel): bucket sizes first.
    let digit_of = |p: &Prepared, w: u32| if p.bits() + 1 > c * w { digit(&p.limbs, w, c) } else { 0 };
    let counts: Vec<Vec<u32>> = (0..w_count)
        .into_par_iter()
        .map(|w| {
            let mut count = vec![0u32; buckets];
            for p in prepared {
                let d = digit_of(p, w);
                if d != 0 {
                    count[d.unsigned_abs() as usize - 1] += 1;
                }
            }
            count
        })
        .collect();
    let total: u64 = counts.iter().flatten().map(|&n| u64::from(n)).sum();
    let longest = counts.iter().flatten().copied().max().unwrap_or(0) as usize;
    let seg_len = segment_length(longest);
    let segment_count: u64 = counts
        .iter()
        .flatten()
        .map(|&n| (n as usize).div_ceil(seg_len) as u64)
        .sum();
    let bucket_count = u64::from(w_count) * buckets as u64;
    if total * 4 > max_binding
        || segment_count * 8 > max_binding
        || segment_count * POINT_BYTES > max_binding
        || (bucket_count + 1) * 4 > max_binding
    {
        return Err(TooLarge);
    }

    // Then the entries, each window into its own slice.
    let mut entries = vec![0u32; total as usize];
    let mut slices = Vec::with_capacity(w_count as usize);
    let mut rest = entries.as_mut_slice();
    for count in &counts {
        let (slice, tail) = rest.split_at_mut(count.iter().map(|&n| n as usize).sum());
        slices.push(slice);
        rest = tail;
    }
    slices
        .into_par_iter()
        .zip(&counts)
        .enumerate()
        .for_each(|(w, (slice, count))| {
            let mut cursor = Vec::with_capacity(buckets);
            let mut at = 0usize;
            for &n in count {
                cursor.push(at);
                at += n as usize;
            }
            for (i, p) in prepared.iter().enumerate() {
                let d = digit_of(p, w as u32);
                if d != 0 {
                    let bucket = d.unsigned_abs() as usize - 1;
                    slice[cursor[bucket]] = ((first_base + i as u32) << 1) | u32::from(p.negate ^ (d < 0));
                    cursor[bucket] += 1;
                }
            }
        });

    // Segments of at most `seg_len` entries, bucket after bucket.
    let mut segments = Vec::with_capacity(2 * segment_count as usize);
    let mut segment_offsets = Vec::with_capacity(bucket_count as usize + 1);
    let mut start = 0u32;
    for &n in counts.iter().flatten() {
        segment_offsets.push((segments.len() / 2) as u32);
        let end = start + n;
        let mut s = start;
        while s < end {
            let e = end.min(s + seg_len as u32);
            segments.extend([s, e]);
            s = e;
        }
        start = end;
    }
    segment_offsets.push((segments.len() / 2) as u32);
    Ok(Some(Plan {
        window: c,
        windows: w_count,
        entries,
        segments,
        segment_offsets,
    }))
}

/// Σ_w 2^(cw)·T_w from the GPU's partial sums: for window w and chunk j (buckets jM … jM + M − 1),
/// `partials[2(wK + j)]` = A_j = Σ_(b in chunk) (b − jM + 1)·S_b and `partials[2(wK + j) + 1]` = R_j = Σ S_b. Then
/// T_w = Σ_b (b + 1)·S_b = Σ_j A_j + M·Σ_j j·R_j, the last sum by running sums (2K additions) and M a power of two;
/// the windows are combined by Horner's rule (c doublings each).
pub(crate) fn combine(partials: &[G1], c: u32, windows: u32) -> G1 {
    let (_, chunk, chunks) = bucket_layout(c);
    let chunks = chunks as usize;
    let mut total = G1::identity();
    for w in (0..windows as usize).rev() {
        for _ in 0..c {
            total = total.double();
        }
        let window = &partials[2 * chunks * w..2 * chunks * (w + 1)];
        let (mut running, mut weighted) = (G1::identity(), G1::identity());
        for j in (1..chunks).rev() {
            running += window[2 * j + 1];
            weighted += running;
        }
        for _ in 0..chunk.trailing_zeros() {
            weighted = weighted.double();
        }
        total += weighted;
        for j in 0..chunks {
            total += window[2 * j];
        }
    }
    total
}

#[cfg(test)]
mod tests;
