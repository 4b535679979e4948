//! Several forgeries at once, and the padding cells.
//!
//! - Two to four forgeries of random kinds (any cell kind, any requantization part, a pool maximum replaced by the
//!   minimum) with random deltas on a random input, each re-solved locally as in `forgery.rs`, with the outputs the
//!   forged witness computes claimed publicly: rejected, unless the forged witness is the honest one cell for cell
//!   (a no-op, counted apart). Padding cells may be among them, but not all.
//! - Padding cells are by design constrained by nothing: they are multiplied by a fixed zero (blank rows before the
//!   first multiply-accumulate pass, Freivalds run and sponge absorb, the sponge's padding word, the operand of a
//!   Freivalds padding entry). Forging only padding cells must leave the circuit satisfied with the honest public
//!   inputs: the outputs and the commitment are unchanged.
//!
//! Cases per test: `PROPTEST_CASES` (default `forgery_cases::DEFAULT_CASES`); tallies print with `--nocapture`.

mod common;
mod forgery_cases;

use common::forge::{verdict, Outcome, Subject, Tally};
use forgery_cases::{all_subjects, runner};
use proptest::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, RequantPart, Tamper, MAX_FORGERIES};
use zkinfer_circuits::field;

/// Every cell kind the model circuit assigns.
const KINDS: [CellKind; 21] = [
    CellKind::Salt,
    CellKind::Input,
    CellKind::PackedInput,
    CellKind::PoseidonState,
    CellKind::LayerInput,
    CellKind::ProductSum,
    CellKind::RequantAccumulator,
    CellKind::Remainder,
    CellKind::ClampFlag,
    CellKind::ClampSlack,
    CellKind::Quotient,
    CellKind::Output,
    CellKind::PoolInput,
    CellKind::PoolMax,
    CellKind::TableInput,
    CellKind::TableOutput,
    CellKind::RangeLimb,
    CellKind::Nonce,
    CellKind::Padding,
    CellKind::FreivaldsOperand,
    CellKind::FreivaldsSum,
];

const PARTS: [RequantPart; 5] = [
    RequantPart::Output,
    RequantPart::Quotient,
    RequantPart::Remainder,
    RequantPart::Slack,
    RequantPart::Flag,
];

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        (1i64..=3).prop_flat_map(|d| prop_oneof![Just(d), Just(-d)]),
        prop::sample::select(vec![256, -256, 1 << 24, 1 << 32]),
        any::<i64>().prop_filter("nonzero", |d| *d != 0),
    ]
}

/// One forgery of any kind on `subject`.
fn any_forgery(subject: &'static Subject) -> impl Strategy<Value = Forgery> {
    let kinds: Vec<CellKind> = KINDS.into_iter().filter(|&k| subject.count(k) > 0).collect();
    let requants = subject.count(CellKind::ClampFlag);
    let pools = subject.count(CellKind::PoolMax);
    let cell = prop::sample::select(kinds).prop_flat_map(move |kind| {
        (0..subject.count(kind), delta()).prop_map(move |(index, delta)| Forgery::Cell { kind, index, delta })
    });
    let requant = (0..requants.max(1), prop::sample::select(PARTS.to_vec()), delta())
        .prop_map(|(index, part, delta)| Forgery::Requant { index, part, delta });
    let pool = (0..pools.max(1)).prop_map(|index| Forgery::PoolMin { index });
    let (requant_weight, pool_weight) = (2 * u32::from(requants > 0), u32::from(pools > 0));
    prop_oneof![3 => cell, requant_weight => requant, pool_weight => pool]
}

/// Where a forgery acts: forgeries of the same requantization row or pool row share a site.
fn site(f: &Forgery) -> (String, usize) {
    match *f {
        Forgery::Cell { kind, index, .. } => match kind {
            CellKind::Output
            | CellKind::Remainder
            | CellKind::ClampFlag
            | CellKind::ClampSlack
            | CellKind::Quotient
            | CellKind::RequantAccumulator => ("requant".into(), index),
            CellKind::PoolMax => ("pool".into(), index),
            k => (format!("{k:?}"), index),
        },
        Forgery::Requant { index, .. } => ("requant".into(), index),
        Forgery::PoolMin { index } => ("pool".into(), index),
    }
}

