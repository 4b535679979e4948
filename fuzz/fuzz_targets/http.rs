//! libFuzzer target `http`: [`zkinfer_fuzz::targets::http`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("http"),
    |data: &[u8]| zkinfer_fuzz::targets::http(data)
);
