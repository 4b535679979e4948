//! The GPU backend of a build with the `gpu` feature: an adapter with the prover's kernels compiled on it.

use std::fmt;
use std::sync::Arc;

use zkinfer_gpu::{AdapterSummary, GpuContext, GpuError, IntLinearKernels, MsmKernels};

use super::{Device, AUTO_MIN_MSM_LEN};
use crate::error::{ProverError, Result};

/// An open GPU with the prover's kernels compiled on it; shared (in an `Arc`) by every key that proves on it.
pub struct GpuBackend {
    context: GpuContext,
    msm: MsmKernels,
    linear: IntLinearKernels,
    min_msm_len: usize,
}

impl fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuBackend")
            .field("adapter", &self.context.info.name)
            .field("min_msm_len", &self.min_msm_len)
            .finish_non_exhaustive()
    }
}

impl GpuBackend {
    /// Opens the GPU that `device` asks for: `Ok(None)` means prove on the CPU (asked for, or `Auto` without a
    /// hardware GPU); `Device::Gpu` without any adapter is an error that says what to install.
    pub fn open(device: Device) -> Result<Option<Arc<GpuBackend>>> {
        let context = match device {
            Device::Cpu => return Ok(None),
            Device::Auto => {
                // A machine without a GPU device node is decided without loading a driver; listing adapters opens
                // no device, so a machine with only a software driver pays nothing more than loading it.
                if !zkinfer_gpu::may_have_hardware_gpu() || zkinfer_gpu::list_adapters().iter().all(|a| a.is_software())
                {
                    return Ok(None);
                }
                match GpuContext::new() {
                    Ok(context) if !context.info.is_software() => context,
                    _ => return Ok(None),
                }
            }
            Device::Gpu => GpuContext::new().map_err(|e| ProverError::Gpu {
                reason: format!(
                    "--device gpu: {e}; install a Vulkan, Metal or DX12 driver (on Debian, \
                         `apt-get install mesa-vulkan-drivers` gives a software one), or use --device cpu"
                ),
            })?,
        };
        let min_msm_len = if device == Device::Gpu { 1 } else { AUTO_MIN_MSM_LEN };
        Self::on(context, min_msm_len).map(|backend| Some(Arc::new(backend)))
    }

    /// Compiles the prover's kernels on `context`; MSMs shorter than `min_msm_len` will stay on the CPU.
    pub fn on(context: GpuContext, min_msm_len: usize) -> Result<GpuBackend> {
        let failed = |e: GpuError| ProverError::Gpu {
            reason: format!("GPU `{}`: {e}", context.info.name),
        };
        let msm = MsmKernels::new(&context).map_err(failed)?;
        let linear = IntLinearKernels::new(&context).map_err(failed)?;
        Ok(GpuBackend {
            context,
            msm,
            linear,
            min_msm_len,
        })
    }

    /// The adapter the kernels run on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.context.info
    }

    /// The MSM kernels.
    pub fn msm(&self) -> &MsmKernels {
        &self.msm
    }

    /// The integer dot-product kernels of the inference.
    pub fn linear(&self) -> &IntLinearKernels {
        &self.linear
    }

    /// MSMs shorter than this run on the CPU.
    pub fn min_msm_len(&self) -> usize {
        self.min_msm_len
    }

    /// One line for people: the adapter, its kind and backend.
    pub fn describe(&self) -> String {
        let info = &self.context.info;
        let software = if info.is_software() {
            " — a software driver on the CPU: correct but slow"
        } else {
            ""
        };
        format!("{} ({}){software}", info.name, info.backend_name())
    }
}
