//! Elementwise BN254 scalar-field arithmetic on the GPU: `a[i] + b[i]`, `a[i] − b[i]`, `a[i] · b[i]`.
//!
//! Elements cross the bus in halo2curves' own Montgomery representation (`SerdeObject` raw bytes: four
//! little-endian u64 limbs, read by the shader as eight little-endian u32 limbs), so nothing is converted on either
//! side. Work is split into passes of at most `max_elements_per_pass` elements (bounded by the device's largest
//! storage binding), and each pass is one dispatch over a two-dimensional grid of workgroups.

use bytemuck::{Pod, Zeroable};
use halo2curves::bn256::Fr;
use wgpu::util::DeviceExt;

use crate::transfer::{
    bind_in_order, build_pipelines, grid, max_binding, run_and_read, storage_entry, to_bytes, uniform_entry,
    ELEMENT_BYTES, WORKGROUP,
};
use crate::{GpuContext, GpuError};

/// The uniform block of `elementwise.wgsl` (padded to 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
}

/// Compiled pipelines for elementwise `add`, `sub` and `mul` over F_r, bound to one device.
#[derive(Debug)]
pub struct FieldKernels {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    add: wgpu::ComputePipeline,
    sub: wgpu::ComputePipeline,
    mul: wgpu::ComputePipeline,
    max_workgroups_x: u32,
    max_elements_per_pass: usize,
}

impl FieldKernels {
    /// Compiles the kernels on the context's device, with passes as large as the device allows.
    pub fn new(ctx: &GpuContext) -> Result<FieldKernels, GpuError> {
        Self::with_limits(ctx, u32::MAX, usize::MAX)
    }

