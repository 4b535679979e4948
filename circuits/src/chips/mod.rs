//! One chip per op family. Each chip is a `Config` with `configure` (columns, gates, lookups) and an `assign` that
//! lays out one use of it; the model circuit composes them.

pub mod freivalds;
pub mod linear;
pub mod max_pool;
pub mod poseidon;
pub mod range_check;
pub mod requantize;
pub mod table;
