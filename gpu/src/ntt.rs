//! The number-theoretic transform over F_r on the GPU: `a_i ← Σ_j a_j · ω^(i·j)` for `n = 2^k` elements, the
//! transform halo2 computes with `best_fft(a, ω, k)` (its inverse is the transform at `ω⁻¹`, scaled by `n⁻¹`).
//!
//! One bit-reversal dispatch and `k` butterfly dispatches (`shaders/ntt.wgsl`) in one command buffer; the twiddles
//! `ω^0 … ω^(n/2 − 1)` are computed on the CPU (`n/2` multiplications) and uploaded with the values.

use bytemuck::{Pod, Zeroable};
use ff::Field;
use halo2curves::bn256::Fr;
use wgpu::util::DeviceExt;

use crate::transfer::{build_pipelines, grid, run_and_read, storage_entry, to_bytes, uniform_entry, ELEMENT_BYTES};
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
    max_workgroups_x: u32,
    max_elements: u64,
}

impl NttKernels {
    /// Compiles the kernels on the context's device.
    pub fn new(ctx: &GpuContext) -> Result<NttKernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let entries = [storage_entry(0, false), storage_entry(1, true), uniform_entry(2)];
        let source = include_str!("shaders/ntt.wgsl");
        let (layout, [bit_reverse, butterfly]) = build_pipelines(
            device,
            "NTT",
            &[crate::FR_WGSL, source],
            &entries,
            ["bit_reverse_kernel", "butterfly_kernel"],
        )?;
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        Ok(NttKernels {
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            bit_reverse,
            butterfly,
            max_workgroups_x: limits.max_compute_workgroups_per_dimension.max(1),
            max_elements: binding / ELEMENT_BYTES,
        })
    }

    /// The transform of `values` at `omega`, which must be a primitive `values.len()`-th root of unity (halo2's
    /// `EvaluationDomain` gives them). The length must be a power of two that fits one storage binding of the
    /// device; an empty input gives an empty output.
    pub fn ntt(&self, values: &[Fr], omega: Fr) -> Result<Vec<Fr>, GpuError> {
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
        let mut twiddles = Vec::with_capacity((n / 2).max(1));
        let mut w = Fr::ONE;
        for _ in 0..(n / 2).max(1) {
            twiddles.push(w);
            w *= omega;
        }
        let bytes = n as u64 * ELEMENT_BYTES;
        let device = &self.device;
        run_and_read(device, &self.queue, |encoder| {
            let values = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("ntt values"),
                contents: &to_bytes(values)?,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
            let twiddles = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("ntt twiddles"),
                contents: &to_bytes(&twiddles)?,
                usage: wgpu::BufferUsages::STORAGE,
            });
            // One uniform block per dispatch: the bit reversal, then half = 1, 2, …, n/2.
            let passes: Vec<NttParams> = std::iter::once(0)
                .chain((0..log_n).map(|s| 1u32 << s))
                .map(|half| NttParams {
                    n: n as u32,
                    log_n,
                    half: half.max(1),
                    stride: (n as u32 / 2) / half.max(1),
                })
                .collect();
            let bind_groups: Vec<wgpu::BindGroup> = passes
                .iter()
                .map(|params| {
                    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("ntt params"),
                        contents: bytemuck::bytes_of(params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("zkinfer-gpu NTT bindings"),
                        layout: &self.layout,
                        entries: &[
                            wgpu::BindGroupEntry {
                                binding: 0,
                                resource: values.as_entire_binding(),
                            },
                            wgpu::BindGroupEntry {
                                binding: 1,
                                resource: twiddles.as_entire_binding(),
                            },
                            wgpu::BindGroupEntry {
                                binding: 2,
                                resource: uniform.as_entire_binding(),
                            },
                        ],
                    })
                })
                .collect();
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for (i, bind_group) in bind_groups.iter().enumerate() {
                let (pipeline, invocations) = if i == 0 {
                    (&self.bit_reverse, n as u64)
                } else {
                    (&self.butterfly, n as u64 / 2)
                };
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
