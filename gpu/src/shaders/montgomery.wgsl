// Montgomery arithmetic modulo a prime below 2^254, the template of `fr.wgsl` (F_r) and `fq.wgsl` (F_q).
//
// This file is not WGSL by itself: `build.rs` instantiates it once per field, replacing the placeholder prefixes of
// its function and constant names by the field's own (`fr_`/`FR_`, `fq_`/`FQ_`), and puts the field's constants file
// (which defines the modulus P, INV = −P⁻¹ mod 2^32 and ONE = R mod P) in front. Instances of different fields can
// therefore be concatenated into one shader.
//
// Representation: an element x is stored in Montgomery form x·R mod p with R = 2^256, as eight little-endian
// 32-bit limbs. These are exactly the bits of halo2curves' field elements (four little-endian u64 limbs of
// x·R mod p), so a buffer of elements is byte for byte the concatenation of their `to_raw_bytes()`; no conversion
// is needed on either side. Every function takes fully reduced inputs (< p) and returns a fully reduced result.
//
// WGSL has no 32×32 → 64-bit multiplication: `field_mul_wide` builds the 64-bit product from 16-bit halves.

// The 64-bit product a·b as (low word, high word).
fn field_mul_wide(a: u32, b: u32) -> vec2<u32> {
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
fn field_adc(a: u32, b: u32, carry: u32) -> vec2<u32> {
    let s = a + b;
    let c1 = select(0u, 1u, s < a);
    let t = s + carry;
    let c2 = select(0u, 1u, t < s);
    return vec2<u32>(t, c1 + c2);
}

// a − b − borrow (borrow ∈ {0, 1}) as (difference word, borrow out ∈ {0, 1}).
fn field_sbb(a: u32, b: u32, borrow: u32) -> vec2<u32> {
    let d = a - b;
    let b1 = select(0u, 1u, a < b);
    let e = d - borrow;
    let b2 = select(0u, 1u, d < borrow);
    return vec2<u32>(e, b1 | b2);
}

// t + a·b + carry as (low word, high word); cannot overflow 64 bits.
fn field_mac(t: u32, a: u32, b: u32, carry: u32) -> vec2<u32> {
    let prod = field_mul_wide(a, b);
    let lo = prod.x + t;
    let hi = prod.y + select(0u, 1u, lo < t);
    let lo2 = lo + carry;
    return vec2<u32>(lo2, hi + select(0u, 1u, lo2 < lo));
}

// (top·2^256 + x) − p if that is ≥ 0, else x. Reduces any value below 2p to [0, p).
fn field_reduce_once(x: array<u32, 8>, top: u32) -> array<u32, 8> {
    var v = x;
    var p = FIELD_P;
    var d: array<u32, 8>;
    var borrow = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = field_sbb(v[i], p[i], borrow);
        d[i] = r.x;
        borrow = r.y;
    }
    if (top != 0u || borrow == 0u) {
        return d;
    }
    return v;
}

// Whether a is zero (its limbs are all zero: 0 is the only element whose Montgomery form is 0).
fn field_is_zero(a: array<u32, 8>) -> bool {
    var v = a;
    var bits = 0u;
    for (var i = 0u; i < 8u; i++) {
        bits |= v[i];
    }
    return bits == 0u;
}

// a + b mod p.
fn field_add(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var s: array<u32, 8>;
    var carry = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = field_adc(x[i], y[i], carry);
        s[i] = r.x;
        carry = r.y;
    }
    return field_reduce_once(s, carry);
}

// a − b mod p.
fn field_sub(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var d: array<u32, 8>;
    var borrow = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = field_sbb(x[i], y[i], borrow);
        d[i] = r.x;
        borrow = r.y;
    }
    if (borrow == 0u) {
        return d;
    }
    // a < b: add p back (the carry out of the top limb cancels the borrow).
    var p = FIELD_P;
    var carry = 0u;
    for (var i = 0u; i < 8u; i++) {
        let r = field_adc(d[i], p[i], carry);
        d[i] = r.x;
        carry = r.y;
    }
    return d;
}

// Montgomery product a·b·R⁻¹ mod p (CIOS: coarsely integrated operand scanning, 32-bit words).
// Each outer step adds a·b_i, then adds m·p with m = t_0·(−p⁻¹) mod 2^32 so that the low word vanishes, and
// shifts one word down. With a, b < p the running value stays below 2p, so one conditional subtraction ends it.
fn field_mul(a: array<u32, 8>, b: array<u32, 8>) -> array<u32, 8> {
    var x = a;
    var y = b;
    var p = FIELD_P;
    var t: array<u32, 10>;
    for (var i = 0u; i < 8u; i++) {
        var carry = 0u;
        for (var j = 0u; j < 8u; j++) {
            let r = field_mac(t[j], x[j], y[i], carry);
            t[j] = r.x;
            carry = r.y;
        }
        let s8 = field_adc(t[8], carry, 0u);
        t[8] = s8.x;
        t[9] = s8.y;

        let m = t[0] * FIELD_INV;
        var r = field_mac(t[0], m, p[0], 0u);
        carry = r.y;
        for (var j = 1u; j < 8u; j++) {
            r = field_mac(t[j], m, p[j], carry);
            t[j - 1u] = r.x;
            carry = r.y;
        }
        let s7 = field_adc(t[8], carry, 0u);
        t[7] = s7.x;
        t[8] = t[9] + s7.y;
    }
    var out: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        out[k] = t[k];
    }
    return field_reduce_once(out, t[8]);
}
