//! The number-theoretic transform over F_r on the GPU: `a_i ← Σ_j a_j · ω^(i·j)` for `n = 2^k` elements, the
//! transform halo2 computes with `best_fft(a, ω, k)` (its inverse is the transform at `ω⁻¹`, scaled by `n⁻¹`).
//!
//! One bit-reversal dispatch and `k` butterfly dispatches (`shaders/ntt.wgsl`) in one command buffer; the twiddles
//! `ω^0 … ω^(n/2 − 1)` are computed on the CPU (`n/2` multiplications) and uploaded with the values.
//! The coset transforms ([`NttKernels::coset_ntt`], [`NttKernels::coset_intt`]: halo2's move into and out of the
//! extended domain's coset) add one scaling dispatch by `shift^i` before, or `n⁻¹ · shift^(−i)` after, the transform.

use bytemuck::{Pod, Zeroable};
use ff::Field;
use halo2curves::bn256::Fr;
use wgpu::util::DeviceExt;

use crate::transfer::{
    bind_in_order, build_pipelines, grid, max_binding, run_and_read, storage_entry, to_bytes, uniform_entry,
    ELEMENT_BYTES,
};
use crate::{GpuContext, GpuError};

/// The uniform block of `ntt.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NttParams {
    n: u32,
    log_n: u32,
    half: u32,
    stride: u32,
}

/// Compiled NTT pipelines bound to one device.
#[derive(Debug)]
pub struct NttKernels {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    bit_reverse: wgpu::ComputePipeline,
    butterfly: wgpu::ComputePipeline,
    scale: wgpu::ComputePipeline,
    max_workgroups_x: u32,
    max_elements: u64,
}

