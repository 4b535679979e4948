//! The fuzz targets (`fuzz/src/targets.rs`) without the fuzzer: every target runs over its checked-in
//! corpus (`fuzz/corpus/<target>/`: seeds and the inputs of every crash found so far), over seeds made afresh in
//! this process (so a corpus made with older keys still leaves valid inputs), and over a few thousand mutations of
//! them drawn from a fixed-seed RNG. `scripts/fuzz` runs the same bodies coverage-guided under libFuzzer.
//!
//! A failing input is written to `CARGO_TARGET_TMPDIR/fuzz-regressions/` and named in the failure message; add it
//! to the target's corpus once the bug is fixed.

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Integers worth writing over a length or size field.
const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// Tokens worth splicing into text inputs (JSON bodies, hex fields).
const TOKENS: [&str; 16] = [
    "\"", "{", "}", "[", "]", ",", ":", "-", "1e400", "-0", "null", "true", "0x", "ffffffff", "\\u0000", "\n",
];

fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// One to four stacked random edits of `seed` (`other` is another seed to splice from).
fn mutate(rng: &mut ChaCha20Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + below(rng, 4) {
        let len = data.len();
        let at = below(rng, len + 1);
        match below(rng, 9) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << below(rng, 8),
            1 if len > 0 => data[at.min(len - 1)] = [0, 1, 0x7f, 0x80, 0xff, rng.next_u32() as u8][below(rng, 6)],
            2 => {
                let value = INTERESTING[below(rng, INTERESTING.len())];
                let width = [1, 2, 4, 8][below(rng, 4)];
                let bytes = if rng.next_u32() & 1 == 0 {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                let bytes = &bytes[..width];
                let end = (at + width).min(len);
                data.splice(at..end, bytes.iter().copied());
            }
            3 => {
                let n = 1 + below(rng, 16);
                let random: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
                data.splice(at..at, random);
            }
            4 => {
                let end = (at + 1 + below(rng, 64)).min(len);
                data.drain(at..end);
            }
            5 => data.truncate(at),
            6 => {
                let end = (at + 1 + below(rng, 64)).min(len);
                let copy = data[at..end].to_vec();
                let to = below(rng, len + 1);
                data.splice(to..to, copy);
            }
            7 => {
                let from = below(rng, other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let token = TOKENS[below(rng, TOKENS.len())].as_bytes();
                let end = (at + below(rng, 3)).min(len);
                data.splice(at..end, token.iter().copied());
            }
        }
    }
    data
}

/// Panics so far, caught or not, in any thread.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic, also those the code under test catches (libFuzzer aborts on them, and so a panic that a
/// `catch_unwind` turns into an error is a finding there too).
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Runs `name`'s body on `input`; on a panic (caught inside or not), saves the input and fails naming it.
fn run_one(name: &str, what: &str, input: &[u8]) {
    let target = targets::target(name);
    count_panics();
    let before = PANICS.load(Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        (target.run)(input);
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            before,
            "the code under test panicked (and caught it): a crash under libFuzzer"
        );
    }));
    if let Err(panic) = outcome {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-regressions");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{}", what.replace(['/', ' '], "_")));
        let _ = std::fs::write(&path, input);
        eprintln!(
            "fuzz target `{name}` failed on {what}; the input is in {}",
            path.display()
        );
        resume_unwind(panic);
    }
}

/// The checked-in corpus, fresh seeds, then mutations of both.
fn run_target(name: &str) {
    let target = targets::target(name);
    (target.warm_up)();
    let mut inputs: Vec<(String, Vec<u8>)> = vec![];
    if let Ok(entries) = std::fs::read_dir(targets::corpus_dir(name)) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).expect("read a corpus file");
            inputs.push((format!("corpus file {}", path.display()), bytes));
        }
    }
    inputs.extend(
        (target.seeds)()
            .into_iter()
            .map(|(file, bytes)| (format!("fresh seed {file}"), bytes)),
    );
    for (what, input) in &inputs {
        run_one(name, what, input);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(name.bytes().fold(0x13, |h, b| h * 31 + u64::from(b)));
    for i in 0..target.regression_mutations {
        let (_, seed) = &inputs[below(&mut rng, inputs.len())];
        let (_, other) = &inputs[below(&mut rng, inputs.len())];
        let input = mutate(&mut rng, seed, other);
        run_one(name, &format!("mutation {i}"), &input);
    }
}

