//! The independent checker (`common/checker.rs`) on the small models: for many random inputs (and the int8
//! extremes), every cell the circuit assigns for the input, the packing, the multiply-accumulate passes, the
//! requantizations, the pools and the tables equals what plain `i128` arithmetic written apart from the crate's
//! predicts; the circuit is satisfied with the outputs the checker derived as the public instance, and the outputs
//! the circuit bound to the instance are those.

mod common;

use common::checker::{derive, floor_div, requantize, Pieces};
use common::forge::{subjects, witness_with};
use halo2_proofs::dev::MockProver;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use zkinfer_circuits::assign::trace_cells;
use zkinfer_circuits::{ModelCircuit, PublicInputs};

/// Random inputs per model and layout unless `ZKINFER_CHECKER_INPUTS` says otherwise.
const DEFAULT_INPUTS: usize = 128;

#[test]
fn the_checkers_own_arithmetic_floors_and_clamps() {
    assert_eq!(floor_div(7, 2), 3);
    assert_eq!(floor_div(-7, 2), -4);
    assert_eq!(floor_div(-8, 2), -4);
    assert_eq!(floor_div(0, 5), 0);
    // 0.5 rounds up, −0.5 rounds up to 0, −0.5 − ε rounds down to −1.
    let y = |acc| requantize(acc, 1, 8, -128, 127).y;
    assert_eq!((y(128), y(-128), y(-129), y(3)), (1, 0, -1, 0));
    assert_eq!(
        requantize(1 << 20, 1 << 10, 8, 0, 127),
        Pieces {
            q: 1 << 22,
            r: 128,
            y: 127,
            f: 1,
            d: (1 << 22) - 127
        }
    );
    assert_eq!(requantize(-(1 << 20), 1 << 10, 8, 0, 127).d, 1 << 22);
}

#[test]
fn every_assigned_cell_matches_the_independent_checker() {
    let inputs = std::env::var("ZKINFER_CHECKER_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_INPUTS);
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d3e);
    let checked = AtomicUsize::new(0);
    let subjects = subjects();
    // Every (subject, input) pair, drawn in a fixed order, then checked on all cores: each check is independent.
    let mut cases = Vec::new();
    for subject in &subjects {
        let len = subject.model.input_len();
        cases.extend(
            [
                vec![-128; len],
                vec![127; len],
                common::witness_for(&subject.model).input,
            ]
            .map(|input| (subject, input)),
        );
        cases.extend((0..inputs).map(|_| (subject, (0..len).map(|_| (rng.next_u32() % 256) as i64 - 128).collect())));
    }
    cases.into_par_iter().for_each(|(subject, input)| {
        let witness = witness_with(&subject.model, input);
        let derived = derive(&subject.model, &subject.params, &witness);
        let public = PublicInputs {
            input_commitment: common::commitment_of(&subject.model, &witness),
            nonce: witness.nonce,
            outputs: derived.outputs().iter().map(|&y| y as i64).collect(),
        };
        let circuit = ModelCircuit::new(subject.model.clone(), subject.params.clone(), witness.clone());
        let (prover, trace) =
            trace_cells(|| MockProver::run(subject.k, &circuit, vec![public.to_instance()]).expect("synthesis"));
        let mismatches = derived.mismatches(&trace);
        assert!(
            mismatches.is_empty(),
            "{} on {:?}:\n{}",
            subject.name(),
            witness.input,
            mismatches.join("\n")
        );
        assert_eq!(circuit.last_synthesis().outputs, derived.output_fields());
        assert_eq!(
            prover.verify(),
            Ok(()),
            "{} on {:?}: the checker's outputs as the instance",
            subject.name(),
            witness.input
        );
        checked.fetch_add(1, Ordering::Relaxed);
    });
    let checked = checked.into_inner();
    eprintln!("independent checker: {checked} inputs checked cell for cell");
    assert!(checked >= 4 * 3);
}
