// Elementwise G1 operations (appended to FQ_WGSL and g1.wgsl): out[i] = a[i] + b[i] (both projective, 24 words a
// point), a[i] + b[i] (b affine, 16 words a point) or 2·a[i]. One invocation per element on a two-dimensional grid,
// as in elementwise.wgsl. For checking the point arithmetic against halo2curves, and for callers that need it.

struct Params {
    // Number of elements.
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> in_a: array<u32>;
@group(0) @binding(1) var<storage, read> in_b: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_c: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

const WORKGROUP: u32 = 64u;

fn load_a(i: u32) -> G1Projective {
    var p: G1Projective;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = in_a[24u * i + k];
        p.y[k] = in_a[24u * i + 8u + k];
        p.z[k] = in_a[24u * i + 16u + k];
    }
    return p;
}

fn load_b_projective(i: u32) -> G1Projective {
    var p: G1Projective;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = in_b[24u * i + k];
        p.y[k] = in_b[24u * i + 8u + k];
        p.z[k] = in_b[24u * i + 16u + k];
    }
    return p;
}

fn load_b_affine(i: u32) -> G1Affine {
    var p: G1Affine;
    for (var k = 0u; k < 8u; k++) {
        p.x[k] = in_b[16u * i + k];
        p.y[k] = in_b[16u * i + 8u + k];
    }
    return p;
}

fn store(i: u32, p: G1Projective) {
    var q = p;
    for (var k = 0u; k < 8u; k++) {
        out_c[24u * i + k] = q.x[k];
        out_c[24u * i + 8u + k] = q.y[k];
        out_c[24u * i + 16u + k] = q.z[k];
    }
}

fn element_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

@compute @workgroup_size(64)
fn add_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, g1_add(load_a(i), load_b_projective(i)));
    }
}

@compute @workgroup_size(64)
fn add_mixed_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, g1_add_mixed(load_a(i), load_b_affine(i)));
    }
}

@compute @workgroup_size(64)
fn double_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, g1_double(load_a(i)));
    }
}
