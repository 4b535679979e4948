//! GPU kernels for the zkinfer prover, through `wgpu` (Vulkan, Metal or DX12: any vendor), issue #5.
//!
//! What exists:
//! - [`list_adapters`] and [`GpuContext`]: find the adapters on every backend and open a device on the best one
//!   (hardware first; Mesa's software Vulkan driver, lavapipe, as the last resort, so the tests run anywhere).
//! - [`FR_WGSL`]: BN254 scalar-field arithmetic in WGSL (`fr_add`, `fr_sub`, `fr_mul`), in halo2curves' own
//!   Montgomery representation, so field elements cross the bus without conversion.
//! - [`FieldKernels`]: elementwise add/sub/mul over slices of `Fr`, checked against halo2curves bit for bit.
//! - [`NttKernels`]: the radix-2 NTT (halo2's `best_fft`) for `2^k` elements, checked against halo2curves' FFT.
//! - [`IntLinearKernels`]: exact integer dense/convolution layers (16-bit operands, 64-bit sums), equal to i64.
//!
//! Not yet: the multi-scalar multiplication (Pippenger) kernel, coset FFTs, and wiring them into proving; today
//! every proof is made on the CPU. Errors are values ([`GpuError`]), never panics.

mod adapter;
mod error;
mod field;
mod int_linear;
mod ntt;
mod transfer;

pub use adapter::{list_adapters, preference_order, AdapterSummary, GpuContext};
pub use error::GpuError;
pub use field::FieldKernels;
pub use int_linear::{
    GatheredLinear, IntLinearKernels, ResidentLinear, INT_LINEAR_MAX_ABS_BIAS, INT_LINEAR_MAX_TAPS,
    INT_LINEAR_MAX_VALUE_BITS, INT_LINEAR_SEGMENT_TAPS,
};
pub use ntt::NttKernels;
/// The wgpu this crate is built on, for callers that build their own pipelines on a [`GpuContext`].
pub use wgpu;

/// WGSL source of the BN254 scalar field F_r: constants `FR_P`, `FR_INV`, `FR_ONE` and `fr_add`, `fr_sub`,
/// `fr_mul` on `array<u32, 8>` (Montgomery form, R = 2^256, little-endian 32-bit limbs). Kernels prepend it.
pub const FR_WGSL: &str = include_str!("shaders/fr.wgsl");
