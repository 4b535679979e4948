//! What every kernel host does the same way: field elements to and from buffer bytes, bind-group layout entries,
//! the dispatch grid, and running a command buffer to completion with its errors caught and the output read back.

use std::sync::mpsc;

use halo2curves::bn256::Fr;
use halo2curves::serde::SerdeObject;
use wgpu::util::DeviceExt;

use crate::GpuError;

/// Bytes of one field element in a buffer (8 × u32).
pub(crate) const ELEMENT_BYTES: u64 = 32;
/// Invocations per workgroup; must match `@workgroup_size` and `WORKGROUP` in the shaders.
pub(crate) const WORKGROUP: u64 = 64;

/// Workgroups along x and y for `n` invocations: x is filled first, up to `max_x`.
pub(crate) fn grid(n: u64, max_x: u32) -> (u32, u32) {
    let groups = n.div_ceil(WORKGROUP).max(1);
    let x = groups.min(u64::from(max_x.max(1)));
    let y = groups.div_ceil(x);
    (x as u32, y as u32)
}

/// The largest buffer one storage binding of a device with `limits` takes, in bytes.
pub(crate) fn max_binding(limits: &wgpu::Limits) -> u64 {
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

/// halo2curves' raw (Montgomery) bytes of every element, concatenated.
pub(crate) fn to_bytes(values: &[Fr]) -> Result<Vec<u8>, GpuError> {
    let mut bytes = Vec::with_capacity(values.len() * ELEMENT_BYTES as usize);
    for value in values {
        value
            .write_raw(&mut bytes)
            .map_err(|e| GpuError::Gpu(format!("encoding an element: {e}")))?;
    }
    Ok(bytes)
}

/// Elements from raw (Montgomery) bytes; a limb pattern ≥ p means the kernel is broken and is an error.
pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Vec<Fr>, GpuError> {
    bytes
        .chunks_exact(ELEMENT_BYTES as usize)
        .enumerate()
        .map(|(i, raw)| {
            Fr::from_raw_bytes(raw)
                .ok_or_else(|| GpuError::Gpu(format!("kernel returned a non-reduced element at index {i}")))
        })
        .collect()
}

/// A storage-buffer binding visible to compute shaders.
pub(crate) fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A uniform-buffer binding visible to compute shaders.
pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A bind group of `layout` binding `buffers` in order: buffer `i` at binding `i`, each as a whole.
pub(crate) fn bind_in_order(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    label: &str,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(binding, buffer)| wgpu::BindGroupEntry {
            binding: binding as u32,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Compiles the concatenation of `sources` (the arithmetic it needs, e.g. [`crate::FR_WGSL`], then the kernels) and
/// one compute pipeline per entry point, all sharing one bind-group layout of `entries`. Shader and pipeline errors
/// become `GpuError::Gpu` naming `what`.
pub(crate) fn build_pipelines<const N: usize>(
    device: &wgpu::Device,
    what: &str,
    sources: &[&str],
    entries: &[wgpu::BindGroupLayoutEntry],
    entry_points: [&str; N],
) -> Result<(wgpu::BindGroupLayout, [wgpu::ComputePipeline; N]), GpuError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(what),
        source: wgpu::ShaderSource::Wgsl(sources.join("\n").into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(what),
        entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(what),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipelines = entry_points.map(|entry_point| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: None,
        })
    });
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Gpu(format!("building the {what} kernels: {error}")));
    }
    Ok((layout, pipelines))
}

/// [`run_and_read_bytes`], with the result read as field elements.
pub(crate) fn run_and_read(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<(wgpu::Buffer, u64), GpuError>,
) -> Result<Vec<Fr>, GpuError> {
    from_bytes(&run_and_read_bytes(device, queue, record)?)
}

/// Runs `record` (which creates buffers and records passes into the encoder it is given, and returns the buffer
/// holding the result and its size in bytes), submits the work, waits for it and reads the result's bytes back.
/// Validation and out-of-memory errors anywhere inside become `GpuError::Gpu` instead of panics.
pub(crate) fn run_and_read_bytes(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<(wgpu::Buffer, u64), GpuError>,
) -> Result<Vec<u8>, GpuError> {
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    let recorded = record(&mut encoder);
    let readback = recorded.as_ref().ok().map(|(output, bytes)| {
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: *bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(output, 0, &readback, 0, *bytes);
        readback
    });
    queue.submit([encoder.finish()]);
    let (sender, receiver) = mpsc::channel();
    if let Some(readback) = &readback {
        readback.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
    }
    let polled = device.poll(wgpu::PollType::wait_indefinitely());
    let validation = pollster::block_on(validation.pop());
    let out_of_memory = pollster::block_on(out_of_memory.pop());
    if let Some(error) = validation.or(out_of_memory) {
        return Err(GpuError::Gpu(error.to_string()));
    }
    recorded?;
    polled.map_err(|e| GpuError::Gpu(format!("waiting for the GPU: {e}")))?;
    let readback = readback.ok_or_else(|| GpuError::Gpu("no result buffer".into()))?;
    match receiver.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(GpuError::Gpu(format!("reading the result back: {e}"))),
        Err(_) => {
            return Err(GpuError::Gpu(
                "reading the result back: the mapping never completed".into(),
            ))
        }
    }
    let view = readback
        .get_mapped_range(..)
        .map_err(|e| GpuError::Gpu(format!("reading the result back: {e}")))?;
    let result = view.to_vec();
    drop(view);
    readback.unmap();
    Ok(result)
}

/// A buffer holding `contents` (created with error scopes: an allocation the device refuses is an error, not a
/// panic). `contents` must not be empty.
pub(crate) fn upload(
    device: &wgpu::Device,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer, GpuError> {
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage,
    });
    let validation = pollster::block_on(validation.pop());
    let out_of_memory = pollster::block_on(out_of_memory.pop());
    match validation.or(out_of_memory) {
        Some(error) => Err(GpuError::Gpu(format!("uploading {label}: {error}"))),
        None => Ok(buffer),
    }
}

#[cfg(test)]
mod tests {
    use ff::Field;

    use super::*;

    #[test]
    fn grid_covers_every_element_within_the_limits() {
        assert_eq!(grid(1, 65_535), (1, 1));
        assert_eq!(grid(64, 65_535), (1, 1));
        assert_eq!(grid(65, 65_535), (2, 1));
        assert_eq!(grid(70_001, 7), (7, 157)); // 1094 groups
        let n = 65_535 * 64 + 1;
        assert_eq!(grid(n, 65_535), (65_535, 2));
    }

    #[test]
    fn bytes_round_trip_and_reject_non_reduced_limbs() {
        let values = [Fr::ZERO, Fr::ONE, -Fr::ONE, Fr::from(12345)];
        assert_eq!(from_bytes(&to_bytes(&values).unwrap()).unwrap(), values);
        // p itself, little-endian: not a reduced element.
        let p: Vec<u8> = [
            0x43e1f593f0000001u64,
            0x2833e84879b97091,
            0xb85045b68181585d,
            0x30644e72e131a029,
        ]
        .iter()
        .flat_map(|l| l.to_le_bytes())
        .collect();
        assert!(matches!(from_bytes(&p), Err(GpuError::Gpu(_))));
    }
}
