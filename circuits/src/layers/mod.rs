//! One [`LayerChip`] per IR op: how the planner sizes a layer and how the circuit lays it out, on the chips of
//! [`crate::chips`]. The planner ([`crate::layout::plan`]) and the synthesis ([`crate::circuit`]) are loops over
//! the model's layers that call [`chip_of`]; both advance the same [`Cursors`], so the plan is the layout.

pub mod argmax;
pub mod embedding;
pub mod gather;
pub mod linear;
pub mod matmul;
pub mod max_pool;
pub mod mul;
pub mod norm;
pub mod softmax;
pub mod table;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::assign::{AssignedValue, Assigner};
use crate::chips::freivalds::{ProductShape, Windows};
use crate::chips::fusion::Fusion;
use crate::chips::requantize::Accumulator;
use crate::circuit::ModelConfig;
use crate::column_rows::ColumnRows;
use crate::error::CircuitProblem;
use crate::model::{Layer, Op, OutputRange, QuantizedModel, Rescale, Source};
use crate::params::CircuitParams;

pub use linear::ProductCheck;
pub use matmul::MatMulCheck;

/// Next free row of each column group. Synthesis advances them as it assigns; the planner advances them by the
/// same amounts without assigning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursors {
    /// Multiply-accumulate columns.
    pub linear: usize,
    /// Requantization column sets (the first shared with the Poseidon sponge, which comes first in it).
    pub requant: ColumnRows,
    /// Range-check columns.
    pub range: ColumnRows,
    /// Max-pool columns.
    pub pool: usize,
    /// Activation-table columns.
    pub table: usize,
    /// Product columns.
    pub product: usize,
    /// Softmax columns (row 0 blank).
    pub softmax: usize,
    /// ArgMax columns (row 0 blank).
    pub argmax: usize,
    /// Layer-norm columns (row 0 blank).
    pub norm: usize,
    /// Freivalds column pairs (second phase: the planner places each product as its layer comes; synthesis
    /// assigns them all after the last layer).
    pub freivalds: ColumnRows,
}

impl Cursors {
    /// Rows used in the layer groups (all but requantization and range checks), Freivalds pairs summed.
    fn layer_rows(&self) -> usize {
        self.linear
            + self.pool
            + self.table
            + self.product
            + self.softmax
            + self.argmax
            + self.norm
            + self.freivalds.total()
    }
}

/// What the planner knows while sizing one layer.
pub struct PlanContext<'m> {
    /// The model.
    pub model: &'m QuantizedModel,
    /// The widest input of each layer ([`QuantizedModel::input_bits`] of a linear layer), by index.
    pub input_bits: &'m [u32],
    /// The windows of each Freivalds candidate ([`crate::chips::freivalds::product_windows`]), by index.
    pub windows: &'m [Option<Windows>],
    /// Each linear layer's shape as a matrix product ([`crate::chips::freivalds::product_shape`]), by index, when
    /// worked out once for the planning (none: worked out each time).
    pub shapes: Option<&'m [Option<ProductShape>]>,
    /// The layout being planned.
    pub params: &'m CircuitParams,
    /// The table activations it fuses into the clamp table.
    pub fusion: &'m Fusion,
    /// The layer's index.
    pub index: usize,
    /// The rows used so far.
    pub rows: Cursors,
    /// Whether requantization rows and range checks are already placed (the planner knows where they go for these
    /// limbs, range columns and requantization sets): chips then only count their lookups.
    pub requantization_placed: bool,
    /// The linear layers' requantization rows per kernel, worked out once per layer, limb bits and clamp bits
    /// across the candidates the planner tries (none: worked out each time).
    pub kernel_rows: Option<&'m KernelRowsCache>,
}

/// The range-check rows of each kernel of a linear layer's requantizations ([`PlanContext::requantization_rows`]),
/// and the lookups all its outputs take.
#[derive(Debug)]
pub struct KernelRows {
    /// Per kernel: the rows of its remainder, slack and output checks.
    pub rows: Vec<[usize; 3]>,
    /// Lookups of every output's requantization.
    pub lookups: usize,
}

/// [`KernelRows`] by layer index, limb bits and clamp-table bits.
pub type KernelRowsCache = Mutex<HashMap<(usize, u32, u32), Arc<KernelRows>>>;

/// What one layer costs, as its chip reports it to the planner (the row counts come from the cursors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// How the layer is laid out: `mac`, `freivalds`, `max`, `table`, `move`, `mul`, `matmul`, `softmax`, `argmax`,
    /// `layernorm` or `embedding`.
    pub layout: &'static str,
    /// Lookups it performs.
    pub lookups: usize,
}

