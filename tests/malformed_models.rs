//! Damaged ONNX files of the shipped models never panic: every byte mutation either still imports (and then
//! quantizes or fails with an error) or is refused with an error.

mod common;

use zkinfer_prover::{import_onnx, quantize, Dataset};

fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 17
}

#[test]
fn mutated_onnx_files_are_errors_not_panics() {
    let dir = common::temp_dir("mutated-onnx");
    let calibration = Dataset::load(common::digits("calibration.json")).expect("calibration");
    let mut seed = 42;
    let (mut refused, mut imported) = (0, 0);
    for model in ["digits-mlp", "digits-cnn", "digits-resnet"] {
        let original = std::fs::read(common::model_file(model, "model.onnx")).expect("model");
        for round in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..1 + round % 4 {
                let at = (next(&mut seed) as usize) % bytes.len();
                bytes[at] = next(&mut seed) as u8;
            }
            if round % 10 == 0 {
                bytes.truncate((next(&mut seed) as usize) % bytes.len());
            }
            let path = dir.join(format!("{model}-{round}.onnx"));
            std::fs::write(&path, &bytes).expect("write");
            let outcome = std::panic::catch_unwind(|| match import_onnx(&path) {
                Ok(float) => {
                    let _ = quantize(&float, &calibration.inputs[..20]);
                    true
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    false
                }
            });
            match outcome {
                Ok(true) => imported += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!("{model} mutation {round} panicked"),
            }
        }
    }
    assert!(
        refused > 0,
        "no mutation was refused: the mutations are too weak to test anything"
    );
    eprintln!("{refused} refused, {imported} still imported");
}
