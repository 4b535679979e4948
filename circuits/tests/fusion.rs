//! Table activations fused into the clamp table (issue #16 item 2): which table layers fuse, what a fused layout
//! saves, and that the parameters and the planner agree on it. Tampering with a fused circuit is in
//! `soundness.rs` and in the forgery and independent-checker subjects.

mod common;

use zkinfer_circuits::assign::CellKind;
use zkinfer_circuits::chips::fusion::{candidates, Fusion};
use zkinfer_circuits::layout::plan;
use zkinfer_circuits::{Chip, CircuitParams, QuantizedModel};

/// The activated model's first three layers (fc1 → Sigmoid → fc2): its only table fuses.
fn model_whose_tables_all_fuse() -> QuantizedModel {
    let mut model = common::small_activated_model();
    model.layers.truncate(3);
    model.name = "small-activated-head".into();
    model
}

#[test]
fn only_a_table_that_alone_reads_a_requantization_fuses() {
    let model = common::small_activated_model();
    // act1 after fc1, act2 after fc2, act3 after the product; act4 shares fc3's output with `out`.
    assert_eq!(candidates(&model), vec![(0, 1), (2, 3), (4, 5)]);
    // The small CNN's table reads a max pool.
    assert!(candidates(&common::small_cnn()).is_empty());
    let params = common::fused_params(&model);
    let fusion = Fusion::of(&model, &params);
    assert_eq!(fusion.tables().iter().copied().collect::<Vec<_>>(), vec![1, 3, 5]);
    // One tag per (function, lower bound): the Sigmoid after a ReLU and after the product are two entries.
    let tags: Vec<(i64, i64)> = fusion.entries().iter().map(|e| (e.tag, e.lo)).collect();
    assert_eq!(tags, vec![(1, 0), (2, -128), (3, -128)]);
    for e in fusion.entries() {
        assert_eq!(
            e.apply(-1000),
            i64::from(e.values[(e.lo + 128) as usize]),
            "below the range: f(lo)"
        );
        assert_eq!(e.apply(1000), i64::from(e.values[255]), "above the range: f(127)");
    }
    // Nothing fuses without the chip or with a table too narrow for a producer.
    let plain = CircuitParams {
        chips: CircuitParams::with_chips_of(&model).chips,
        ..params.clone()
    };
    assert!(Fusion::of(&model, &plain).is_empty());
    let narrower = CircuitParams {
        clamp_bits: params.clamp_bits - 1,
        ..params.clone()
    };
    assert!(Fusion::of(&model, &narrower).tables().len() < 3);
}

#[test]
fn a_fused_table_takes_no_row_and_the_circuit_computes_the_reference() {
    let model = common::small_activated_model();
    let params = common::fused_params(&model);
    let layout = plan(&model, &params).expect("plan");
    let fused: Vec<&str> = (layout.layers.iter())
        .filter(|l| l.layout == "fused")
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(fused, ["act1", "act2", "act3"]);
    assert_eq!(layout.table_rows, 4, "only act4 looks its inputs up");
    let plain = CircuitParams {
        chips: CircuitParams::with_chips_of(&model).chips,
        ..params.clone()
    };
    let unfused = plan(&model, &plain).expect("plan");
    assert_eq!(unfused.table_rows, 5 + 4 + 4 + 4);
    // The clamp table holds 2^w rows more per fused entry.
    assert_eq!(
        layout.lookup_table_rows,
        unfused.lookup_table_rows.max(5 << params.clamp_bits)
    );
    // The public outputs are the reference inference's.
    let (circuit, public) = common::circuit_with(model, params);
    assert!(common::satisfied(&circuit, public.to_instance()));
    let counts = circuit.assigned_cell_counts();
    assert_eq!(counts.get(&CellKind::TableInput), Some(&4));
    assert_eq!(counts.get(&CellKind::Quotient), Some(&(5 + 4 + 4 + 4 + 3)));
}

#[test]
fn a_layout_whose_tables_all_fuse_needs_no_table_chip() {
    let model = model_whose_tables_all_fuse();
    let mut params = common::fused_params(&model);
    params.chips.remove(&Chip::Table);
    let layout = plan(&model, &params).expect("every table fuses: no table chip needed");
    assert_eq!(layout.table_rows, 0);
    let (circuit, public) = common::circuit_with(model, params.clone());
    assert!(common::satisfied(&circuit, public.to_instance()));
    // The full model keeps an unfused table, which needs the chip.
    let full = common::small_activated_model();
    let mut params = common::fused_params(&full);
    params.chips.remove(&Chip::Table);
    let error = plan(&full, &params).expect_err("act4 needs the table chip");
    assert!(error.contains("act4"), "{error}");
}

#[test]
fn fused_tables_without_a_clamp_table_are_refused() {
    let model = common::small_activated_model();
    let params = CircuitParams {
        clamp_bits: 0,
        ..common::fused_params(&model)
    };
    let error = params.validate().expect_err("no clamp table to hold them");
    assert!(error.contains("clamp table"), "{error}");
}

#[test]
fn the_planner_weighs_fused_layouts() {
    // The planner's own table (95 % coverage) covers every producer of the activated model: it plans layouts with
    // and without fusion and, since fusing removes the table rows of three layers at the cost of table entries,
    // it reports both kinds among its candidates.
    let model = common::small_activated_model();
    let (_, candidates) = zkinfer_circuits::layout::choose(&model).expect("a layout");
    let fused = candidates.iter().filter(|(p, _)| p.has(Chip::FusedTables)).count();
    let table = candidates
        .iter()
        .filter(|(p, _)| p.clamp_bits > 0 && !p.has(Chip::FusedTables))
        .count();
    assert!(fused > 0 && table > 0, "fused {fused}, table only {table}");
    for (p, _) in candidates.iter().filter(|(p, _)| p.has(Chip::FusedTables)) {
        assert!(p.clamp_bits > 0 && p.validate().is_ok());
        assert!(!Fusion::of(&model, p).is_empty());
    }
}
