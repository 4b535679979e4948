//! The GPU integer linear layer against a plain i64 CPU reference, bit for bit: dense layers of sizes that are not
//! multiples of the workgroup, convolution-like layers with padding taps, int8 and 16-bit operands at their
//! extremes (sums beyond ±2^31 and ±2^32, chunk boundaries), all-equal inputs, zero taps, biases at ±2^62, batches
//! through a resident layer (in one dispatch and split), and the refusals of layers and inputs it cannot take.
//!
//! Without any adapter these tests print a loud "NO GPU ADAPTER" message and pass; with `ZKINFER_REQUIRE_GPU=1`
//! (set by CI) they fail instead.

mod common;

use std::sync::OnceLock;

use common::gpu_or_skip;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zkinfer_gpu::{GatheredLinear, GpuError, IntLinearKernels, INT_LINEAR_MAX_TAPS};

/// The kernels on the shared context (compiled once for all tests).
fn kernels() -> Option<&'static IntLinearKernels> {
    static KERNELS: OnceLock<IntLinearKernels> = OnceLock::new();
    let ctx = gpu_or_skip()?;
    Some(KERNELS.get_or_init(|| IntLinearKernels::new(ctx).expect("integer linear kernel builds")))
}

/// What the prover's native inference computes: `Σ w·x + bias` in i64 for each listed output, 0 elsewhere.
fn reference(layer: &GatheredLinear, input: &[i32]) -> Vec<i64> {
    let t = layer.taps_per_group;
    let mut acc = vec![0i64; layer.output_len];
    for &(o, g, k) in &layer.outputs {
        let (g, k) = (g as usize, k as usize);
        let dot: i64 = (0..t)
            .map(|i| match layer.taps[g * t + i] {
                -1 => 0,
                tap => i64::from(layer.weights[k * t + i]) * i64::from(input[tap as usize]),
            })
            .sum();
        acc[o as usize] = dot + layer.bias[k];
    }
    acc
}

/// Runs `layer` on `input` on the GPU and asserts it equals the reference; returns the reference.
fn check(kernels: &IntLinearKernels, layer: &GatheredLinear, input: &[i32], what: &str) -> Vec<i64> {
    let got = kernels.run(layer, input).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = reference(layer, input);
    assert_eq!(got.len(), want.len(), "{what}: result length");
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        panic!("{what}: output {i} is {}, want {}", got[i], want[i]);
    }
    want
}

fn values(rng: &mut ChaCha20Rng, n: usize, bits: u32) -> Vec<i32> {
    let half = 1i32 << (bits - 1);
    (0..n).map(|_| rng.gen_range(-half..half)).collect()
}

/// A dense layer `rows × cols`: one group reading the whole input, kernel `o` for output `o`.
fn dense(weights: Vec<i32>, rows: usize, cols: usize, bias: Vec<i64>) -> GatheredLinear {
    assert_eq!(weights.len(), rows * cols);
    GatheredLinear {
        taps_per_group: cols,
        taps: (0..cols as i32).collect(),
        weights,
        bias,
        outputs: (0..rows as u32).map(|o| (o, 0, o)).collect(),
        input_len: cols,
        output_len: rows,
    }
}

/// A `k × k` convolution over a `channels × size × size` input with `out_channels` kernels, lowered like the
/// prover does: one group per output position (taps in channel, row, column order, -1 outside the image), and
/// output `oc · positions + position` of kernel `oc`.
fn conv(channels: usize, size: usize, out_channels: usize, k: usize, stride: usize, pad: usize) -> GatheredLinear {
    let out = (size + 2 * pad - k) / stride + 1;
    let mut taps = Vec::new();
    for oy in 0..out {
        for ox in 0..out {
            for c in 0..channels {
                for ky in 0..k {
                    for kx in 0..k {
                        let (y, x) = (
                            (oy * stride + ky) as isize - pad as isize,
                            (ox * stride + kx) as isize - pad as isize,
                        );
                        let inside = (0..size as isize).contains(&y) && (0..size as isize).contains(&x);
                        taps.push(if inside {
                            ((c * size + y as usize) * size + x as usize) as i32
                        } else {
                            -1
                        });
                    }
                }
            }
        }
    }
    let positions = out * out;
    let t = channels * k * k;
    GatheredLinear {
        taps_per_group: t,
        taps,
        weights: vec![0; out_channels * t],
        bias: vec![0; out_channels],
        outputs: (0..out_channels)
            .flat_map(|oc| (0..positions).map(move |p| ((oc * positions + p) as u32, p as u32, oc as u32)))
            .collect(),
        input_len: channels * size * size,
        output_len: out_channels * positions,
    }
}

