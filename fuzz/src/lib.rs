//! zkinfer's fuzz targets (cargo-fuzz, libFuzzer): the bodies are in [`targets`], one binary per target in
//! `fuzz_targets/`. Run them with `scripts/fuzz`.

pub mod targets;
