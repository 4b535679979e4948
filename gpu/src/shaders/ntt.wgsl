// Radix-2 number-theoretic transform over F_r (appended to fr.wgsl), in place on `values` (8 little-endian u32
// limbs per element, Montgomery form; see fr.wgsl): a bit-reversal pass, then log2(n) butterfly passes
// (Cooley–Tukey, decimation in time). Pass `half` combines blocks of `2·half` elements:
//   i = block·2·half + k, j = i + half, w = ω^(k · n / (2·half)) = twiddles[k · stride],
//   (a_i, a_j) ← (a_i + w·a_j, a_i − w·a_j).
// One invocation per butterfly (n/2 per pass) or per element (bit reversal); the grid is two-dimensional, as in
// elementwise.wgsl. Consecutive dispatches see each other's writes (WebGPU orders dispatches in a pass).
// Coset transforms add a scaling pass, values[i] ← values[i] · factors[i], before the bit reversal (forward:
// factors = shift^i) or after the last butterfly (inverse: factors = n⁻¹ · shift^(−i)).

struct NttParams {
    // Number of elements (a power of two).
    n: u32,
    // log2(n), for the bit reversal.
    log_n: u32,
    // Half the block size of this butterfly pass.
    half: u32,
    // Twiddle index step: n / (2·half).
    stride: u32,
}

@group(0) @binding(0) var<storage, read_write> values: array<u32>;
@group(0) @binding(1) var<storage, read> twiddles: array<u32>;
@group(0) @binding(2) var<uniform> params: NttParams;
@group(0) @binding(3) var<storage, read> factors: array<u32>;

const WORKGROUP: u32 = 64u;

fn load_value(i: u32) -> array<u32, 8> {
    var v: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        v[k] = values[8u * i + k];
    }
    return v;
}

fn store_value(i: u32, value: array<u32, 8>) {
    var v = value;
    for (var k = 0u; k < 8u; k++) {
        values[8u * i + k] = v[k];
    }
}

fn load_twiddle(i: u32) -> array<u32, 8> {
    var v: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        v[k] = twiddles[8u * i + k];
    }
    return v;
}

fn load_factor(i: u32) -> array<u32, 8> {
    var v: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        v[k] = factors[8u * i + k];
    }
    return v;
}

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

@compute @workgroup_size(64)
fn bit_reverse_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    if (i >= params.n || params.log_n == 0u) {
        return;
    }
    let j = reverseBits(i) >> (32u - params.log_n);
    if (i < j) {
        let a = load_value(i);
        store_value(i, load_value(j));
        store_value(j, a);
    }
}

@compute @workgroup_size(64)
fn butterfly_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let b = invocation(gid, groups);
    if (b >= params.n / 2u) {
        return;
    }
    let block = b / params.half;
    let k = b % params.half;
    let i = block * 2u * params.half + k;
    let j = i + params.half;
    let t = fr_mul(load_twiddle(k * params.stride), load_value(j));
    let u = load_value(i);
    store_value(i, fr_add(u, t));
    store_value(j, fr_sub(u, t));
}

@compute @workgroup_size(64)
fn scale_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = invocation(gid, groups);
    if (i < params.n) {
        store_value(i, fr_mul(load_value(i), load_factor(i)));
    }
}
