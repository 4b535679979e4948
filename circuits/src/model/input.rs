//! How a float input becomes the int8 values the circuit reads and the input commitment binds: one scale per
//! channel of the input (per feature for tabular data, per colour channel for images), or one for the whole tensor.

use serde::{Deserialize, Serialize};

use super::{ACT_MAX, ACT_MIN};

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
}

impl InputQuantization {
    /// One scale for the whole input.
    pub fn per_tensor(scale: f32) -> Self {
        Self {
            scales: vec![scale],
            stride: 1,
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

    /// Quantizes a float input: `clamp(round(x_i / scale_of(i)), −128, 127)`. The prover and a client computing
    /// its own input commitment use this one definition.
    pub fn quantize(&self, x: &[f32]) -> Vec<i64> {
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
        };
        assert_eq!(f.quantize(&[5.0, 50.0, -5.0, -50.0]), vec![5, 5, -5, -5]);
    }

    #[test]
    fn malformed_lists_are_refused() {
        let q = |scales: Vec<f32>, stride| InputQuantization { scales, stride };
        assert!(q(vec![], 1).check(4).is_err());
        assert!(q(vec![1.0, f32::NAN], 1).check(4).is_err());
        assert!(q(vec![1.0, -1.0], 1).check(4).is_err());
        assert!(q(vec![1.0, 2.0, 3.0], 1).check(4).is_err());
        assert!(q(vec![1.0, 2.0], 0).check(4).is_err());
        assert!(q(vec![1.0, 2.0], usize::MAX).check(4).is_err());
        assert!(q(vec![1.0], 7).check(4).is_ok());
        assert!(InputQuantization::per_tensor(0.25).check(4).is_ok());
    }
}
