//! Exact integer inference of a quantized linear layer (dense or lowered convolution) on the GPU:
//! `acc[o] = Σ_t w[k][t] · x[tap[g][t]] + bias[k]` for every output `(o, g, k)`, equal to the i64 CPU computation
//! bit for bit.
//!
//! WGSL has only 32-bit integers, so the sum is taken in three levels (`shaders/int_linear.wgsl`). The host checks
//! every weight and activation against 16 bits and finds `W = max|w|` (at upload) and `X = max|x|` (per run):
//! - every product has `|w·x| ≤ W·X ≤ 2^30`, so it fits an i32;
//! - the taps of a kernel are cut into segments of [`INT_LINEAR_SEGMENT_TAPS`], one invocation each, and a segment
//!   into chunks of `C = ⌊(2^31 − 1) / (W·X)⌋` products (at least 2 unless both maxima are 2^15), so a chunk's i32
//!   partial sum has `|s| ≤ C·W·X ≤ 2^31 − 1` and never wraps;
//! - each partial sum is sign-extended into the segment's 64-bit two's-complement sum, held as two u32 words and
//!   added with an explicit carry; a second dispatch adds the bias and the segment sums the same way. The host
//!   bounds `|bias| ≤ 2^62` and `T ≤` [`INT_LINEAR_MAX_TAPS`] `= 2^25`, so every partial 64-bit sum stays below
//!   `2^62 + 2^25·2^30 < 2^63`: the sums modulo 2^64 are the exact i64 results.
//!
//! int8 layers (`W·X ≤ 2^14`) get `C ≥ 131071`, longer than a segment: one i32 accumulator per segment, and for
//! kernels of at most 1024 taps one segment per output, the fast path with no separate code.
//!
//! Segments also keep every invocation's loops short: Mesa's software driver (lavapipe) silently ends any
//! invocation after 65535 loop iterations in all, and each invocation here loops at most `2 · 1024` times (a
//! segment) or `2^25 / 1024 = 32768` times (the reduction).
//!
//! A layer is uploaded once ([`IntLinearKernels::upload`]) and then run on one input or on a batch of inputs in as
//! few dispatches as the device's binding limits allow ([`IntLinearKernels::run_batch`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::transfer::{
    bind_in_order, build_pipelines, grid, max_binding, run_and_read_bytes, storage_entry, uniform_entry,
};
use crate::{GpuContext, GpuError};

/// Largest |weight| and |activation| the exactness argument covers (16-bit signed values: −2^15 ..= 2^15 − 1).
pub const INT_LINEAR_MAX_VALUE_BITS: u32 = 16;
/// Largest |bias| accepted (2^62), so that `|bias| + T·2^30 < 2^63` for every `T ≤ INT_LINEAR_MAX_TAPS`.
pub const INT_LINEAR_MAX_ABS_BIAS: i64 = 1 << 62;
/// Taps summed by one invocation before the segment sums are added up.
pub const INT_LINEAR_SEGMENT_TAPS: usize = 1024;
/// Largest `taps_per_group` accepted (2^25 = 32768 segments, the most one reduction loop may add on lavapipe).
pub const INT_LINEAR_MAX_TAPS: usize = 1 << 25;

/// Words (4 bytes) per buffer a dispatch of a batch aims at: 256 MiB.
const DISPATCH_BUDGET_WORDS: u64 = 1 << 26;

const VALUE_MIN: i64 = -(1 << (INT_LINEAR_MAX_VALUE_BITS - 1));
const VALUE_MAX: i64 = (1 << (INT_LINEAR_MAX_VALUE_BITS - 1)) - 1;

/// One linear layer in gathered form: each group reads `taps_per_group` values of the input (or zero padding), and
/// each of its outputs is the dot product of those taps with one kernel's weights, plus that kernel's bias.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatheredLinear {
    /// Taps per group, and weights per kernel (`T`).
    pub taps_per_group: usize,
    /// `groups × T` indices into the input vector, group after group; `-1` is zero padding.
    pub taps: Vec<i32>,
    /// `kernels × T` weights, kernel after kernel, in the taps' order; 16-bit signed values.
    pub weights: Vec<i32>,
    /// One bias per kernel, `|bias| ≤ 2^62`.
    pub bias: Vec<i64>,
    /// `(output index, group, kernel)` of every computed output; each output index at most once. With no taps
    /// (`taps_per_group = 0`) the group is not read and any index is accepted.
    pub outputs: Vec<(u32, u32, u32)>,
    /// Length of the input vector the taps index.
    pub input_len: usize,
    /// Length of the result; outputs not listed in `outputs` are 0.
    pub output_len: usize,
}