impl PlanContext<'_> {
    /// Places the range checks of one requantization by `rescale` into `out` and one requantization row; returns
    /// the range-check rows it took.
    pub fn place_requantization(&mut self, rescale: &Rescale, out: OutputRange) -> usize {
        let rows = self.requantization_rows(rescale, out);
        self.place_requantization_rows(rows)
    }

    /// The rows of each range check of one requantization by `rescale` into `out` (remainder, slack, output; 0
    /// for the slack and output of one checked through the clamp table).
    pub fn requantization_rows(&self, rescale: &Rescale, out: OutputRange) -> [usize; 3] {
        let checks = crate::chips::requantize::range_checks(rescale, out, self.params.clamp_bits);
        let mut rows = [0; 3];
        for (row, check) in rows.iter_mut().zip(checks) {
            *row = check.rows(self.params.limb_bits);
        }
        rows
    }

    /// [`place_requantization`](Self::place_requantization) with its range checks' rows worked out once (by
    /// [`requantization_rows`](Self::requantization_rows)) for every output of a kernel.
    pub fn place_requantization_rows(&mut self, rows: [usize; 3]) -> usize {
        if !self.requantization_placed {
            for check in rows.into_iter().filter(|&rows| rows > 0) {
                self.rows.range.place(check);
            }
            self.rows.requant.place(1);
        }
        // A requantization through the clamp table has no output check and looks its output up once.
        rows.iter().sum::<usize>() + usize::from(rows[2] == 0)
    }
}

/// Everything a layer chip needs while laying out one layer.
pub struct AssignContext<'c, 'a, 'r> {
    /// The model.
    pub model: &'c QuantizedModel,
    /// The circuit's columns.
    pub config: &'c ModelConfig,
    /// Writes the cells.
    pub a: &'c mut Assigner<'a, 'r>,
    /// The rows used so far.
    pub rows: &'c mut Cursors,
    /// The cells of every tensor computed so far (tensor 0 the input).
    pub tensors: &'c [Vec<AssignedValue>],
    /// The ids of the model's activation tables.
    pub tables: &'c HashMap<Vec<i8>, u64>,
    /// The table activations fused into the clamp table.
    pub fusion: &'c Fusion,
    /// The layer's index.
    pub index: usize,
    /// Matrix products by constant weights left for the second phase.
    pub products: &'c mut Vec<ProductCheck>,
    /// Matrix products of two activations left for the second phase.
    pub matmuls: &'c mut Vec<MatMulCheck>,
    /// Whether this layer is checked with Freivalds' test.
    pub freivalds: bool,
    /// The window widths the Freivalds chip has stride gates for.
    pub freivalds_widths: &'c BTreeSet<usize>,
}

impl AssignContext<'_, '_, '_> {
    /// The cell of `s`.
    pub fn cell(&self, s: &Source) -> Result<AssignedValue, CircuitProblem> {
        self.tensors
            .get(s.tensor)
            .and_then(|t| t.get(s.index))
            .copied()
            .ok_or(CircuitProblem::MissingSource(*s))
    }

    /// Requantizes one accumulator in the next requantization row, range-checking in the range columns (with the
    /// layer's fused activation, if it has one); returns the output and accumulator cells.
    pub fn requantize(
        &mut self,
        rescale: &Rescale,
        out: OutputRange,
        acc: Accumulator<'_>,
    ) -> Result<(AssignedValue, AssignedValue), CircuitProblem> {
        let config = self.config;
        let (set, row) = self.rows.requant.place(1);
        let chip = config.requant.get(set).ok_or(CircuitProblem::MissingRequantSet(set))?;
        let activation = self.fusion.of_producer(self.index);
        let cells = chip.assign(
            self.a,
            row,
            &config.range,
            &mut self.rows.range,
            rescale,
            out,
            acc,
            activation,
        )?;
        Ok(cells)
    }
}

/// How the circuit proves one kind of layer.
pub trait LayerChip {
    /// Advances `ctx.rows` by what [`LayerChip::assign`] will use for `layer`, and reports its layout and lookups.
    fn plan(&self, layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<Planned, CircuitProblem>;

    /// Lays out `layer` on the cells of earlier tensors; returns its output cells, in order.
    fn assign(&self, layer: &Layer, ctx: &mut AssignContext<'_, '_, '_>) -> Result<Vec<AssignedValue>, CircuitProblem>;
}

/// The chip that proves `op`.
pub fn chip_of(op: &Op) -> &dyn LayerChip {
    match op {
        Op::Linear(linear) => linear,
        Op::MaxPool(pool) => pool,
        Op::Table(table) => table,
        Op::Gather(sources) => sources,
        Op::Mul(mul) => mul,
        Op::MatMul(matmul) => matmul,
        Op::Softmax(softmax) => softmax,
        Op::LayerNorm(norm) => norm,
        Op::ArgMax(argmax) => argmax,
        Op::Embedding(embedding) => embedding,
    }
}

/// Plans one layer: its chip's report, with the rows read off the cursors.
pub fn plan_layer(layer: &Layer, ctx: &mut PlanContext<'_>) -> Result<crate::layout::LayerCost, CircuitProblem> {
    let before = ctx.rows.clone();
    let planned = chip_of(&layer.op).plan(layer, ctx)?;
    Ok(crate::layout::LayerCost {
        name: layer.name.clone(),
        op_type: layer.op_type.clone(),
        output_shape: layer.output_shape.clone(),
        layout: planned.layout.into(),
        rows: ctx.rows.layer_rows() - before.layer_rows(),
        requant_rows: ctx.rows.requant.total() - before.requant.total(),
        range_rows: ctx.rows.range.total() - before.range.total(),
        lookups: planned.lookups,
    })
}

/// The output cells in output order, refusing a gap.
fn collect_outputs(out: Vec<Option<AssignedValue>>) -> Result<Vec<AssignedValue>, CircuitProblem> {
    out.into_iter()
        .enumerate()
        .map(|(o, cell)| cell.ok_or(CircuitProblem::MissingOutput(o)))
        .collect()
}
