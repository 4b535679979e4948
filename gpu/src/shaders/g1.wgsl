// BN254 G1, y² = x³ + 3 over F_q, appended to `FQ_WGSL`: the point arithmetic of halo2curves' `G1`, step for step.
//
// Coordinates: homogeneous projective (X : Y : Z) standing for (X/Z, Y/Z), identity (0 : 1 : 0), each coordinate
// in F_q's Montgomery form (see montgomery.wgsl), so a point is byte for byte halo2curves' `G1::to_raw_bytes()`
// (x, y, z). Affine points are halo2curves' `G1Affine::to_raw_bytes()` (x, y), with the identity encoded as (0, 0).
//
// The formulas are the complete ones of Renes, Costello and Batina, "Complete addition formulas for prime order
// elliptic curves" (2015), for a = 0 and 3b = 9: Algorithm 7 (projective + projective), Algorithm 8 (projective +
// affine) and Algorithm 9 (doubling). They hold for every pair of points, the identity and P + P included, except
// that an affine operand cannot be the identity: the mixed addition selects the other operand then, as halo2curves
// does. Multiplication by 3b is 8a + a by additions, as in halo2curves. Since every field operation returns the
// canonical residue, the coordinates computed here equal halo2curves' bit for bit.

struct G1Projective {
    x: array<u32, 8>,
    y: array<u32, 8>,
    z: array<u32, 8>,
}

struct G1Affine {
    x: array<u32, 8>,
    y: array<u32, 8>,
}

// The identity (0 : 1 : 0).
fn g1_identity() -> G1Projective {
    return G1Projective(array<u32, 8>(), FQ_ONE, array<u32, 8>());
}

// Whether an affine point is the identity, encoded (0, 0).
fn g1_affine_is_identity(p: G1Affine) -> bool {
    return fq_is_zero(p.x) && fq_is_zero(p.y);
}

// −p for an affine point: (x, −y); the identity (0, 0) stays itself.
fn g1_affine_neg(p: G1Affine) -> G1Affine {
    return G1Affine(p.x, fq_sub(array<u32, 8>(), p.y));
}

// The projective form of an affine point: (x : y : 1), or (0 : 1 : 0) for the identity.
fn g1_from_affine(p: G1Affine) -> G1Projective {
    if (g1_affine_is_identity(p)) {
        return g1_identity();
    }
    return G1Projective(p.x, p.y, FQ_ONE);
}

// 3b · a = 9a, as 8a + a.
fn g1_mul_by_3b(a: array<u32, 8>) -> array<u32, 8> {
    let a2 = fq_add(a, a);
    let a4 = fq_add(a2, a2);
    let a8 = fq_add(a4, a4);
    return fq_add(a8, a);
}

// p + q, Algorithm 7.
fn g1_add(p: G1Projective, q: G1Projective) -> G1Projective {
    var t0 = fq_mul(p.x, q.x);
    var t1 = fq_mul(p.y, q.y);
    var t2 = fq_mul(p.z, q.z);
    var t3 = fq_add(p.x, p.y);
    var t4 = fq_add(q.x, q.y);
    t3 = fq_mul(t3, t4);
    t4 = fq_add(t0, t1);
    t3 = fq_sub(t3, t4);
    t4 = fq_add(p.y, p.z);
    var x3 = fq_add(q.y, q.z);
    t4 = fq_mul(t4, x3);
    x3 = fq_add(t1, t2);
    t4 = fq_sub(t4, x3);
    x3 = fq_add(p.x, p.z);
    var y3 = fq_add(q.x, q.z);
    x3 = fq_mul(x3, y3);
    y3 = fq_add(t0, t2);
    y3 = fq_sub(x3, y3);
    x3 = fq_add(t0, t0);
    t0 = fq_add(x3, t0);
    t2 = g1_mul_by_3b(t2);
    var z3 = fq_add(t1, t2);
    t1 = fq_sub(t1, t2);
    y3 = g1_mul_by_3b(y3);
    x3 = fq_mul(t4, y3);
    t2 = fq_mul(t3, t1);
    x3 = fq_sub(t2, x3);
    y3 = fq_mul(y3, t0);
    t1 = fq_mul(t1, z3);
    y3 = fq_add(t1, y3);
    t0 = fq_mul(t0, t3);
    z3 = fq_mul(z3, t4);
    z3 = fq_add(z3, t0);
    return G1Projective(x3, y3, z3);
}

// p + q for an affine q, Algorithm 8; p itself when q is the identity.
fn g1_add_mixed(p: G1Projective, q: G1Affine) -> G1Projective {
    if (g1_affine_is_identity(q)) {
        return p;
    }
    var t0 = fq_mul(p.x, q.x);
    var t1 = fq_mul(p.y, q.y);
    var t3 = fq_add(q.x, q.y);
    var t4 = fq_add(p.x, p.y);
    t3 = fq_mul(t3, t4);
    t4 = fq_add(t0, t1);
    t3 = fq_sub(t3, t4);
    t4 = fq_mul(q.y, p.z);
    t4 = fq_add(t4, p.y);
    var y3 = fq_mul(q.x, p.z);
    y3 = fq_add(y3, p.x);
    var x3 = fq_add(t0, t0);
    t0 = fq_add(x3, t0);
    var t2 = g1_mul_by_3b(p.z);
    var z3 = fq_add(t1, t2);
    t1 = fq_sub(t1, t2);
    y3 = g1_mul_by_3b(y3);
    x3 = fq_mul(t4, y3);
    t2 = fq_mul(t3, t1);
    x3 = fq_sub(t2, x3);
    y3 = fq_mul(y3, t0);
    t1 = fq_mul(t1, z3);
    y3 = fq_add(t1, y3);
    t0 = fq_mul(t0, t3);
    z3 = fq_mul(z3, t4);
    z3 = fq_add(z3, t0);
    return G1Projective(x3, y3, z3);
}

// 2p, Algorithm 9; the identity (0 : 1 : 0) when p has Z = 0, as halo2curves selects.
fn g1_double(p: G1Projective) -> G1Projective {
    if (fq_is_zero(p.z)) {
        return g1_identity();
    }
    var t0 = fq_mul(p.y, p.y);
    var z3 = fq_add(t0, t0);
    z3 = fq_add(z3, z3);
    z3 = fq_add(z3, z3);
    var t1 = fq_mul(p.y, p.z);
    var t2 = fq_mul(p.z, p.z);
    t2 = g1_mul_by_3b(t2);
    var x3 = fq_mul(t2, z3);
    var y3 = fq_add(t0, t2);
    z3 = fq_mul(t1, z3);
    t1 = fq_add(t2, t2);
    t2 = fq_add(t1, t2);
    t0 = fq_sub(t0, t2);
    y3 = fq_mul(t0, y3);
    y3 = fq_add(x3, y3);
    t1 = fq_mul(p.x, p.y);
    x3 = fq_mul(t0, t1);
    x3 = fq_add(x3, x3);
    return G1Projective(x3, y3, z3);
}
