//! zkinfer as a service. The miner runs [`server::serve`] (`zkinfer serve`): `POST /v1/models/{id}/infer` answers
//! the output at once and queues the proof in SQLite-persisted jobs that prover workers take in order; clients and
//! validators fetch the bundle from `GET /v1/jobs/{id}`. Clients use the `zkinfer-client` crate, which checks every
//! answer itself (the verifying key against the pinned model id, the input commitment against its own, the proof
//! against its nonce) and defines the wire types ([`api`]) the server speaks.
//!
//! Pipeline position: after `prove` (the workers call `zkinfer_prover::prove`) and before `verify` (the client calls
//! `zkinfer_verifier`).

pub mod dashboard;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod models;
pub mod queue;
pub mod server;
pub mod state;
pub mod store;
pub mod worker;

pub use error::{ApiError, ServiceError};
pub use server::{serve, ServeConfig, Started};
/// The HTTP API's wire types, shared with the client.
pub use zkinfer_client::api;
pub use zkinfer_client::api::{InferRequest, JobStatus, JobView, ModelInfo};
