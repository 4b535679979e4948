//! KZG commitments as GPU MSMs on SRS bases kept resident on the GPU.
//!
//! A [`GpuCommitter`] holds one key's Lagrange bases (for the witness columns and the lookup and permutation
//! arguments, committed in Lagrange form) and monomial bases (for the vanishing argument's random and quotient
//! polynomials) in GPU memory, uploaded once when the key is attached to the GPU and reused by every proof.
//! [`SmallValueParams`](crate::commit::SmallValueParams) hands it every commitment with the CPU way of computing
//! it, which it uses for inputs shorter than the backend's threshold and after a GPU error (reported once on
//! stderr, then counted): a proof is never lost to a GPU fault, and its bytes are the same either way. With
//! [`GpuCommitter::set_cross_check`] it computes both and counts disagreements (the tests use it on whole proofs).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use halo2_proofs::halo2curves::bn256::{Fr, G1Affine, G1};
use zkinfer_gpu::ResidentBases;

use crate::device::GpuBackend;
use crate::error::{ProverError, Result};

/// Which SRS bases a commitment is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// `[L_i(s)]·G`: the polynomial is given by its values on the domain.
    Lagrange,
    /// `[s^i]·G`: the polynomial is given by its coefficients.
    Monomial,
}

/// How many commitments went where, since the committer was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitCounts {
    /// MSMs computed on the GPU.
    pub gpu: usize,
    /// MSMs left to the CPU because they were shorter than the backend's threshold.
    pub small: usize,
    /// MSMs the GPU failed and the CPU redid.
    pub failed: usize,
    /// Under cross-checking: GPU MSMs whose result differed from the CPU's (the CPU's was used).
    pub mismatched: usize,
}

/// One key's SRS bases resident on a GPU, and the MSMs over them.
pub struct GpuCommitter {
    backend: Arc<GpuBackend>,
    lagrange: ResidentBases,
    monomial: ResidentBases,
    gpu: AtomicUsize,
    small: AtomicUsize,
    failed: AtomicUsize,
    mismatched: AtomicUsize,
    reported: AtomicBool,
    #[cfg(feature = "test-hooks")]
    cross_check: AtomicBool,
    #[cfg(feature = "test-hooks")]
    inject_fault: AtomicBool,
}

impl fmt::Debug for GpuCommitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuCommitter")
            .field("backend", &self.backend)
            .field("bases", &self.lagrange.len())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl GpuCommitter {
    /// Uploads `lagrange` and `monomial` bases to the backend's GPU.
    pub fn new(backend: Arc<GpuBackend>, lagrange: &[G1Affine], monomial: &[G1Affine]) -> Result<GpuCommitter> {
        let upload = |bases: &[G1Affine], what: &str| {
            backend.msm().upload_bases(bases).map_err(|e| ProverError::Gpu {
                reason: format!(
                    "uploading the {what} SRS bases to GPU `{}`: {e}; use --device cpu",
                    backend.adapter().name
                ),
            })
        };
        let lagrange = upload(lagrange, "Lagrange")?;
        let monomial = upload(monomial, "monomial")?;
        Ok(GpuCommitter {
            backend,
            lagrange,
            monomial,
            gpu: AtomicUsize::new(0),
            small: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            mismatched: AtomicUsize::new(0),
            reported: AtomicBool::new(false),
            #[cfg(feature = "test-hooks")]
            cross_check: AtomicBool::new(false),
            #[cfg(feature = "test-hooks")]
            inject_fault: AtomicBool::new(false),
        })
    }

    /// The backend the bases live on.
    pub fn backend(&self) -> &Arc<GpuBackend> {
        &self.backend
    }

    /// Also compute every GPU MSM on the CPU, use the CPU's result and count disagreements (tests only: the
    /// `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub fn set_cross_check(&self, on: bool) {
        self.cross_check.store(on, Ordering::Relaxed);
    }

    /// For tests of the fallbacks (the `test-hooks` feature): every GPU MSM result is shifted by the group
    /// generator, as a faulty driver's would be (`prove` must then notice and prove again on the CPU).
    #[cfg(feature = "test-hooks")]
    pub fn set_fault_injection(&self, on: bool) {
        self.inject_fault.store(on, Ordering::Relaxed);
    }

    /// `Σ scalars[i]·bases[i]` over `basis`: on the GPU, or by `cpu` (the same sum over the same bases) when the
    /// input is short, the GPU fails, or under cross-checking.
    pub fn commit(&self, basis: Basis, scalars: &[Fr], cpu: impl FnOnce() -> G1) -> G1 {
        if scalars.len() < self.backend.min_msm_len() {
            self.small.fetch_add(1, Ordering::Relaxed);
            return cpu();
        }
        let bases = match basis {
            Basis::Lagrange => &self.lagrange,
            Basis::Monomial => &self.monomial,
        };
        match self.backend.msm().msm(bases, scalars) {
            Ok(point) => {
                self.gpu.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "test-hooks")]
                return self.test_hooks(point, cpu);
                #[cfg(not(feature = "test-hooks"))]
                point
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if !self.reported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "GPU `{}` failed an MSM of {} scalars ({e}); committing on the CPU instead",
                        self.backend.adapter().name,
                        scalars.len()
                    );
                }
                cpu()
            }
        }
    }

    /// The fault injection and the cross-check of the tests (`test-hooks`) applied to a GPU result.
    #[cfg(feature = "test-hooks")]
    fn test_hooks(&self, mut point: G1, cpu: impl FnOnce() -> G1) -> G1 {
        if self.inject_fault.load(Ordering::Relaxed) {
            point += G1::generator();
        }
        if !self.cross_check.load(Ordering::Relaxed) {
            return point;
        }
        let want = cpu();
        if point != want {
            self.mismatched.fetch_add(1, Ordering::Relaxed);
        }
        want
    }

    /// How many commitments went where so far.
    pub fn counts(&self) -> CommitCounts {
        CommitCounts {
            gpu: self.gpu.load(Ordering::Relaxed),
            small: self.small.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            mismatched: self.mismatched.load(Ordering::Relaxed),
        }
    }
}
