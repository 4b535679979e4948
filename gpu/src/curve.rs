//! BN254 G1 on the GPU: point encodings shared with halo2curves, and elementwise point kernels.
//!
//! Points cross the bus in halo2curves' own raw encoding (`SerdeObject`): a projective `G1` is its x, y, z
//! coordinates (96 bytes), a `G1Affine` its x, y (64 bytes, the identity as (0, 0)), each coordinate an `Fq` in
//! Montgomery form. The WGSL side (`shaders/g1.wgsl`, on `FQ_WGSL`) follows halo2curves' complete formulas step for
//! step, so [`G1Kernels`] returns exactly halo2curves' coordinates, not just an equivalent point.

use bytemuck::{Pod, Zeroable};
use halo2curves::bn256::{Fq, G1Affine, G1};
use halo2curves::serde::SerdeObject;

use crate::transfer::{
    bind_in_order, build_pipelines, grid, max_binding, run_and_read_bytes, storage_entry, uniform_entry, upload,
    WORKGROUP,
};
use crate::{GpuContext, GpuError};

/// WGSL of the G1 point arithmetic (`g1_add`, `g1_add_mixed`, `g1_double`, ...); kernels put `FQ_WGSL` before it.
pub(crate) const G1_WGSL: &str = include_str!("shaders/g1.wgsl");
/// Bytes of one projective point in a buffer (x, y, z: 24 × u32).
pub(crate) const POINT_BYTES: u64 = 96;
/// Bytes of one affine point in a buffer (x, y: 16 × u32).
pub(crate) const AFFINE_BYTES: u64 = 64;

/// halo2curves' raw bytes of every point, concatenated (`T` is `G1` or `G1Affine`).
pub(crate) fn points_to_bytes<T: SerdeObject>(points: &[T], point_bytes: u64) -> Result<Vec<u8>, GpuError> {
    let mut bytes = Vec::with_capacity(points.len() * point_bytes as usize);
    for point in points {
        point
            .write_raw(&mut bytes)
            .map_err(|e| GpuError::Gpu(format!("encoding a point: {e}")))?;
    }
    Ok(bytes)
}

/// Projective points from raw bytes. Every coordinate must be reduced (< q), else the kernel is broken and this is
/// an error; the points are not required to lie on the curve (see [`G1Kernels`]).
pub(crate) fn projective_from_bytes(bytes: &[u8]) -> Result<Vec<G1>, GpuError> {
    bytes
        .chunks_exact(POINT_BYTES as usize)
        .enumerate()
        .map(|(i, raw)| {
            let coordinate = |k: usize| {
                Fq::from_raw_bytes(&raw[32 * k..32 * (k + 1)])
                    .ok_or_else(|| GpuError::Gpu(format!("kernel returned a non-reduced coordinate at point {i}")))
            };
            Ok(G1 {
                x: coordinate(0)?,
                y: coordinate(1)?,
                z: coordinate(2)?,
            })
        })
        .collect()
}

/// The uniform block of `g1_elementwise.wgsl` (padded to 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
}

/// Compiled pipelines for elementwise G1 addition (projective + projective, projective + affine) and doubling.
///
/// The formulas are polynomials in the coordinates, so any reduced coordinates are accepted, on the curve or not,
/// and the result is bit for bit what halo2curves' `G1 + G1`, `G1 + G1Affine` and `G1::double` compute.
#[derive(Debug)]
pub struct G1Kernels {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    add: wgpu::ComputePipeline,
    add_mixed: wgpu::ComputePipeline,
    double: wgpu::ComputePipeline,
    max_workgroups_x: u32,
    max_points: usize,
}

