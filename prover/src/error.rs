//! The prover's error type: every failure names what went wrong and, where it can, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong between an ONNX file and a proof.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// A file could not be read or written.
    #[error("cannot access `{}`: {source}; check that the path exists and is readable/writable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed ONNX model.
    #[error("`{}` is not a valid ONNX model: {reason}; re-export it (e.g. torch.onnx.export) and check the path", path.display())]
    MalformedOnnx {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The model uses an operator the importer does not handle.
    #[error(
        "unsupported operator `{op}` in node `{node}`; supported: {}",
        crate::import::supported_operators()
    )]
    UnsupportedOperator {
        /// The ONNX op type (with its domain when it is not the default one).
        op: String,
        /// The node name, or `#<index>` when the node has none.
        node: String,
    },
    /// A supported operator with an attribute value the importer does not handle.
    #[error("operator `{op}` in node `{node}` has {attr} = {value}, which is not supported; re-export the model with the default value")]
    UnsupportedAttribute {
        /// The ONNX op type.
        op: String,
        /// The node name, or `#<index>`.
        node: String,
        /// The attribute name.
        attr: String,
        /// The offending value.
        value: String,
    },
    /// The proving key and the verifying key of a key directory belong to different models.
    #[error(
        "the proving key is for model {proving} but the verifying key is for model {verifying}; use the pk.bin and \
         vk.bin that one `zkinfer setup` wrote"
    )]
    KeyPairMismatch {
        /// The proving key's model id and name.
        proving: String,
        /// The verifying key's model id and name.
        verifying: String,
    },
    /// The operators are supported but the way they are connected is not.
    #[error("unsupported model structure: {reason}")]
    UnsupportedGraph {
        /// What is wrong with the graph.
        reason: String,
    },
    /// A dataset (input JSON) could not be used.
    #[error("dataset `{}`: {reason}", path.display())]
    Dataset {
        /// The file (empty for in-memory datasets).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An input vector has the wrong number of elements.
    #[error("input has {found} elements, the model expects {expected}; flatten the input tensor to that length (a model compiled with --batch B takes its B samples one after another)")]
    WrongInputLength {
        /// Elements the model expects.
        expected: usize,
        /// Elements given.
        found: usize,
    },
    /// A quantized input element lies outside the input's range (int8, or the vocabulary of a token input).
    #[error("quantized input element {index} is {value}, outside [{lo}, {hi}]; quantize inputs with quantize_input")]
    InputOutOfRange {
        /// Position of the element.
        index: usize,
        /// Its value.
        value: i64,
        /// The smallest value the input holds.
        lo: i64,
        /// The largest value the input holds.
        hi: i64,
    },
    /// A float input the model cannot read (a token model given something that is not a token id).
    #[error("{reason}")]
    BadInput {
        /// What is wrong, and where.
        reason: String,
    },
    /// A generation that cannot be proven as asked (a model that is not causal, a prompt and a length the context
    /// cannot hold).
    #[error("cannot generate: {reason}")]
    Generation {
        /// Why, and what to do.
        reason: String,
    },
    /// Calibration or quantization could not produce a valid integer model.
    #[error("quantization failed: {reason}")]
    Quantization {
        /// What went wrong (names the layer where there is one).
        reason: String,
    },
    /// A quantized model breaks an invariant the engine and the circuit rely on.
    #[error("invalid quantized model: {0}")]
    InvalidModel(zkinfer_circuits::model::ModelError),
    /// A `.zkm` quantized-model file could not be read or written.
    #[error("model file `{}`: {reason}", path.display())]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The circuit planner found no layout for the model.
    #[error("cannot lay out the model: {reason}")]
    Layout {
        /// Why (names the layer where there is one).
        reason: String,
    },
    /// The batch size asked for cannot be built.
    #[error("cannot batch the model: {reason}")]
    Batch {
        /// Why, and what to give instead.
        reason: String,
    },
    /// halo2 key generation failed.
    #[error("{which} generation failed: {reason}")]
    KeyGeneration {
        /// `verifying-key` or `proving-key`.
        which: &'static str,
        /// halo2's error.
        reason: String,
    },
    /// A proving-key file could not be used.
    #[error("proving key `{}`: {reason}", path.display())]
    ProverKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (and what to do).
        reason: String,
    },
    /// An SRS (powers-of-tau) file could not be used.
    #[error("SRS file `{}`: {reason}", path.display())]
    SrsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (and what to do).
        reason: String,
    },
    /// The float reference (tract) could not run the model, or its results do not match the int8 model's.
    #[error("float reference: {reason}")]
    FloatReference {
        /// What went wrong.
        reason: String,
    },
    /// The device choice is unknown, or the GPU could not be opened or failed.
    #[error("{reason}")]
    Gpu {
        /// What went wrong, naming the GPU, and what to do (usually `--device cpu`).
        reason: String,
    },
    /// halo2 could not make a proof, or the proof it made does not verify (a bug).
    #[error("proving failed: {reason}")]
    Proving {
        /// What went wrong.
        reason: String,
    },
}

impl From<zkinfer_circuits::model::ModelError> for ProverError {
    /// Input errors keep their own variants; every other model error is [`ProverError::InvalidModel`].
    fn from(e: zkinfer_circuits::model::ModelError) -> Self {
        use zkinfer_circuits::model::ModelError;
        match e {
            ModelError::InputLength { expected, found } => ProverError::WrongInputLength { expected, found },
            ModelError::InputValue { index, value, lo, hi } => ProverError::InputOutOfRange { index, value, lo, hi },
            e => ProverError::InvalidModel(e),
        }
    }
}

/// Result with a [`ProverError`].
pub type Result<T> = std::result::Result<T, ProverError>;

impl ProverError {
    /// A [`ProverError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        ProverError::Io { path, source }
    }

    /// A [`ProverError::MalformedOnnx`] for `path`.
    pub fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        let (path, reason) = (path.into(), reason.into());
        ProverError::MalformedOnnx { path, reason }
    }

    /// A [`ProverError::UnsupportedGraph`].
    pub fn graph(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ProverError::UnsupportedGraph { reason }
    }

    /// A [`ProverError::UnsupportedOperator`].
    pub fn operator(op: impl Into<String>, node: impl Into<String>) -> Self {
        let (op, node) = (op.into(), node.into());
        ProverError::UnsupportedOperator { op, node }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem_and_the_remedy() {
        let e = ProverError::UnsupportedOperator {
            op: "LSTM".into(),
            node: "lstm1".into(),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("`LSTM`") && msg.contains("`lstm1`") && msg.contains("Conv"),
            "{msg}"
        );
        let e = ProverError::WrongInputLength { expected: 64, found: 3 };
        assert!(e.to_string().contains("64") && e.to_string().contains('3'));
        let e = ProverError::io("/nope", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(e.to_string().contains("/nope"));
    }
}
