//! What the two property-based forgery tests (`forgery.rs`, `forgery_multi.rs`) share: the proptest runner and the
//! forgery subjects, built once per test binary.

use std::sync::OnceLock;

use proptest::test_runner::{Config, TestRunner};

use crate::common::forge::{subjects, Subject};

/// Cases per test unless `PROPTEST_CASES` says otherwise.
pub const DEFAULT_CASES: u32 = 512;

/// A runner of `PROPTEST_CASES` (default [`DEFAULT_CASES`]) cases per test, from a fresh random seed each run; a
/// failure prints its minimal case, nothing is persisted.
pub fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// The forgery subjects (`common::forge::subjects`), built on first use.
pub fn all_subjects() -> &'static [Subject] {
    static SUBJECTS: OnceLock<Vec<Subject>> = OnceLock::new();
    SUBJECTS.get_or_init(subjects)
}
