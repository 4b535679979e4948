//! Layer normalization in the circuit: the honest witness is accepted and computes the reference's integers (and
//! the independent checker's); every kind of cell tampered with is rejected; every layer-norm cell, changed by one
//! with the rest of the witness re-solved around it, is rejected; and the operator's own attack, a wrong inverse
//! square root (one above or below, its two slacks re-solved so that both identities hold), is caught by the
//! slacks' range checks alone. Each runs on int8 rows and on 16-bit ones (a transformer's residual stream).

mod common;

use common::forge::{verdict, Honest};
use common::NORM_KINDS;
use rayon::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, Tamper};
use zkinfer_circuits::model::{LayerNorm, Op, QuantizedModel};
use zkinfer_circuits::params::Chip;
use zkinfer_circuits::CircuitParams;

/// The int8 and the 16-bit layer-norm models.
fn models() -> [QuantizedModel; 2] {
    [common::small_layer_norm_model(), common::small_wide_layer_norm_model()]
}

fn layouts(model: &QuantizedModel) -> [CircuitParams; 2] {
    let planned = CircuitParams::for_model(model);
    assert!(planned.has(Chip::LayerNorm), "{planned:?}");
    let wide = CircuitParams {
        limb_bits: 12,
        range_columns: 2,
        ..CircuitParams::with_chips_of(model)
    };
    [planned, wide]
}

/// The first layer normalization of `model` and its rows on the fixed witness.
fn first_norm(model: &QuantizedModel) -> (LayerNorm, Vec<zkinfer_circuits::model::NormRow>) {
    let Op::LayerNorm(norm) = &model.layers[1].op else {
        unreachable!("the second layer is a layer norm")
    };
    let tensors = common::reference_outputs(model, &common::witness_for(model).input);
    let rows = norm.eval_rows(&tensors[1]);
    (norm.clone(), rows)
}

#[test]
fn rows_are_normalized_and_a_constant_row_is_zero() {
    for model in models() {
        let (norm, rows) = first_norm(&model);
        let widest = rows.iter().flat_map(|r| &r.centred).map(|c| c.abs()).max();
        match norm.input_bits {
            // The 16-bit rows hold values far beyond int8, saturated ones among them.
            16 => assert!(widest > Some(6 * 30_000), "{widest:?}"),
            _ => assert!(widest < Some(6 * 256), "{widest:?}"),
        }
        for row in &rows {
            let p = 1u128 << (2 * norm.root_shift);
            let (q, v) = (row.root as u128, row.variance as u128);
            assert!(q * q * v <= p && (q + 1) * (q + 1) * v > p, "{row:?}");
            // √n · c · q / 2^F is the normalized row: Σ y² = n, up to ε and the root's rounding (q has 10 to 12
            // bits here).
            let scale = f64::powi(2.0, norm.root_shift as i32);
            let normalized: Vec<f64> = (row.centred.iter())
                .map(|&c| 6f64.sqrt() * c as f64 * row.root as f64 / scale)
                .collect();
            let square_sum: f64 = normalized.iter().map(|y| y * y).sum();
            if row.centred.iter().any(|&c| c != 0) {
                assert!((square_sum - 6.0).abs() < 0.02, "Σ y² = {square_sum} for {row:?}");
            }
        }
        let constant = rows.last().expect("five rows");
        assert_eq!(
            (constant.variance, constant.outputs.clone()),
            (norm.epsilon, vec![0; 6])
        );
        assert_eq!(constant.root, norm.root_of(norm.epsilon));
    }
}

#[test]
fn the_independent_checker_predicts_every_cell() {
    for model in models() {
        for params in layouts(&model) {
            let h = Honest::checked(&model, params.clone());
            let derived = common::checker::derive(&model, &params, &common::witness_for(&model));
            let mismatches = derived.mismatches(&h.trace());
            assert!(mismatches.is_empty(), "{mismatches:#?}");
            let packed = zkinfer_circuits::public_inputs::pack_outputs(&derived.output_fields());
            assert_eq!(packed, h.public.to_instance()[2..].to_vec());
        }
    }
}

#[test]
fn every_kind_of_tampered_cell_is_rejected() {
    for model in models() {
        for params in layouts(&model) {
            common::forge::assert_every_kind_tampered_is_rejected(&Honest::checked(&model, params), &NORM_KINDS);
        }
    }
}

