//! The instance column, in the order DESIGN.md fixes: input commitment, nonce, then the quantized outputs — packed
//! [`OUTPUTS_PER_ROW`] to a row as 16-bit digits (`Σ y_i · 2^(16 i)`), so that a model with thousands of outputs (a
//! language model's logits at every position) has a short instance, which the verifier evaluates row by row.

use halo2_proofs::halo2curves::bn256::Fr;

use crate::field;

/// Row of the input commitment in the instance column.
pub const COMMITMENT_ROW: usize = 0;
/// Row of the request nonce.
pub const NONCE_ROW: usize = 1;
/// First row of the outputs.
pub const OUTPUTS_ROW: usize = 2;
/// Bits of one output's digit in a packed row: every output is a signed integer of at most 16 bits (int8 or
/// 16-bit requantized values, probabilities, indices), range-checked where it was computed, so the balanced base-2^16
/// digits make the packing injective.
pub const OUTPUT_WORD_BITS: u32 = 16;
/// Outputs per instance row: 15 digits of 16 bits (240 bits, below the field's 254).
pub const OUTPUTS_PER_ROW: usize = 15;

/// The packed rows of `outputs`: for each run of [`OUTPUTS_PER_ROW`], `Σ y_i · 2^(16 i)` in the field (Horner from
/// the last, as the circuit computes it).
pub fn pack_outputs(outputs: &[Fr]) -> Vec<Fr> {
    let radix = Fr::from(1u64 << OUTPUT_WORD_BITS);
    (outputs.chunks(OUTPUTS_PER_ROW))
        .map(|chunk| chunk.iter().rev().fold(Fr::from(0), |sum, y| sum * radix + y))
        .collect()
}

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
    /// The instance column values: the commitment, the nonce and the packed outputs.
    pub fn to_instance(&self) -> Vec<Fr> {
        let outputs: Vec<Fr> = self.outputs.iter().map(|&v| field::from_i64(v)).collect();
        let mut column = vec![self.input_commitment, self.nonce];
        column.extend(pack_outputs(&outputs));
        column
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chips::linear::pack_words;

    #[test]
    fn outputs_pack_fifteen_to_a_row_as_balanced_16_bit_digits() {
        assert_eq!(pack_words(OUTPUT_WORD_BITS), OUTPUTS_PER_ROW);
        let outputs: Vec<i64> = (0..31).map(|i| [-32768, 32767, -1, 0, 5][i % 5]).collect();
        let public = PublicInputs {
            input_commitment: Fr::from(7),
            nonce: Fr::from(9),
            outputs: outputs.clone(),
        };
        let instance = public.to_instance();
        assert_eq!(instance.len(), 2 + 3);
        assert_eq!(&instance[..2], &[Fr::from(7), Fr::from(9)]);
        // Row 2: Σ y_i · 2^(16 i) over the first fifteen, as signed digits.
        let row = (0..15).rev().fold(Fr::from(0), |sum, i| {
            sum * Fr::from(65536) + field::from_i64(outputs[i])
        });
        assert_eq!(instance[2], row);
        // The last row holds the one left over.
        assert_eq!(instance[4], field::from_i64(outputs[30]));
        // Changing one output changes its row only.
        let mut other = public.clone();
        other.outputs[16] += 1;
        let changed = other.to_instance();
        assert_eq!((changed[2], changed[4]), (instance[2], instance[4]));
        assert_ne!(changed[3], instance[3]);
    }
}
