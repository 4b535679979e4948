//! The one error type of the crate: no adapter, no device, a failed GPU operation, or unusable operands.

/// Why a GPU operation could not be done. No public function of this crate panics; they return this instead.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// wgpu found no adapter on any backend (or none of them could open a device).
    #[error(
        "no GPU adapter found: install your vendor's Vulkan/Metal/DX12 driver, or mesa-vulkan-drivers for a \
         software one"
    )]
    NoAdapter,
    /// An adapter exists but opening a device on it failed.
    #[error("could not open a device on adapter {adapter}: {reason}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// wgpu reported an error (validation, out of memory, device lost) while running a kernel.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// An input length the kernel cannot take (an NTT needs a power of two that fits one storage binding; the
    /// elementwise point kernels take what fits one binding).
    #[error("cannot take {len} elements: at most {max} on this device (and a power of two for an NTT)")]
    Size {
        /// The length given.
        len: usize,
        /// The largest length this device takes.
        max: usize,
    },
    /// The two operands of an elementwise operation have different lengths.
    #[error("operand lengths differ: {left} and {right}")]
    LengthMismatch {
        /// Length of the first operand.
        left: usize,
        /// Length of the second operand.
        right: usize,
    },
}
