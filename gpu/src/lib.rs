//! GPU kernels for the zkinfer prover, through `wgpu` (Vulkan, Metal or DX12: any vendor).
//!
//! What exists:
//! - [`list_adapters`] and [`GpuContext`]: find the adapters on every backend and open a device on the best one
//!   (hardware first; Mesa's software Vulkan driver, lavapipe, as the last resort, so the tests run anywhere).
//! - [`FR_WGSL`] and [`FQ_WGSL`]: BN254 scalar-field and base-field arithmetic in WGSL (`fr_add`, `fr_sub`,
//!   `fr_mul`, `fq_add`, ...), two instances of one Montgomery template (`shaders/montgomery.wgsl`, instantiated by
//!   `build.rs`), in halo2curves' own Montgomery representation, so field elements and points cross the bus without
//!   conversion.
//! - [`FieldKernels`]: elementwise add/sub/mul over slices of `Fr`, checked against halo2curves bit for bit.
//! - [`NttKernels`]: the radix-2 NTT (halo2's `best_fft`) for `2^k` elements, checked against halo2curves' FFT.
//! - [`IntLinearKernels`]: exact integer dense/convolution layers (16-bit operands, 64-bit sums), equal to i64.
//! - [`G1Kernels`]: elementwise G1 additions (projective and mixed) and doublings with the complete formulas of
//!   Renes–Costello–Batina, checked against halo2curves bit for bit.
//! - [`MsmKernels`]: multi-scalar multiplication over bases kept resident on the GPU ([`ResidentBases`]), by
//!   Pippenger's bucket method with signed digits; equal to halo2's `best_multiexp`.
//! - [`NttKernels::coset_ntt`] / [`NttKernels::coset_intt`]: halo2's move into and out of the extended coset.
//!
//! The prover (`zkinfer-prover`'s `device` module) commits with [`MsmKernels`] and runs the integer inference with
//! [`IntLinearKernels`]; halo2's FFTs cannot be replaced from outside, so the NTT kernels are not used in proofs
//! yet. Errors are values ([`GpuError`]), never panics. With the `test-hooks` feature (tests only), `context_or_skip`
//! is the loud skip of the test suites.

mod adapter;
mod curve;
mod error;
mod field;
mod int_linear;
mod msm;
mod ntt;
#[cfg(feature = "test-hooks")]
mod skip;
mod transfer;

pub use adapter::{list_adapters, may_have_hardware_gpu, preference_order, AdapterSummary, GpuContext};
pub use curve::G1Kernels;
pub use error::GpuError;
pub use field::FieldKernels;
pub use int_linear::{
    GatheredLinear, IntLinearKernels, ResidentLinear, INT_LINEAR_MAX_ABS_BIAS, INT_LINEAR_MAX_TAPS,
    INT_LINEAR_MAX_VALUE_BITS, INT_LINEAR_SEGMENT_TAPS,
};
pub use msm::{MsmKernels, ResidentBases};
pub use ntt::NttKernels;
#[cfg(feature = "test-hooks")]
pub use skip::{context_or_skip, gpu_required, skip_loudly, REQUIRE_GPU_VAR};
/// The wgpu this crate is built on, for callers that build their own pipelines on a [`GpuContext`].
pub use wgpu;

/// WGSL source of the BN254 scalar field F_r: constants `FR_P`, `FR_INV`, `FR_ONE` and `fr_add`, `fr_sub`,
/// `fr_mul`, `fr_is_zero` on `array<u32, 8>` (Montgomery form, R = 2^256, little-endian 32-bit limbs). Kernels
/// prepend it; it can be concatenated with [`FQ_WGSL`].
pub const FR_WGSL: &str = include_str!(concat!(env!("OUT_DIR"), "/fr.wgsl"));

/// WGSL source of the BN254 base field F_q (the G1 coordinates): constants `FQ_P`, `FQ_INV`, `FQ_ONE` and `fq_add`,
/// `fq_sub`, `fq_mul`, `fq_is_zero`, the same template as [`FR_WGSL`] with F_q's constants.
pub const FQ_WGSL: &str = include_str!(concat!(env!("OUT_DIR"), "/fq.wgsl"));
