//! The input commitment a client computes itself, to check that a proof is about *its* input.

use zkinfer_circuits::{poseidon, Fr};

use crate::error::VerifyError;
use crate::key::ModelMeta;

/// `Poseidon(salt, quantized input)`: the commitment a proof of `input` under `salt` must carry. Quantizes the float
/// input exactly as the prover does (the scales come from the verifying key's metadata, which the model id covers).
pub fn input_commitment(meta: &ModelMeta, input: &[f32], salt: Fr) -> Result<Fr, VerifyError> {
    if input.len() != meta.input_len {
        return Err(VerifyError::InputLength {
            expected: meta.input_len,
            found: input.len(),
        });
    }
    let quantized = meta.input.quantize(input);
    Ok(poseidon::commit_input(salt, &quantized))
}
