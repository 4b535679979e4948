//! The input commitment a client computes itself, to check that a proof is about *its* input (int8 values, or the
//! token ids of a language model).

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
    meta.input
        .check_floats(input)
        .map_err(|reason| VerifyError::InputValue { reason })?;
    let quantized = meta.input.quantize(input);
    Ok(poseidon::commit_words(salt, &quantized, meta.input.word_bits()))
}
