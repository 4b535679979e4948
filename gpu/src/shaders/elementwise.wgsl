// Elementwise out_c[i] = in_a[i] ∘ in_b[i] over F_r (appended to fr.wgsl). Buffers hold 8 little-endian u32 limbs per
// element (see fr.wgsl). One invocation per element; the grid is two-dimensional so that more than 65,535
// workgroups fit in one dispatch: index = x + y · (workgroups in x) · WORKGROUP.

struct Params {
    // Number of elements in this pass.
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

fn load_a(i: u32) -> array<u32, 8> {
    var v: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        v[k] = in_a[8u * i + k];
    }
    return v;
}

fn load_b(i: u32) -> array<u32, 8> {
    var v: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        v[k] = in_b[8u * i + k];
    }
    return v;
}

fn store(i: u32, value: array<u32, 8>) {
    var v = value;
    for (var k = 0u; k < 8u; k++) {
        out_c[8u * i + k] = v[k];
    }
}

fn element_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

@compute @workgroup_size(64)
fn add_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, fr_add(load_a(i), load_b(i)));
    }
}

@compute @workgroup_size(64)
fn sub_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, fr_sub(load_a(i), load_b(i)));
    }
}

@compute @workgroup_size(64)
fn mul_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = element_index(gid, groups);
    if (i < params.n) {
        store(i, fr_mul(load_a(i), load_b(i)));
    }
}
