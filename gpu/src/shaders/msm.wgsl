// Pippenger's bucket method for BN254 G1 (appended to FQ_WGSL and g1.wgsl): three kernels, dispatched in order in
// one compute pass (WebGPU orders the dispatches, so each sees the previous one's writes). The host (msm.rs) has
// sorted the bases into buckets: `entries` lists, window after window and bucket after bucket, `(base << 1) | neg`
// for every base whose signed digit in that window is ±(bucket + 1), and cut every bucket's list into segments.
//
//  1. segment_kernel, one invocation per segment: the sum of its (possibly negated) affine bases, by mixed additions.
//  2. bucket_kernel, one invocation per bucket (all windows): the sum of its segments' sums (identity if empty).
//  3. window_kernel, one invocation per chunk of M consecutive buckets of a window: running sums from the top
//     bucket down give A = Σ (local index + 1)·S_b and R = Σ S_b, which the host combines (see plan.rs).
//
// Points: affine bases 16 words (x, y; identity (0, 0)), projective sums 24 words (x, y, z), as in g1.wgsl. The grid
// is two-dimensional, as in elementwise.wgsl.

struct MsmParams {
    // Number of segments (invocations of segment_kernel).
    segments: u32,
    // Windows × buckets per window (invocations of bucket_kernel).
    buckets: u32,
    // Buckets per window B.
    buckets_per_window: u32,
    // Buckets per chunk M.
    chunk: u32,
    // Chunks per window K = B / M.
    chunks_per_window: u32,
    // Windows × K (invocations of window_kernel).
    chunks: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> bases: array<u32>;
@group(0) @binding(1) var<storage, read> entries: array<u32>;
@group(0) @binding(2) var<storage, read> segments: array<u32>;
@group(0) @binding(3) var<storage, read> segment_offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> segment_sums: array<u32>;
@group(0) @binding(5) var<storage, read_write> bucket_sums: array<u32>;
@group(0) @binding(6) var<storage, read_write> partials: array<u32>;
@group(0) @binding(7) var<uniform> params: MsmParams;

const WORKGROUP: u32 = 64u;

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// The base of an entry, negated when its low bit is set.
fn signed_base(entry: u32) -> G1Affine {
    let i = entry >> 1u;
    var p: G1Affine;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = bases[16u * i + k];
        p.y[k] = bases[16u * i + 8u + k];
    }
    if ((entry & 1u) == 1u) {
        return g1_affine_neg(p);
    }
    return p;
}

fn load_segment_sum(s: u32) -> G1Projective {
    var p: G1Projective;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = segment_sums[24u * s + k];
        p.y[k] = segment_sums[24u * s + 8u + k];
        p.z[k] = segment_sums[24u * s + 16u + k];
    }
    return p;
}

fn store_segment_sum(s: u32, p: G1Projective) {
    var q = p;
    for (var k = 0u; k < 8u; k++) {
        segment_sums[24u * s + k] = q.x[k];
        segment_sums[24u * s + 8u + k] = q.y[k];
        segment_sums[24u * s + 16u + k] = q.z[k];
    }
}

fn load_bucket_sum(g: u32) -> G1Projective {
    var p: G1Projective;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = bucket_sums[24u * g + k];
        p.y[k] = bucket_sums[24u * g + 8u + k];
        p.z[k] = bucket_sums[24u * g + 16u + k];
    }
    return p;
}

fn store_bucket_sum(g: u32, p: G1Projective) {
    var q = p;
    for (var k = 0u; k < 8u; k++) {
        bucket_sums[24u * g + k] = q.x[k];
        bucket_sums[24u * g + 8u + k] = q.y[k];
        bucket_sums[24u * g + 16u + k] = q.z[k];
    }
}

fn store_partial(i: u32, p: G1Projective) {
    var q = p;
    for (var k = 0u; k < 8u; k++) {
        partials[24u * i + k] = q.x[k];
        partials[24u * i + 8u + k] = q.y[k];
        partials[24u * i + 16u + k] = q.z[k];
    }
}

@compute @workgroup_size(64)
fn segment_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let s = invocation(gid, groups);
    if (s >= params.segments) {
        return;
    }
    let start = segments[2u * s];
    let end = segments[2u * s + 1u];
    // Segments are never empty; the first base is converted, not added to the identity.
    var sum = g1_from_affine(signed_base(entries[start]));
    for (var k = start + 1u; k < end; k++) {
        sum = g1_add_mixed(sum, signed_base(entries[k]));
    }
    store_segment_sum(s, sum);
}

@compute @workgroup_size(64)
fn bucket_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let g = invocation(gid, groups);
    if (g >= params.buckets) {
        return;
    }
    let first = segment_offsets[g];
    let last = segment_offsets[g + 1u];
    var sum = g1_identity();
    if (first < last) {
        sum = load_segment_sum(first);
        for (var s = first + 1u; s < last; s++) {
            sum = g1_add(sum, load_segment_sum(s));
        }
    }
    store_bucket_sum(g, sum);
}

@compute @workgroup_size(64)
fn window_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = invocation(gid, groups);
    if (t >= params.chunks) {
        return;
    }
    let window = t / params.chunks_per_window;
    let chunk = t % params.chunks_per_window;
    let first = window * params.buckets_per_window + chunk * params.chunk;
    // From the top bucket down: running += S_b, then sum += running. Both additions go through one call of g1_add
    // (even steps: the first, odd steps: the second), which halves the shader that the driver compiles.
    var running = g1_identity();
    var sum = g1_identity();
    for (var step = 0u; step < 2u * params.chunk; step++) {
        let odd = (step & 1u) == 1u;
        var left = running;
        var right: G1Projective;
        if (odd) {
            left = sum;
            right = running;
        } else {
            right = load_bucket_sum(first + params.chunk - 1u - step / 2u);
        }
        let result = g1_add(left, right);
        if (odd) {
            sum = result;
        } else {
            running = result;
        }
    }
    store_partial(2u * t, sum);
    store_partial(2u * t + 1u, running);
}
