//! Random locally re-solved forgeries (`zkinfer_circuits::assign::Forgery`, as in `circuits/tests/forgery.rs`) on
//! the shipped models, whose layouts the small models do not reach (several range columns, two Freivalds pairs,
//! an activation table next to Freivalds layers): on a random test digit, one to three forgeries of random kinds,
//! with the outputs the forged witness computes claimed publicly. None may be accepted (a no-op or a known
//! equivalent witness aside, `small::forge::Outcome`); a lone requantization forgery satisfies every gate and must
//! be caught by a lookup.
//!
//! Forgeries per model: `ZKINFER_AUDIT_FORGERIES` (default below); the tally prints with `--nocapture`.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::assign::{CellKind, Forgery, RequantPart, Tamper, MAX_FORGERIES};
use zkinfer_circuits::CircuitParams;
use zkinfer_prover::quantize_input;

use crate::models::{shipped, test_set};
use crate::small::forge::{verdict, Outcome, Subject, Tally};

/// Forgeries per model unless `ZKINFER_AUDIT_FORGERIES` says otherwise.
const DEFAULT_FORGERIES: usize = 24;

/// Every cell kind but padding (constrained by nothing, by design).
const KINDS: [CellKind; 20] = [
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

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.next_u32() as usize % items.len()]
}

/// A nonzero delta of at most `2^40` in magnitude (see `bounded_delta` in `circuits/tests/forgery.rs`).
fn delta(rng: &mut ChaCha8Rng) -> i64 {
    let magnitude = match rng.next_u32() % 3 {
        0 => 1 + i64::from(rng.next_u32() % 3),
        1 => pick(rng, &[256, 1 << 16, 1 << 24, 1 << 32, 1 << 40]),
        _ => 1 + (rng.next_u64() % (1 << 40)) as i64,
    };
    if rng.next_u32().is_multiple_of(2) {
        magnitude
    } else {
        -magnitude
    }
}

fn forgery(rng: &mut ChaCha8Rng, subject: &Subject) -> Forgery {
    if rng.next_u32().is_multiple_of(2) {
        let index = rng.next_u32() as usize % subject.count(CellKind::ClampFlag);
        return Forgery::Requant {
            index,
            part: pick(rng, &PARTS),
            delta: delta(rng),
        };
    }
    let kinds: Vec<CellKind> = KINDS.into_iter().filter(|&k| subject.count(k) > 0).collect();
    let kind = pick(rng, &kinds);
    Forgery::Cell {
        kind,
        index: rng.next_u32() as usize % subject.count(kind),
        delta: delta(rng),
    }
}

fn forge_model(name: &str, seed: u64) {
    let model = shipped(name);
    let subject = Subject::new(model.clone(), CircuitParams::for_model(model));
    let test = test_set(name);
    let n = std::env::var("ZKINFER_AUDIT_FORGERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_FORGERIES);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tally = Tally::default();
    for _ in 0..n {
        let digit = rng.next_u32() as usize % test.inputs.len();
        let honest = subject.on(quantize_input(model, &test.inputs[digit]).expect("quantize"));
        let count = 1 + rng.next_u32() as usize % (MAX_FORGERIES - 1);
        let forgeries: Vec<Forgery> = (0..count).map(|_| forgery(&mut rng, &subject)).collect();
        let v = verdict(&honest, Tamper::forge(&forgeries).expect("at most MAX_FORGERIES"));
        let outcome = v.outcome(&honest);
        let lone_requant = matches!(forgeries[..], [Forgery::Requant { .. }]);
        let class = if lone_requant { "requantization" } else { "mixed" };
        tally.count(&format!("{name}: {class}"), &outcome);
        assert_ne!(
            outcome,
            Outcome::Forged,
            "{name} digit {digit}: {forgeries:?} was ACCEPTED (claimed {:?}, honest {:?})",
            v.outputs,
            honest.public.outputs
        );
        if lone_requant && outcome == Outcome::Rejected {
            assert!(
                v.gates.is_empty() && v.copies == 0 && !v.lookups.is_empty(),
                "{name} digit {digit}: {forgeries:?} not re-solved: gates {:?}, {} copies, lookups {:?}",
                v.gates,
                v.copies,
                v.lookups
            );
        }
    }
    let [rejected, forged, _, _] = tally.report("shipped forgeries");
    assert_eq!(forged, 0);
    assert!(rejected > 0 || n == 0);
}

#[test]
fn forgeries_on_digits_mlp_are_rejected() {
    forge_model("digits-mlp", 1);
}

#[test]
fn forgeries_on_digits_cnn_are_rejected() {
    forge_model("digits-cnn", 2);
}

#[test]
fn forgeries_on_digits_resnet_are_rejected() {
    forge_model("digits-resnet", 3);
}
