//! Tests of the range-check chip: both ends of every kind of range pass, one step beyond either end fails.

use ff::PrimeField;
use halo2_proofs::{
    circuit::{Layouter, SimpleFloorPlanner},
    dev::MockProver,
    plonk::{Circuit, Column, ConstraintSystem},
};

use super::*;

/// Values copied from a plain advice column into range checks, two range columns of `L`-bit limbs.
#[derive(Clone, Debug)]
struct TestConfig {
    values: Column<Advice>,
    range: RangeCheckConfig,
}

/// Checks every `(value, range)` with `L`-bit limbs.
struct TestCircuit<const L: u32>(Vec<(i128, Range)>);

impl<const L: u32> Circuit<Fr> for TestCircuit<L> {
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
            range: RangeCheckConfig::configure(meta, 2, L),
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

/// Whether MockProver accepts `checks` with `limb_bits`-bit limbs (8, or 11 in a larger circuit for its table).
fn accepted(limb_bits: u32, checks: Vec<(i128, Range)>) -> bool {
    let result = match limb_bits {
        8 => MockProver::run(11, &TestCircuit::<8>(checks), vec![]),
        11 => MockProver::run(13, &TestCircuit::<11>(checks), vec![]),
        other => panic!("no test circuit for {other}-bit limbs"),
    };
    result.expect("synthesis").verify().is_ok()
}

/// The limb widths the tests run with: bytes, and a width that divides none of the ranges.
const LIMB_WIDTHS: [u32; 2] = [8, 11];

/// `[min, max]` of a range.
fn bounds(range: Range) -> (i128, i128) {
    match range {
        Range::Unsigned { bits } => (0, (1 << bits) - 1),
        Range::Signed { bits } => (-(1 << (bits - 1)), (1 << (bits - 1)) - 1),
    }
}

const RANGES: [Range; 13] = [
    Range::Unsigned { bits: 1 },
    Range::Unsigned { bits: 5 },
    Range::Unsigned { bits: 7 },
    Range::Unsigned { bits: 8 },
    Range::Unsigned { bits: 9 },
    Range::Unsigned { bits: 15 },
    Range::Unsigned { bits: 16 },
    Range::Unsigned { bits: 29 },
    Range::Unsigned { bits: 22 },
    Range::Unsigned { bits: 33 },
    Range::Unsigned { bits: 48 },
    Range::Signed { bits: 8 },
    Range::Signed { bits: 16 },
];

#[test]
fn both_ends_of_every_range_pass_together() {
    for limb_bits in LIMB_WIDTHS {
        let checks = RANGES
            .iter()
            .flat_map(|&r| {
                let (min, max) = bounds(r);
                [(min, r), (max, r), ((min + max) / 2, r)]
            })
            .collect();
        assert!(accepted(limb_bits, checks), "{limb_bits}-bit limbs");
    }
}

#[test]
fn one_beyond_either_end_fails() {
    for limb_bits in LIMB_WIDTHS {
        for range in RANGES {
            let (min, max) = bounds(range);
            for outside in [min - 1, max + 1] {
                assert!(
                    !accepted(limb_bits, vec![(outside, range)]),
                    "{outside} passed as {range:?} with {limb_bits}-bit limbs"
                );
            }
        }
    }
}

#[test]
fn a_value_of_one_limb_beyond_its_width_fails() {
    // An 11-bit limb is in the 11-bit table but not within an 8-bit one: the same value fails with byte limbs
    // and passes with 11-bit limbs only as the range allows.
    let range = Range::Unsigned { bits: 11 };
    assert!(accepted(11, vec![(2047, range)]));
    assert!(accepted(8, vec![(2047, range)]));
    assert!(!accepted(11, vec![(2048, range)]));
    assert!(!accepted(8, vec![(2048, range)]));
}

#[test]
fn a_signed_range_without_a_tag_is_refused() {
    // Only 8- and 16-bit signed values have last-limb tags; anything else is a synthesis error, never a
    // check of another range.
    assert_eq!(Range::Signed { bits: 12 }.last_tag(8), None);
    assert!(MockProver::run(11, &TestCircuit::<8>(vec![(5, Range::Signed { bits: 12 })]), vec![]).is_err());
    assert_eq!(Range::Signed { bits: 16 }.last_tag(11), Some(-Fr::from(5)));
    assert_eq!(Range::Unsigned { bits: 0 }.last_tag(8), None);
}

#[test]
fn rows_are_whole_limbs() {
    assert_eq!(Range::Unsigned { bits: 1 }.rows(8), 1);
    assert_eq!(Range::Unsigned { bits: 8 }.rows(8), 1);
    assert_eq!(Range::Unsigned { bits: 9 }.rows(8), 2);
    assert_eq!(Range::Unsigned { bits: 22 }.rows(11), 2);
    assert_eq!(Range::Unsigned { bits: 23 }.rows(11), 3);
    assert_eq!(Range::Signed { bits: 16 }.rows(8), 2);
    assert_eq!(Range::Signed { bits: 16 }.rows(15), 2);
    assert_eq!(Range::of_output(OutputRange { bits: 8, relu: true }).rows(8), 1);
    assert_eq!(Range::of_output(OutputRange { bits: 16, relu: false }).rows(8), 2);
}

#[test]
fn the_table_grows_with_the_limb_and_keeps_its_byte_size() {
    assert_eq!(RangeTable::rows(8), 767, "the byte table of the digits models");
    assert_eq!(RangeTable::rows(14), 1 + (1 << 15) - 2 + 256 + 4);
    assert_eq!(RangeTable::widest_limb_fitting(1 << 16), Some(14));
    assert_eq!(RangeTable::widest_limb_fitting(1 << 17), Some(15));
    assert_eq!(RangeTable::widest_limb_fitting(700), None);
}