#[test]
fn dense_layers_of_sizes_off_the_workgroup() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (rows, cols) in [(1, 1), (3, 7), (100, 33), (10, 784), (65, 1), (1, 130)] {
        let weights = values(&mut rng, rows * cols, 8);
        let bias = (0..rows).map(|_| rng.gen_range(-(1i64 << 20)..1 << 20)).collect();
        let layer = dense(weights, rows, cols, bias);
        let input = values(&mut rng, cols, 8);
        check(kernels, &layer, &input, &format!("dense {rows}x{cols}"));
    }
}

#[test]
fn convolutions_with_padding_taps() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for (channels, size, out_channels, k, stride, pad) in [(3, 8, 5, 3, 1, 1), (2, 7, 3, 3, 2, 1), (1, 5, 2, 5, 1, 2)] {
        let mut layer = conv(channels, size, out_channels, k, stride, pad);
        assert!(layer.taps.contains(&-1), "the layer has padding taps");
        layer.weights = values(&mut rng, layer.weights.len(), 8);
        layer.bias = (0..out_channels).map(|_| rng.gen_range(-5000..5000)).collect();
        let input = values(&mut rng, layer.input_len, 8);
        check(
            kernels,
            &layer,
            &input,
            &format!("conv {channels}x{size}x{size} -> {out_channels}, k{k} s{stride} p{pad}"),
        );
        // Padding must read as 0 even where the input is at its most negative.
        let input = vec![-128; layer.input_len];
        check(kernels, &layer, &input, "conv on -128 everywhere");
    }
}

/// Asserts the results reach beyond ±2^31 (and beyond ±2^32, so the high word really carries and borrows).
fn assert_wide(acc: &[i64], what: &str) {
    assert!(acc.iter().any(|&a| a > 1 << 32), "{what}: no sum above 2^32");
    assert!(acc.iter().any(|&a| a < -(1 << 32)), "{what}: no sum below -2^32");
}

/// Kernels of every sign pattern over `t` taps with weights from `{lo, hi}`.
fn extreme_weights(rng: &mut ChaCha20Rng, kernels: usize, t: usize, lo: i32, hi: i32) -> Vec<i32> {
    (0..kernels)
        .flat_map(|k| {
            let pattern: Vec<i32> = (0..t)
                .map(|i| match k % 4 {
                    0 => hi,
                    1 => lo,
                    2 => [lo, hi][i % 2],
                    _ => [lo, hi][rng.gen_range(0..2)],
                })
                .collect();
            pattern
        })
        .collect()
}

#[test]
fn sixteen_bit_extremes_beyond_two_to_the_thirty_two() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (rows, cols) = (9, 4099);
    let weights = extreme_weights(&mut rng, rows, cols, -32768, 32767);
    let layer = dense(weights, rows, cols, (0..rows as i64).map(|k| k - 4).collect());
    for (i, input) in [
        vec![32767; cols],
        vec![-32768; cols],
        (0..cols).map(|i| [-32768, 32767][i % 3 % 2]).collect(),
    ]
    .into_iter()
    .enumerate()
    {
        let acc = check(kernels, &layer, &input, &format!("16-bit extremes, input {i}"));
        assert_wide(&acc, "16-bit extremes");
    }
    // |w| ≤ 32767 and |x| ≤ 32768: chunks of two products, each pair just below 2^31.
    let weights = extreme_weights(&mut rng, rows, cols, -32767, 32767);
    let layer = dense(weights, rows, cols, vec![0; rows]);
    let acc = check(kernels, &layer, &vec![-32768; cols], "two-product chunks");
    assert_wide(&acc, "two-product chunks");
    // Segment boundaries at chunks of one product (the most loop iterations per invocation).
    for cols in [1023, 1024, 1025, 70_001] {
        let weights = extreme_weights(&mut rng, 4, cols, -32768, 32767);
        let layer = dense(weights, 4, cols, vec![0; 4]);
        let acc = check(
            kernels,
            &layer,
            &vec![-32768; cols],
            &format!("16-bit segments of {cols} taps"),
        );
        assert!(acc.iter().any(|&a| a > i32::MAX as i64) && acc.iter().any(|&a| a < i32::MIN as i64));
    }
    // Random 16-bit operands.
    let layer = dense(
        values(&mut rng, 7 * 3000, 16),
        7,
        3000,
        vec![1 << 62, -(1 << 62), 0, 1, -1, 99, -99],
    );
    check(
        kernels,
        &layer,
        &values(&mut rng, 3000, 16),
        "random 16-bit, biases at ±2^62",
    );
}

