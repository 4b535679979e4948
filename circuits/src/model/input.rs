//! How a float input becomes the integers the circuit reads and the input commitment binds: int8 values with one
//! scale per channel of the input (per feature for tabular data, per colour channel for images) or one for the whole
//! tensor, or the token ids of a language model, read as they are.

use serde::{Deserialize, Serialize};

use super::{ACT_BITS, ACT_MAX, ACT_MIN, MAX_VOCAB};

/// Bits of a committed token id: ids are 16-bit words in the commitment.
pub const TOKEN_BITS: u32 = 16;

/// Most channels an input quantization may list (a feature vector of 2^20 values).
pub const MAX_INPUT_CHANNELS: usize = 1 << 20;

/// The scales of the int8 input: element `i` of the flat input is `x_i ≈ q_i · scale_of(i)`, with
/// `scale_of(i) = scales[(i / stride) % scales.len()]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputQuantization {
    /// The scale of each channel; one entry means one scale for the whole tensor.
    pub scales: Vec<f32>,
    /// Flat distance between consecutive channels: 1 for features on the last axis, `H·W` for NCHW images.
    pub stride: usize,
    /// `Some(V)` when the input is token ids in `[0, V)`, which only embeddings read: each float input is an integer
    /// id, taken as it is (`scales` is then `[1]`).
    pub vocab: Option<usize>,
}

impl InputQuantization {
    /// One scale for the whole input.
    pub fn per_tensor(scale: f32) -> Self {
        Self {
            scales: vec![scale],
            stride: 1,
            vocab: None,
        }
    }

    /// Token ids in `[0, vocab)`.
    pub fn tokens(vocab: usize) -> Self {
        Self {
            vocab: Some(vocab),
            ..Self::per_tensor(1.0)
        }
    }

    /// Bits of each committed input word: 8 for int8 values, [`TOKEN_BITS`] for token ids.
    pub fn word_bits(&self) -> u32 {
        match self.vocab {
            Some(_) => TOKEN_BITS,
            None => ACT_BITS,
        }
    }

    /// The range of the integers the input holds: int8, or `[0, V)` for token ids.
    pub fn value_range(&self) -> (i64, i64) {
        match self.vocab {
            Some(v) => (0, v as i64 - 1),
            None => (ACT_MIN, ACT_MAX),
        }
    }

    /// Refuses a float input the model cannot read: for token ids, a value that is not an integer id in
    /// `[0, vocab)` (int8 inputs take any float and clamp it).
    pub fn check_floats(&self, x: &[f32]) -> Result<(), String> {
        let Some(vocab) = self.vocab else { return Ok(()) };
        let id = |v: f32| v.is_finite() && v.fract() == 0.0 && v >= 0.0 && v < vocab as f32;
        match x.iter().enumerate().find(|(_, &v)| !id(v)) {
            Some((i, v)) => Err(format!(
                "input value {v} at index {i} is not a token id: the model reads integer ids in [0, {vocab})"
            )),
            None => Ok(()),
        }
    }

    /// Whether every element shares one scale.
    pub fn is_uniform(&self) -> bool {
        self.scales.windows(2).all(|w| w[0] == w[1])
    }

    /// The scale of flat element `index` (1 for an empty list, which [`Self::check`] refuses).
    pub fn scale_of(&self, index: usize) -> f32 {
        match self.scales.len() {
            0 => 1.0,
            n => self.scales[(index / self.stride.max(1)) % n],
        }
    }

    /// The channel of flat element `index`.
    pub fn channel_of(&self, index: usize) -> usize {
        (index / self.stride.max(1)) % self.scales.len().max(1)
    }

    /// The largest scale: the scale of the whole tensor when it is read as one.
    pub fn max_scale(&self) -> f32 {
        self.scales.iter().copied().fold(0f32, f32::max)
    }

    /// Quantizes a float input: `clamp(round(x_i / scale_of(i)), −128, 127)`, or for token ids the id itself
    /// (clamped into the vocabulary; [`Self::check_floats`] refuses such an input first). The prover and a client
    /// computing its own input commitment use this one definition.
    pub fn quantize(&self, x: &[f32]) -> Vec<i64> {
        if let Some(vocab) = self.vocab {
            return x
                .iter()
                .map(|&v| (v.round() as i64).clamp(0, vocab as i64 - 1))
                .collect();
        }
        (x.iter().enumerate())
            .map(|(i, &v)| {
                (v as f64 / self.scale_of(i) as f64)
                    .round()
                    .clamp(ACT_MIN as f64, ACT_MAX as f64) as i64
            })
            .collect()
    }

