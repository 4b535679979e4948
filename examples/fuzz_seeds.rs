//! Writes the seed inputs of the fuzz targets (`fuzz/src/targets.rs`) into `fuzz/corpus/<target>/`: a compiled
//! `.zkm`, `pk.bin`, `vk.bin`, binary and JSON bundles, small SRS files, input JSON, the shipped ONNX files and
//! HTTP requests, each for the shipped digits model with keys from the insecure development SRS.
//!
//! `cargo run --example fuzz_seeds [-- [--refresh] [TARGET...]]` (`scripts/fuzz` runs it). Existing seeds are kept
//! unless `--refresh` is given (a proof differs on every run, so rewriting would churn the checked-in files); seeds
//! named `generated-*` (large, not checked in) are always rewritten. Refresh after changing a file format or the
//! circuit, so that the seeds stay valid inputs.

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

fn main() {
    let mut refresh = false;
    let mut wanted = vec![];
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--refresh" => refresh = true,
            name if targets::TARGETS.iter().any(|t| t.name == name) => wanted.push(name.to_string()),
            other => {
                eprintln!("unknown target `{other}`; the targets are: {}", names().join(", "));
                std::process::exit(2);
            }
        }
    }
    for target in targets::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == target.name) {
            continue;
        }
        let dir = targets::corpus_dir(target.name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let (mut written, mut kept) = (0, 0);
        for (file, bytes) in (target.seeds)() {
            let path = dir.join(&file);
            if path.exists() && !refresh && !file.starts_with("generated-") {
                kept += 1;
                continue;
            }
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            written += 1;
        }
        println!(
            "{:<10} {written} seeds written, {kept} kept in {}",
            target.name,
            dir.display()
        );
    }
}

fn names() -> Vec<&'static str> {
    targets::TARGETS.iter().map(|t| t.name).collect()
}
