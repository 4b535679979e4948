//! Multi-scalar multiplication on BN254 G1, Σ scalars[i]·bases[i], by Pippenger's bucket method with signed digits:
//! the group element halo2's `best_multiexp` computes, with the bases resident on the GPU across calls.
//!
//! # Design
//!
//! - **Digits (CPU).** Each scalar v is replaced by p − v with its base negated when that has fewer significant
//!   bits, so −3 costs what 3 costs. The magnitude is cut into signed (Booth) digits of c bits, each in
//!   [−2^(c−1), 2^(c−1)] and each a function of c + 1 bits only, so windows are independent; zero scalars and zero
//!   digits are skipped, and a scalar of b bits only reaches ⌈(b + 1)/c⌉ windows. The window size c (1 … 16) is
//!   the one that minimizes the number of point additions for the actual bit lengths (see `plan::choose_window`):
//!   about 9–10 bits for 2^12 random full-size scalars, 13 for 2^16, and one window of 8–9 bits for int8 scalars.
//! - **Bucket lists (CPU).** A counting sort per window (in parallel over windows, rayon) lists the bases of every
//!   bucket as `(index << 1) | negate`. This is cheap integer work (two passes over the scalars per window), it
//!   needs no atomics or sorting on the GPU, and it lets the CPU cut every bucket's list into segments of bounded
//!   length L = max(32, ⌈√(longest bucket)⌉).
//! - **Sums (GPU, `shaders/msm.wgsl`, one command buffer).** (a) One invocation per segment sums its bases with
//!   mixed (projective + affine) complete additions; (b) one invocation per bucket adds its segments' sums, so a
//!   bucket that holds every point (all scalars equal) costs about 2√n sequential additions instead of n; (c) one
//!   invocation per chunk of M ≈ √B consecutive buckets of a window (B = 2^(c−1) buckets) computes the running
//!   sums A = Σ (local index + 1)·S_b and R = Σ S_b, so the bucket reduction is parallel too.
//! - **Combination (CPU).** The W·K chunk partials (K = B/M per window, a few thousand points at most) are read back
//!   and combined with halo2curves' arithmetic: T_w = Σ_j A_j + M·Σ_j j·R_j per window, then Horner's rule over the
//!   windows (c doublings each). This is a few thousand additions, small next to the n·W of the buckets, and it
//!   keeps the GPU free of single-invocation tails.
//!
//! Bases are uploaded once ([`MsmKernels::upload_bases`]) in halo2curves' raw affine encoding, in as many buffers
//! as the device's largest storage binding requires; an MSM runs once per base buffer, and an MSM whose bucket
//! lists would not fit one binding is split in halves (both rare: a 128 MiB binding, lavapipe's, holds 2^21 bases
//! and the bucket lists of about 2^21 full-size scalars).

mod plan;

use bytemuck::{Pod, Zeroable};
use halo2curves::bn256::{Fr, G1Affine, G1};
use halo2curves::group::Group;
use halo2curves::CurveExt;
use rayon::prelude::*;

use crate::curve::{points_to_bytes, projective_from_bytes, AFFINE_BYTES, G1_WGSL, POINT_BYTES};
use crate::transfer::{bind_in_order, build_pipelines, grid, run_and_read_bytes, storage_entry, uniform_entry, upload};
use crate::{transfer, GpuContext, GpuError};
use plan::{bucket_layout, combine, plan, Plan, Prepared, TooLarge};

/// The smallest storage binding [`MsmKernels::with_max_binding`] plans for (every plan of one scalar fits it).
const MIN_BINDING: u64 = 64 << 10;
/// Bases per buffer at most: entries hold `index << 1` in a u32.
const MAX_BASES_PER_BUFFER: u64 = 1 << 31;

/// The uniform block of `msm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MsmParams {
    segments: u32,
    buckets: u32,
    buckets_per_window: u32,
    chunk: u32,
    chunks_per_window: u32,
    chunks: u32,
    pad: [u32; 2],
}

