//! Regression figures: how far the quantized model's real-valued outputs are from the float model's, and how well
//! each explains the targets (R²), for models whose outputs are numbers rather than class scores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The quantized outputs against the float outputs, and both against the targets when a dataset has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// R² of the float outputs against the targets.
    pub float_r2: Option<f64>,
    /// R² of the dequantized outputs against the targets.
    pub quantized_r2: Option<f64>,
    /// R² of the dequantized outputs against the float outputs (1 when they are equal).
    pub fidelity_r2: f64,
    /// `Σ|q − f| / Σ|f|`: the mean error relative to the mean output magnitude.
    pub mean_relative_error: f64,
    /// `max|q − f| / max|f|`: the largest error relative to the largest output magnitude.
    pub max_relative_error: f64,
    /// Mean |float output − target|, when there are targets.
    pub float_mean_abs_error: Option<f64>,
    /// Mean |dequantized output − target|, when there are targets.
    pub quantized_mean_abs_error: Option<f64>,
}

/// `1 − Σ(t − y)² / Σ(t − mean t)²` over every sample and output; `None` for rows of other lengths, or targets
/// without variance.
pub fn r_squared(targets: &[Vec<f32>], predictions: &[Vec<f32>]) -> Option<f64> {
    if targets.len() != predictions.len() || targets.iter().zip(predictions).any(|(t, y)| t.len() != y.len()) {
        return None;
    }
    let values = || targets.iter().flatten().map(|&v| v as f64);
    let n = values().count();
    let mean = values().sum::<f64>() / n.max(1) as f64;
    let total: f64 = values().map(|t| (t - mean).powi(2)).sum();
    let residual: f64 = (targets.iter().flatten().zip(predictions.iter().flatten()))
        .map(|(&t, &y)| (t as f64 - y as f64).powi(2))
        .sum();
    (n > 0 && total > 0.0).then(|| 1.0 - residual / total)
}

fn mean_abs_error(a: &[Vec<f32>], b: &[Vec<f32>]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = (a.iter().flatten().zip(b.iter().flatten()))
        .map(|(&x, &y)| (x as f64, y as f64))
        .collect();
    let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len());
    (same && !pairs.is_empty()).then(|| pairs.iter().map(|(x, y)| (x - y).abs()).sum::<f64>() / pairs.len() as f64)
}

/// The report for float and dequantized outputs (one row per sample) and optional targets.
pub fn regression_report(float: &[Vec<f32>], quantized: &[Vec<f32>], targets: Option<&[Vec<f32>]>) -> RegressionReport {
    let flat = |v: &[Vec<f32>]| v.iter().flatten().map(|&x| x as f64).collect::<Vec<f64>>();
    let (f, q) = (flat(float), flat(quantized));
    let errors: Vec<f64> = f.iter().zip(&q).map(|(a, b)| (a - b).abs()).collect();
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    RegressionReport {
        float_r2: targets.and_then(|t| r_squared(t, float)),
        quantized_r2: targets.and_then(|t| r_squared(t, quantized)),
        fidelity_r2: r_squared(float, quantized).unwrap_or(if errors.iter().all(|&e| e == 0.0) { 1.0 } else { 0.0 }),
        mean_relative_error: ratio(errors.iter().sum(), f.iter().map(|v| v.abs()).sum()),
        max_relative_error: ratio(
            errors.iter().copied().fold(0.0, f64::max),
            f.iter().fold(0f64, |m, v| m.max(v.abs())),
        ),
        float_mean_abs_error: targets.and_then(|t| mean_abs_error(t, float)),
        quantized_mean_abs_error: targets.and_then(|t| mean_abs_error(t, quantized)),
    }
}

impl fmt::Display for RegressionReport {
    /// R² (float, quantized), the error against the targets and the relative output error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        writeln!(f, "  {:<26}{:>9}{:>9}", "regression", "float", "int8")?;
        writeln!(
            f,
            "  {:<26}{:>9}{:>9}",
            "  R² vs targets",
            num(self.float_r2),
            num(self.quantized_r2)
        )?;
        writeln!(
            f,
            "  {:<26}{:>9}{:>9}",
            "  mean |error| vs targets",
            num(self.float_mean_abs_error),
            num(self.quantized_mean_abs_error)
        )?;
        write!(
            f,
            "    int8 vs float: R² {:.5}, relative error mean {:.3}%, max {:.3}%",
            self.fidelity_r2,
            100.0 * self.mean_relative_error,
            100.0 * self.max_relative_error
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_squared_of_known_fits() {
        let t = vec![vec![1.0], vec![2.0], vec![3.0]];
        assert_eq!(r_squared(&t, &t), Some(1.0));
        // Predicting the mean explains nothing.
        assert_eq!(r_squared(&t, &[vec![2.0], vec![2.0], vec![2.0]]), Some(0.0));
        // Residuals 0.5, 0, −0.5 over a total of 2: 1 − 0.5 / 2.
        assert_eq!(r_squared(&t, &[vec![0.5], vec![2.0], vec![3.5]]), Some(0.75));
        assert_eq!(r_squared(&[vec![1.0], vec![1.0]], &[vec![1.0], vec![1.0]]), None);
        assert_eq!(r_squared(&t, &t[..2]), None);
    }

    #[test]
    fn report_against_float_and_targets() {
        let float = vec![vec![10.0], vec![20.0]];
        let quantized = vec![vec![11.0], vec![20.0]];
        let targets = vec![vec![10.0], vec![22.0]];
        let r = regression_report(&float, &quantized, Some(&targets));
        assert_eq!(r.mean_relative_error, 1.0 / 30.0);
        assert_eq!(r.max_relative_error, 1.0 / 20.0);
        assert_eq!(r.float_mean_abs_error, Some(1.0));
        assert_eq!(r.quantized_mean_abs_error, Some(1.5));
        // Float: residuals 0 and 2 over a total of 72.
        assert_eq!(r.float_r2, Some(1.0 - 4.0 / 72.0));
        assert_eq!(r.fidelity_r2, 1.0 - 1.0 / 50.0);
        let text = r.to_string();
        assert!(text.contains("R² vs targets") && text.contains("0.9444"), "{text}");
        let r = regression_report(&float, &float, None);
        assert_eq!((r.float_r2, r.fidelity_r2, r.mean_relative_error), (None, 1.0, 0.0));
    }
}
