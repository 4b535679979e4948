//! libFuzzer target `input_json`: [`zkinfer_fuzz::targets::input_json`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("input_json"),
    |data: &[u8]| zkinfer_fuzz::targets::input_json(data)
);
