//! Finding a GPU: the adapters wgpu sees on every backend, and the device the kernels run on.
//!
//! The choice is hardware first (discrete, then integrated, then virtual GPUs, then adapters of unknown kind) and a
//! software rasterizer last (device type `Cpu`, e.g. Mesa's lavapipe "llvmpipe"), which is slow but bit-exact and
//! lets the tests run on machines without a GPU.

use std::sync::Arc;

use crate::GpuError;

/// What `list_adapters` reports about one adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. "NVIDIA GeForce RTX 4090" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend-specific vendor id (the PCI vendor id on Vulkan; 0x10005 is Mesa).
    pub vendor_id: u32,
    /// Backend-specific device id.
    pub device_id: u32,
    /// Discrete, integrated, virtual, CPU (software) or other.
    pub device_type: wgpu::DeviceType,
    /// Vulkan, Metal or DX12.
    pub backend: wgpu::Backend,
    /// The driver's name, e.g. "llvmpipe".
    pub driver: String,
    /// The driver's version string, e.g. "Mesa 22.3.6 (LLVM 15.0.6)".
    pub driver_info: String,
}

impl AdapterSummary {
    fn from_info(info: wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name,
            vendor_id: info.vendor,
            device_id: info.device,
            device_type: info.device_type,
            backend: info.backend,
            driver: info.driver,
            driver_info: info.driver_info,
        }
    }

    /// The device type in words: "discrete GPU", "integrated GPU", "virtual GPU", "CPU (software)" or "other".
    pub fn device_type_name(&self) -> &'static str {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "CPU (software)",
            wgpu::DeviceType::Other => "other",
        }
    }

    /// The backend's name: "vulkan", "metal", "dx12", ...
    pub fn backend_name(&self) -> &'static str {
        self.backend.to_str()
    }

    /// Whether this is a software implementation running on the CPU (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }

    /// Rank in the order `GpuContext::new` tries adapters (lower first).
    fn preference(&self) -> u8 {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        }
    }
}

/// Indices of `adapters` in the order `GpuContext::new` tries them: by device type, then as enumerated.
pub fn preference_order(adapters: &[AdapterSummary]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..adapters.len()).collect();
    order.sort_by_key(|&i| adapters[i].preference());
    order
}

/// A wgpu instance over every native backend compiled in (Vulkan everywhere, Metal on Apple, DX12 on Windows), or
/// `None` where this build has no backend for the platform (wgpu would panic).
fn instance() -> Option<wgpu::Instance> {
    if wgpu::Instance::enabled_backend_features().is_empty() {
        return None;
    }
    Some(wgpu::Instance::new(
        wgpu::InstanceDescriptor::new_without_display_handle_from_env(),
    ))
}

fn enumerate() -> Vec<wgpu::Adapter> {
    match instance() {
        Some(instance) => pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())),
        None => Vec::new(),
    }
}

/// Whether this machine may have a hardware GPU, answered without loading any graphics driver: on Linux, a GPU
/// driver exposes a device node (`/dev/dri/renderD*` for the kernel's DRM drivers — AMD, Intel, Nouveau, virtio —
/// and `/dev/nvidia*` for NVIDIA's), so a machine with neither can only have software adapters. Elsewhere (Metal,
/// DX12) it answers `true` and the caller enumerates. Loading the Vulkan loader and Mesa's software driver just to
/// learn there is no hardware costs about 55 MiB of resident memory; this check costs a directory listing.
pub fn may_have_hardware_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let has_entry = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    has_entry("/dev/dri", "renderD") || has_entry("/dev", "nvidia")
}

/// Every adapter wgpu finds on every backend, hardware and software, in enumeration order. Empty when there is no
/// driver at all.
pub fn list_adapters() -> Vec<AdapterSummary> {
    enumerate()
        .iter()
        .map(|adapter| AdapterSummary::from_info(adapter.get_info()))
        .collect()
}

/// An open device on the preferred adapter: what every kernel is built from.
#[derive(Debug)]
pub struct GpuContext {
    /// The logical device (opened with the adapter's own limits, so large buffers are allowed).
    pub device: wgpu::Device,
    /// Its command queue.
    pub queue: wgpu::Queue,
    /// The adapter the device was opened on.
    pub info: AdapterSummary,
}

impl GpuContext {
    /// Opens a device on the best adapter: a hardware GPU if there is one (discrete > integrated > virtual), else a
    /// software one (lavapipe). If opening the preferred adapter fails, the next one is tried. Blocks until done.
    pub fn new() -> Result<GpuContext, GpuError> {
        let adapters = enumerate();
        let summaries: Vec<AdapterSummary> = adapters
            .iter()
            .map(|adapter| AdapterSummary::from_info(adapter.get_info()))
            .collect();
        let mut last_error = GpuError::NoAdapter;
        for i in preference_order(&summaries) {
            let descriptor = wgpu::DeviceDescriptor {
                label: Some("zkinfer-gpu"),
                required_limits: adapters[i].limits(),
                ..Default::default()
            };
            match pollster::block_on(adapters[i].request_device(&descriptor)) {
                Ok((device, queue)) => {
                    // Kernels capture their errors in error scopes; anything else is reported, never a panic
                    // (wgpu's default handler panics).
                    device.on_uncaptured_error(Arc::new(|error| {
                        tracing::error!("uncaptured wgpu error: {error}");
                    }));
                    let info = summaries[i].clone();
                    return Ok(GpuContext { device, queue, info });
                }
                Err(e) => {
                    last_error = GpuError::Device {
                        adapter: summaries[i].name.clone(),
                        reason: e.to_string(),
                    }
                }
            }
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, device_type: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            vendor_id: 0,
            device_id: 0,
            device_type,
            backend: wgpu::Backend::Vulkan,
            driver: String::new(),
            driver_info: String::new(),
        }
    }

    #[test]
    fn hardware_before_software_and_discrete_first() {
        use wgpu::DeviceType::*;
        let adapters = [
            summary("llvmpipe", Cpu),
            summary("igpu", IntegratedGpu),
            summary("vgpu", VirtualGpu),
            summary("dgpu", DiscreteGpu),
            summary("unknown", Other),
            summary("dgpu2", DiscreteGpu),
        ];
        let names: Vec<&str> = preference_order(&adapters)
            .into_iter()
            .map(|i| adapters[i].name.as_str())
            .collect();
        assert_eq!(names, ["dgpu", "dgpu2", "igpu", "vgpu", "unknown", "llvmpipe"]);
        assert!(adapters[0].is_software() && !adapters[3].is_software());
        assert_eq!(adapters[0].device_type_name(), "CPU (software)");
        assert_eq!(adapters[0].backend_name(), "vulkan");
    }
}