    /// Refuses an empty or oversized list, a scale that is not a positive number, and channels that do not tile an
    /// input of `input_len` elements.
    pub fn check(&self, input_len: usize) -> Result<(), String> {
        if let Some(vocab) = self.vocab {
            if !(1..=MAX_VOCAB).contains(&vocab) {
                return Err(format!("a vocabulary of {vocab} tokens; give 1 to {MAX_VOCAB}"));
            }
            if self.scales != [1.0] || self.stride != 1 {
                return Err("token ids are read as they are: one scale of 1".into());
            }
        }
        let n = self.scales.len();
        if n == 0 || n > MAX_INPUT_CHANNELS {
            return Err(format!("{n} input scales; give 1 to {MAX_INPUT_CHANNELS}"));
        }
        if let Some((c, s)) = self
            .scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(format!("input scale {s} of channel {c} is not a positive number"));
        }
        let tiles = self
            .stride
            .checked_mul(n)
            .filter(|&t| t > 0 && input_len.is_multiple_of(t));
        if n > 1 && tiles.is_none() {
            return Err(format!(
                "{n} input channels {} elements apart do not tile an input of {input_len} elements",
                self.stride
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_has_its_own_scale() {
        // Two channels of a 2×3 plane (stride 3): 0.5 for the first plane, 2 for the second.
        let q = InputQuantization {
            scales: vec![0.5, 2.0],
            stride: 3,
            vocab: None,
        };
        assert!(q.check(6).is_ok() && !q.is_uniform());
        assert_eq!(
            q.quantize(&[1.0, -1.0, 100.0, 1.0, -1.0, 1000.0]),
            vec![2, -2, 127, 1, -1, 127]
        );
        assert_eq!((q.channel_of(2), q.channel_of(3)), (0, 1));
        assert_eq!(q.max_scale(), 2.0);
        // Features on the last axis (stride 1) repeat along the leading one.
        let f = InputQuantization {
            scales: vec![1.0, 10.0],
            stride: 1,
            vocab: None,
        };
        assert_eq!(f.quantize(&[5.0, 50.0, -5.0, -50.0]), vec![5, 5, -5, -5]);
    }

    #[test]
    fn malformed_lists_are_refused() {
        let q = |scales: Vec<f32>, stride| InputQuantization {
            scales,
            stride,
            vocab: None,
        };
        assert!(q(vec![], 1).check(4).is_err());
        assert!(q(vec![1.0, f32::NAN], 1).check(4).is_err());
        assert!(q(vec![1.0, -1.0], 1).check(4).is_err());
        assert!(q(vec![1.0, 2.0, 3.0], 1).check(4).is_err());
        assert!(q(vec![1.0, 2.0], 0).check(4).is_err());
        assert!(q(vec![1.0, 2.0], usize::MAX).check(4).is_err());
        assert!(q(vec![1.0], 7).check(4).is_ok());
        assert!(InputQuantization::per_tensor(0.25).check(4).is_ok());
    }

    #[test]
    fn token_ids_are_read_as_they_are_and_checked() {
        let t = InputQuantization::tokens(100);
        assert!(t.check(32).is_ok());
        assert_eq!((t.word_bits(), t.value_range()), (16, (0, 99)));
        assert_eq!(t.quantize(&[0.0, 42.0, 99.0]), [0, 42, 99]);
        assert!(t.check_floats(&[0.0, 42.0, 99.0]).is_ok());
        for bad in [100.0, -1.0, 1.5, f32::NAN, f32::INFINITY] {
            let e = t.check_floats(&[3.0, bad]).unwrap_err();
            assert!(e.contains("index 1") && e.contains("[0, 100)"), "{e}");
        }
        // A vocabulary out of range, or a scale other than 1, is refused.
        assert!(InputQuantization::tokens(0).check(4).is_err());
        assert!(InputQuantization::tokens(MAX_VOCAB + 1).check(4).is_err());
        let scaled = InputQuantization {
            scales: vec![0.5],
            ..InputQuantization::tokens(10)
        };
        assert!(scaled.check(4).is_err());
        // int8 inputs take any float.
        assert!(InputQuantization::per_tensor(1.0).check_floats(&[1e9, -0.5]).is_ok());
    }
}
