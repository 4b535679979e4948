//! For test suites: a GPU context, or a loud skip when the machine has no adapter (a failure instead when
//! `ZKINFER_REQUIRE_GPU=1`, as CI sets it), so a missing driver never passes silently.

use std::io::Write;

use crate::GpuContext;

/// The variable that turns a missing adapter in a test from a loud skip into a failure.
pub const REQUIRE_GPU_VAR: &str = "ZKINFER_REQUIRE_GPU";

/// Whether [`REQUIRE_GPU_VAR`] is set to `1`.
pub fn gpu_required() -> bool {
    std::env::var(REQUIRE_GPU_VAR).as_deref() == Ok("1")
}

/// Reports that `what` is skipped because of `why`: a framed message on the real stderr (the test harness would
/// capture `eprintln!` of a passing test), or a panic when a GPU is required.
pub fn skip_loudly(what: &str, why: &str) {
    let message = format!("NO GPU ADAPTER: {what} skipped ({why}); set {REQUIRE_GPU_VAR}=1 to fail instead");
    if gpu_required() {
        panic!("{message}");
    }
    let frame = "!".repeat(100);
    let _ = writeln!(std::io::stderr(), "\n{frame}\n{message}\n{frame}\n");
}

/// A context on the best adapter, or `None` after [`skip_loudly`] names `what` as skipped.
pub fn context_or_skip(what: &str) -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(context) => Some(context),
        Err(e) => {
            skip_loudly(what, &e.to_string());
            None
        }
    }
}
