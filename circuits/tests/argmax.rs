//! ArgMax rows in the circuit, ties included: the honest witness is accepted and computes the reference's
//! indices with both tie-breaks; every kind of cell tampered with is rejected; and the operator's own attacks,
//! mounted as a cheating prover would (the rest of the row re-solved from the forged cells): a choice moved to an
//! element that is not the maximum, two elements chosen or none, and a tie broken the other way.

mod common;

use common::forge::{verdict, Honest};
use rayon::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, Tamper};
use zkinfer_circuits::CircuitParams;

/// The ArgMax model's circuit, checked honest and equal to the reference.
fn honest() -> Honest {
    let model = common::small_argmax_model();
    Honest::checked(&model, CircuitParams::for_model(&model))
}

/// Choice-bit cells (`o`, then `f`, per element) of the first ArgMax layer's rows: the `o` index of element `k`
/// of row `r` (rows of four, laid out in order).
fn choice(row: usize, k: usize) -> usize {
    2 * (4 * row + k)
}

#[test]
fn ties_go_to_the_first_or_the_last_maximum() {
    let model = common::small_argmax_model();
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    assert_eq!(tensors[1], [127, 0, 127, -128, 0, -55, 0, -128, 3, -100, -55, 90]);
    assert_eq!(tensors[2], [0, 0, 3], "ties to the first");
    assert_eq!(tensors[3], [2, 2, 3], "ties to the last");
    honest();
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    let h = honest();
    let instance = h.public.to_instance();
    let counts = h.circuit.assigned_cell_counts();
    let kinds = [
        CellKind::ArgMaxInput,
        CellKind::ArgMaxMax,
        CellKind::ArgMaxChoice,
        CellKind::ArgMaxIndex,
        CellKind::ArgMaxGap,
    ];
    let tampers: Vec<Tamper> = (kinds.iter())
        .flat_map(|&kind| {
            (0..counts[&kind]).flat_map(move |index| [1u64, 1 << 8].map(|delta| Tamper::Cell { kind, index, delta }))
        })
        .collect();
    tampers.into_par_iter().for_each(|tamper| {
        let tampered = h.circuit.clone().with_tamper(tamper);
        assert!(!common::satisfied(&tampered, instance.clone()), "{tamper:?} accepted");
    });
}

#[test]
fn a_choice_moved_added_or_dropped_is_rejected() {
    let h = honest();
    // Row 2 of the first ArgMax: [3, −100, −55, 90], its maximum at 3.
    let cell = |k: usize, delta: i64| Forgery::Cell {
        kind: CellKind::ArgMaxChoice,
        index: choice(2, k),
        delta,
    };
    for (what, forgeries) in [
        ("moved to a smaller element", vec![cell(3, -1), cell(0, 1)]),
        ("a second element chosen", vec![cell(1, 1)]),
        ("none chosen", vec![cell(3, -1)]),
    ] {
        let v = verdict(&h, Tamper::forge(&forgeries).expect("forgeries"));
        assert!(!v.accepted, "{what}: accepted");
    }
}

#[test]
fn a_tie_broken_the_other_way_is_caught_by_the_gap_lookup() {
    let h = honest();
    // Row 0 of the first ArgMax: [127, 0, 127, −128], ties to the first: choose element 2 instead of 0.
    let forgeries = [0, 2].map(|k| Forgery::Cell {
        kind: CellKind::ArgMaxChoice,
        index: choice(0, k),
        delta: if k == 0 { -1 } else { 1 },
    });
    let v = verdict(&h, Tamper::forge(&forgeries).expect("forgeries"));
    assert!(!v.accepted, "the second maximum accepted under ties to the first");
    assert!(v.gates.is_empty(), "only the gap lookup should object: {:?}", v.gates);
    assert!(
        v.lookups.iter().any(|l| l.contains("ties")),
        "not the gap lookup: {:?}",
        v.lookups
    );
}