/// Compiled MSM pipelines bound to one device.
#[derive(Debug)]
pub struct MsmKernels {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    segment: wgpu::ComputePipeline,
    bucket: wgpu::ComputePipeline,
    window: wgpu::ComputePipeline,
    max_workgroups_x: u32,
    max_binding: u64,
}

/// Bases uploaded to the GPU by [`MsmKernels::upload_bases`], for any number of MSMs (the SRS of every proof).
#[derive(Debug)]
pub struct ResidentBases {
    /// Consecutive runs of the bases, each in its own buffer, with their lengths.
    buffers: Vec<(wgpu::Buffer, usize)>,
    len: usize,
}

impl ResidentBases {
    /// The number of bases.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bases.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl MsmKernels {
    /// Compiles the kernels on the context's device.
    pub fn new(ctx: &GpuContext) -> Result<MsmKernels, GpuError> {
        Self::with_max_binding(ctx, u64::MAX)
    }

    /// Like [`MsmKernels::new`], but planning for storage bindings of at most `max_binding` bytes (also capped by the
    /// device, and at least 64 KiB), so that bases are spread over more buffers and large MSMs are split sooner.
    /// For tests of that splitting, and for tuning.
    pub fn with_max_binding(ctx: &GpuContext, max_binding: u64) -> Result<MsmKernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, true),
            storage_entry(3, true),
            storage_entry(4, false),
            storage_entry(5, false),
            storage_entry(6, false),
            uniform_entry(7),
        ];
        let (layout, [segment, bucket, window]) = build_pipelines(
            device,
            "MSM",
            &[crate::FQ_WGSL, G1_WGSL, include_str!("shaders/msm.wgsl")],
            &entries,
            ["segment_kernel", "bucket_kernel", "window_kernel"],
        )?;
        let device_binding = transfer::max_binding(&limits);
        // Word indices in the shaders are u32: keep every binding below 4 GiB.
        let max_binding = max_binding
            .min(device_binding)
            .min(u64::from(u32::MAX) & !3)
            .max(MIN_BINDING);
        Ok(MsmKernels {
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            segment,
            bucket,
            window,
            max_workgroups_x: limits.max_compute_workgroups_per_dimension.max(1),
            max_binding,
        })
    }

    /// Uploads bases once; they stay resident on the GPU across calls (SRS bases reused by every proof).
    pub fn upload_bases(&self, bases: &[G1Affine]) -> Result<ResidentBases, GpuError> {
        let per_buffer = (self.max_binding / AFFINE_BYTES).min(MAX_BASES_PER_BUFFER) as usize;
        let buffers = bases
            .chunks(per_buffer)
            .map(|run| {
                let bytes = points_to_bytes(run, AFFINE_BYTES)?;
                Ok((
                    upload(&self.device, "msm bases", &bytes, wgpu::BufferUsages::STORAGE)?,
                    run.len(),
                ))
            })
            .collect::<Result<_, GpuError>>()?;
        Ok(ResidentBases {
            buffers,
            len: bases.len(),
        })
    }

    /// Σ scalars[i]·bases[i]; scalars.len() <= bases.len() (else GpuError::LengthMismatch).
    ///
    /// The bases past `scalars.len()` are not used; no scalars (or only zeros) give the identity without touching
    /// the GPU. `bases` must come from these kernels' device (else a `GpuError::Gpu` from wgpu's validation).
    pub fn msm(&self, bases: &ResidentBases, scalars: &[Fr]) -> Result<G1, GpuError> {
        if scalars.len() > bases.len() {
            return Err(GpuError::LengthMismatch {
                left: scalars.len(),
                right: bases.len(),
            });
        }
        let prepared: Vec<Prepared> = scalars.par_iter().map(plan::prepare).collect();
        let mut sum = G1::identity();
        let mut rest = prepared.as_slice();
        for (buffer, len) in &bases.buffers {
            if rest.is_empty() {
                break;
            }
            let (run, tail) = rest.split_at((*len).min(rest.len()));
            sum += self.msm_run(buffer, run, 0)?;
            rest = tail;
        }
        Ok(sum)
    }

    /// Σ run[i]·bases[first + i] over one base buffer, in halves while the plan does not fit the bindings.
    fn msm_run(&self, bases: &wgpu::Buffer, run: &[Prepared], first: u32) -> Result<G1, GpuError> {
        match plan(run, first, self.max_binding) {
            Ok(None) => Ok(G1::identity()),
            Ok(Some(plan)) => self.run_plan(bases, &plan),
            Err(TooLarge) if run.len() > 1 => {
                let half = run.len() / 2;
                Ok(self.msm_run(bases, &run[..half], first)?
                    + self.msm_run(bases, &run[half..], first + half as u32)?)
            }
            Err(TooLarge) => Err(GpuError::Gpu(format!(
                "one scalar's MSM does not fit a storage binding of {} bytes",
                self.max_binding
            ))),
        }
    }

    /// The three kernels of `msm.wgsl` on one plan, then the CPU's combination of the chunk partials.
    fn run_plan(&self, bases: &wgpu::Buffer, plan: &Plan) -> Result<G1, GpuError> {
        let (buckets_per_window, chunk, chunks_per_window) = bucket_layout(plan.window);
        let segments = (plan.segments.len() / 2) as u32;
        let buckets = plan.windows * buckets_per_window;
        let chunks = plan.windows * chunks_per_window;
        let params = MsmParams {
            segments,
            buckets,
            buckets_per_window,
            chunk,
            chunks_per_window,
            chunks,
            pad: [0; 2],
        };
        let device = &self.device;
        let partial_bytes = u64::from(2 * chunks) * POINT_BYTES;
        let bytes = run_and_read_bytes(device, &self.queue, |encoder| {
            let storage = wgpu::BufferUsages::STORAGE;
            let entries = upload(device, "msm entries", bytemuck::cast_slice(&plan.entries), storage)?;
            let segment_table = upload(device, "msm segments", bytemuck::cast_slice(&plan.segments), storage)?;
            let offsets = upload(
                device,
                "msm offsets",
                bytemuck::cast_slice(&plan.segment_offsets),
                storage,
            )?;
            let uniform = upload(
                device,
                "msm params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            )?;
            let scratch = |label, points: u32, usage| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: u64::from(points) * POINT_BYTES,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let segment_sums = scratch("msm segment sums", segments, storage);
            let bucket_sums = scratch("msm bucket sums", buckets, storage);
            let partials = scratch("msm partials", 2 * chunks, storage | wgpu::BufferUsages::COPY_SRC);
            let resources = [
                bases,
                &entries,
                &segment_table,
                &offsets,
                &segment_sums,
                &bucket_sums,
                &partials,
                &uniform,
            ];
            let bind_group = bind_in_order(device, &self.layout, "zkinfer-gpu MSM bindings", &resources);
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for (pipeline, invocations) in [
                (&self.segment, segments),
                (&self.bucket, buckets),
                (&self.window, chunks),
            ] {
                let (x, y) = grid(u64::from(invocations), self.max_workgroups_x);
                compute.set_pipeline(pipeline);
                compute.set_bind_group(0, &bind_group, &[]);
                compute.dispatch_workgroups(x, y, 1);
            }
            drop(compute);
            Ok((partials, partial_bytes))
        })?;
        let partials = projective_from_bytes(&bytes)?;
        if let Some(i) = partials.iter().position(|p| !bool::from(p.is_on_curve())) {
            return Err(GpuError::Gpu(format!(
                "MSM kernel returned a point off the curve (partial {i})"
            )));
        }
        Ok(combine(&partials, plan.window, plan.windows))
    }
}
