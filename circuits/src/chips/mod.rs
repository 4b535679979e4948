//! The column gadgets: each chip is a `Config` with `configure` (columns, gates, lookups) and an `assign` that lays
//! out one use of it. The layer chips of [`crate::layers`] compose them into the layers of a model.

pub mod argmax;
pub mod clamp_table;
pub mod freivalds;
pub mod fusion;
pub mod linear;
pub mod max_pool;
pub mod norm;
pub mod poseidon;
pub mod product;
pub mod range_check;
pub mod requantize;
pub mod softmax;
pub mod table;