#[test]
fn int8_extremes_and_mixed_widths() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    // int8: a 10×784 layer fits one i32 chunk; 140 000 taps need two (131 071 products each) and pass 2^31.
    for (rows, cols, wide) in [(10, 784, false), (4, 140_000, true)] {
        let weights = extreme_weights(&mut rng, rows, cols, -128, 127);
        let layer = dense(weights, rows, cols, vec![-3; rows]);
        for input in [vec![-128; cols], vec![127; cols]] {
            let acc = check(kernels, &layer, &input, &format!("int8 extremes {rows}x{cols}"));
            if wide {
                assert!(acc.iter().any(|&a| a > i32::MAX as i64), "int8: no sum above 2^31");
                assert!(acc.iter().any(|&a| a < i32::MIN as i64), "int8: no sum below -2^31");
            }
        }
    }
    // 16-bit weights on int8 activations (and the other way round).
    let weights = extreme_weights(&mut rng, 8, 5000, -32768, 32767);
    let layer = dense(weights, 8, 5000, vec![0; 8]);
    let acc = check(kernels, &layer, &vec![-128; 5000], "16-bit weights, int8 input");
    assert_wide(&acc, "16-bit weights, int8 input");
    let weights = extreme_weights(&mut rng, 8, 5000, -128, 127);
    let layer = dense(weights, 8, 5000, vec![0; 8]);
    let acc = check(kernels, &layer, &vec![-32768; 5000], "int8 weights, 16-bit input");
    assert_wide(&acc, "int8 weights, 16-bit input");
}

#[test]
fn all_equal_values_zero_taps_and_unlisted_outputs() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let layer = dense(values(&mut rng, 5 * 300, 8), 5, 300, vec![0; 5]);
    check(kernels, &layer, &[77; 300], "all-equal input");
    let layer = dense(vec![-9; 5 * 300], 5, 300, vec![1, 2, 3, 4, 5]);
    check(kernels, &layer, &values(&mut rng, 300, 8), "all-equal weights");
    check(kernels, &layer, &[0; 300], "zero input: the biases");

    // No taps: every output is its kernel's bias.
    let layer = GatheredLinear {
        bias: vec![-(1 << 62), 1 << 62, 12345],
        outputs: vec![(2, 0, 0), (0, 9, 1), (3, 4, 2)],
        output_len: 5,
        input_len: 3,
        ..GatheredLinear::default()
    };
    let acc = check(kernels, &layer, &[1, 2, 3], "zero taps");
    assert_eq!(acc, [1 << 62, 0, -(1 << 62), 12345, 0]);

    // Outputs listed out of order, some left out, groups shared by several kernels and kernels by several groups.
    let layer = GatheredLinear {
        taps_per_group: 2,
        taps: vec![0, 1, 2, -1, -1, 0],
        weights: vec![3, -4, 32767, -32768],
        bias: vec![10, -10],
        outputs: vec![(6, 2, 1), (0, 0, 0), (3, 1, 1), (4, 0, 1), (1, 2, 0)],
        input_len: 3,
        output_len: 8,
    };
    let acc = check(kernels, &layer, &[-32768, 32767, 5], "scattered outputs");
    assert_eq!((acc[2], acc[5], acc[7]), (0, 0, 0));

    // Nothing to compute at all.
    let empty = GatheredLinear {
        output_len: 4,
        ..GatheredLinear::default()
    };
    assert_eq!(kernels.run(&empty, &[]).unwrap(), [0; 4]);
}

