//! Terminal output helpers: spinners on stderr, JSON on stdout.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner on stderr for a slow step (hidden when stderr is not a terminal or JSON is requested).
pub fn spinner(message: &str, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Prints a JSON value on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// The warning printed whenever keys come from the insecure development SRS.
pub const INSECURE_SRS_WARNING: &str = "WARNING: keys made with the INSECURE development SRS (--insecure-dev-srs): \
its secret is public, anyone can forge proofs for them. Use --srs with a powers-of-tau file in production.";

/// Refuses an output file that cannot be written, before any long work: its directory must exist and accept a new
/// file, or the file must exist and be writable. Nothing is truncated or left behind.
pub fn ensure_writable(path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if path.is_dir() {
        anyhow::bail!("output {} is a directory; give a file name", path.display());
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("output {} is not writable", path.display()))?;
        return Ok(());
    }
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create the output {}; check that its directory exists and is writable",
                path.display()
            )
        })?;
    drop(probe);
    std::fs::remove_file(path).with_context(|| format!("removing the probe file {}", path.display()))
}

/// Predicted classes as the CLI prints them: `3, 7, -` (`-` where a sample's outputs were empty).
pub fn class_list(classes: &[Option<usize>]) -> String {
    let names: Vec<String> = classes
        .iter()
        .map(|c| c.map_or("-".into(), |c| c.to_string()))
        .collect();
    names.join(", ")
}
