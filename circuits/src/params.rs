//! The layout choices that shape the constraint system (and so the verifying key): lane and column counts, the
//! optional chips a model needs, and which linear layers are checked with Freivalds' test.
//!
//! A verifying key carries these parameters and the verifier rebuilds the constraint system from them, so
//! [`CircuitParams::validate`] bounds every field: a key handed out by a miner cannot ask for an absurd one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::chips::clamp_table::{MAX_CLAMP_BITS, MIN_CLAMP_BITS};
use crate::chips::freivalds::MAX_WINDOW_WIDTHS;
pub use crate::chips::range_check::{MAX_LIMB_BITS, MIN_LIMB_BITS};
use crate::model::{Op, QuantizedModel, ACT_BITS};

/// A chip the circuit has only when some layer of the model needs it (the multiply-accumulate, requantization,
/// range-check and Poseidon chips are always there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Chip {
    /// Pairwise maxima (max pools).
    MaxPool,
    /// Activation lookup tables.
    Table,
    /// Elementwise products of two activations.
    Product,
    /// 16-bit outputs with a fused ReLU (`[0, 32767]`): the requantization reads its upper clamp bound from a fixed
    /// column, since the bound it derives from the lower one cannot tell them from int8 ReLU outputs.
    WideRelu,
    /// Table activations fused into the clamp table ([`crate::chips::fusion`]): a table layer that is the only
    /// reader of a requantization's int8 output takes no row of its own (only with a clamp table).
    FusedTables,
    /// Matrix products of two activations, checked in the Freivalds chip's column pairs, which gain an operand
    /// column and a dot-product gate for them ([`crate::chips::freivalds::bilinear`]).
    MatMul,
    /// Softmax rows ([`crate::chips::softmax`]): a column set with its division gates and a lookup into the
    /// activation table, which holds the exponential tables.
    Softmax,
    /// ArgMax rows ([`crate::chips::argmax`]): a column set with its one-hot gates and two byte lookups.
    ArgMax,
    /// Layer-normalization rows ([`crate::chips::norm`]): a column set with its sum, centring, square and
    /// inverse-square-root gates.
    LayerNorm,
}

impl Chip {
    /// The optional chips a layer computing `op` needs.
    pub fn needed_by(op: &Op) -> Vec<Chip> {
        let mut chips = match op {
            Op::MaxPool(_) => vec![Chip::MaxPool],
            Op::Table(_) | Op::Embedding(_) => vec![Chip::Table],
            Op::Mul(_) => vec![Chip::Product],
            Op::MatMul(_) => vec![Chip::MatMul],
            Op::Softmax(_) => vec![Chip::MaxPool, Chip::Table, Chip::Softmax],
            Op::ArgMax(_) => vec![Chip::ArgMax],
            Op::LayerNorm(_) => vec![Chip::LayerNorm],
            Op::Linear(_) | Op::Gather(_) => vec![],
        };
        let range = match op {
            Op::Linear(lin) => Some(lin.output_range()),
            Op::Mul(mul) => Some(mul.output_range()),
            Op::MatMul(matmul) => Some(matmul.output_range()),
            Op::LayerNorm(norm) => Some(norm.output_range()),
            _ => None,
        };
        if range.is_some_and(|r| r.relu && r.bits > ACT_BITS) {
            chips.push(Chip::WideRelu);
        }
        chips
    }
}

/// Layout choices that change the constraint system (and so the verifying key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CircuitParams {
    /// Output channels computed side by side in the multiply-accumulate chip.
    pub mac_lanes: usize,
    /// Inputs each multiply-accumulate row takes (several for matrix–vector products whose rows set `k`).
    pub mac_taps: usize,
    /// Range-check columns (each with its own lookup into the shared table).
    pub range_columns: usize,
    /// Bits per range-check limb (8 to 15; the table holds every width up to it, so it grows as
    /// `2^(limb_bits + 1)` rows and the planner takes the widest that fits: [`crate::chips::range_check`]).
    pub limb_bits: u32,
    /// Requantization column sets (five advice columns, the fixed ones and a gate each), filled side by side; the
    /// first also holds the sponge of the input commitment.
    pub requant_sets: usize,
    /// Quotient bits of the clamp table ([`crate::chips::clamp_table`]; 0: none): int8 requantizations whose
    /// quotients fit look their quotient and output up in it instead of range-checking a slack and the output.
    pub clamp_bits: u32,
    /// The optional chips the circuit has.
    pub chips: BTreeSet<Chip>,
    /// Linear layers, by index, checked as matrix products with Freivalds' test instead of the multiply-accumulate
    /// chip.
    pub freivalds_layers: BTreeSet<usize>,
    /// Column pairs of the Freivalds chip (its runs spread over them).
    pub freivalds_pairs: usize,
    /// Window widths of the Freivalds chip's stride gates: a Freivalds layer whose `X` has sliding windows of
    /// one of these widths ([`crate::chips::freivalds::product_windows`]) is evaluated through them.
    pub freivalds_widths: BTreeSet<usize>,
}

