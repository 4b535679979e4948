//! zkinfer verifier: proof bundles and their verification against a verifying key, a model id,
//! an input commitment and a nonce.

pub mod envelope;
