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
    /// A gathered integer layer whose shape is inconsistent (lengths, group/kernel/output indices, duplicates).
    #[error("invalid integer layer: {0}")]
    InvalidLayer(String),
    /// An integer value outside the range the exact GPU arithmetic is proven for (a tap index, a weight, an
    /// activation or a bias).
    #[error("{what}[{index}] = {value} is outside {min}..={max}: {hint}")]
    OutOfRange {
        /// Which array holds the value (`"taps"`, `"weights"`, `"input"`, `"bias"`).
        what: &'static str,
        /// Its index in that array (for an input of a batch, the index in the concatenated inputs).
        index: usize,
        /// The value.
        value: i64,
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
        /// What to do about it.
        hint: &'static str,
    },
    /// An input vector whose length is not the layer's `input_len`.
    #[error("input {sample} has {found} values, the layer reads {expected}: flatten the layer's inputs the same way")]
    InputLength {
        /// Which input of the batch (0 for a single run).
        sample: usize,
        /// The layer's input length.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A buffer larger than one storage binding of this device (or than 32-bit indices reach).
    #[error("{what} needs {bytes} bytes, more than the {max} one binding of this device takes: split the layer")]
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Its size in bytes.
        bytes: u64,
        /// The most this device (and 32-bit indexing) takes.
        max: u64,
    },
}
