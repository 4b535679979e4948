//! libFuzzer target `pk`: [`zkinfer_fuzz::targets::pk`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("pk"),
    |data: &[u8]| zkinfer_fuzz::targets::pk(data)
);
