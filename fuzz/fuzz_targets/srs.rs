//! libFuzzer target `srs`: [`zkinfer_fuzz::targets::srs`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("srs"),
    |data: &[u8]| zkinfer_fuzz::targets::srs(data)
);