/// Every layer-norm cell of the planned layout, changed by one with the chips carrying on from it, is rejected.
#[test]
fn every_layer_norm_cell_is_load_bearing() {
    for model in models() {
        let h = Honest::checked(&model, layouts(&model)[0].clone());
        common::forge::assert_every_cell_forged_by_one_is_rejected(&h, &NORM_KINDS);
    }
}

/// A root one above or below the true one (the chip computes both slacks from the root as written, so both
/// identities still hold, and the products and requantizations carry on from it): one slack turns negative, which
/// only its range check stops.
#[test]
fn a_wrong_square_root_with_its_slacks_re_solved_is_rejected() {
    for model in models() {
        let h = Honest::checked(&model, layouts(&model)[0].clone());
        let (norm, rows) = first_norm(&model);
        let n = norm.row_len;
        let cases: Vec<(usize, i64)> = (0..rows.len()).flat_map(|r| [(r, 1), (r, -1)]).collect();
        cases.into_par_iter().for_each(|(r, delta)| {
            let root = Forgery::Cell {
                kind: CellKind::NormRoot,
                index: r * (n + 1),
                delta,
            };
            let v = verdict(&h, Tamper::forge(&[root]).expect("one"));
            assert!(!v.accepted, "{} row {r}: root moved by {delta} accepted", model.name);
            assert!(
                v.gates.is_empty(),
                "{} row {r}: both identities should hold: {:?}",
                model.name,
                v.gates
            );
            assert!(
                !v.lookups.is_empty(),
                "{} row {r}: a slack's range check should object",
                model.name
            );
        });
    }
}

type Change = Box<dyn Fn(&mut LayerNorm)>;

/// Each change applied to the second layer (a layer norm) of `model` makes validation refuse it.
fn assert_refused(model: &QuantizedModel, cases: Vec<(&str, Change)>) {
    for (what, change) in cases {
        let mut bad = model.clone();
        let Op::LayerNorm(norm) = &mut bad.layers[1].op else {
            unreachable!("the second layer is a layer norm")
        };
        change(norm);
        assert!(bad.validate().is_err(), "{what} accepted");
    }
}

/// A layer normalization a model file could hold but the chip's argument does not cover is refused by validation
/// (which the verifier runs on every key's model): no ε, a root too narrow for its largest value or a product wider
/// than 2^48, a shift beyond 62, rows that do not tile, a later tensor, an input width other than its tensor's, a
/// bad requantization.
#[test]
fn malformed_layer_norms_are_refused() {
    let model = common::small_layer_norm_model();
    model.validate().expect("the test model is valid");
    let cases: Vec<(&str, Change)> = vec![
        ("no epsilon", Box::new(|n| n.epsilon = 0)),
        ("epsilon beyond 2^52", Box::new(|n| n.epsilon = (1 << 52) + 1)),
        ("no root bits", Box::new(|n| n.root_bits = 0)),
        ("root bits that wrap a sum", Box::new(|n| n.root_bits = u32::MAX - 7)),
        ("a product beyond 2^48", Box::new(|n| n.root_bits = 38)),
        ("a root that does not fit", Box::new(|n| n.root_shift = 22)),
        ("a shift beyond 62", Box::new(|n| n.root_shift = 63)),
        ("rows that do not tile", Box::new(|n| n.row_len = 7)),
        ("a row beyond 4096", Box::new(|n| n.row_len = 8192)),
        ("a later tensor", Box::new(|n| n.input = 3)),
        ("a zero multiplier", Box::new(|n| n.multiplier = 0)),
        ("a shift of 0", Box::new(|n| n.shift = 0)),
        ("12-bit outputs", Box::new(|n| n.output_bits = 12)),
        ("an int8 input declared 16-bit", Box::new(|n| n.input_bits = 16)),
        ("an int8 input declared 12-bit", Box::new(|n| n.input_bits = 12)),
    ];
    assert_refused(&model, cases);
    // The 16-bit model: the same input declared int8 (a root too narrow for the wider rows is what the circuit
    // would then miss), or a root as wide as the int8 rows allow, which makes |c·q| reach beyond 2^48.
    let wide = common::small_wide_layer_norm_model();
    wide.validate().expect("the 16-bit test model is valid");
    let wide_cases: Vec<(&str, Change)> = vec![
        ("a 16-bit input declared int8", Box::new(|n| n.input_bits = 8)),
        ("a root too wide for 16-bit rows", Box::new(|n| n.root_bits = 30)),
    ];
    assert_refused(&wide, wide_cases);
}
