//! The circuit's error type: what went wrong laying out a model, naming the layer. Converted to halo2's opaque
//! `Error::Synthesis` only at the `Circuit` boundary (the message is kept in the synthesis record).

use thiserror::Error;

use crate::model::Source;
use crate::params::Chip;

/// A layer the circuit could not plan or lay out.
#[derive(Debug, Error)]
#[error("layer {layer}: {problem}")]
pub struct CircuitError {
    /// The layer's name.
    pub layer: String,
    /// What went wrong.
    pub problem: CircuitProblem,
}

/// What went wrong with one layer.
#[derive(Debug, Error)]
pub enum CircuitProblem {
    /// The circuit parameters lack a chip the layer needs.
    #[error("the circuit parameters lack the {0:?} chip the layer needs")]
    MissingChip(Chip),
    /// A source has no assigned cell (the model was not validated).
    #[error("source {0:?} has no cell")]
    MissingSource(Source),
    /// Freivalds' test was asked for a layer that is not a matrix product.
    #[error("not a matrix product, so it cannot be checked with Freivalds' test")]
    NotAProduct,
    /// The layer's activation table was not loaded.
    #[error("its activation table is not loaded")]
    MissingTable,
    /// A group refers to a kernel that does not exist (the model was not validated).
    #[error("kernel {0} does not exist")]
    MissingKernel(usize),
    /// A requantization column set the circuit does not have.
    #[error("requantization column set {0} does not exist")]
    MissingRequantSet(usize),
    /// An output was never assigned (the model was not validated).
    #[error("output {0} was never assigned")]
    MissingOutput(usize),
    /// halo2 refused an assignment.
    #[error("halo2: {0}")]
    Halo2(#[from] halo2_proofs::plonk::Error),
}
