//! libFuzzer target `vk`: [`zkinfer_fuzz::targets::vk`] on every input.

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: zkinfer_fuzz::targets::warm_up("vk"),
    |data: &[u8]| zkinfer_fuzz::targets::vk(data)
);
