//! libFuzzer target `zkm`: [`zkinfer_fuzz::targets::zkm`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("zkm"),
    |data: &[u8]| zkinfer_fuzz::targets::zkm(data)
);
