//! Property-based forgeries beyond one cell: on a random input, change a layer's output, a requantization's
//! quotient, remainder, slack or flag, a pairwise maximum, a table output, a Freivalds run, a commitment cell, a
//! running sum or a range limb, **re-solve every local gate** ([`Forgery`]: the chips carry on from the forged
//! values, a forged requantization row is solved so that its division and clamp gates hold) and claim the outputs
//! the forged witness computes. The mock prover must still reject it: a copy constraint, a lookup, the public
//! commitment or a gate no local choice can satisfy catches it. Requantization and pool forgeries satisfy every
//! gate by construction, and the tests check that, so there it is the range lookups that must object.
//!
//! Several forgeries at once are in `forgery_multi.rs`. Cases per test: `PROPTEST_CASES` (default
//! `forgery_cases::DEFAULT_CASES`); each test prints its tally per class with `--nocapture`.

mod common;
mod forgery_cases;

use common::checker::derive;
use common::forge::{verdict, witness_with, Outcome, Subject, Tally, Verdict};
use forgery_cases::{all_subjects, runner};
use proptest::prelude::*;
use zkinfer_circuits::assign::{CellKind, Forgery, RequantPart, Tamper};

/// A nonzero change: small, a limb, a power of two around the shifts, or anything.
fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => (1i64..=3).prop_flat_map(|d| prop_oneof![Just(d), Just(-d)]),
        2 => prop::sample::select(vec![256, -256, 1 << 16, 1 << 24, -(1 << 24), 1 << 32, 1 << 40]),
        2 => any::<i64>().prop_filter("nonzero", |d| *d != 0),
    ]
}

/// A nonzero change of at most `2^40` in magnitude: a requantization forged further sends a later layer an
/// accumulator beyond `i64`, where the witness generator (integer arithmetic) cannot carry it and a later gate,
/// not only a lookup, objects.
fn bounded_delta() -> impl Strategy<Value = i64> {
    const MAX: i64 = 1 << 40;
    prop_oneof![
        3 => (1i64..=3).prop_flat_map(|d| prop_oneof![Just(d), Just(-d)]),
        2 => prop::sample::select(vec![256, -256, 1 << 16, 1 << 24, -(1 << 24), 1 << 32, MAX, -MAX]),
        2 => (-MAX..=MAX).prop_filter("nonzero", |d| *d != 0),
    ]
}

/// An int8 input of `len` elements.
fn input(len: usize) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(-128i64..=127, len)
}

/// A subject (by index into `subjects`, restricted to those `keep` accepts), one of its cells of a kind in
/// `kinds`, a delta and an input.
fn cell_forgery(
    subjects: &'static [Subject],
    kinds: &'static [CellKind],
    keep: fn(&Subject) -> bool,
) -> impl Strategy<Value = (usize, Forgery, Vec<i64>)> {
    let choices: Vec<(usize, CellKind)> = subjects
        .iter()
        .enumerate()
        .filter(|(_, s)| keep(s))
        .flat_map(|(i, s)| kinds.iter().filter(move |&&k| s.count(k) > 0).map(move |&k| (i, k)))
        .collect();
    assert!(!choices.is_empty(), "no subject assigns {kinds:?}");
    prop::sample::select(choices).prop_flat_map(move |(s, kind)| {
        let subject = &subjects[s];
        (
            Just(s),
            (0..subject.count(kind), delta()).prop_map(move |(index, delta)| Forgery::Cell { kind, index, delta }),
            input(subject.model.input_len()),
        )
    })
}