    /// Like [`FieldKernels::new`], but with at most `max_workgroups_x` workgroups along x in a dispatch (the rest go
    /// along y) and at most `max_elements_per_pass` elements per pass; both are also capped by the device's limits
    /// and raised to at least 1. For tests of the splitting logic, and for tuning.
    pub fn with_limits(
        ctx: &GpuContext,
        max_workgroups_x: u32,
        max_elements_per_pass: usize,
    ) -> Result<FieldKernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let max_workgroups_x = max_workgroups_x.clamp(1, limits.max_compute_workgroups_per_dimension.max(1));
        let binding = max_binding(&limits);
        let grid = u64::from(max_workgroups_x) * u64::from(limits.max_compute_workgroups_per_dimension) * WORKGROUP;
        let device_cap = (binding / ELEMENT_BYTES).min(grid).min(u64::from(u32::MAX));
        let max_elements_per_pass = max_elements_per_pass.min(device_cap as usize).max(1);

        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, false),
            uniform_entry(3),
        ];
        let source = include_str!("shaders/elementwise.wgsl");
        let (layout, [add, sub, mul]) = build_pipelines(
            device,
            "elementwise F_r",
            &[crate::FR_WGSL, source],
            &entries,
            ["add_kernel", "sub_kernel", "mul_kernel"],
        )?;
        Ok(FieldKernels {
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            add,
            sub,
            mul,
            max_workgroups_x,
            max_elements_per_pass,
        })
    }

    /// `a[i] + b[i]` for every `i`. Errors when the lengths differ; empty inputs give an empty result.
    pub fn add(&self, a: &[Fr], b: &[Fr]) -> Result<Vec<Fr>, GpuError> {
        self.run(Op::Add, a, b)
    }

    /// `a[i] − b[i]` for every `i`. Errors when the lengths differ; empty inputs give an empty result.
    pub fn sub(&self, a: &[Fr], b: &[Fr]) -> Result<Vec<Fr>, GpuError> {
        self.run(Op::Sub, a, b)
    }

    /// `a[i] · b[i]` for every `i`. Errors when the lengths differ; empty inputs give an empty result.
    pub fn mul(&self, a: &[Fr], b: &[Fr]) -> Result<Vec<Fr>, GpuError> {
        self.run(Op::Mul, a, b)
    }

    fn run(&self, op: Op, a: &[Fr], b: &[Fr]) -> Result<Vec<Fr>, GpuError> {
        if a.len() != b.len() {
            return Err(GpuError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        let mut out = Vec::with_capacity(a.len());
        for (a, b) in a
            .chunks(self.max_elements_per_pass)
            .zip(b.chunks(self.max_elements_per_pass))
        {
            out.extend(self.pass(op, a, b)?);
        }
        Ok(out)
    }

    /// One dispatch over `a.len()` (≥ 1, ≤ `max_elements_per_pass`) elements.
    fn pass(&self, op: Op, a: &[Fr], b: &[Fr]) -> Result<Vec<Fr>, GpuError> {
        let n = a.len();
        let bytes = n as u64 * ELEMENT_BYTES;
        let device = &self.device;
        run_and_read(device, &self.queue, |encoder| {
            let input = |label, values: &[Fr]| -> Result<wgpu::Buffer, GpuError> {
                Ok(device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: &to_bytes(values)?,
                    usage: wgpu::BufferUsages::STORAGE,
                }))
            };
            let (in_a, in_b) = (input("a", a)?, input("b", b)?);
            let output = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("out"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&Params {
                    n: n as u32,
                    pad: [0; 3],
                }),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let buffers = [&in_a, &in_b, &output, &params];
            let bind_group = bind_in_order(device, &self.layout, "zkinfer-gpu elementwise bindings", &buffers);
            let (x, y) = grid(n as u64, self.max_workgroups_x);
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            compute.set_pipeline(match op {
                Op::Add => &self.add,
                Op::Sub => &self.sub,
                Op::Mul => &self.mul,
            });
            compute.set_bind_group(0, &bind_group, &[]);
            compute.dispatch_workgroups(x, y, 1);
            Ok((output, bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    use ff::{Field, PrimeField};
    use halo2curves::bn256::Fq;
    use halo2curves::serde::SerdeObject;

    use super::*;

    /// The hex words of the `array<u32, 8>(...)` (or a single `u32`) constant `name` in `FR_WGSL` or `FQ_WGSL`.
    fn wgsl_constant(name: &str) -> Vec<u32> {
        let source = if name.starts_with("FQ_") {
            crate::FQ_WGSL
        } else {
            crate::FR_WGSL
        };
        let start = source
            .find(&format!("const {name}"))
            .expect("constant in fr.wgsl or fq.wgsl");
        let text = &source[start..];
        let text = &text[text.find('=').expect("=") + 1..text.find(';').expect(";")];
        let text = text.trim().trim_start_matches("array<u32, 8>(").trim_end_matches(')');
        text.split(',')
            .map(|word| u32::from_str_radix(word.trim().trim_start_matches("0x").trim_end_matches('u'), 16).unwrap())
            .collect()
    }

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn shader_constants_match_halo2curves() {
        // p: halo2curves' modulus string, big-endian hex.
        let p = wgsl_constant("FR_P");
        let hex: String = p.iter().rev().map(|w| format!("{w:08x}")).collect();
        assert_eq!(format!("0x{hex}"), Fr::MODULUS);
        // −p⁻¹ mod 2^32: p·inv ≡ −1.
        let inv = wgsl_constant("FR_INV");
        assert_eq!(p[0].wrapping_mul(inv[0]), u32::MAX);
        // Montgomery form with R = 2^256: the raw limbs of 1 are R mod p, of 0 are 0, and of −1 are p − R mod p.
        let one = wgsl_constant("FR_ONE");
        assert_eq!(words(&Fr::ONE.to_raw_bytes()), one);
        assert_eq!(words(&Fr::ZERO.to_raw_bytes()), vec![0; 8]);
        // R mod p = 2^256 − 5p: 5p + (R mod p) = 2^256, i.e. 0 modulo 2^256 with a carry out.
        let (mut carry, mut sum) = (0u64, Vec::new());
        for (pw, ow) in p.iter().zip(&one) {
            let s = 5 * u64::from(*pw) + u64::from(*ow) + carry;
            sum.push(s as u32);
            carry = s >> 32;
        }
        assert_eq!((sum, carry), (vec![0; 8], 1));
        // The raw bytes are the Montgomery form: Fr::from_raw_bytes of R mod p is 1.
        let one_bytes: Vec<u8> = one.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(Fr::from_raw_bytes(&one_bytes), Some(Fr::ONE));
    }

    #[test]
    fn fq_constants_match_halo2curves() {
        let q = wgsl_constant("FQ_P");
        let hex: String = q.iter().rev().map(|w| format!("{w:08x}")).collect();
        assert_eq!(format!("0x{hex}"), Fq::MODULUS);
        // −q⁻¹ mod 2^32: q·inv ≡ −1.
        let inv = wgsl_constant("FQ_INV");
        assert_eq!(q[0].wrapping_mul(inv[0]), u32::MAX);
        // The raw limbs of 1 are R mod q, and R mod q = 2^256 − 5q.
        let one = wgsl_constant("FQ_ONE");
        assert_eq!(words(&Fq::ONE.to_raw_bytes()), one);
        let (mut carry, mut sum) = (0u64, Vec::new());
        for (qw, ow) in q.iter().zip(&one) {
            let s = 5 * u64::from(*qw) + u64::from(*ow) + carry;
            sum.push(s as u32);
            carry = s >> 32;
        }
        assert_eq!((sum, carry), (vec![0; 8], 1));
        let one_bytes: Vec<u8> = one.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(Fq::from_raw_bytes(&one_bytes), Some(Fq::ONE));
    }

    #[test]
    fn both_fields_are_instances_of_one_template() {
        let template = include_str!("shaders/montgomery.wgsl");
        for (source, prefix) in [(crate::FR_WGSL, "fr"), (crate::FQ_WGSL, "fq")] {
            let body = template
                .replace("field_", &format!("{prefix}_"))
                .replace("FIELD_", &format!("{}_", prefix.to_uppercase()));
            assert!(source.ends_with(&body), "{prefix} is not the template's instance");
            assert!(!source.contains("field_") && !source.contains("FIELD_"));
        }
    }
}
