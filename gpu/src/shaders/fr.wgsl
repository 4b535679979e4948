// BN254 scalar field F_r, r = p = 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001.
//
// Representation: an element x is stored in Montgomery form x·R mod p with R = 2^256, as eight little-endian
// 32-bit limbs. These are exactly the bits of halo2curves' `Fr` (four little-endian u64 limbs of x·R mod p), so a
// buffer of elements is byte for byte the concatenation of `Fr::to_raw_bytes()`; no conversion is needed on either
// side. Every function takes fully reduced inputs (< p) and returns a fully reduced result.
//
// WGSL has no 32×32 → 64-bit multiplication: `fr_mul_wide` builds the 64-bit product from 16-bit halves.
// The constants are checked against halo2curves by `field::tests` (zkinfer-gpu's unit tests).

// p, little-endian 32-bit limbs.
const FR_P = array<u32, 8>(0xf0000001u, 0x43e1f593u, 0x79b97091u, 0x2833e848u,
                           0x8181585du, 0xb85045b6u, 0xe131a029u, 0x30644e72u);

// −p⁻¹ mod 2^32, the Montgomery reduction factor for 32-bit limbs. Derivation: p ≡ 0xf0000001 = 1 − 2^28
// (mod 2^32), and (1 − 2^28)(1 + 2^28) = 1 − 2^56 ≡ 1, so p⁻¹ ≡ 1 + 2^28 = 0x10000001 and −p⁻¹ ≡ 0xefffffff.
// (It is the low half of halo2curves' 64-bit INV = 0xc2e1f593efffffff.)
const FR_INV: u32 = 0xefffffffu;

// R mod p = 2^256 − 5p (the Montgomery form of 1, halo2curves' `Fr::ONE`).
const FR_ONE = array<u32, 8>(0x4ffffffbu, 0xac96341cu, 0x9f60cd29u, 0x36fc7695u,
                             0x7879462eu, 0x666ea36fu, 0x9a07df2fu, 0x0e0a77c1u);

// The 64-bit product a·b as (low word, high word).
fn fr_mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // a·b = p11·2^32 + (p01 + p10)·2^16 + p00; the middle sum can carry into bit 32 (worth 2^48 = 2^16 in hi).
    let mid = p01 + p10;
    let mid_carry = select(0u, 0x10000u, mid < p01);
    let lo = p00 + (mid << 16u);
    let lo_carry = select(0u, 1u, lo < p00);
    let hi = p11 + (mid >> 16u) + mid_carry + lo_carry;
    return vec2<u32>(lo, hi);
}

// a + b + carry as (sum word, carry out); the carry out is at most 2.
fn fr_adc(a: u32, b: u32, carry: u32) -> vec2<u32> {
    let s = a + b;
    let c1 = select(0u, 1u, s < a);
    let t = s + carry;
    let c2 = select(0u, 1u, t < s);
    return vec2<u32>(t, c1 + c2);
}

// a − b − borrow (borrow ∈ {0, 1}) as (difference word, borrow out ∈ {0, 1}).
fn fr_sbb(a: u32, b: u32, borrow: u32) -> vec2<u32> {
    let d = a - b;
    let b1 = select(0u, 1u, a < b);
    let e = d - borrow;
    let b2 = select(0u, 1u, d < borrow);
    return vec2<u32>(e, b1 | b2);
}

// t + a·b + carry as (low word, high word); cannot overflow 64 bits.
fn fr_mac(t: u32, a: u32, b: u32, carry: u32) -> vec2<u32> {
    let prod = fr_mul_wide(a, b);
    let lo = prod.x + t;
    let hi = prod.y + select(0u, 1u, lo < t);
    let lo2 = lo + carry;
    return vec2<u32>(lo2, hi + select(0u, 1u, lo2 < lo));
}

// (top·2^256 + x) − p if that is ≥ 0, else x. Reduces any value below 2p to [0, p).
fn fr_reduce_once(x: array<u32, 8>, top: u32) -> array<u32, 8> {
    var v = x;
    var p = FR_P;
    var d: array<u32, 8>;
    var borrow = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = fr_sbb(v[i], p[i], borrow);
        d[i] = r.x;
        borrow = r.y;
    }
    if (top != 0u || borrow == 0u) {
        return d;
    }
    return v;
}

// a + b mod p.
fn fr_add(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var s: array<u32, 8>;
    var carry = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = fr_adc(x[i], y[i], carry);
        s[i] = r.x;
        carry = r.y;
    }
    return fr_reduce_once(s, carry);
}

// a − b mod p.
fn fr_sub(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var d: array<u32, 8>;
    var borrow = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = fr_sbb(x[i], y[i], borrow);
        d[i] = r.x;
        borrow = r.y;
    }
    if (borrow == 0u) {
        return d;
    }
    // a < b: add p back (the carry out of the top limb cancels the borrow).
    var p = FR_P;
    var carry = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = fr_adc(d[i], p[i], carry);
        d[i] = r.x;
        carry = r.y;
    }
    return d;
}

// Montgomery product a·b·R⁻¹ mod p (CIOS: coarsely integrated operand scanning, 32-bit words).
// Each outer step adds a·b_i, then adds m·p with m = t_0·(−p⁻¹) mod 2^32 so that the low word vanishes, and
// shifts one word down. With a, b < p the running value stays below 2p, so one conditional subtraction ends it.
fn fr_mul(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var p = FR_P;
    var t: array<u32, 10>;
    for (var i = 0u; i < 8u; i++) {
        var carry = 0u;
        for (var j = 0u; j < 8u; j++) {
            let r = fr_mac(t[j], x[j], y[i], carry);
            t[j] = r.x;
            carry = r.y;
        }
        let s8 = fr_adc(t[8], carry, 0u);
        t[8] = s8.x;
        t[9] = s8.y;

        let m = t[0] * FR_INV;
        var r = fr_mac(t[0], m, p[0], 0u);
        carry = r.y;
        for (var j = 1u; j < 8u; j++) {
            r = fr_mac(t[j], m, p[j], carry);
            t[j - 1u] = r.x;
            carry = r.y;
        }
        let s7 = fr_adc(t[8], carry, 0u);
        t[7] = s7.x;
        t[8] = t[9] + s7.y;
    }
    var out: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        out[k] = t[k];
    }
    return fr_reduce_once(out, t[8]);
}