impl G1Kernels {
    /// Compiles the kernels on the context's device.
    pub fn new(ctx: &GpuContext) -> Result<G1Kernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, false),
            uniform_entry(3),
        ];
        let (layout, [add, add_mixed, double]) = build_pipelines(
            device,
            "elementwise G1",
            &[crate::FQ_WGSL, G1_WGSL, include_str!("shaders/g1_elementwise.wgsl")],
            &entries,
            ["add_kernel", "add_mixed_kernel", "double_kernel"],
        )?;
        let max_workgroups_x = limits.max_compute_workgroups_per_dimension.max(1);
        let binding = max_binding(&limits);
        let grid = u64::from(max_workgroups_x) * u64::from(max_workgroups_x) * WORKGROUP;
        let max_points = (binding / POINT_BYTES).min(grid).min(u64::from(u32::MAX)) as usize;
        Ok(G1Kernels {
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            add,
            add_mixed,
            double,
            max_workgroups_x,
            max_points,
        })
    }

    /// `a[i] + b[i]` for every `i` (projective operands). Errors when the lengths differ or exceed one binding.
    pub fn add(&self, a: &[G1], b: &[G1]) -> Result<Vec<G1>, GpuError> {
        check_lengths(a.len(), b.len())?;
        let b = points_to_bytes(b, POINT_BYTES)?;
        self.run(&self.add, a, Some(&b))
    }

    /// `a[i] + b[i]` for every `i` (affine `b`, the identity included). Errors when the lengths differ or exceed
    /// one binding.
    pub fn add_mixed(&self, a: &[G1], b: &[G1Affine]) -> Result<Vec<G1>, GpuError> {
        check_lengths(a.len(), b.len())?;
        let b = points_to_bytes(b, AFFINE_BYTES)?;
        self.run(&self.add_mixed, a, Some(&b))
    }

    /// `2·a[i]` for every `i`. Errors when the length exceeds one binding.
    pub fn double(&self, a: &[G1]) -> Result<Vec<G1>, GpuError> {
        self.run(&self.double, a, None)
    }

    /// One dispatch over every element; `b` is the second operand's bytes (`None`: `a` is bound twice).
    fn run(&self, pipeline: &wgpu::ComputePipeline, a: &[G1], b: Option<&[u8]>) -> Result<Vec<G1>, GpuError> {
        let n = a.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > self.max_points {
            return Err(GpuError::Size {
                len: n,
                max: self.max_points,
            });
        }
        let device = &self.device;
        let a = upload(
            device,
            "g1 a",
            &points_to_bytes(a, POINT_BYTES)?,
            wgpu::BufferUsages::STORAGE,
        )?;
        let b = match b {
            Some(b) => upload(device, "g1 b", b, wgpu::BufferUsages::STORAGE)?,
            None => a.clone(),
        };
        let params = upload(
            device,
            "g1 params",
            bytemuck::bytes_of(&Params {
                n: n as u32,
                pad: [0; 3],
            }),
            wgpu::BufferUsages::UNIFORM,
        )?;
        let bytes = n as u64 * POINT_BYTES;
        let out = run_and_read_bytes(device, &self.queue, |encoder| {
            let output = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("g1 out"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let buffers = [&a, &b, &output, &params];
            let bind_group = bind_in_order(device, &self.layout, "zkinfer-gpu elementwise G1 bindings", &buffers);
            let (x, y) = grid(n as u64, self.max_workgroups_x);
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            compute.set_pipeline(pipeline);
            compute.set_bind_group(0, &bind_group, &[]);
            compute.dispatch_workgroups(x, y, 1);
            drop(compute);
            Ok((output, bytes))
        })?;
        projective_from_bytes(&out)
    }
}

fn check_lengths(left: usize, right: usize) -> Result<(), GpuError> {
    if left == right {
        Ok(())
    } else {
        Err(GpuError::LengthMismatch { left, right })
    }
}

#[cfg(test)]
mod tests {
    use ff::Field;
    use halo2curves::group::prime::PrimeCurveAffine;
    use halo2curves::group::Group;

    use super::*;

    #[test]
    fn point_encodings_are_halo2curves_raw_bytes() {
        let g = G1::generator();
        let points = [g, G1::identity(), -g.double()];
        let bytes = points_to_bytes(&points, POINT_BYTES).unwrap();
        assert_eq!(bytes.len(), 3 * POINT_BYTES as usize);
        let back = projective_from_bytes(&bytes).unwrap();
        for (p, q) in points.iter().zip(&back) {
            assert_eq!((p.x, p.y, p.z), (q.x, q.y, q.z));
        }
        // The affine identity is (0, 0); the projective one (0 : 1 : 0).
        assert_eq!(
            points_to_bytes(&[G1Affine::identity()], AFFINE_BYTES).unwrap(),
            vec![0; 64]
        );
        assert_eq!(G1::identity().y, Fq::ONE);
        // A coordinate ≥ q is refused.
        let mut bad = bytes.clone();
        bad[..32].fill(0xff);
        assert!(matches!(projective_from_bytes(&bad), Err(GpuError::Gpu(_))));
    }
}