fn is_padding(f: &Forgery) -> bool {
    matches!(
        f,
        Forgery::Cell {
            kind: CellKind::Padding,
            ..
        }
    )
}

#[test]
fn several_forgeries_at_once_are_rejected() {
    let strategy = (0..all_subjects().len()).prop_flat_map(|s| {
        let subject = &all_subjects()[s];
        (
            Just(s),
            prop::collection::vec(any_forgery(subject), 2..=MAX_FORGERIES).prop_filter(
                "distinct sites, not only padding",
                |fs| {
                    let mut sites: Vec<_> = fs.iter().map(site).collect();
                    sites.sort();
                    sites.dedup();
                    sites.len() == fs.len() && !fs.iter().all(is_padding)
                },
            ),
            prop::collection::vec(-128i64..=127, subject.model.input_len()),
        )
    });
    let tally = Tally::default();
    let result = runner().run(&strategy, |(s, forgeries, input)| {
        let subject = &all_subjects()[s];
        let honest = subject.on(input);
        let tamper = Tamper::forge(&forgeries).expect("at most MAX_FORGERIES");
        let v = verdict(&honest, tamper);
        let outcome = v.outcome(&honest);
        tally.count(&format!("{} forgeries", forgeries.len()), &outcome);
        prop_assert!(
            outcome != Outcome::Forged,
            "{}: {forgeries:?} was ACCEPTED (claimed outputs {:?}, honest {:?})",
            subject.name(),
            v.outputs,
            honest.public.outputs
        );
        Ok(())
    });
    let [rejected, forged, noop, equivalent] = tally.report("several forgeries");
    if let Err(e) = result {
        panic!("several forgeries: {e}");
    }
    assert_eq!(forged, 0);
    assert!(rejected > noop + equivalent);
}

#[test]
fn forged_padding_cells_leave_the_circuit_satisfied_and_the_outputs_unchanged() {
    let strategy = (0..all_subjects().len()).prop_flat_map(|s| {
        let subject = &all_subjects()[s];
        let padding = subject.count(CellKind::Padding);
        assert!(padding > 0, "{}: no padding cells", subject.name());
        let forgery = (0..padding, delta()).prop_map(|(index, delta)| Forgery::Cell {
            kind: CellKind::Padding,
            index,
            delta,
        });
        (
            Just(s),
            prop::collection::vec(forgery, 1..=MAX_FORGERIES),
            prop::collection::vec(-128i64..=127, subject.model.input_len()),
        )
    });
    let tally = Tally::default();
    let result = runner().run(&strategy, |(s, forgeries, input)| {
        let subject = &all_subjects()[s];
        let honest = subject.on(input);
        let v = verdict(&honest, Tamper::forge(&forgeries).expect("at most MAX_FORGERIES"));
        let differing: Vec<CellKind> = honest
            .trace()
            .iter()
            .zip(&v.trace)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.kind)
            .collect();
        let noop = differing.is_empty();
        prop_assert!(differing.iter().all(|&k| k == CellKind::Padding), "{differing:?}");
        tally.count(
            "padding",
            &if noop {
                Outcome::NoOp
            } else {
                Outcome::Equivalent(vec![CellKind::Padding])
            },
        );
        prop_assert!(
            v.accepted,
            "{}: {forgeries:?} rejected: gates {:?}, lookups {:?}, {} copies",
            subject.name(),
            v.gates,
            v.lookups,
            v.copies
        );
        let honest_outputs: Vec<_> = honest.public.outputs.iter().map(|&y| field::from_i64(y)).collect();
        prop_assert_eq!(&v.outputs, &honest_outputs);
        prop_assert_eq!(v.commitment, honest.public.input_commitment);
        // Deltas that cancel on one cell leave nothing changed; otherwise the trace must show the forged cells.
        let net: std::collections::HashMap<usize, i128> = forgeries.iter().fold(Default::default(), |mut m, f| {
            if let Forgery::Cell { index, delta, .. } = *f {
                *m.entry(index).or_default() += i128::from(delta);
            }
            m
        });
        prop_assert_eq!(noop, net.values().all(|&d| d == 0));
        Ok(())
    });
    tally.report("forged padding");
    if let Err(e) = result {
        panic!("forged padding: {e}");
    }
}