/// A validated layer whose taps, weights, outputs and biases live in GPU buffers, ready to run on many inputs by
/// the [`IntLinearKernels`] that uploaded it.
#[derive(Debug)]
pub struct ResidentLinear {
    /// The `id` of the kernels that uploaded it (wgpu cannot tell devices of different instances apart).
    owner: u64,
    taps: wgpu::Buffer,
    weights: wgpu::Buffer,
    entries: wgpu::Buffer,
    bias: wgpu::Buffer,
    taps_per_group: u32,
    entry_count: u32,
    input_len: usize,
    output_len: usize,
    max_abs_weight: u64,
}

impl ResidentLinear {
    /// Length of the input vector each run takes.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Length of the result of each run.
    pub fn output_len(&self) -> usize {
        self.output_len
    }
}

/// The uniform block of `int_linear.wgsl` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    entries: u32,
    samples: u32,
    taps_per_group: u32,
    input_len: u32,
    output_len: u32,
    chunk: u32,
    segment_len: u32,
    segments: u32,
}

/// The compiled integer linear-layer pipeline, bound to one device.
#[derive(Debug)]
pub struct IntLinearKernels {
    /// Unique in the process: which resident layers are this one's.
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    segment: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    max_workgroups_x: u32,
    /// The most 32-bit words one buffer may hold: one storage binding of the device, and 32-bit indices.
    max_words: u64,
    max_samples_per_dispatch: usize,
}

/// Products per i32 partial sum for segments of `segment_len` taps, `|w| ≤ max_abs_weight` and
/// `|x| ≤ max_abs_input`: the largest `C` with `C·W·X ≤ 2^31 − 1`, clamped to `[1, segment_len]`. Both maxima must be
/// at most 2^15, so that `C ≥ 1` is sound.
pub(crate) fn chunk_len(segment_len: u32, max_abs_weight: u64, max_abs_input: u64) -> u32 {
    let product = max_abs_weight * max_abs_input;
    let chunk = (i32::MAX as u64).checked_div(product).unwrap_or(u64::MAX);
    chunk.min(u64::from(segment_len)).max(1) as u32
}

/// Segments of [`INT_LINEAR_SEGMENT_TAPS`] for `T` taps: `⌈T / 1024⌉`.
fn segments(taps_per_group: u32) -> u32 {
    taps_per_group.div_ceil(INT_LINEAR_SEGMENT_TAPS as u32)
}

/// Checks `value` against `min..=max`.
fn check_range(
    what: &'static str,
    index: usize,
    value: i64,
    (min, max): (i64, i64),
    hint: &'static str,
) -> Result<(), GpuError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(GpuError::OutOfRange {
            what,
            index,
            value,
            min,
            max,
            hint,
        })
    }
}

const WEIGHT_HINT: &str = "the exact GPU sum takes weights of at most 16 bits: quantize to narrower weights, or \
                           run the layer on the CPU";
const INPUT_HINT: &str = "the exact GPU sum takes activations of at most 16 bits: requantize the input, or run the \
                          layer on the CPU";

