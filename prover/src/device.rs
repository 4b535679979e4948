//! Where a proof is computed: on the CPU, or with a GPU through wgpu (Vulkan, Metal or DX12: any vendor).
//!
//! [`GpuBackend::open`] turns a [`Device`] choice into an open GPU (adapter, device, compiled kernels) or `None` for
//! the CPU. A [`ProverKey`](crate::ProverKey) proves on it after
//! [`ProverKey::use_gpu`](crate::ProverKey::use_gpu), which uploads the key's SRS bases once: from then on the
//! commitments of every proof (advice, lookup, permutation and quotient polynomials) are GPU MSMs on resident
//! bases and the integer inference runs as GPU dot products. The proof bytes do not depend on the device: the GPU
//! computes the same group elements and the same integers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use zkinfer_gpu::{AdapterSummary, GpuContext, GpuError, IntLinearKernels, MsmKernels};

use crate::error::{ProverError, Result};

/// Under [`Device::Auto`], MSMs shorter than this stay on the CPU (kernel launches and transfers cost more than
/// they save on small inputs). An estimate, not a measurement: no hardware GPU was available to tune it
/// (BENCHMARKS.md); on the software driver the GPU never pays for full-size scalars.
pub const AUTO_MIN_MSM_LEN: usize = 1 << 12;

/// Which processor proves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// A hardware GPU when one is found, otherwise the CPU (a software rasterizer is never chosen automatically).
    #[default]
    Auto,
    /// The CPU (rayon), whatever GPUs exist.
    Cpu,
    /// The best GPU adapter, a software one (Mesa's lavapipe) included; an error when there is none. Every MSM
    /// runs on it, whatever its size.
    Gpu,
}

impl FromStr for Device {
    type Err = ProverError;

    fn from_str(text: &str) -> Result<Device> {
        match text {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            other => Err(ProverError::Gpu {
                reason: format!("unknown device `{other}`; use auto, cpu or gpu"),
            }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        })
    }
}

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
                // Listing adapters opens no device: a machine with only a software driver pays nothing more.
                if zkinfer_gpu::list_adapters().iter().all(|a| a.is_software()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip_and_unknown_names_are_refused() {
        for device in [Device::Auto, Device::Cpu, Device::Gpu] {
            assert_eq!(device.to_string().parse::<Device>().unwrap(), device);
        }
        let err = "cuda".parse::<Device>().unwrap_err().to_string();
        assert!(err.contains("cuda") && err.contains("auto, cpu or gpu"), "{err}");
    }

    #[test]
    fn the_cpu_needs_no_adapter() {
        assert!(GpuBackend::open(Device::Cpu).unwrap().is_none());
    }
}
