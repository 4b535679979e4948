//! Next-token figures of a sequence model (`[T, V]` logits: one prediction per position) against the tokens that
//! really follow: top-1 accuracy and perplexity of the float and of the quantized model.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::accuracy::argmax;
use crate::error::{ProverError, Result};

/// The float and the quantized model as next-token predictors on held-out text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextTokenReport {
    /// Positions scored (samples × positions per sample).
    pub positions: usize,
    /// Fraction of positions whose float argmax is the next token.
    pub float_top1: f64,
    /// Fraction of positions whose int8 argmax is the next token.
    pub int8_top1: f64,
    /// `exp(mean −log p(next token))` under the softmax of the float logits.
    pub float_perplexity: f64,
    /// The same under the softmax of the dequantized int8 logits.
    pub int8_perplexity: f64,
}

/// `−log softmax(row)[label]`, in f64 (log-sum-exp from the row's maximum).
fn negative_log_likelihood(row: &[f32], label: usize) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - row[label] as f64
}

/// Scores float and dequantized int8 outputs cut into rows of `row_len` logits against `labels` (one per row of
/// each sample).
pub fn next_token_report(
    float_out: &[Vec<f32>],
    int8_out: &[Vec<f32>],
    row_len: usize,
    labels: &[Vec<usize>],
) -> Result<NextTokenReport> {
    let bad = |reason: String| ProverError::FloatReference { reason };
    if float_out.len() != labels.len() || int8_out.len() != labels.len() {
        return Err(bad(format!(
            "{} label lists for {} float and {} int8 results",
            labels.len(),
            float_out.len(),
            int8_out.len()
        )));
    }
    let row_len = row_len.max(1);
    let (mut positions, mut float_hits, mut int8_hits) = (0usize, 0usize, 0usize);
    let (mut float_nll, mut int8_nll) = (0f64, 0f64);
    for (i, ((f, q), labels)) in float_out.iter().zip(int8_out).zip(labels).enumerate() {
        let rows = f.len() / row_len;
        if rows != labels.len() || q.len() != f.len() {
            return Err(bad(format!(
                "sample {i}: {} labels for an output of {rows} rows of {row_len}; give one label per position",
                labels.len()
            )));
        }
        for ((fr, qr), &label) in f.chunks_exact(row_len).zip(q.chunks_exact(row_len)).zip(labels) {
            if label >= row_len {
                return Err(bad(format!(
                    "sample {i}: label {label} is not one of the {row_len} classes"
                )));
            }
            positions += 1;
            float_hits += usize::from(argmax(fr) == label);
            int8_hits += usize::from(argmax(qr) == label);
            float_nll += negative_log_likelihood(fr, label);
            int8_nll += negative_log_likelihood(qr, label);
        }
    }
    let n = positions.max(1) as f64;
    Ok(NextTokenReport {
        positions,
        float_top1: float_hits as f64 / n,
        int8_top1: int8_hits as f64 / n,
        float_perplexity: (float_nll / n).exp(),
        int8_perplexity: (int8_nll / n).exp(),
    })
}

impl fmt::Display for NextTokenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: f64| format!("{:.2}%", 100.0 * v);
        writeln!(
            f,
            "{:<28}{:>9}{:>9}  (each of {} positions vs the token that follows)",
            "  next-token top-1",
            pct(self.float_top1),
            pct(self.int8_top1),
            self.positions
        )?;
        write!(
            f,
            "{:<28}{:>9.3}{:>9.3}",
            "  perplexity", self.float_perplexity, self.int8_perplexity
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_each_position_against_the_token_that_follows() {
        // One sample of two positions over three tokens: the float model is sure and right at both; the int8 one
        // is right at the first only.
        let float = vec![vec![10.0, 0.0, 0.0, 0.0, 0.0, 10.0]];
        let int8 = vec![vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]];
        let r = next_token_report(&float, &int8, 3, &[vec![0, 2]]).unwrap();
        assert_eq!((r.positions, r.float_top1, r.int8_top1), (2, 1.0, 0.5));
        assert!((r.float_perplexity - 1.0).abs() < 1e-3, "{r:?}");
        // Uniform logits give a perplexity of the vocabulary size.
        let uniform = next_token_report(&[vec![0.0; 4]], &[vec![0.0; 4]], 4, &[vec![1]]).unwrap();
        assert!((uniform.int8_perplexity - 4.0).abs() < 1e-9);
        assert!(r.to_string().contains("perplexity") && r.to_string().contains("50.00%"));
        // Labels that do not fit the output are refused.
        assert!(next_token_report(&float, &int8, 3, &[vec![0]]).is_err());
        assert!(next_token_report(&float, &int8, 3, &[vec![0, 3]]).is_err());
        assert!(next_token_report(&float, &int8, 3, &[]).is_err());
    }
}
