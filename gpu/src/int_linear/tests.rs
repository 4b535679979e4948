//! Host-side checks of the integer linear layer: the chunk bound and the validation, without a GPU.

use super::*;

/// A valid 2-group, 2-kernel layer of 3 taps over 4 inputs.
fn layer() -> GatheredLinear {
    GatheredLinear {
        taps_per_group: 3,
        taps: vec![0, 1, -1, 3, 2, 1],
        weights: vec![1, -2, 3, 32767, -32768, 0],
        bias: vec![5, -(1 << 40)],
        outputs: vec![(0, 0, 0), (3, 1, 1), (1, 1, 0)],
        input_len: 4,
        output_len: 4,
    }
}

#[test]
fn chunk_never_lets_a_partial_sum_wrap() {
    assert_eq!(chunk_len(10, 127, 128), 10); // int8: one chunk
    assert_eq!(chunk_len(200_000, 128, 128), 131_071);
    assert_eq!(chunk_len(100, 32768, 32768), 1); // 2^30 · 2 would wrap
    assert_eq!(chunk_len(100, 32767, 32768), 2);
    assert_eq!(chunk_len(0, 5, 5), 1);
    assert_eq!(chunk_len(7, 0, 32768), 7);
    assert_eq!(chunk_len(7, 32768, 0), 7);
    for w in [1u64, 2, 127, 128, 255, 1000, 32767, 32768] {
        for x in [1u64, 128, 3000, 32767, 32768] {
            let c = u64::from(chunk_len(u32::MAX, w, x));
            assert!(c * w * x <= i32::MAX as u64, "w {w} x {x}: chunk {c} wraps");
            assert!(
                (c + 1) * w * x > i32::MAX as u64,
                "w {w} x {x}: chunk {c} is not the longest"
            );
        }
    }
}

#[test]
fn a_valid_layer_passes_with_its_largest_weight() {
    assert_eq!(validate(&layer()).unwrap(), 32768);
    let empty = GatheredLinear::default();
    assert_eq!(validate(&empty).unwrap(), 0);
    // No taps at all: any group index, the bias alone.
    let zero_taps = GatheredLinear {
        bias: vec![7],
        outputs: vec![(0, 5, 0)],
        output_len: 1,
        ..GatheredLinear::default()
    };
    assert_eq!(validate(&zero_taps).unwrap(), 0);
}

fn invalid(layer: GatheredLinear, needle: &str) {
    match validate(&layer) {
        Err(GpuError::InvalidLayer(message)) => assert!(message.contains(needle), "{message}"),
        other => panic!("expected InvalidLayer({needle}), got {other:?}"),
    }
}

fn out_of_range(layer: GatheredLinear, field: &str, at: usize, bad: i64) {
    match validate(&layer) {
        Err(GpuError::OutOfRange { what, index, value, .. }) => {
            assert_eq!((what, index, value), (field, at, bad))
        }
        other => panic!("expected {field}[{at}] = {bad} out of range, got {other:?}"),
    }
}

#[test]
fn shapes_that_do_not_add_up_are_refused() {
    invalid(
        GatheredLinear {
            taps_per_group: 4,
            ..layer()
        },
        "whole number of groups",
    );
    invalid(
        GatheredLinear {
            taps_per_group: 0,
            ..layer()
        },
        "taps_per_group is 0",
    );
    let mut l = layer();
    l.weights.pop();
    invalid(l, "5 weights for 2 kernels");
    let mut l = layer();
    l.outputs.push((4, 0, 0));
    invalid(l, "not below output_len");
    let mut l = layer();
    l.outputs.push((2, 2, 0));
    invalid(l, "group 2 does not exist");
    let mut l = layer();
    l.outputs.push((2, 0, 2));
    invalid(l, "kernel 2 does not exist");
    let mut l = layer();
    l.outputs.push((3, 0, 0));
    invalid(l, "listed twice");
}

#[test]
fn values_beyond_the_exactness_argument_are_refused() {
    let mut l = layer();
    l.taps[4] = 4;
    out_of_range(l, "taps", 4, 4);
    let mut l = layer();
    l.taps[0] = -2;
    out_of_range(l, "taps", 0, -2);
    let mut l = layer();
    l.weights[2] = 32768;
    out_of_range(l, "weights", 2, 32768);
    let mut l = layer();
    l.weights[5] = -32769;
    out_of_range(l, "weights", 5, -32769);
    let mut l = layer();
    l.bias[1] = -(1 << 62) - 1;
    out_of_range(l, "bias", 1, -(1 << 62) - 1);
    let mut l = layer();
    l.bias[0] = 1 << 62;
    assert!(validate(&l).is_ok());
    let message = validate(&GatheredLinear {
        weights: vec![1, 1, 1, 1, 1, 40000],
        ..layer()
    })
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("weights[5] = 40000 is outside -32768..=32767"),
        "{message}"
    );
}

#[test]
fn kernels_are_cut_into_segments_up_to_the_tap_limit() {
    assert_eq!([0, 1, 1024, 1025, 2048].map(segments), [0, 1, 1, 2, 2]);
    assert_eq!(segments(INT_LINEAR_MAX_TAPS as u32), 32768);
    let long = GatheredLinear {
        taps_per_group: INT_LINEAR_MAX_TAPS + 1,
        ..GatheredLinear::default()
    };
    invalid(long, "exceeds 33554432");
}
