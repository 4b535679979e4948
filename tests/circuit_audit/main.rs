//! Audits of the circuits beyond single-cell tampering, on the shipped models and the small models of the
//! circuit tests (`circuits/tests/common`, included here):
//!
//! - `snapshot`: the constraint system of every model is pinned in `tests/snapshots/constraint-systems.txt`;
//! - `shipped`: the independent checker and the keygen-against-proving layout comparison on the shipped models;
//! - `forgeries`: random locally re-solved forgeries on the shipped models.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../circuits/tests/common/mod.rs"]
mod small;

mod forgeries;
mod models;
mod shipped;
mod snapshot;