/// Most multiply-accumulate lanes a layout may ask for.
pub const MAX_MAC_LANES: usize = 16;
/// Most range-check columns a layout may ask for.
pub const MAX_RANGE_COLUMNS: usize = 16;
/// Most inputs per multiply-accumulate row a layout may ask for.
pub const MAX_MAC_TAPS: usize = 8;
/// Most requantization column sets a layout may ask for.
pub const MAX_REQUANT_SETS: usize = 8;
/// Most Freivalds column pairs a layout may ask for.
pub const MAX_FREIVALDS_PAIRS: usize = 8;
/// Most layers a model may have (and so the bound of a Freivalds layer index).
pub const MAX_LAYERS: usize = 1 << 16;
/// Widest Freivalds window (a window is at most one row of the largest circuit).
pub const MAX_WINDOW_WIDTH: usize = 1 << crate::layout::MAX_K;

impl CircuitParams {
    /// Whether layer `index` is checked with Freivalds' test.
    pub fn uses_freivalds(&self, index: usize) -> bool {
        self.freivalds_layers.contains(&index)
    }

    /// Whether the circuit has the Freivalds chip: for Freivalds layers, or for matrix products of two activations.
    pub fn has_freivalds(&self) -> bool {
        !self.freivalds_layers.is_empty() || self.has(Chip::MatMul)
    }

    /// Whether the circuit has `chip`.
    pub fn has(&self, chip: Chip) -> bool {
        self.chips.contains(&chip)
    }

    /// Refuses parameters no planner chooses, so that parameters read from a file (a verifying key handed out by
    /// a miner) cannot ask for an absurd constraint system: lanes in `[1, 16]`, taps per row in `[1, 8]`, range columns in `[1, 16]`,
    /// limbs of `[8, 15]` bits, requantization sets in `[1, 8]`, a clamp table of 0 or `[2, 16]` quotient bits (not 0 with
    /// fused tables), Freivalds pairs in `[1, 8]`, Freivalds layer indices below [`MAX_LAYERS`],
    /// at most [`MAX_WINDOW_WIDTHS`] window widths in `[2, MAX_WINDOW_WIDTH]` (none without Freivalds layers).
    pub fn validate(&self) -> Result<(), String> {
        let bounded = |what: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("circuit parameters: {value} {what} outside [1, {max}]"))
            }
        };
        bounded("multiply-accumulate lanes", self.mac_lanes, MAX_MAC_LANES)?;
        bounded("multiply-accumulate taps per row", self.mac_taps, MAX_MAC_TAPS)?;
        bounded("range columns", self.range_columns, MAX_RANGE_COLUMNS)?;
        if !(MIN_LIMB_BITS..=MAX_LIMB_BITS).contains(&self.limb_bits) {
            return Err(format!(
                "circuit parameters: {}-bit range-check limbs outside [{MIN_LIMB_BITS}, {MAX_LIMB_BITS}]",
                self.limb_bits
            ));
        }
        bounded("requantization column sets", self.requant_sets, MAX_REQUANT_SETS)?;
        if self.clamp_bits != 0 && !(MIN_CLAMP_BITS..=MAX_CLAMP_BITS).contains(&self.clamp_bits) {
            return Err(format!(
                "circuit parameters: a clamp table of {}-bit quotients (0 for none, or [{MIN_CLAMP_BITS}, \
                 {MAX_CLAMP_BITS}])",
                self.clamp_bits
            ));
        }
        if self.has(Chip::FusedTables) && self.clamp_bits == 0 {
            return Err("circuit parameters: fused table activations without a clamp table to hold them".into());
        }
        bounded("Freivalds column pairs", self.freivalds_pairs, MAX_FREIVALDS_PAIRS)?;
        if let Some(&last) = self.freivalds_layers.last() {
            if last >= MAX_LAYERS {
                return Err(format!(
                    "circuit parameters: Freivalds layer {last} beyond the {MAX_LAYERS} layers a model may have"
                ));
            }
        }
        if self.freivalds_widths.len() > MAX_WINDOW_WIDTHS
            || (self.freivalds_widths.iter()).any(|w| !(2..=MAX_WINDOW_WIDTH).contains(w))
            || (self.freivalds_layers.is_empty() && !self.freivalds_widths.is_empty())
        {
            return Err(format!(
                "circuit parameters: Freivalds window widths {:?} (at most {MAX_WINDOW_WIDTHS}, each in [2, \
                 {MAX_WINDOW_WIDTH}], and only with Freivalds layers)",
                self.freivalds_widths
            ));
        }
        Ok(())
    }

    /// The layout the planner picks for `model` ([`crate::layout::choose`]); the default layout with the chips
    /// the model uses if the model cannot be planned (setup then reports why).
    pub fn for_model(model: &QuantizedModel) -> Self {
        crate::layout::choose(model).map_or_else(|_| Self::with_chips_of(model), |(params, _)| params)
    }

    /// The default layout with exactly the chips `model` uses.
    pub fn with_chips_of(model: &QuantizedModel) -> Self {
        Self {
            chips: model.layers.iter().flat_map(|l| Chip::needed_by(&l.op)).collect(),
            ..Self::default()
        }
    }
}

impl Default for CircuitParams {
    fn default() -> Self {
        Self {
            mac_lanes: 4,
            mac_taps: 1,
            range_columns: 1,
            limb_bits: MIN_LIMB_BITS,
            requant_sets: 1,
            clamp_bits: 0,
            chips: BTreeSet::new(),
            freivalds_layers: BTreeSet::new(),
            freivalds_pairs: 1,
            freivalds_widths: BTreeSet::new(),
        }
    }
}
