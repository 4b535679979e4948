//! Where a proof is computed: on the CPU, or with a GPU through wgpu (Vulkan, Metal or DX12: any vendor).
//!
//! [`GpuBackend::open`] turns a [`Device`] choice into an open GPU (adapter, device, compiled kernels) or `None` for
//! the CPU. A [`ProverKey`](crate::ProverKey) proves on it after
//! [`ProverKey::use_gpu`](crate::ProverKey::use_gpu), which uploads the key's SRS bases once: from then on the
//! commitments of every proof (advice, lookup, permutation and quotient polynomials) are GPU MSMs on resident
//! bases and the integer inference runs as GPU dot products. The proof bytes do not depend on the device: the GPU
//! computes the same group elements and the same integers.
//!
//! The GPU is the prover's `gpu` cargo feature (the CLI and the service turn it on). Without it, `GpuBackend` is a
//! type with no values: `Device::Auto` and `Device::Cpu` prove on the CPU and `Device::Gpu` is an error that says
//! how to get GPU support, and neither wgpu nor the kernels are built.

use std::fmt;
use std::str::FromStr;

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

#[cfg(feature = "gpu")]
#[path = "device/gpu.rs"]
mod backend;
#[cfg(not(feature = "gpu"))]
#[path = "device/no_gpu.rs"]
mod backend;

pub use backend::GpuBackend;

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
