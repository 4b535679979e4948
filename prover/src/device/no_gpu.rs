//! The GPU backend of a build without the `gpu` feature: a type with no values, so that every GPU path of the
//! prover compiles to nothing and the CPU proves.

use std::sync::Arc;

use super::Device;
use crate::error::{ProverError, Result};

/// No GPU in this build (the prover was built without its `gpu` feature): no value of this type exists.
#[derive(Debug)]
pub enum GpuBackend {}

impl GpuBackend {
    /// `Ok(None)` (prove on the CPU) for [`Device::Auto`] and [`Device::Cpu`]; an error for [`Device::Gpu`].
    pub fn open(device: Device) -> Result<Option<Arc<GpuBackend>>> {
        match device {
            Device::Gpu => Err(ProverError::Gpu {
                reason: "--device gpu: this zkinfer was built without GPU support (the prover's `gpu` feature); \
                         rebuild with it, or use --device cpu"
                    .into(),
            }),
            Device::Auto | Device::Cpu => Ok(None),
        }
    }

    /// One line for people (never called: no backend exists).
    pub fn describe(&self) -> String {
        match *self {}
    }

    /// MSMs shorter than this run on the CPU (never called: no backend exists).
    pub fn min_msm_len(&self) -> usize {
        match *self {}
    }
}
