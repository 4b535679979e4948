//! Why a proof, a bundle or a key was refused.

use crate::envelope::EnvelopeError;

/// A verification failure. Each way a proof can be wrong has its own variant so callers (and the CLI's exit
/// codes) can tell a bad file from a rejected proof.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file's header is wrong (another kind of file, another format version, not a zkinfer file).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The process environment would change what the verifier checks (`MAX_DEGREE`).
    #[error("{0}")]
    Environment(String),
    /// A file could not be read.
    #[error("cannot read `{}`: {reason}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The system's message.
        reason: String,
    },
    /// A file was refused; the error inside says why.
    #[error("`{}`: {error}", path.display())]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why it was refused.
        error: Box<VerifyError>,
    },
    /// The bytes after the header could not be decoded (truncated or corrupted).
    #[error("corrupted or truncated {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The verifying key was made with the insecure development SRS and the caller did not opt in.
    #[error(
        "the verifying key of model {model_id} was made with the INSECURE development SRS, whose trapdoor is \
         public: anyone can forge proofs for it. Use keys made from a powers-of-tau ceremony file (zkinfer setup \
         --srs FILE), or pass --allow-insecure-dev-srs for tests and demos"
    )]
    InsecureDevSrs {
        /// The key's model id (hex).
        model_id: String,
    },
    /// The verifying key belongs to another model than the one the caller pinned.
    #[error("verifying key is for model {found}, but model {expected} was required")]
    KeyModelMismatch {
        /// The pinned model id.
        expected: String,
        /// The key's model id.
        found: String,
    },
    /// The bundle claims another model than the verifying key's.
    #[error("proof bundle is for model {bundle}, the verifying key is for model {key}")]
    BundleModelMismatch {
        /// Model id in the bundle.
        bundle: String,
        /// Model id of the key.
        key: String,
    },
    /// The bundle commits to another input than the one the caller required.
    #[error("proof is for input commitment {found}, but {expected} was required")]
    InputCommitmentMismatch {
        /// Required commitment (hex).
        expected: String,
        /// Commitment in the bundle (hex).
        found: String,
    },
    /// The bundle answers another request than the one the caller required.
    #[error("proof is for nonce {found}, but nonce {expected} was required (replayed or misrouted answer)")]
    NonceMismatch {
        /// Required nonce (hex).
        expected: String,
        /// Nonce in the bundle (hex).
        found: String,
    },
    /// The bundle carries another number of outputs than the model has.
    #[error("bundle has {found} outputs, the model has {expected}")]
    OutputCount {
        /// Outputs of the model.
        expected: usize,
        /// Outputs in the bundle.
        found: usize,
    },
    /// A claimed output outside the 16 bits every output has: the instance packs outputs as 16-bit digits, so such a
    /// value could stand for another vector of outputs; no proof states it.
    #[error("output {index} is {value}, outside [-32768, 32767]: no model output is")]
    OutputRange {
        /// Which output.
        index: usize,
        /// The value claimed.
        value: i64,
    },
    /// An input has another length than the model's input.
    #[error("the input has {found} values, the model takes {expected} (flattened)")]
    InputLength {
        /// Inputs of the model.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// An input value the model cannot read (a token model given something that is not a token id).
    #[error("{reason}")]
    InputValue {
        /// What is wrong, and where.
        reason: String,
    },
    /// A generation was checked against a model whose outputs are not causal next-token rows.
    #[error(
        "model `{model}` is not a causal language model (its verifying key does not mark its output rows as reading \
         earlier positions only), so one proof cannot prove a generation; prove each input with `prove` instead"
    )]
    NotCausal {
        /// The model's name.
        model: String,
    },
    /// A generation bundle does not state what its proof proves (a token that is not its row's argmax, another
    /// prompt length, more tokens than the context holds).
    #[error("generation rejected: {reason}")]
    Generation {
        /// What does not match.
        reason: String,
    },
    /// The proof bytes could not be read as a proof (a point off the curve, a truncated transcript).
    #[error("proof bytes are malformed: {0}")]
    MalformedProof(String),
    /// The proof is well formed but false for these public inputs and this key.
    #[error("proof rejected: it does not prove these outputs for this model, input commitment and nonce")]
    ProofRejected,
    /// A proof for this model and nonce was already accepted: the bundle is a replay of an earlier answer.
    #[error(
        "replayed proof: a proof for model {model_id} with nonce {nonce} was already accepted; \
         send each request with a fresh nonce"
    )]
    Replay {
        /// Model id (hex).
        model_id: String,
        /// Nonce (hex, as in bundles).
        nonce: String,
    },
    /// Some bundles of a batch were rejected; the batch report says why for each.
    #[error(
        "{rejected} of {total} proofs in the batch were rejected (first: item {first}: {reason}); \
         read the batch report for each item's reason"
    )]
    BatchRejected {
        /// How many items were rejected.
        rejected: usize,
        /// How many items the batch had.
        total: usize,
        /// Index of the first rejected item.
        first: usize,
        /// Why the first rejected item was rejected.
        reason: String,
    },
}

impl VerifyError {
    /// This error, said of the file at `path`.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        VerifyError::InFile {
            path: path.to_path_buf(),
            error: Box::new(self),
        }
    }

    /// The error itself, without the file it was said of.
    pub fn root(&self) -> &VerifyError {
        match self {
            VerifyError::InFile { error, .. } => error.root(),
            other => other,
        }
    }

    /// Whether the error means "this proof is rejected" rather than "a file or value could not be used": a
    /// header, decoding, file or insecure-key error is not a verdict on the proof.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self.root(),
            VerifyError::Envelope(_)
                | VerifyError::Malformed { .. }
                | VerifyError::Io { .. }
                | VerifyError::Environment(_)
                | VerifyError::InsecureDevSrs { .. }
        )
    }
}
