// Exact integer linear layer in gathered form (no field arithmetic; compiled on its own):
//   acc[s][o] = bias[k] + Σ_t weights[k·T + t] · input[s][taps[g·T + t]]   (taps[..] = -1: padding, adds 0)
// for every entry (o, g, k) and every sample s of the batch, T = taps_per_group.
//
// Two dispatches (see int_linear.rs for the exactness argument):
// - `segment_kernel`, one invocation per (sample, entry, segment of `segment_len` taps): the segment's exact sum as a
//   64-bit two's-complement integer, two u32 words (lo, hi). The host checks |w| ≤ W, |x| ≤ X with W, X ≤ 2^15, so
//   every product fits i32, and sets `chunk` = ⌊(2^31 − 1) / (W·X)⌋ (clamped to [1, segment_len]): the i32 partial
//   sum of `chunk` products has |partial| ≤ chunk·W·X ≤ 2^31 − 1 and never wraps. Each partial sum is
//   sign-extended and added into the 64-bit sum with an explicit carry.
// - `reduce_kernel`, one invocation per (sample, entry): bias + the segment sums, in 64 bits. The host bounds
//   |bias| + T·W·X below 2^63, so the sum modulo 2^64 is the exact i64 result.
// Segments keep every invocation's loops short (lavapipe stops any invocation after 65535 loop iterations in all)
// and spread long kernels over more invocations. When segment_len·W·X < 2^31 (int8 layers) a segment is one chunk:
// a single i32 accumulator.
//
// The grid is two-dimensional, as in elementwise.wgsl.

struct Params {
    // Number of (o, g, k) entries.
    entries: u32,
    // Samples in this dispatch.
    samples: u32,
    // T: taps per group (and weights per kernel).
    taps_per_group: u32,
    // Length of one sample's input vector.
    input_len: u32,
    // Length of one sample's output vector.
    output_len: u32,
    // Products per i32 partial sum, in [1, segment_len].
    chunk: u32,
    // Taps per segment.
    segment_len: u32,
    // Segments per kernel: ⌈T / segment_len⌉.
    segments: u32,
}

@group(0) @binding(0) var<storage, read> taps: array<i32>;
@group(0) @binding(1) var<storage, read> weights: array<i32>;
// Three words per entry: output index, group, kernel.
@group(0) @binding(2) var<storage, read> entries: array<u32>;
// Two words per kernel: the bias as (low, high) 32-bit halves of its two's complement.
@group(0) @binding(3) var<storage, read> bias: array<u32>;
// samples × input_len activations.
@group(0) @binding(4) var<storage, read> input: array<i32>;
// samples × entries × segments segment sums, two words each (low, high).
@group(0) @binding(5) var<storage, read_write> sums: array<u32>;
// samples × output_len accumulators, two words each (low, high); outputs without an entry stay 0.
@group(0) @binding(6) var<storage, read_write> acc: array<u32>;
@group(0) @binding(7) var<uniform> params: Params;

const WORKGROUP: u32 = 64u;

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// a + b modulo 2^64, both (low, high) words of a two's-complement integer.
fn add_i64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

// `partial` sign-extended to 64 bits.
fn i64_from_i32(partial: i32) -> vec2<u32> {
    return vec2<u32>(bitcast<u32>(partial), select(0u, 0xffffffffu, partial < 0i));
}

@compute @workgroup_size(64)
fn segment_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    let per_sample = params.entries * params.segments;
    if (i >= per_sample * params.samples) {
        return;
    }
    let sample = i / per_sample;
    let e = (i % per_sample) / params.segments;
    let segment = i % params.segments;
    let g = entries[3u * e + 1u];
    let k = entries[3u * e + 2u];
    let n = params.taps_per_group;
    let tap_base = g * n;
    let weight_base = k * n;
    let input_base = sample * params.input_len;

    var total = vec2<u32>(0u, 0u);
    var start = segment * params.segment_len;
    let stop = min(start + params.segment_len, n);
    while (start < stop) {
        let end = start + min(params.chunk, stop - start);
        var partial = 0i;
        for (var t = start; t < end; t++) {
            let tap = taps[tap_base + t];
            if (tap >= 0i) {
                partial += weights[weight_base + t] * input[input_base + u32(tap)];
            }
        }
        total = add_i64(total, i64_from_i32(partial));
        start = end;
    }
    sums[2u * i] = total.x;
    sums[2u * i + 1u] = total.y;
}

@compute @workgroup_size(64)
fn reduce_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    if (i >= params.entries * params.samples) {
        return;
    }
    let sample = i / params.entries;
    let e = i % params.entries;
    let o = entries[3u * e];
    let k = entries[3u * e + 2u];
    var total = vec2<u32>(bias[2u * k], bias[2u * k + 1u]);
    let base = i * params.segments;
    for (var s = 0u; s < params.segments; s++) {
        total = add_i64(total, vec2<u32>(sums[2u * (base + s)], sums[2u * (base + s) + 1u]));
    }
    let out = 2u * (sample * params.output_len + o);
    acc[out] = total.x;
    acc[out + 1u] = total.y;
}