#[test]
fn random_gathered_layers_of_random_widths() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    for round in 0..40 {
        let t = [0, 1, 5, 63, 64, 65, 1000, 1024, 1500, 2100][rng.gen_range(0..10)];
        let (groups, kernel_count, input_len) = (rng.gen_range(1..5), rng.gen_range(1..5), rng.gen_range(1..50));
        let output_len = rng.gen_range(1..3 * groups * kernel_count + 2);
        let (w_bits, x_bits) = ([2, 8, 16][rng.gen_range(0..3)], [2, 8, 16][rng.gen_range(0..3)]);
        let mut outputs = Vec::new();
        for o in 0..output_len {
            if rng.gen_bool(0.7) {
                outputs.push((o, rng.gen_range(0..groups), rng.gen_range(0..kernel_count)));
            }
        }
        outputs.reverse();
        let layer = GatheredLinear {
            taps_per_group: t,
            taps: (0..groups as usize * t).map(|_| rng.gen_range(-1..input_len)).collect(),
            weights: values(&mut rng, kernel_count as usize * t, w_bits),
            bias: (0..kernel_count)
                .map(|_| rng.gen_range(-(1i64 << 45)..1 << 45))
                .collect(),
            outputs,
            input_len: input_len as usize,
            output_len: output_len as usize,
        };
        let inputs: Vec<Vec<i32>> = (0..3).map(|_| values(&mut rng, layer.input_len, x_bits)).collect();
        let want: Vec<Vec<i64>> = inputs.iter().map(|x| reference(&layer, x)).collect();
        let resident = kernels.upload(&layer).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let got = kernels
            .run_batch(&resident, &inputs)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            got, want,
            "round {round}: T {t}, {groups} groups, {kernel_count} kernels, w{w_bits} x{x_bits}"
        );
    }
}

#[test]
fn the_longest_kernel_adds_every_segment() {
    let Some(kernels) = kernels() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    // 2^25 taps of one-product chunks: 32768 segments, the longest reduction loop.
    let t = INT_LINEAR_MAX_TAPS;
    let layer = GatheredLinear {
        taps_per_group: t,
        taps: (0..t).map(|i| (i % 3) as i32).collect(),
        weights: values(&mut rng, t, 16),
        bias: vec![-(1 << 62)],
        outputs: vec![(0, 0, 0)],
        input_len: 3,
        output_len: 1,
    };
    let acc = check(kernels, &layer, &[-32768, 32767, -1], "2^25 taps");
    assert!(acc[0] != -(1 << 62), "the taps add something");
}

#[test]
fn a_resident_layer_runs_a_batch_of_inputs() {
    let Some(ctx) = gpu_or_skip() else { return };
    let kernels = kernels().expect("context exists");
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut layer = conv(2, 6, 4, 3, 1, 1);
    layer.weights = values(&mut rng, layer.weights.len(), 8);
    layer.bias = (0..4).map(|_| rng.gen_range(-1000..1000)).collect();
    let inputs: Vec<Vec<i32>> = (0..300).map(|_| values(&mut rng, layer.input_len, 8)).collect();
    let want: Vec<Vec<i64>> = inputs.iter().map(|x| reference(&layer, x)).collect();

    let resident = kernels.upload(&layer).unwrap();
    assert_eq!(
        (resident.input_len(), resident.output_len()),
        (layer.input_len, layer.output_len)
    );
    assert_eq!(kernels.run_batch(&resident, &inputs).unwrap(), want, "one dispatch");
    for i in [0, 17, 299] {
        assert_eq!(
            kernels.run_resident(&resident, &inputs[i]).unwrap(),
            want[i],
            "sample {i} alone"
        );
    }
    assert!(kernels.run_batch(&resident, &[] as &[Vec<i32>]).unwrap().is_empty());

    // The same batch split into dispatches of 7 samples (the last one short).
    let split = IntLinearKernels::with_max_samples_per_dispatch(ctx, 7).unwrap();
    let split_resident = split.upload(&layer).unwrap();
    assert_eq!(
        split.run_batch(&split_resident, &inputs).unwrap(),
        want,
        "dispatches of 7"
    );

    // Sparse outputs (fewer entries than outputs, out of order) in a batch: each sample's results in its own place.
    let layer = GatheredLinear {
        taps_per_group: 2,
        taps: vec![0, 1, 2, -1, -1, 0],
        weights: vec![3, -4, 32767, -32768],
        bias: vec![10, -10],
        outputs: vec![(6, 2, 1), (0, 0, 0), (3, 1, 1)],
        input_len: 3,
        output_len: 8,
    };
    let resident = kernels.upload(&layer).unwrap();
    let inputs: Vec<Vec<i32>> = (0..9).map(|_| values(&mut rng, 3, 16)).collect();
    let want: Vec<Vec<i64>> = inputs.iter().map(|x| reference(&layer, x)).collect();
    assert_eq!(kernels.run_batch(&resident, &inputs).unwrap(), want, "sparse outputs");

    // A batch mixing int8 and 16-bit inputs uses the chunk length of its widest value.
    let layer = dense(values(&mut rng, 3 * 2000, 16), 3, 2000, vec![0; 3]);
    let resident = kernels.upload(&layer).unwrap();
    let mut inputs = vec![
        values(&mut rng, 2000, 8),
        vec![-32768; 2000],
        values(&mut rng, 2000, 16),
    ];
    inputs.extend((0..20).map(|_| values(&mut rng, 2000, 16)));
    let want: Vec<Vec<i64>> = inputs.iter().map(|x| reference(&layer, x)).collect();
    assert_eq!(
        kernels.run_batch(&resident, &inputs).unwrap(),
        want,
        "mixed-width batch"
    );
}