/// Every check the kernel's memory safety and exactness rely on; returns `max|w|`.
pub(crate) fn validate(layer: &GatheredLinear) -> Result<u64, GpuError> {
    let t = layer.taps_per_group;
    if t > INT_LINEAR_MAX_TAPS {
        return Err(GpuError::InvalidLayer(format!(
            "taps_per_group = {t} exceeds {INT_LINEAR_MAX_TAPS}, the most the GPU sum takes: run this layer on the CPU"
        )));
    }
    let groups = match t {
        0 if !layer.taps.is_empty() => {
            return Err(GpuError::InvalidLayer(format!(
                "taps_per_group is 0 but {} taps are given: set taps_per_group to the taps of one group",
                layer.taps.len()
            )))
        }
        0 => None,
        _ if !layer.taps.len().is_multiple_of(t) => {
            return Err(GpuError::InvalidLayer(format!(
                "{} taps are not a whole number of groups of {t}: give every group taps_per_group taps, padding \
                 with -1",
                layer.taps.len()
            )))
        }
        _ => Some(layer.taps.len() / t),
    };
    let kernels = layer.bias.len();
    if Some(layer.weights.len()) != kernels.checked_mul(t) {
        return Err(GpuError::InvalidLayer(format!(
            "{} weights for {kernels} kernels (one bias each) of {t} taps: give taps_per_group weights per kernel",
            layer.weights.len()
        )));
    }
    let max_tap = i64::try_from(layer.input_len).unwrap_or(i64::MAX) - 1;
    for (i, &tap) in layer.taps.iter().enumerate() {
        check_range(
            "taps",
            i,
            i64::from(tap),
            (-1, max_tap),
            "a tap indexes the input vector (0..input_len), or is -1 for zero padding",
        )?;
    }
    for (i, &w) in layer.weights.iter().enumerate() {
        check_range("weights", i, i64::from(w), (VALUE_MIN, VALUE_MAX), WEIGHT_HINT)?;
    }
    for (i, &b) in layer.bias.iter().enumerate() {
        check_range(
            "bias",
            i,
            b,
            (-INT_LINEAR_MAX_ABS_BIAS, INT_LINEAR_MAX_ABS_BIAS),
            "a bias beyond 2^62 could overflow the 64-bit accumulator: rescale the layer",
        )?;
    }
    let mut seen = vec![false; layer.output_len];
    for (i, &(o, g, k)) in layer.outputs.iter().enumerate() {
        let problem = if o as usize >= layer.output_len {
            Some(format!(
                "output index {o} is not below output_len = {}",
                layer.output_len
            ))
        } else if seen[o as usize] {
            Some(format!("output index {o} is listed twice: compute each output once"))
        } else if groups.is_some_and(|groups| g as usize >= groups) {
            Some(format!(
                "group {g} does not exist ({} groups of taps)",
                groups.unwrap_or(0)
            ))
        } else if k as usize >= kernels {
            Some(format!("kernel {k} does not exist ({kernels} biases)"))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(GpuError::InvalidLayer(format!(
                "outputs[{i}] = ({o}, {g}, {k}): {problem}"
            )));
        }
        seen[o as usize] = true;
    }
    Ok(layer
        .weights
        .iter()
        .map(|w| w.unsigned_abs())
        .max()
        .map_or(0, u64::from))
}

/// The raw bytes of `words`, at least one word (a binding cannot be empty).
fn padded_bytes<T: Pod>(words: &[T], zero: T) -> Cow<'_, [u8]> {
    if words.is_empty() {
        Cow::Owned(bytemuck::bytes_of(&zero).to_vec())
    } else {
        Cow::Borrowed(bytemuck::cast_slice(words))
    }
}

impl IntLinearKernels {
    /// Compiles the kernel on the context's device, with batches as large as the device's bindings allow.
    pub fn new(ctx: &GpuContext) -> Result<IntLinearKernels, GpuError> {
        Self::with_max_samples_per_dispatch(ctx, usize::MAX)
    }

