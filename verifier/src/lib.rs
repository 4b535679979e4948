//! zkinfer verifier: proof bundles and their verification against a verifying key, a model id, an input
//! commitment and a nonce. Light by design (halo2 and the circuits crate, no prover dependencies) so that
//! validators and clients can embed it.

pub mod batch;
pub mod bundle;
pub mod commitment;
pub mod decode;
pub mod envelope;
pub mod error;
pub mod generation;
pub mod halo2_key;
pub mod key;
pub mod key_dir;
pub mod replay;
pub mod srs_points;
pub mod transcript;
pub mod verify;
pub mod vocab;

pub use batch::{verify_batch, BatchItem, BatchReport};
pub use bundle::{field_from_hex, field_to_hex, ProofBundle};
pub use commitment::input_commitment;
pub use error::VerifyError;
pub use generation::{verify_generation, GenerationBundle, VerifiedGeneration};
pub use key::{model_id_of_file, ModelMeta, VerifierKey};
pub use key_dir::load_verifier_key;
pub use replay::{verify_fresh, verify_generation_fresh, ReplayCache};
pub use srs_points::{insecure_dev_params, SrsPoints};
pub use verify::{verify_bundle, Expectations, Verified};
pub use vocab::Vocabulary;
