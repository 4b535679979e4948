//! The GPU paths of a build without the `gpu` feature: the committer and the GPU linear layers as types with no
//! values (their constructors take a [`GpuBackend`], of which none exists), so the CPU code around them compiles
//! unchanged and never reaches them.

/// GPU commitments (none in this build).
pub mod gpu_commit {
    use std::sync::Arc;

    use halo2_proofs::halo2curves::bn256::{Fr, G1Affine, G1};

    use crate::device::GpuBackend;
    use crate::error::Result;

    /// Which SRS basis a commitment uses.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Basis {
        /// The Lagrange basis.
        Lagrange,
        /// The monomial basis.
        Monomial,
    }

    /// A GPU committer (none in this build).
    #[derive(Debug)]
    pub enum GpuCommitter {}

    impl GpuCommitter {
        /// Unreachable: no backend exists.
        pub fn new(backend: Arc<GpuBackend>, _lagrange: &[G1Affine], _monomial: &[G1Affine]) -> Result<GpuCommitter> {
            match *backend {}
        }

        /// Unreachable: no committer exists.
        pub fn backend(&self) -> &Arc<GpuBackend> {
            match *self {}
        }

        /// Unreachable: no committer exists.
        pub fn commit(&self, _basis: Basis, _scalars: &[Fr], _cpu: impl FnOnce() -> G1) -> G1 {
            match *self {}
        }
    }
}

/// GPU integer inference (none in this build).
pub mod infer_gpu {
    use std::sync::Arc;

    use zkinfer_circuits::QuantizedModel;

    use crate::device::GpuBackend;
    use crate::error::Result;

    /// A model's linear layers on a GPU (none in this build).
    #[derive(Debug)]
    pub enum GpuLinearLayers {}

    impl GpuLinearLayers {
        /// Unreachable: no backend exists.
        pub fn new(_model: &QuantizedModel, backend: Arc<GpuBackend>) -> Result<GpuLinearLayers> {
            match *backend {}
        }

        /// Unreachable: no layers exist.
        pub fn accumulate(&self, _index: usize, _tensors: &[Vec<Vec<i64>>]) -> Result<Vec<Vec<i64>>> {
            match *self {}
        }
    }
}
