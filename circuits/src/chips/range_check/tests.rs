//! Tests of the range-check chip: both ends of every kind of range pass, one step beyond either end fails.

use ff::PrimeField;
use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    dev::MockProver,
    plonk::{Circuit, Column, ConstraintSystem},
};

use super::*;

/// Values copied from a plain advice column into range checks, two range columns.
#[derive(Clone, Debug)]
struct TestConfig {
    values: Column<Advice>,
    range: RangeCheckConfig,
}

/// Checks every `(value, range)`.
struct TestCircuit(Vec<(i128, Range)>);

impl Circuit<Fr> for TestCircuit {
    type Config = TestConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = ();

    fn without_witnesses(&self) -> Self {
        Self(self.0.clone())
    }

    fn configure(meta: &mut ConstraintSystem<Fr>) -> TestConfig {
        let values = meta.advice_column();
        meta.enable_equality(values);
        TestConfig {
            values,
            range: RangeCheckConfig::configure(meta, 2),
        }
    }

    fn synthesize(&self, config: TestConfig, mut layouter: impl Layouter<Fr>) -> Result<(), Error> {
        config.range.load_table(&mut layouter)?;
        layouter.assign_region(
            || "checks",
            |mut region| {
                let mut a = Assigner::new(&mut region);
                let mut rows = ColumnRows::new(config.range.columns(), 0);
                for (row, &(value, range)) in self.0.iter().enumerate() {
                    let magnitude = Fr::from_u128(value.unsigned_abs());
                    let v = if value < 0 { -magnitude } else { magnitude };
                    let cell = a.advice(CellKind::Input, config.values, row, v);
                    config.range.check(&mut a, &mut rows, &cell, range)?;
                }
                Ok(())
            },
        )
    }
}

fn accepted(checks: Vec<(i128, Range)>) -> bool {
    MockProver::run(11, &TestCircuit(checks), vec![])
        .expect("synthesis")
        .verify()
        .is_ok()
}

/// `[min, max]` of a range.
fn bounds(range: Range) -> (i128, i128) {
    match range {
        Range::Unsigned { bits } => (0, (1 << bits) - 1),
        Range::Signed { limbs } => (-(1 << (8 * limbs - 1)), (1 << (8 * limbs - 1)) - 1),
    }
}

const RANGES: [Range; 11] = [
    Range::Unsigned { bits: 1 },
    Range::Unsigned { bits: 5 },
    Range::Unsigned { bits: 7 },
    Range::Unsigned { bits: 8 },
    Range::Unsigned { bits: 9 },
    Range::Unsigned { bits: 15 },
    Range::Unsigned { bits: 16 },
    Range::Unsigned { bits: 29 },
    Range::Unsigned { bits: 48 },
    Range::Signed { limbs: 1 },
    Range::Signed { limbs: 2 },
];

#[test]
fn both_ends_of_every_range_pass_together() {
    let checks = RANGES
        .iter()
        .flat_map(|&r| {
            let (min, max) = bounds(r);
            [(min, r), (max, r), ((min + max) / 2, r)]
        })
        .collect();
    assert!(accepted(checks));
}

#[test]
fn one_beyond_either_end_fails() {
    for range in RANGES {
        let (min, max) = bounds(range);
        for outside in [min - 1, max + 1] {
            assert!(!accepted(vec![(outside, range)]), "{outside} passed as {range:?}");
        }
    }
}

#[test]
fn rows_are_whole_limbs() {
    let rows = |r: Range| r.rows();
    assert_eq!(rows(Range::Unsigned { bits: 1 }), 1);
    assert_eq!(rows(Range::Unsigned { bits: 8 }), 1);
    assert_eq!(rows(Range::Unsigned { bits: 9 }), 2);
    assert_eq!(rows(Range::Signed { limbs: 2 }), 2);
    assert_eq!(rows(Range::of_output(OutputRange { bits: 8, relu: true })), 1);
    assert_eq!(rows(Range::of_output(OutputRange { bits: 16, relu: false })), 2);
}