impl NttKernels {
    /// Compiles the kernels on the context's device.
    pub fn new(ctx: &GpuContext) -> Result<NttKernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let entries = [
            storage_entry(0, false),
            storage_entry(1, true),
            uniform_entry(2),
            storage_entry(3, true),
        ];
        let source = include_str!("shaders/ntt.wgsl");
        let (layout, [bit_reverse, butterfly, scale]) = build_pipelines(
            device,
            "NTT",
            &[crate::FR_WGSL, source],
            &entries,
            ["bit_reverse_kernel", "butterfly_kernel", "scale_kernel"],
        )?;
        let binding = max_binding(&limits);
        Ok(NttKernels {
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            bit_reverse,
            butterfly,
            scale,
            max_workgroups_x: limits.max_compute_workgroups_per_dimension.max(1),
            max_elements: binding / ELEMENT_BYTES,
        })
    }

    /// The transform of `values` at `omega`, which must be a primitive `values.len()`-th root of unity (halo2's
    /// `EvaluationDomain` gives them). The length must be a power of two that fits one storage binding of the
    /// device; an empty input gives an empty output.
    pub fn ntt(&self, values: &[Fr], omega: Fr) -> Result<Vec<Fr>, GpuError> {
        self.transform(values, omega, Scaling::None)
    }

    /// The coset transform: the NTT at `omega` of `values[i] · shift^i`, i.e. the evaluations of the polynomial
    /// with coefficients `values` at `shift · ω^j` (halo2's `coeff_to_extended` with `shift` = its coset generator).
    pub fn coset_ntt(&self, values: &[Fr], omega: Fr, shift: Fr) -> Result<Vec<Fr>, GpuError> {
        let factors = powers(shift, Fr::ONE, values.len());
        self.transform(values, omega, Scaling::Before(factors))
    }

    /// The inverse of [`NttKernels::coset_ntt`]: coefficients from evaluations at `shift · ω^j`, i.e. the NTT at
    /// `ω⁻¹`, then `n⁻¹ · shift^(−i)` on element `i` (halo2's `extended_to_coeff`). `omega` and `shift` must be
    /// invertible (they are, for a root of unity and a coset generator); zero is refused with an error.
    pub fn coset_intt(&self, values: &[Fr], omega: Fr, shift: Fr) -> Result<Vec<Fr>, GpuError> {
        let invert = |x: Fr, what: &str| {
            Option::<Fr>::from(x.invert()).ok_or_else(|| GpuError::Gpu(format!("the {what} must not be zero")))
        };
        let n = values.len();
        let omega_inv = invert(omega, "root of unity")?;
        let shift_inv = invert(shift, "coset shift")?;
        let n_inv = invert(Fr::from(n.max(1) as u64), "length")?;
        let factors = powers(shift_inv, n_inv, n);
        self.transform(values, omega_inv, Scaling::After(factors))
    }

    /// The NTT at `omega` with an optional scaling pass before or after it (one command buffer).
    fn transform(&self, values: &[Fr], omega: Fr, scaling: Scaling) -> Result<Vec<Fr>, GpuError> {
        let n = values.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if !n.is_power_of_two() || n as u64 > self.max_elements || n > 1 << 31 {
            return Err(GpuError::Size {
                len: n,
                max: self.max_elements.min(1 << 31) as usize,
            });
        }
        let log_n = n.trailing_zeros();
        let twiddles = powers(omega, Fr::ONE, (n / 2).max(1));
        let factors = match &scaling {
            Scaling::None => vec![Fr::ZERO],
            Scaling::Before(f) | Scaling::After(f) => f.clone(),
        };
        let bytes = n as u64 * ELEMENT_BYTES;
        let device = &self.device;
        run_and_read(device, &self.queue, |encoder| {
            let buffer = |label: &str, elements: &[Fr], usage: wgpu::BufferUsages| -> Result<wgpu::Buffer, GpuError> {
                Ok(device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: &to_bytes(elements)?,
                    usage,
                }))
            };
            let values = buffer(
                "ntt values",
                values,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            )?;
            let twiddles = buffer("ntt twiddles", &twiddles, wgpu::BufferUsages::STORAGE)?;
            let factors = buffer("ntt factors", &factors, wgpu::BufferUsages::STORAGE)?;
            // The passes in order: (pipeline, invocations, half) for the scaling, the bit reversal, and the
            // butterflies with half = 1, 2, …, n/2.
            let scale = (&self.scale, n as u64, 1u32);
            let mut passes = Vec::with_capacity(log_n as usize + 3);
            if matches!(scaling, Scaling::Before(_)) {
                passes.push(scale);
            }
            passes.push((&self.bit_reverse, n as u64, 1));
            passes.extend((0..log_n).map(|s| (&self.butterfly, n as u64 / 2, 1u32 << s)));
            if matches!(scaling, Scaling::After(_)) {
                passes.push(scale);
            }
            let bind_groups: Vec<wgpu::BindGroup> = passes
                .iter()
                .map(|&(_, _, half)| {
                    let params = NttParams {
                        n: n as u32,
                        log_n,
                        half,
                        stride: (n as u32 / 2) / half,
                    };
                    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("ntt params"),
                        contents: bytemuck::bytes_of(&params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    let resources = [&values, &twiddles, &uniform, &factors];
                    bind_in_order(device, &self.layout, "zkinfer-gpu NTT bindings", &resources)
                })
                .collect();
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for (&(pipeline, invocations, _), bind_group) in passes.iter().zip(&bind_groups) {
                let (x, y) = grid(invocations, self.max_workgroups_x);
                compute.set_pipeline(pipeline);
                compute.set_bind_group(0, bind_group, &[]);
                compute.dispatch_workgroups(x, y, 1);
            }
            drop(compute);
            Ok((values, bytes))
        })
    }
}

/// Where a coset transform multiplies element `i` by its factor.
enum Scaling {
    None,
    Before(Vec<Fr>),
    After(Vec<Fr>),
}

/// `first · base^i` for `i < len`.
fn powers(base: Fr, first: Fr, len: usize) -> Vec<Fr> {
    std::iter::successors(Some(first), |x| Some(*x * base))
        .take(len)
        .collect()
}
