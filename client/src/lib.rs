//! zkinfer's client side: the wire types of the miner's HTTP API ([`api`]), a client that sends inputs and verifies
//! every answer against a pinned model id ([`client`]), and the latency statistics of its test runs ([`stats`]).
//!
//! It depends on the verifier and an HTTP client only: a validator or a client application builds no prover, no
//! ONNX importer, no GPU code and no database.

pub mod api;
pub mod client;
pub mod stats;

pub use api::{InferRequest, JobStatus, JobView, ModelInfo};
pub use client::{test_batch, Client, ClientError, RequestOptions, TestBatchConfig, TestBatchReport, VerifiedAnswer};
