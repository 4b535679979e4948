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

use crate::commit::{SmallValueKzg, SmallValueShplonk};
use crate::error::{ProverError, Result};
use crate::infer::infer;
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
}

/// Proves `model` on `request` with `key`, and checks the proof with `verifier` before returning it.
pub fn prove(
    model: &QuantizedModel,
    key: &ProverKey,
    verifier: &VerifierKey,
    request: &ProveRequest,
) -> Result<Proven> {
    let started = Instant::now();
    let input_q = quantize_input(model, request.input)?;
    let outputs = infer(model, &input_q)?;
    let inference = started.elapsed();

    let started = Instant::now();
    let public = PublicInputs {
        input_commitment: poseidon::commit_input(request.salt, &input_q),
        nonce: request.nonce,
        outputs,
    };
    let witness = Witness {
        salt: request.salt,
        nonce: request.nonce,
        input: input_q.clone(),
    };
    let circuit = ModelCircuit::new(model.clone(), key.meta.circuit_params, witness);
    let instance = public.to_instance();
    let mut transcript = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
    // KZG over BN254 with SHPLONK, committing to small witness values cheaply (`commit.rs`; same proof bytes).
    create_proof::<SmallValueKzg, SmallValueShplonk<'_>, _, _, _, _>(
        &key.srs,
        &key.pk,
        &[circuit],
        &[&[&instance]],
        OsRng,
        &mut transcript,
    )
    .map_err(|e| ProverError::Other(format!("proof generation failed: {e:?}")))?;
    let proof = transcript.finalize();
    let proving = started.elapsed();

    check_proof(verifier, &instance, &proof).map_err(|e| {
        ProverError::Other(format!(
            "the new proof does not verify ({e}); this is a bug, please report it"
        ))
    })?;
    let bundle = ProofBundle {
        model_id: key.model_id,
        input_commitment: field::to_bytes(&public.input_commitment),
        nonce: field::to_bytes(&public.nonce),
        outputs: public.outputs,
        output_scale: model.output_scale(),
        proof,
    };
    Ok(Proven {
        bundle,
        input_q,
        inference,
        proving,
    })
}

/// A fresh random salt.
pub fn random_salt() -> Fr {
    <Fr as ff::Field>::random(OsRng)
}