/// Runs `forgery` on `subject` with `input`, counts it in `tally` and fails the case if it was accepted other than
/// as a no-op or a known equivalent witness ([`Outcome`]); with `all_gates_hold`, also if a rejected forgery broke
/// a gate or a copy (the re-solving must be complete, leaving the lookups to object).
fn check(
    tally: &Tally,
    class: &str,
    subject: &Subject,
    forgery: Forgery,
    input: Vec<i64>,
    all_gates_hold: bool,
) -> Result<(), TestCaseError> {
    let honest = subject.on(input);
    let tamper = Tamper::forge(&[forgery]).expect("one forgery");
    let v: Verdict = verdict(&honest, tamper);
    let outcome = v.outcome(&honest);
    tally.count(class, &outcome);
    prop_assert!(
        outcome != Outcome::Forged,
        "{}: {forgery:?} was ACCEPTED (claimed outputs {:?}, honest {:?})",
        subject.name(),
        v.outputs,
        honest.public.outputs
    );
    if all_gates_hold && outcome == Outcome::Rejected {
        prop_assert!(
            v.gates.is_empty() && v.copies == 0 && v.other == 0,
            "{}: {forgery:?} was not re-solved: gates {:?}, {} copies",
            subject.name(),
            v.gates,
            v.copies
        );
        prop_assert!(
            !v.lookups.is_empty(),
            "{}: {forgery:?}: no lookup objected",
            subject.name()
        );
    }
    Ok(())
}

/// Ends a test: prints the tally and checks that forgeries were really tried and none was accepted.
fn finish(tally: &Tally, test: &str, result: Result<(), impl std::fmt::Display>) {
    let [rejected, forged, noop, equivalent] = tally.report(test);
    if let Err(e) = result {
        panic!("{test}: {e}");
    }
    assert_eq!(forged, 0);
    assert!(
        rejected > noop + equivalent,
        "{test}: {rejected} rejected, {noop} no-ops"
    );
}

#[test]
fn forged_requantizations_are_rejected_by_the_range_checks() {
    let subjects = all_subjects();
    let parts = [
        RequantPart::Output,
        RequantPart::Quotient,
        RequantPart::Remainder,
        RequantPart::Slack,
        RequantPart::Flag,
    ];
    // The subjects with requantizations (the ArgMax model has none).
    let requantizing: Vec<usize> = (0..subjects.len())
        .filter(|&s| subjects[s].count(CellKind::ClampFlag) > 0)
        .collect();
    let strategy =
        (prop::sample::select(requantizing), prop::sample::select(parts.to_vec())).prop_flat_map(|(s, part)| {
            let subject = &all_subjects()[s];
            (
                Just(s),
                (0..subject.count(CellKind::ClampFlag), bounded_delta())
                    .prop_map(move |(index, delta)| Forgery::Requant { index, part, delta }),
                input(subject.model.input_len()),
            )
        });
    let tally = Tally::default();
    let result = runner().run(&strategy, |(s, forgery, input)| {
        let Forgery::Requant { part, .. } = forgery else {
            unreachable!("a requantization forgery")
        };
        check(&tally, &format!("requant {part:?}"), &subjects[s], forgery, input, true)
    });
    finish(&tally, "forged requantizations", result);
}

#[test]
fn forged_pool_maxima_and_table_outputs_are_rejected() {
    let subjects = all_subjects();
    let pools: Vec<usize> = (0..subjects.len())
        .filter(|&s| subjects[s].count(CellKind::PoolMax) > 0)
        .collect();
    assert!(!pools.is_empty(), "no subject has a max pool");
    // The smaller operand differs from the larger one only where they differ: pick among those rows (found by the
    // independent checker), so that the forgery is not a no-op.
    let min = (prop::sample::select(pools), any::<prop::sample::Index>()).prop_flat_map(|(s, pick)| {
        let subject = &all_subjects()[s];
        input(subject.model.input_len()).prop_map(move |input| {
            let derived = derive(
                &subject.model,
                &subject.params,
                &witness_with(&subject.model, input.clone()),
            );
            let operands = &derived.cells[&CellKind::PoolInput];
            let unequal: Vec<usize> = (0..operands.len() / 2)
                .filter(|&row| operands[2 * row] != operands[2 * row + 1])
                .collect();
            let index = if unequal.is_empty() {
                0
            } else {
                unequal[pick.index(unequal.len())]
            };
            (s, Forgery::PoolMin { index }, input)
        })
    });
    let cells = cell_forgery(subjects, &[CellKind::PoolMax, CellKind::TableOutput], |_| true);
    let tally = Tally::default();
    let result = runner().run(&prop_oneof![min, cells], |(s, forgery, input)| match forgery {
        Forgery::PoolMin { .. } => check(&tally, "pool max := min", &subjects[s], forgery, input, true),
        Forgery::Cell { kind, .. } => check(&tally, &format!("{kind:?}"), &subjects[s], forgery, input, false),
        Forgery::Requant { .. } => unreachable!("no requantization forgeries here"),
    });
    finish(&tally, "forged pool maxima and table outputs", result);
}

