//! libFuzzer target `onnx`: [`zkinfer_fuzz::targets::onnx`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("onnx"),
    |data: &[u8]| zkinfer_fuzz::targets::onnx(data)
);
