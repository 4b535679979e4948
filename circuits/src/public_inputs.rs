//! The instance column, in the order DESIGN.md fixes: input commitment, nonce, then the quantized outputs.

use halo2_proofs::halo2curves::bn256::Fr;

use crate::field;

/// Row of the input commitment in the instance column.
pub const COMMITMENT_ROW: usize = 0;
/// Row of the request nonce.
pub const NONCE_ROW: usize = 1;
/// First row of the outputs.
pub const OUTPUTS_ROW: usize = 2;

/// The public inputs of one proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicInputs {
    /// `Poseidon(salt, input…)`.
    pub input_commitment: Fr,
    /// The request nonce chosen by the client.
    pub nonce: Fr,
    /// The quantized (int8) outputs.
    pub outputs: Vec<i64>,
}

impl PublicInputs {
    /// The instance column values.
    pub fn to_instance(&self) -> Vec<Fr> {
        let mut column = vec![self.input_commitment, self.nonce];
        column.extend(self.outputs.iter().map(|&v| field::from_i64(v)));
        column
    }
}
