//! Witness assignment with a tampering hook: every advice cell a chip writes goes through [`Assigner`], which
//! counts cells by [`CellKind`] and can change one of them. Soundness tests use it to take a valid witness, alter a
//! single cell (or mount a specific attack) and check that the circuit is no longer satisfied.

use std::collections::HashMap;

use ff::Field;
use halo2_proofs::{
    circuit::{Cell, Region, Value},
    halo2curves::bn256::Fr,
    plonk::{Advice, Challenge, Column, Fixed},
};

/// The kinds of advice cells the model circuit assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// The salt absorbed into the input commitment.
    Salt,
    /// An input activation (packed into the commitment and read by the first layer).
    Input,
    /// A running sum packing input bytes into one field element for the commitment.
    PackedInput,
    /// A Poseidon state word.
    PoseidonState,
    /// An activation copied into a linear layer.
    LayerInput,
    /// A running multiply-accumulate sum.
    ProductSum,
    /// A finished accumulator copied into requantization.
    RequantAccumulator,
    /// A requantization remainder `r`.
    Remainder,
    /// The clamp flag `b` of a requantization (1 when clamped at the upper bound).
    ClampFlag,
    /// The clamp slack `d` of a requantization (how far the quotient lies beyond the bound it was clamped to).
    ClampSlack,
    /// A layer output after clamp/ReLU (the model's outputs for the last layer).
    Output,
    /// An operand copied into a pairwise max.
    PoolInput,
    /// A pairwise maximum.
    PoolMax,
    /// An activation-table input.
    TableInput,
    /// An activation-table output.
    TableOutput,
    /// A running-sum cell of a range check.
    RangeLimb,
    /// The nonce cell bound to the instance column.
    Nonce,
    /// A cell no constraint depends on, by design: written as zero and multiplied by a fixed zero (sponge padding,
    /// blank rows, the operand of a Freivalds padding entry).
    Padding,
    /// An operand of the Freivalds chip (second phase): a copied `X` or `Y` entry, or a copied row evaluation `v_k`
    /// in the weight check.
    FreivaldsOperand,
    /// A running value of the Freivalds chip (second phase): a Horner evaluation at the challenge or a
    /// multiply-accumulate over the fixed weights.
    FreivaldsSum,
}

impl CellKind {
    /// The kinds every model circuit assigns and constrains (pool and table kinds appear only when a model uses
    /// those chips; padding is constrained by nothing, by design).
    pub const ALWAYS: [CellKind; 13] = [
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
        CellKind::Output,
        CellKind::RangeLimb,
        CellKind::Nonce,
    ];
}

/// A change to make to an otherwise honest witness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Add `delta` to the `index`-th cell of `kind`.
    Cell {
        /// Kind of cell.
        kind: CellKind,
        /// Which one, in assignment order.
        index: usize,
        /// Amount added.
        delta: u64,
    },
    /// In the `index`-th requantization, use `r + 2^s` and `q − 1` (the division identity still holds).
    RemainderShift {
        /// Which requantization.
        index: usize,
    },
    /// In the `index`-th requantization, keep `r` in range but flip its low bit, solve the division identity
    /// for `q` in the field (an enormous quotient) and absorb it into the clamp slack `d`.
    UnboundedQuotient {
        /// Which requantization.
        index: usize,
    },
    /// In the `index`-th requantization, claim the int8 saturation `y = 127, b = 1, d = q − 127` (the division
    /// identity still holds): for a 16-bit output with `127 < q ≤ 32767` only the clamp's upper bound objects.
    ClampAtInt8 {
        /// Which requantization.
        index: usize,
    },
}

/// An advice cell together with the value written into it.
#[derive(Clone, Copy, Debug)]
pub struct AssignedValue {
    /// Where it is.
    pub cell: Cell,
    /// What was written.
    pub value: Fr,
}

/// Writes advice and fixed cells into the circuit's single region, applying at most one [`Tamper`].
pub struct Assigner<'a, 'r> {
    region: &'a mut Region<'r, Fr>,
    tamper: Option<Tamper>,
    counters: HashMap<CellKind, usize>,
    requantizations: usize,
}

impl<'a, 'r> Assigner<'a, 'r> {
    /// Wraps a region.
    pub fn new(region: &'a mut Region<'r, Fr>, tamper: Option<Tamper>) -> Self {
        Self {
            region,
            tamper,
            counters: HashMap::new(),
            requantizations: 0,
        }
    }

    /// Assigns an advice cell of `kind`.
    pub fn advice(&mut self, kind: CellKind, column: Column<Advice>, row: usize, value: Fr) -> AssignedValue {
        let n = self.counters.entry(kind).or_insert(0);
        let index = *n;
        *n += 1;
        let value = match self.tamper {
            Some(Tamper::Cell {
                kind: k,
                index: i,
                delta,
            }) if k == kind && i == index => value + Fr::from(delta),
            _ => value,
        };
        let cell = self.region.assign_advice(column, row, Value::known(value)).cell();
        AssignedValue { cell, value }
    }

    /// Assigns an advice cell that must equal `source` (a copy constraint).
    pub fn copy(
        &mut self,
        kind: CellKind,
        column: Column<Advice>,
        row: usize,
        source: &AssignedValue,
    ) -> AssignedValue {
        let copied = self.advice(kind, column, row, source.value);
        self.region.constrain_equal(copied.cell, source.cell);
        copied
    }

    /// Assigns a fixed cell.
    pub fn fixed(&mut self, column: Column<Fixed>, row: usize, value: Fr) {
        self.region.assign_fixed(column, row, value);
    }

    /// Enables a selector.
    pub fn enable(
        &mut self,
        selector: &halo2_proofs::plonk::Selector,
        row: usize,
    ) -> Result<(), halo2_proofs::plonk::Error> {
        selector.enable(self.region, row)
    }

    /// Numbers the next requantization and returns the attack to mount on it, if any.
    pub fn next_requantization_attack(&mut self) -> Option<Tamper> {
        let index = self.requantizations;
        self.requantizations += 1;
        match self.tamper {
            Some(
                t @ (Tamper::RemainderShift { index: i }
                | Tamper::UnboundedQuotient { index: i }
                | Tamper::ClampAtInt8 { index: i }),
            ) if i == index => Some(t),
            _ => None,
        }
    }

    /// Ends the current phase: in the prover this commits the advice columns of the phase so far and squeezes the
    /// challenges usable after it (halo2-axiom's single-pass synthesis); elsewhere it does nothing.
    pub fn next_phase(&mut self) {
        self.region.next_phase();
    }

    /// The value of challenge `c`, or zero where it is not known (keygen, or before its phase has ended).
    pub fn challenge(&self, c: Challenge) -> Fr {
        let mut value = Fr::ZERO;
        self.region.get_challenge(c).map(|v| value = v);
        value
    }

    /// How many cells of each kind were assigned (the harness uses it to pick indices).
    pub fn counts(&self) -> &HashMap<CellKind, usize> {
        &self.counters
    }
}
