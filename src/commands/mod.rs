//! One file per subcommand; each parses its arguments, calls the library and prints text or JSON.

pub mod client;
pub mod compile;
pub mod demo;
pub mod generate;
pub mod gpu_info;
pub mod prove;
pub mod serve;
pub mod setup;
pub mod verify;
pub mod verify_batch;
