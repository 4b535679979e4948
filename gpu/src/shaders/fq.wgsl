// BN254 base field F_q, q = 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47 (the field of the G1
// coordinates): its constants. `build.rs` appends the Montgomery arithmetic of `montgomery.wgsl` with the prefix
// `fq_` (`fq_add`, `fq_sub`, `fq_mul`, ...); the result is `zkinfer_gpu::FQ_WGSL`. The constants are checked against
// halo2curves by `field::tests` (zkinfer-gpu's unit tests).

// q, little-endian 32-bit limbs.
const FQ_P = array<u32, 8>(0xd87cfd47u, 0x3c208c16u, 0x6871ca8du, 0x97816a91u,
                           0x8181585du, 0xb85045b6u, 0xe131a029u, 0x30644e72u);

// −q⁻¹ mod 2^32, the Montgomery reduction factor for 32-bit limbs (the low half of halo2curves' 64-bit
// INV = 0x87d20782e4866389).
const FQ_INV: u32 = 0xe4866389u;

// R mod q = 2^256 − 5q (the Montgomery form of 1, halo2curves' `Fq::ONE`).
const FQ_ONE = array<u32, 8>(0xc58f0d9du, 0xd35d438du, 0xf5c70b3du, 0x0a78eb28u,
                             0x7879462cu, 0x666ea36fu, 0x9a07df2fu, 0x0e0a77c1u);