#[test]
fn layers_and_inputs_it_cannot_take_are_refused() {
    let Some(kernels) = kernels() else { return };
    let layer = dense(vec![1, 2, 3, 4, 5, 6], 2, 3, vec![0, 0]);

    let mut bad = layer.clone();
    bad.taps[2] = 3;
    match kernels.run(&bad, &[1, 2, 3]) {
        Err(
            e @ GpuError::OutOfRange {
                what: "taps",
                index: 2,
                value: 3,
                ..
            },
        ) => {
            assert!(e.to_string().contains("-1 for zero padding"), "{e}")
        }
        other => panic!("tap out of range: {other:?}"),
    }

    match kernels.run(&layer, &[1, 2]) {
        Err(GpuError::InputLength {
            sample: 0,
            expected: 3,
            found: 2,
        }) => {}
        other => panic!("short input: {other:?}"),
    }
    let resident = kernels.upload(&layer).unwrap();
    match kernels.run_batch(&resident, &[vec![1, 2, 3], vec![1, 2, 3], vec![1, 2, 3, 4]]) {
        Err(GpuError::InputLength {
            sample: 2,
            expected: 3,
            found: 4,
        }) => {}
        other => panic!("long input in a batch: {other:?}"),
    }

    let wide = dense(vec![1, 2, 3, 4, 5, 1 << 16], 2, 3, vec![0, 0]);
    match kernels.upload(&wide) {
        Err(
            e @ GpuError::OutOfRange {
                what: "weights",
                index: 5,
                value: 65536,
                ..
            },
        ) => {
            assert!(e.to_string().contains("at most 16 bits"), "{e}")
        }
        other => panic!("17-bit weight: {other:?}"),
    }
    match kernels.run_batch(&resident, &[vec![1, 2, 3], vec![4, -40_000, 6]]) {
        Err(GpuError::OutOfRange {
            what: "input",
            index: 4,
            value: -40_000,
            ..
        }) => {}
        other => panic!("17-bit activation: {other:?}"),
    }

    // A layer uploaded by other kernels, on another device (wgpu would panic on its buffers) or the same one.
    let other_device = IntLinearKernels::new(&zkinfer_gpu::GpuContext::new().unwrap()).unwrap();
    let same_device = IntLinearKernels::new(gpu_or_skip().unwrap()).unwrap();
    for other in [other_device, same_device] {
        match other.run_resident(&resident, &[1, 2, 3]) {
            Err(GpuError::InvalidLayer(message)) => assert!(message.contains("other kernels"), "{message}"),
            other => panic!("layer of other kernels: {other:?}"),
        }
    }

    let mut bad = layer.clone();
    bad.outputs[1] = (1, 1, 1);
    assert!(
        matches!(kernels.run(&bad, &[1, 2, 3]), Err(GpuError::InvalidLayer(_))),
        "group out of range"
    );
}

#[test]
fn kernels_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<IntLinearKernels>();
    assert_send_sync::<zkinfer_gpu::ResidentLinear>();
}
