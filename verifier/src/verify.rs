//! Checking a proof bundle: the pins the caller asked for (model id, input commitment, nonce), then the proof.

use std::io::Cursor;

use halo2_proofs::{
    halo2curves::bn256::Bn256,
    plonk::{verify_proof, Error as PlonkError},
    poly::kzg::{commitment::KZGCommitmentScheme, multiopen::VerifierSHPLONK, strategy::SingleStrategy},
};
use zkinfer_circuits::public_inputs::OUTPUT_WORD_BITS;
use zkinfer_circuits::Fr;

use crate::bundle::{argmax, dequantize, field_to_hex, sample_outputs, ProofBundle};
use crate::error::VerifyError;
use crate::key::VerifierKey;
use crate::transcript::CanonicalRead;

/// What the caller insists on, beyond a valid proof.
///
/// Every pin left `None` is not checked: `Expectations::default()` accepts any proof that is valid for the key it
/// is given. That is right only for a key the caller made or loaded pinned ([`VerifierKey::from_pinned_bytes`]);
/// a validator judging a miner's answer sets `model_id` and, to refuse replays and other requests' answers, the
/// `nonce` it sent and the `input_commitment` it expects.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// The model the caller pays for.
    pub model_id: Option<[u8; 32]>,
    /// The commitment of the input the caller sent.
    pub input_commitment: Option<Fr>,
    /// The nonce of the caller's request.
    pub nonce: Option<Fr>,
    /// Accept a key made with the insecure development SRS, whose trapdoor is public (anyone can forge its
    /// proofs). Off by default; for tests and demos only.
    pub allow_insecure_dev_srs: bool,
}

impl Expectations {
    /// No pins, and keys made with the insecure development SRS accepted: for tests and demos only.
    pub fn for_insecure_dev_keys() -> Self {
        Self {
            allow_insecure_dev_srs: true,
            ..Self::default()
        }
    }
}

/// A bundle that passed verification: the proven outputs, and what follows from them and the key alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The proven integer outputs.
    pub outputs: Vec<i64>,
    /// The outputs as floats, with the output scale of the verifying key (never the bundle's).
    pub float_outputs: Vec<f32>,
    /// Index of the largest proven output (the predicted class), first on ties; of the first sample in a batch.
    pub argmax: Option<usize>,
    /// The predicted class of each sample (one entry for a model that proves one input at a time).
    pub classes: Vec<Option<usize>>,
}

/// Verifies `bundle` against `key` and the caller's `expect`ations.
pub fn verify_bundle(key: &VerifierKey, bundle: &ProofBundle, expect: &Expectations) -> Result<Verified, VerifyError> {
    let instance = check_public(key, bundle, expect)?;
    check_proof(key, &instance, &bundle.proof)?;
    Ok(Verified::of(key, bundle))
}

impl Verified {
    /// The outputs of a bundle whose proof was accepted under `key`.
    pub(crate) fn of(key: &VerifierKey, bundle: &ProofBundle) -> Self {
        Self {
            outputs: bundle.outputs.clone(),
            float_outputs: dequantize(&bundle.outputs, key.meta().output_scale),
            argmax: argmax(
                sample_outputs(&bundle.outputs, key.meta().batch())
                    .next()
                    .unwrap_or(&[]),
            ),
            classes: sample_outputs(&bundle.outputs, key.meta().batch())
                .map(argmax)
                .collect(),
        }
    }
}