/// Runs cell forgeries of `kinds` on the subjects `subject` selects; every one must be rejected.
fn run_cell_forgeries(test: &str, kinds: &'static [CellKind], subject: fn(&Subject) -> bool) {
    let strategy = cell_forgery(all_subjects(), kinds, subject);
    let tally = Tally::default();
    let result = runner().run(&strategy, |(s, forgery, input)| {
        let Forgery::Cell { kind, .. } = forgery else {
            unreachable!("a cell forgery")
        };
        check(&tally, &format!("{kind:?}"), &all_subjects()[s], forgery, input, false)
    });
    finish(&tally, test, result);
}

#[test]
fn forged_freivalds_runs_and_products_are_rejected() {
    let kinds = &[
        CellKind::FreivaldsSum,
        CellKind::FreivaldsOperand,
        CellKind::RequantAccumulator,
    ];
    run_cell_forgeries("forged Freivalds runs", kinds, |s| s.params.has_freivalds());
}

#[test]
fn forged_softmax_and_argmax_cells_are_rejected() {
    let kinds = &[
        CellKind::SoftmaxInput,
        CellKind::SoftmaxExp,
        CellKind::SoftmaxSum,
        CellKind::SoftmaxBound,
        CellKind::ArgMaxInput,
        CellKind::ArgMaxMax,
        CellKind::ArgMaxChoice,
        CellKind::ArgMaxIndex,
        CellKind::ArgMaxGap,
    ];
    run_cell_forgeries("forged softmax and ArgMax cells", kinds, |s| {
        s.count(CellKind::SoftmaxExp) > 0 || s.count(CellKind::ArgMaxChoice) > 0
    });
}

#[test]
fn forged_layer_norm_cells_are_rejected() {
    run_cell_forgeries("forged layer-norm cells", &common::NORM_KINDS, |s| {
        s.count(CellKind::NormRoot) > 0
    });
}

#[test]
fn forged_commitment_cells_are_rejected() {
    let kinds = &[
        CellKind::Salt,
        CellKind::Input,
        CellKind::PackedInput,
        CellKind::PoseidonState,
        CellKind::Nonce,
    ];
    run_cell_forgeries("forged commitment cells", kinds, |_| true);
}

#[test]
fn forged_running_sums_copies_and_limbs_are_rejected() {
    let kinds = &[
        CellKind::ProductSum,
        CellKind::LayerInput,
        CellKind::RequantAccumulator,
        CellKind::RangeLimb,
        CellKind::PoolInput,
        CellKind::TableInput,
        CellKind::Output,
        CellKind::Remainder,
        CellKind::ClampFlag,
        CellKind::ClampSlack,
        CellKind::Quotient,
    ];
    run_cell_forgeries("forged running sums, copies and limbs", kinds, |_| true);
}

#[test]
fn forged_product_operands_and_products_are_rejected() {
    let kinds = &[CellKind::MulOperand, CellKind::MulProduct];
    run_cell_forgeries("forged product operands and products", kinds, |_| true);
}

/// A regression found by the property test above: a requantization output forged by 2^32 on the gated model, then
/// squared by the next product, sends that product's requantization an accumulator beyond `i64`; the row must
/// still be re-solved (its gates hold) so that only range checks object.
#[test]
fn a_forged_output_squared_by_a_later_product_is_still_re_solved() {
    let subjects = all_subjects();
    let (s, subject) = (subjects.iter().enumerate())
        .find(|(_, s)| s.model.name == "small-gated")
        .expect("the gated model is a subject");
    let forgery = Forgery::Requant {
        index: 9,
        part: RequantPart::Output,
        delta: 1 << 32,
    };
    let tally = Tally::default();
    let result = check(
        &tally,
        "requant Output",
        &subjects[s],
        forgery,
        vec![0; subject.model.input_len()],
        true,
    );
    assert!(result.is_ok(), "{result:?}");
}