#[test]
fn zkm_model_files() {
    run_target("zkm");
}

#[test]
fn proving_key_files() {
    run_target("pk");
}

#[test]
fn verifying_key_files() {
    run_target("vk");
}

#[test]
fn proof_bundles() {
    run_target("bundle");
}

#[test]
fn srs_files() {
    run_target("srs");
}

#[test]
fn input_json() {
    run_target("input_json");
}

#[test]
fn onnx_import() {
    run_target("onnx");
}

#[test]
fn http_api() {
    run_target("http");
}

#[test]
fn every_target_has_a_test_and_seeds() {
    let tested = ["zkm", "pk", "vk", "bundle", "srs", "input_json", "onnx", "http"];
    let names: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, tested);
    for name in names {
        let binary = targets::repo_root()
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(binary.is_file(), "no libFuzzer binary for `{name}`");
    }
}

/// The seeds are the valid inputs they claim to be: a fuzzer that starts from rejected files explores little.
#[test]
fn the_seeds_are_accepted() {
    use zkinfer_prover::keys::prover_key_from_bytes;
    use zkinfer_verifier::{verify_bundle, Expectations, ProofBundle, VerifierKey};
    let seeds = |name: &str| {
        (targets::target(name).seeds)()
            .into_iter()
            .filter(|(file, _)| file.starts_with("seed-") || file == "generated-digits-pk.bin")
            .collect::<Vec<_>>()
    };
    for (file, bytes) in seeds("zkm") {
        zkinfer_prover::model_file::model_from_bytes(&bytes, file.as_ref()).expect(&file);
    }
    for (file, bytes) in seeds("pk") {
        prover_key_from_bytes(&bytes, targets::digits_model()).expect(&file);
    }
    for (file, bytes) in seeds("vk") {
        VerifierKey::from_bytes(&bytes).expect(&file);
    }
    let key = &targets::digits().keys.verifier;
    for (file, bytes) in seeds("bundle") {
        let bundle = ProofBundle::from_any(&bytes).expect(&file);
        verify_bundle(key, &bundle, &Expectations::for_insecure_dev_keys()).expect(&file);
    }
    for (file, bytes) in seeds("srs") {
        zkinfer_prover::srs::srs_from_bytes(&bytes[1..], u32::from(bytes[0]), file.as_ref()).expect(&file);
    }
    for (file, bytes) in seeds("input_json") {
        zkinfer_prover::Dataset::from_json(std::str::from_utf8(&bytes).expect("UTF-8")).expect(&file);
    }
    for (file, bytes) in seeds("onnx") {
        zkinfer_prover::import_onnx_bytes(&bytes, &file).expect(&file);
    }
    assert!(seeds("http").len() >= 2);
}

/// The proving keys that crashed halo2's reader under libFuzzer (a coefficient above the modulus, a polynomial
/// length of 2^32 − 1, a truncated polynomial; their checksums are valid) are refused before halo2 reads them.
#[test]
fn damaged_proving_keys_are_refused_before_halo2_reads_them() {
    let expected = [
        ("generated-regression-pk-not-a-field-element.bin", "not a field element"),
        (
            "generated-regression-pk-polynomial-length.bin",
            "4294967295 coefficients",
        ),
        ("generated-regression-pk-truncated.bin", "ends inside"),
    ];
    let seeds = (targets::target("pk").seeds)();
    for (file, message) in expected {
        let (_, bytes) = seeds.iter().find(|(f, _)| f == file).expect(file);
        let error = zkinfer_prover::keys::prover_key_from_bytes(bytes, targets::digits_model())
            .err()
            .unwrap_or_else(|| panic!("{file} was accepted"))
            .to_string();
        assert!(error.contains(message), "{file}: {error}");
    }
}