/// Everything [`verify_bundle`] checks before the proof: the pins of `expect`, the bundle's model id against the
/// key's, canonical public inputs and the output count. Returns the instance column the proof is checked against.
pub(crate) fn check_public(
    key: &VerifierKey,
    bundle: &ProofBundle,
    expect: &Expectations,
) -> Result<Vec<Fr>, VerifyError> {
    let key_id = key.model_id();
    if key.is_insecure_dev_srs() && !expect.allow_insecure_dev_srs {
        return Err(VerifyError::InsecureDevSrs {
            model_id: hex::encode(key_id),
        });
    }
    if let Some(expected) = expect.model_id {
        if expected != key_id {
            return Err(VerifyError::KeyModelMismatch {
                expected: hex::encode(expected),
                found: hex::encode(key_id),
            });
        }
    }
    if bundle.model_id != key_id {
        return Err(VerifyError::BundleModelMismatch {
            bundle: hex::encode(bundle.model_id),
            key: hex::encode(key_id),
        });
    }
    let public = bundle.public_inputs()?;
    if let Some(expected) = expect.input_commitment {
        if expected != public.input_commitment {
            return Err(VerifyError::InputCommitmentMismatch {
                expected: field_to_hex(&expected),
                found: field_to_hex(&public.input_commitment),
            });
        }
    }
    if let Some(expected) = expect.nonce {
        if expected != public.nonce {
            return Err(VerifyError::NonceMismatch {
                expected: field_to_hex(&expected),
                found: field_to_hex(&public.nonce),
            });
        }
    }
    if bundle.proof.len() != key.proof_len() {
        return Err(VerifyError::MalformedProof(format!(
            "the proof is {} bytes, this model's proofs are {} bytes",
            bundle.proof.len(),
            key.proof_len()
        )));
    }
    if public.outputs.len() != key.meta().output_len {
        return Err(VerifyError::OutputCount {
            expected: key.meta().output_len,
            found: public.outputs.len(),
        });
    }
    let digit = 1i64 << (OUTPUT_WORD_BITS - 1);
    if let Some((index, &value)) = (public.outputs.iter().enumerate()).find(|(_, &y)| !(-digit..digit).contains(&y)) {
        return Err(VerifyError::OutputRange { index, value });
    }
    Ok(public.to_instance())
}

/// Runs halo2's KZG/SHPLONK verifier on `proof` for `instance`; every proof byte must be consumed.
///
/// The check runs on a worker of rayon's global pool (`rayon::scope`): halo2's verifier forks many small parallel
/// jobs (MSM buckets, polynomial evaluations), which a worker runs inline or hands to an idle sibling, whereas a
/// caller outside the pool would inject each one and sleep until it is done (ResNet proof on 2 vCPUs: 6.5 → 4.6 ms).
pub fn check_proof(key: &VerifierKey, instance: &[Fr], proof: &[u8]) -> Result<(), VerifyError> {
    let outcome = rayon::scope(|_| {
        std::panic::catch_unwind(|| {
            let mut cursor = Cursor::new(proof);
            let mut transcript = CanonicalRead::new(&mut cursor);
            let result = verify_proof::<KZGCommitmentScheme<Bn256>, VerifierSHPLONK<'_, Bn256>, _, _, _>(
                key.srs(),
                key.vk(),
                SingleStrategy::new(key.srs()),
                &[&[instance]],
                &mut transcript,
            );
            (result, cursor.position() as usize)
        })
    });
    outcome_to_result(outcome, proof.len())
}

/// What a run of halo2's `verify_proof` under `catch_unwind` came to: the verifier's result and how many proof
/// bytes it read, or a panic.
pub(crate) type Outcome<T> = std::thread::Result<(Result<T, PlonkError>, usize)>;

/// Maps halo2's verdict on a proof of `len` bytes to ours; every proof byte must have been read.
pub(crate) fn outcome_to_result<T>(outcome: Outcome<T>, len: usize) -> Result<T, VerifyError> {
    match outcome {
        Err(_) => Err(VerifyError::MalformedProof(
            "the verifier could not parse the proof".into(),
        )),
        Ok((Err(PlonkError::Transcript(e)), _)) => Err(VerifyError::MalformedProof(e.to_string())),
        Ok((Err(PlonkError::InstanceTooLarge | PlonkError::InvalidInstances), _)) => Err(VerifyError::MalformedProof(
            "public inputs do not fit the circuit".into(),
        )),
        Ok((Err(_), _)) => Err(VerifyError::ProofRejected),
        Ok((Ok(_), used)) if used != len => Err(VerifyError::MalformedProof(format!(
            "{} trailing bytes after the proof",
            len - used
        ))),
        Ok((Ok(value), _)) => Ok(value),
    }
}
