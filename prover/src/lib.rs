//! zkinfer prover: ONNX import, int8 quantization, native integer inference, keygen and proving.
//!
//! Pipeline position: **import → quantize → infer** → circuit → prove → verify.

pub mod accuracy;
pub mod commit;
pub mod compile;
pub mod dataset;
pub mod device;
pub mod diagnostics;
pub mod error;
pub mod generate;
#[cfg(feature = "gpu")]
pub mod gpu_commit;
#[cfg(not(feature = "gpu"))]
mod gpu_off;
#[cfg(not(feature = "gpu"))]
pub use gpu_off::{gpu_commit, infer_gpu};
pub mod graph;
pub mod import;
pub mod infer;
#[cfg(feature = "gpu")]
pub mod infer_gpu;
pub mod model_file;
pub mod next_token;
pub mod quantize;
pub mod regression;

pub use accuracy::{accuracy_report, float_reference, AccuracyReport, FloatReference, RowAgreement};
pub use compile::{compile, Compiled, PrecisionChoice};
pub use dataset::Dataset;
pub use device::{Device, GpuBackend};
pub use error::{ProverError, Result};
pub use generate::{causal_outputs, greedy, GenerateRequest, Generated, Greedy};
pub use graph::{ActFn, FloatModel, FloatNode, FloatOp};
pub use import::{import_onnx, import_onnx_bytes};
pub use infer::{infer, infer_batch, infer_trace, IntegerEngine, LayerTrace};
pub use model_file::{load_compiled, load_model, model_to_bytes, save_compiled, save_model};
pub use quantize::search::{SearchReport, Target, Tried};
pub use quantize::{
    choose_multiplier, dequantize_output, input_channels, quantize, quantize_input, quantize_traced, quantize_with,
    InputScales, Precision,
};
pub use regression::{r_squared, regression_report, RegressionReport};
pub mod keys;
pub mod model_prover;
pub mod prove;
pub mod srs;

pub use keys::{load_prover_key, prover_key_from_bytes, setup, write_keys, KeyPair, ProverKey};
pub use model_prover::Prover;
pub use prove::{prove, random_salt, ProveRequest, Proven};
pub use srs::SrsSource;
pub use zkinfer_verifier::load_verifier_key;
