//! zkinfer circuits: the quantized model IR and the halo2 chips that prove its integer inference.
//!
//! Pipeline position: `import → quantize → **circuit** → prove → verify`. This crate is light (halo2, ff,
//! serde) so that the verifier can rebuild the constraint system without the prover's dependencies.

pub mod arith;
pub mod assign;
pub mod chips;
pub mod circuit;
pub mod column_rows;
pub mod error;
pub mod field;
pub mod layers;
pub mod layout;
pub mod model;
pub mod params;
pub mod poseidon;
pub mod public_inputs;

#[cfg(feature = "test-hooks")]
pub use circuit::SynthesisRecord;
pub use circuit::{ModelCircuit, Witness};
pub use error::{CircuitError, CircuitProblem};
pub use halo2_proofs::halo2curves::bn256::Fr;
pub use model::QuantizedModel;
pub use params::{Chip, CircuitParams};
pub use public_inputs::PublicInputs;
