// BN254 scalar field F_r, r = p = 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001: its constants.
// `build.rs` appends the Montgomery arithmetic of `montgomery.wgsl` with the prefix `fr_` (`fr_add`, `fr_sub`,
// `fr_mul`, ...); the result is `zkinfer_gpu::FR_WGSL`. The constants are checked against halo2curves by
// `field::tests` (zkinfer-gpu's unit tests).

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