    /// Like [`IntLinearKernels::new`], but a batch is split into dispatches of at most `max_samples` samples
    /// (at least 1). For tests of the splitting, and to bound the memory one dispatch uses.
    pub fn with_max_samples_per_dispatch(ctx: &GpuContext, max_samples: usize) -> Result<IntLinearKernels, GpuError> {
        let device = &ctx.device;
        let limits = device.limits();
        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, true),
            storage_entry(3, true),
            storage_entry(4, true),
            storage_entry(5, false),
            storage_entry(6, false),
            uniform_entry(7),
        ];
        let source = include_str!("shaders/int_linear.wgsl");
        let (layout, [segment, reduce]) = build_pipelines(
            device,
            "integer linear",
            &[source],
            &entries,
            ["segment_kernel", "reduce_kernel"],
        )?;
        let binding = max_binding(&limits);
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(IntLinearKernels {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device: device.clone(),
            queue: ctx.queue.clone(),
            layout,
            segment,
            reduce,
            max_workgroups_x: limits.max_compute_workgroups_per_dimension.max(1),
            max_words: (binding / 4).min(u64::from(u32::MAX)),
            max_samples_per_dispatch: max_samples.max(1),
        })
    }

    /// Fails with `TooLarge` when `words` 32-bit words do not fit one binding.
    fn check_words(&self, what: &'static str, words: u64) -> Result<(), GpuError> {
        if words <= self.max_words {
            Ok(())
        } else {
            Err(GpuError::TooLarge {
                what,
                bytes: words.saturating_mul(4),
                max: self.max_words * 4,
            })
        }
    }

    /// Validates `layer` and uploads it: taps, weights, outputs and biases stay on the GPU for any number of runs.
    pub fn upload(&self, layer: &GatheredLinear) -> Result<ResidentLinear, GpuError> {
        let max_abs_weight = validate(layer)?;
        self.check_words("the taps", layer.taps.len() as u64)?;
        self.check_words("the weights", layer.weights.len() as u64)?;
        self.check_words("the output list", 3 * layer.outputs.len() as u64)?;
        self.check_words("the biases", 2 * layer.bias.len() as u64)?;
        // One sample must fit a dispatch: its input, its segment sums and its result.
        self.check_words("one input", layer.input_len as u64)?;
        let segments = u64::from(segments(layer.taps_per_group as u32));
        self.check_words("one input's segment sums", 2 * segments * layer.outputs.len() as u64)?;
        self.check_words("one result", 2 * layer.output_len as u64)?;
        let entries: Vec<u32> = layer.outputs.iter().flat_map(|&(o, g, k)| [o, g, k]).collect();
        let bias: Vec<u32> = layer
            .bias
            .iter()
            .flat_map(|&b| [b as u64 as u32, ((b as u64) >> 32) as u32])
            .collect();
        let device = &self.device;
        let buffer = |label: &str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let resident = ResidentLinear {
            owner: self.id,
            taps: buffer("int linear taps", &padded_bytes(&layer.taps, -1)),
            weights: buffer("int linear weights", &padded_bytes(&layer.weights, 0)),
            entries: buffer("int linear outputs", &padded_bytes(&entries, 0)),
            bias: buffer("int linear bias", &padded_bytes(&bias, 0)),
            taps_per_group: layer.taps_per_group as u32,
            entry_count: layer.outputs.len() as u32,
            input_len: layer.input_len,
            output_len: layer.output_len,
            max_abs_weight,
        };
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Gpu(format!("uploading the layer: {error}")));
        }
        Ok(resident)
    }

    /// `acc[o] = Σ_t weights[k][t]·input[taps[g][t]] + bias[k]` for every `(o, g, k)` of `layer`; outputs not listed
    /// are 0. Uploads the layer for this one run; see [`IntLinearKernels::upload`] to run it on many inputs.
    pub fn run(&self, layer: &GatheredLinear, input: &[i32]) -> Result<Vec<i64>, GpuError> {
        let resident = self.upload(layer)?;
        self.run_resident(&resident, input)
    }

    /// [`IntLinearKernels::run`] on a layer uploaded before by these kernels.
    pub fn run_resident(&self, layer: &ResidentLinear, input: &[i32]) -> Result<Vec<i64>, GpuError> {
        let mut results = self.run_batch(layer, &[input])?;
        results
            .pop()
            .ok_or_else(|| GpuError::Gpu("a batch of one gave no result".into()))
    }

    /// The results of `layer` for every input of `inputs` (each of length `layer.input_len()`, 16-bit values), in
    /// order: all samples in one dispatch, or as few as the device's binding limits allow. Every input is checked
    /// before any GPU work.
    pub fn run_batch<I: AsRef<[i32]>>(&self, layer: &ResidentLinear, inputs: &[I]) -> Result<Vec<Vec<i64>>, GpuError> {
        if layer.owner != self.id {
            return Err(GpuError::InvalidLayer(
                "the layer was uploaded by other kernels (maybe on another device): upload it with the kernels that \
                 run it"
                    .into(),
            ));
        }
        let mut max_abs_input = 0u64;
        for (sample, input) in inputs.iter().enumerate() {
            let input = input.as_ref();
            if input.len() != layer.input_len {
                return Err(GpuError::InputLength {
                    sample,
                    expected: layer.input_len,
                    found: input.len(),
                });
            }
            for (i, &x) in input.iter().enumerate() {
                let index = sample * layer.input_len + i;
                check_range("input", index, i64::from(x), (VALUE_MIN, VALUE_MAX), INPUT_HINT)?;
                max_abs_input = max_abs_input.max(u64::from(x.unsigned_abs()));
            }
        }
        if layer.entry_count == 0 || inputs.is_empty() {
            return Ok(vec![vec![0; layer.output_len]; inputs.len()]);
        }
        let chunk = chunk_len(INT_LINEAR_SEGMENT_TAPS as u32, layer.max_abs_weight, max_abs_input);
        // Samples per dispatch: the inputs, segment sums and results must fit one binding each (which also keeps
        // every invocation index below 2^32), and stay within DISPATCH_BUDGET_WORDS unless one sample alone needs
        // more (upload checked that it fits a binding).
        let segments = u64::from(segments(layer.taps_per_group));
        let per_sample = [
            layer.input_len as u64,
            2 * segments * u64::from(layer.entry_count),
            2 * layer.output_len as u64,
        ];
        let fit = per_sample
            .iter()
            .map(|&words| {
                self.max_words
                    .min(DISPATCH_BUDGET_WORDS)
                    .checked_div(words)
                    .unwrap_or(u64::MAX)
            })
            .min()
            .unwrap_or(1)
            .max(1);
        let samples_per_dispatch = fit.min(self.max_samples_per_dispatch as u64) as usize;
        let mut results = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(samples_per_dispatch) {
            results.extend(self.dispatch(layer, batch, chunk)?);
        }
        Ok(results)
    }

    /// One dispatch over `inputs` (already checked, and few enough to fit the bindings).
    fn dispatch<I: AsRef<[i32]>>(
        &self,
        layer: &ResidentLinear,
        inputs: &[I],
        chunk: u32,
    ) -> Result<Vec<Vec<i64>>, GpuError> {
        let samples = inputs.len();
        let flat: Vec<i32> = inputs.iter().flat_map(|x| x.as_ref().iter().copied()).collect();
        let params = Params {
            entries: layer.entry_count,
            samples: samples as u32,
            taps_per_group: layer.taps_per_group,
            input_len: layer.input_len as u32,
            output_len: layer.output_len as u32,
            chunk,
            segment_len: INT_LINEAR_SEGMENT_TAPS as u32,
            segments: segments(layer.taps_per_group),
        };
        let invocations = u64::from(layer.entry_count) * samples as u64;
        let segment_invocations = invocations * u64::from(params.segments);
        let result_bytes = (8 * samples * layer.output_len).max(8) as u64;
        let device = &self.device;
        let bytes = run_and_read_bytes(device, &self.queue, |encoder| {
            let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("int linear input"),
                contents: &padded_bytes(&flat, 0),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let sums = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("int linear segment sums"),
                size: (8 * segment_invocations).max(8),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            // wgpu zero-fills new buffers: outputs without an entry read back as 0.
            let acc = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("int linear accumulators"),
                size: result_bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("int linear params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let resources = [
                &layer.taps,
                &layer.weights,
                &layer.entries,
                &layer.bias,
                &input,
                &sums,
                &acc,
                &uniform,
            ];
            let bind_group = bind_in_order(device, &self.layout, "zkinfer-gpu integer linear bindings", &resources);
            // The reduction sees the segment sums: WebGPU orders dispatches within a pass.
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            compute.set_bind_group(0, &bind_group, &[]);
            for (pipeline, n) in [(&self.segment, segment_invocations), (&self.reduce, invocations)] {
                if n > 0 {
                    let (x, y) = grid(n, self.max_workgroups_x);
                    compute.set_pipeline(pipeline);
                    compute.dispatch_workgroups(x, y, 1);
                }
            }
            drop(compute);
            Ok((acc, result_bytes))
        })?;
        let values: Vec<i64> = bytes
            .chunks_exact(8)
            .map(|word| {
                let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                let hi = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
                ((u64::from(hi) << 32) | u64::from(lo)) as i64
            })
            .collect();
        Ok((0..samples)
            .map(|s| values[s * layer.output_len..(s + 1) * layer.output_len].to_vec())
            .collect())
    }
}

#[cfg(test)]
#[path = "int_linear/tests.rs"]
mod tests;
