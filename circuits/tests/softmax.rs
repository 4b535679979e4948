//! Softmax rows in the circuit, masked positions included: the honest witness is accepted and computes the
//! reference's integers; every kind of cell tampered with is rejected; and the operator's own attacks, mounted as a
//! cheating prover would (the rest of the witness re-solved around them, the outputs claimed accordingly): a wrong
//! row maximum, a wrong exponential, a row whose sum is off, an output off by one with its remainder moved to keep
//! the division identity, and a masked position made nonzero.

mod common;

use common::forge::{verdict, Honest};
use rayon::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, Tamper};
use zkinfer_circuits::model::Op;
use zkinfer_circuits::params::Chip;
use zkinfer_circuits::CircuitParams;

/// The softmax model's circuit with `params` on its witness, checked honest and equal to the reference.
fn honest(params: CircuitParams) -> Honest {
    Honest::checked(&common::small_softmax_model(), params)
}

fn layouts() -> [CircuitParams; 2] {
    let model = common::small_softmax_model();
    let planned = CircuitParams::for_model(&model);
    assert!(planned.has(Chip::Softmax), "{planned:?}");
    let wide = CircuitParams {
        limb_bits: 12,
        range_columns: 2,
        ..CircuitParams::with_chips_of(&model)
    };
    [planned, wide]
}

/// The first softmax layer's rows: each row's sum and, per element, whether it is kept.
fn first_rows() -> Vec<(i64, Vec<bool>)> {
    let model = common::small_softmax_model();
    let Op::Softmax(softmax) = &model.layers[0].op else {
        unreachable!("the first layer is a softmax")
    };
    let input = common::witness_for(&model).input;
    (softmax
        .eval_rows(&input)
        .iter()
        .zip(softmax.keep.chunks(softmax.row_len)))
    .map(|(row, keep)| (row.sum, keep.to_vec()))
    .collect()
}

#[test]
fn rows_sum_to_one_and_masked_positions_are_zero() {
    let model = common::small_softmax_model();
    let tensors = common::reference_outputs(&model, &common::witness_for(&model).input);
    for (i, layer) in model.layers.iter().enumerate() {
        let Op::Softmax(softmax) = &layer.op else { continue };
        let rows = tensors[i + 1]
            .chunks(softmax.row_len)
            .zip(softmax.keep.chunks(softmax.row_len));
        for (p, keep) in rows {
            let total: i64 = p.iter().sum();
            assert!(
                (125..=129).contains(&total),
                "{}: a row sums to {total}/127",
                layer.name
            );
            for (&p, &k) in p.iter().zip(keep) {
                assert!(k || p == 0, "{}: a masked position has {p}", layer.name);
            }
        }
    }
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    let kinds = [
        CellKind::SoftmaxInput,
        CellKind::SoftmaxExp,
        CellKind::SoftmaxSum,
        CellKind::SoftmaxBound,
    ];
    for params in layouts() {
        common::forge::assert_every_kind_tampered_is_rejected(&honest(params), &kinds);
    }
}

/// Every softmax cell of the planned layout, changed by one with the chips carrying on from it, is rejected.
#[test]
fn every_softmax_cell_is_load_bearing() {
    let h = honest(layouts()[0].clone());
    let kinds = [
        CellKind::SoftmaxInput,
        CellKind::SoftmaxExp,
        CellKind::SoftmaxSum,
        CellKind::SoftmaxBound,
        CellKind::PoolMax,
    ];
    common::forge::assert_every_cell_forged_by_one_is_rejected(&h, &kinds);
}

#[test]
fn a_wrong_row_maximum_is_rejected() {
    let h = honest(layouts()[0].clone());
    let maxima = h.circuit.assigned_cell_counts()[&CellKind::PoolMax];
    (0..maxima).into_par_iter().for_each(|index| {
        // The smaller operand of a pairwise maximum, or a maximum above both.
        for f in [
            Forgery::PoolMin { index },
            Forgery::Cell {
                kind: CellKind::PoolMax,
                index,
                delta: 3,
            },
        ] {
            let v = verdict(&h, Tamper::forge(&[f]).expect("one"));
            assert!(!v.accepted, "{f:?} accepted");
        }
    });
}

/// An output off by one whose remainder moves by `∓2S` keeps the division identity: only the remainder's range
/// checks stand in the way. Mounted on every element of the first softmax (masked ones included: a masked position
/// made nonzero).
#[test]
fn an_output_off_by_one_with_the_division_re_solved_is_rejected() {
    let h = honest(layouts()[0].clone());
    let mut cases = Vec::new();
    let mut element = 0;
    for (sum, keep) in first_rows() {
        for k in keep {
            for delta in [1i64, -1] {
                cases.push((element, k, sum, delta));
            }
            element += 1;
        }
    }
    assert!(cases.iter().any(|&(_, k, ..)| !k), "no masked position");
    cases.into_par_iter().for_each(|(index, kept, sum, delta)| {
        // The first layer is the softmax: its outputs and remainders are the first of their kinds.
        let output = Forgery::Cell {
            kind: CellKind::Output,
            index,
            delta,
        };
        let remainder = Forgery::Cell {
            kind: CellKind::Remainder,
            index,
            delta: -2 * sum * delta,
        };
        let v = verdict(&h, Tamper::forge(&[output, remainder]).expect("two"));
        assert!(!v.accepted, "output #{index} (kept: {kept}) moved by {delta} accepted");
        assert!(v.gates.is_empty(), "the division identity should hold: {:?}", v.gates);
    });
}
