//! Proving one request: quantize the input, run the native integer inference, prove the circuit on it, and check
//! the proof before handing it out.

use std::time::{Duration, Instant};

use halo2_proofs::{
    halo2curves::bn256::G1Affine,
    plonk::create_proof,
    transcript::{Blake2bWrite, Challenge255, TranscriptWriterBuffer},
};
use rand::rngs::OsRng;
use zkinfer_circuits::{field, poseidon, Fr, ModelCircuit, PublicInputs, QuantizedModel, Witness};
use zkinfer_verifier::{verify::check_proof, ProofBundle, VerifierKey};

use crate::commit::{SmallValueKzg, SmallValueParams, SmallValueShplonk};
use crate::error::{ProverError, Result};
use crate::infer::{infer, IntegerEngine};
use crate::keys::ProverKey;
use crate::quantize::quantize_input;

/// A request to prove: the float input, the salt of its commitment, and the request nonce.
#[derive(Clone, Debug)]
pub struct ProveRequest<'a> {
    /// Float input, flattened.
    pub input: &'a [f32],
    /// Salt of the input commitment.
    pub salt: Fr,
    /// Request nonce.
    pub nonce: Fr,
}

/// A proof and how long its parts took.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The bundle to send back.
    pub bundle: ProofBundle,
    /// The quantized input that was proven.
    pub input_q: Vec<i64>,
    /// Native inference time.
    pub inference: Duration,
    /// Proof generation time (witness + halo2 prover).
    pub proving: Duration,
    /// Whether the proof made on the GPU did not verify and the CPU proved again (a GPU or driver fault).
    pub cpu_retry: bool,
}

/// Proves `model` on `request` with `key`, and checks the proof with `verifier` before returning it. Builds the
/// integer engine for this one proof (uploading the linear layers when `key` proves on a GPU); to prove many
/// requests, open a [`Prover`](crate::Prover), which keeps it.
pub fn prove(
    model: &QuantizedModel,
    key: &ProverKey,
    verifier: &VerifierKey,
    request: &ProveRequest,
) -> Result<Proven> {
    let engine = match key.gpu() {
        Some(backend) => IntegerEngine::on_gpu(model, backend.clone()).or_else(|e| {
            // A GPU fault costs time, not the request: the CPU computes the same integers.
            tracing::warn!("{e}; running the inference on the CPU instead");
            IntegerEngine::new(model)
        })?,
        None => IntegerEngine::new(model)?,
    };
    prove_with(&engine, key, verifier, request)
}

/// [`prove`] with an engine already made for the key's model.
pub(crate) fn prove_with(
    engine: &IntegerEngine,
    key: &ProverKey,
    verifier: &VerifierKey,
    request: &ProveRequest,
) -> Result<Proven> {
    let model = engine.model();
    if verifier.model_id() != key.model_id {
        return Err(ProverError::KeyPairMismatch {
            proving: format!("{} (`{}`)", hex::encode(key.model_id), key.meta.name),
            verifying: format!("{} (`{}`)", hex::encode(verifier.model_id()), verifier.meta().name),
        });
    }
    let started = Instant::now();
    let input_q = quantize_input(model, request.input)?;
    let outputs = match engine.infer(&input_q) {
        Ok(outputs) => outputs,
        // A GPU fault costs time, not the request: the CPU computes the same integers.
        Err(e) if engine.is_on_gpu() => {
            tracing::warn!("{e}; running the inference on the CPU instead");
            infer(model, &input_q)?
        }
        Err(e) => return Err(e),
    };
    let inference = started.elapsed();

    let started = Instant::now();
    let mut public = PublicInputs {
        input_commitment: poseidon::commit_words(request.salt, &input_q, model.input.word_bits()),
        nonce: request.nonce,
        outputs,
    };
    let witness = Witness {
        salt: request.salt,
        nonce: request.nonce,
        input: input_q.clone(),
    };
    let circuit = || ModelCircuit::new(model.clone(), key.meta.circuit_params.clone(), witness.clone());
    let mut instance = public.to_instance();
    let mut proof = create(&key.srs, key, circuit(), &instance)?;
    let proving = started.elapsed();
    let mut cpu_retry = false;

    if let Err(e) = check_proof(verifier, &instance, &proof) {
        let Some(backend) = key.gpu() else {
            return Err(ProverError::Proving {
                reason: format!("the new proof does not verify ({e}); this is a bug, please report it"),
            });
        };
        // A GPU that computes wrong group elements must not cost the request: prove again on the CPU.
        tracing::warn!(
            "the proof made with GPU `{}` does not verify ({e}); proving again on the CPU \
             (please report this GPU and driver; use --device cpu to skip it)",
            backend.describe()
        );
        // The GPU also computed the outputs: take the CPU's if they differ.
        let cpu_outputs = infer(model, &input_q)?;
        if cpu_outputs != public.outputs {
            tracing::warn!("the GPU's inference differs from the CPU's; proving the CPU's outputs");
            public.outputs = cpu_outputs;
            instance = public.to_instance();
        }
        let mut cpu = key.srs.clone();
        cpu.detach_gpu();
        proof = create(&cpu, key, circuit(), &instance)?;
        cpu_retry = true;
        check_proof(verifier, &instance, &proof).map_err(|e| ProverError::Proving {
            reason: format!("the new proof does not verify ({e}); this is a bug, please report it"),
        })?;
    }
    let bundle = ProofBundle {
        model_id: key.model_id,
        input_commitment: field::to_bytes(&public.input_commitment),
        nonce: field::to_bytes(&public.nonce),
        outputs: public.outputs,
        proof,
    };
    Ok(Proven {
        bundle,
        input_q,
        inference,
        proving,
        cpu_retry,
    })
}

/// One halo2 proof of `circuit` with `key`'s proving key, committing with `params`.
fn create(params: &SmallValueParams, key: &ProverKey, circuit: ModelCircuit, instance: &[Fr]) -> Result<Vec<u8>> {
    let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
    // KZG over BN254 with SHPLONK, committing to small witness values cheaply (`commit.rs`; same proof bytes).
    let circuits = [circuit];
    create_proof::<SmallValueKzg, SmallValueShplonk<'_>, _, _, _, _>(
        params,
        &key.pk,
        &circuits,
        &[&[instance]],
        OsRng,
        &mut transcript,
    )
    .map_err(|e| ProverError::Proving {
        // The circuit knows which layer it could not lay out; halo2 only says `Synthesis`.
        reason: circuits[0].last_error().unwrap_or_else(|| format!("halo2: {e:?}")),
    })?;
    Ok(transcript.finalize())
}

/// A fresh random salt.
pub fn random_salt() -> Fr {
    <Fr as ff::Field>::random(OsRng)
}
