//! libFuzzer target `bundle`: [`zkinfer_fuzz::targets::bundle`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("bundle"),
    |data: &[u8]| zkinfer_fuzz::targets::bundle(data)
);
