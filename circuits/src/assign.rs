//! Witness assignment: every advice cell a chip writes goes through [`Assigner`], labelled with its [`CellKind`].
//!
//! With the `test-hooks` feature (tests only; `hooks.rs`) the assigner also counts cells by kind and can change
//! them: soundness tests take a valid witness, alter cells or mount specific attacks (`Tamper`, `Forgery`) and check
//! that the circuit is no longer satisfied, and `trace_cells` records what a synthesis wrote for the independent
//! checker. A build without the feature has none of it: the assigner writes exactly what the chips computed.

#[cfg(feature = "test-hooks")]
mod hooks;
#[cfg(feature = "test-hooks")]
pub use hooks::{trace_cells, Forgery, RequantChange, RequantPart, Tamper, TracedCell, MAX_FORGERIES};

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
    /// The quotient `q` of a requantization checked through the clamp table (a cell there, not derived).
    Quotient,
    /// A layer output after clamp/ReLU (the model's outputs for the last layer).
    Output,
    /// An operand copied into a pairwise max.
    PoolInput,
    /// A pairwise maximum.
    PoolMax,
    /// An operand copied into an elementwise product.
    MulOperand,
    /// An elementwise product `x · y` (copied into requantization).
    MulProduct,
    /// An activation-table input.
    TableInput,
    /// An activation-table output.
    TableOutput,
    /// A token id copied into an embedding's lookup row.
    EmbeddingId,
    /// An embedding's output: the table entry of the id.
    EmbeddingOutput,
    /// A running-sum cell of a range check.
    RangeLimb,
    /// The nonce cell bound to the instance column.
    Nonce,
    /// A model output copied into the pass that packs the outputs for the instance column.
    OutputCopy,
    /// A running sum packing outputs into one instance row.
    PackedOutput,
    /// A cell no constraint depends on, by design: written as zero and multiplied by a fixed zero (sponge padding,
    /// blank rows, the operand of a Freivalds padding entry).
    Padding,
    /// An operand of the Freivalds chip (second phase): a copied `X` or `Y` entry, or a copied row evaluation `v_k`
    /// in the weight check.
    FreivaldsOperand,
    /// A running value of the Freivalds chip (second phase): a Horner evaluation at the challenge or a
    /// multiply-accumulate over the fixed weights.
    FreivaldsSum,
    /// An element or the row maximum copied into a softmax row.
    SoftmaxInput,
    /// A softmax exponential `exp[x − m + 255]`.
    SoftmaxExp,
    /// A running sum of softmax exponentials, or the row sum copied into a row.
    SoftmaxSum,
    /// The bound `2S − 1 − r` of a softmax division's remainder.
    SoftmaxBound,
    /// An element copied into a layer-norm row.
    NormInput,
    /// A running sum of a layer-norm row's elements, or the row sum copied into a row.
    NormSum,
    /// A layer-norm centred value `c = n·x − S`.
    NormCentred,
    /// A running sum of a layer-norm row's squared centred values.
    NormSquares,
    /// A layer-norm inverse square root `q`, or its copy into an element row.
    NormRoot,
    /// A slack of a layer-norm inverse square root: `2^(2F) − q²·V` or `(q + 1)²·V − 2^(2F) − 1`.
    NormSlack,
    /// A layer-norm product `c · q` (copied into requantization).
    NormProduct,
    /// An element copied into an ArgMax row.
    ArgMaxInput,
    /// The maximum carried down an ArgMax row.
    ArgMaxMax,
    /// An ArgMax choice bit `o`, or the running count `f` of chosen elements.
    ArgMaxChoice,
    /// The running index `Σ pos·o` of an ArgMax row (its last, the output).
    ArgMaxIndex,
    /// The gap `(1 − f)·(m − x − 1)` of an ArgMax row (an element before the chosen one is below the maximum).
    ArgMaxGap,
}

impl CellKind {
    /// The kinds every model circuit assigns and constrains (pool, table and product kinds appear only when a
    /// model uses those chips; padding is constrained by nothing, by design; one of [`Self::REQUANTIZATION`] at
    /// least).
    pub const ALWAYS: [CellKind; 14] = [
        CellKind::Salt,
        CellKind::Input,
        CellKind::PackedInput,
        CellKind::PoseidonState,
        CellKind::LayerInput,
        CellKind::ProductSum,
        CellKind::RequantAccumulator,
        CellKind::Remainder,
        CellKind::ClampFlag,
        CellKind::Output,
        CellKind::RangeLimb,
        CellKind::Nonce,
        CellKind::OutputCopy,
        CellKind::PackedOutput,
    ];

    /// The kinds of the two requantization gates: the clamp slack (flag and slack) and the quotient (clamp table).
    /// A circuit has one or both, as its layout chose.
    pub const REQUANTIZATION: [CellKind; 2] = [CellKind::ClampSlack, CellKind::Quotient];
}

/// An advice cell together with the value written into it.
#[derive(Clone, Copy, Debug)]
pub struct AssignedValue {
    /// Where it is.
    pub cell: Cell,
    /// What was written.
    pub value: Fr,
}

/// Writes advice and fixed cells into the circuit's single region (applying the tests' tamper, with `test-hooks`).
pub struct Assigner<'a, 'r> {
    region: &'a mut Region<'r, Fr>,
    #[cfg(feature = "test-hooks")]
    hooks: hooks::Hooks,
}

impl<'a, 'r> Assigner<'a, 'r> {
    /// Wraps a region.
    pub fn new(region: &'a mut Region<'r, Fr>) -> Self {
        Self {
            region,
            #[cfg(feature = "test-hooks")]
            hooks: hooks::Hooks::new(None),
        }
    }

    /// Assigns an advice cell of `kind`.
    pub fn advice(&mut self, kind: CellKind, column: Column<Advice>, row: usize, value: Fr) -> AssignedValue {
        #[cfg(feature = "test-hooks")]
        let value = self.hooks.advice(kind, value);
        #[cfg(not(feature = "test-hooks"))]
        let _ = kind;
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
}
