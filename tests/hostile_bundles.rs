//! A hostile miner's bundles: every single-byte change of a valid bundle (every byte, two masks by default; all
//! eight bits with `ZKINFER_FLIP_MASKS=all`) is refused by a validator that pins only the model id, and nothing a
//! miner can put in a bundle makes the verifier panic or allocate what the file does not hold.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use rayon::prelude::*;
use zkinfer_prover::Proven;
use zkinfer_verifier::{envelope, verify_bundle, Expectations, ProofBundle, VerifyError};

fn proven() -> &'static Proven {
    static PROVEN: std::sync::OnceLock<Proven> = std::sync::OnceLock::new();
    PROVEN.get_or_init(|| common::prove_digit(5))
}

/// The most permissive validator: only the model id pinned.
fn id_only() -> Expectations {
    Expectations {
        model_id: Some(common::digits_keys().verifier.model_id()),
        allow_insecure_dev_srs: true,
        ..Expectations::default()
    }
}

fn masks() -> Vec<u8> {
    if std::env::var("ZKINFER_FLIP_MASKS").as_deref() == Ok("all") {
        (0..8).map(|bit| 1u8 << bit).collect()
    } else {
        vec![0x01, 0x80]
    }
}

/// What became of one altered file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Refused while reading.
    Unreadable,
    /// Read as the very bundle that was flipped (a hex digit's case, a leading zero turned into a space the hex
    /// reader trims): the same proof of the same statement, not a forgery.
    Unchanged,
    /// Read, and rejected by the verifier.
    Rejected,
    /// Accepted: a forgery.
    Accepted,
    /// The reader or verifier panicked.
    Panicked,
}

/// How many altered files came to each outcome (the accepted and panicking ones named).
#[derive(Debug, Default)]
struct Tally {
    unreadable: usize,
    unchanged: usize,
    rejected: usize,
    accepted: Vec<String>,
    panics: Vec<String>,
}

fn sweep(bytes: &[u8], positions: Vec<usize>, label: &str) -> Tally {
    let key = &common::digits_keys().verifier;
    let original = ProofBundle::from_any(bytes).expect("the unflipped bundle reads");
    let masks = masks();
    let tried = positions.len() * masks.len();
    let outcomes: Vec<(String, Outcome)> = positions
        .into_par_iter()
        .flat_map_iter(|at| masks.iter().map(move |&mask| (at, mask)))
        .map(|(at, mask)| {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= mask;
            let what = format!("{label} byte {at} mask {mask:#04x}");
            let outcome = catch_unwind(AssertUnwindSafe(|| match ProofBundle::from_any(&flipped) {
                Err(_) => Outcome::Unreadable,
                Ok(bundle) if bundle == original => Outcome::Unchanged,
                Ok(bundle) => match verify_bundle(key, &bundle, &id_only()) {
                    Ok(_) => Outcome::Accepted,
                    Err(_) => Outcome::Rejected,
                },
            }));
            (what, outcome.unwrap_or(Outcome::Panicked))
        })
        .collect();
    let mut tally = Tally::default();
    for (what, outcome) in outcomes {
        match outcome {
            Outcome::Panicked => tally.panics.push(what),
            Outcome::Accepted => tally.accepted.push(what),
            Outcome::Unreadable => tally.unreadable += 1,
            Outcome::Unchanged => tally.unchanged += 1,
            Outcome::Rejected => tally.rejected += 1,
        }
    }
    eprintln!(
        "{label}: {tried} flips of {} bytes: {} unreadable, {} read as the same bundle, {} rejected, {} accepted, \
         {} panics",
        bytes.len(),
        tally.unreadable,
        tally.unchanged,
        tally.rejected,
        tally.accepted.len(),
        tally.panics.len()
    );
    tally
}

#[test]
fn every_byte_flip_of_a_binary_bundle_is_refused() {
    let bundle = &proven().bundle;
    assert!(verify_bundle(&common::digits_keys().verifier, bundle, &id_only()).is_ok());
    let bytes = bundle.to_bytes();
    let tally = sweep(&bytes, (0..bytes.len()).collect(), "binary bundle");
    assert!(tally.accepted.is_empty(), "accepted: {:?}", tally.accepted);
    assert_eq!(tally.unchanged, 0, "the binary form has one encoding per bundle");
    assert!(tally.panics.is_empty(), "panics: {:?}", tally.panics);
}

/// The JSON form: every byte of the compact JSON except the proof's hex digits, of which every 16th (the proof's
/// bytes themselves are swept in the binary form).
#[test]
fn every_byte_flip_of_a_json_bundle_is_refused() {
    let bundle = &proven().bundle;
    let json = serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(&bundle.to_json()).unwrap()).unwrap();
    assert_eq!(&ProofBundle::from_any(&json).expect("compact JSON reads"), bundle);
    let proof_hex = hex::encode(&bundle.proof);
    let start = json
        .windows(proof_hex.len())
        .position(|w| w == proof_hex.as_bytes())
        .expect("proof hex");
    let proof_digits = start..start + proof_hex.len();
    let positions = (0..json.len())
        .filter(|at| !proof_digits.contains(at) || (at - start) % 16 == 0)
        .collect();
    let tally = sweep(&json, positions, "JSON bundle");
    assert!(tally.accepted.is_empty(), "accepted: {:?}", tally.accepted);
    assert!(tally.panics.is_empty(), "panics: {:?}", tally.panics);
}

/// The binary layout after the header: model id, commitment, nonce (32 bytes each), then the outputs' count and
/// values (varints), then the proof's length and bytes. Returns where the proof's length field starts.
fn proof_length_at(bundle: &ProofBundle) -> usize {
    let bytes = bundle.to_bytes();
    let proof_len = bundle.proof.len();
    // The proof length is a varint: 251 followed by a u16 for lengths in [251, 2^16).
    assert!((251..1 << 16).contains(&proof_len));
    let at = bytes.len() - proof_len - 3;
    assert_eq!(bytes[at], 251);
    assert_eq!(u16::from_le_bytes([bytes[at + 1], bytes[at + 2]]) as usize, proof_len);
    at
}

/// A bundle whose proof length field claims `claimed` bytes, followed by the real (short) proof.
pub fn crafted_length(bundle: &ProofBundle, claimed: u64) -> Vec<u8> {
    let bytes = bundle.to_bytes();
    let at = proof_length_at(bundle);
    let mut crafted = bytes[..at].to_vec();
    crafted.push(253);
    crafted.extend_from_slice(&claimed.to_le_bytes());
    crafted.extend_from_slice(&bytes[at + 3..]);
    crafted
}

#[test]
fn crafted_length_fields_are_refused_without_allocating() {
    let bundle = &proven().bundle;
    for claimed in [
        1u64 << 36,
        1 << 40,
        u64::MAX - 1,
        u64::MAX,
        bundle.proof.len() as u64 + 1,
    ] {
        let crafted = crafted_length(bundle, claimed);
        let err = ProofBundle::from_bytes(&crafted).expect_err("crafted length");
        assert!(matches!(err, VerifyError::Malformed { .. }), "{claimed}: {err}");
    }
    // The output count too: 2^40 outputs claimed by a 3 KB file.
    let bytes = bundle.to_bytes();
    let at = envelope::HEADER_LEN + 96;
    assert_eq!(bytes[at] as usize, bundle.outputs.len());
    let mut crafted = bytes[..at].to_vec();
    crafted.push(253);
    crafted.extend_from_slice(&(1u64 << 40).to_le_bytes());
    crafted.extend_from_slice(&bytes[at + 1..]);
    assert!(ProofBundle::from_bytes(&crafted).is_err());
    // Empty and minimal values.
    for empty in [
        &b""[..],
        b"ZKINF",
        b"ZKINFB\x02\x00",
        b"{}",
        b"{\"version\": 2}",
        b"   ",
    ] {
        assert!(ProofBundle::from_any(empty).is_err(), "{empty:?}");
    }
}

/// The proof's length is fixed by the model: a longer or shorter proof is refused before halo2 reads it.
#[test]
fn a_proof_of_another_length_is_refused() {
    let key = &common::digits_keys().verifier;
    let bundle = &proven().bundle;
    assert_eq!(bundle.proof.len(), key.proof_len());
    for proof in [
        bundle.proof[..bundle.proof.len() - 32].to_vec(),
        [bundle.proof.clone(), vec![0; 32]].concat(),
        Vec::new(),
    ] {
        let altered = ProofBundle {
            proof,
            ..bundle.clone()
        };
        let err = verify_bundle(key, &altered, &id_only()).expect_err("refused");
        assert!(err.to_string().contains("bytes"), "{err}");
    }
}

/// The instance packs the outputs fifteen to a row as 16-bit digits. A miner who moves 2^16 from one output into the
/// next (`y_0 + 65536`, `y_1 − 1`) keeps every packed row, so the same proof would check: the verifier refuses any
/// claimed output beyond 16 bits before packing, which leaves each row one vector of outputs.
#[test]
fn outputs_that_carry_into_the_next_digit_are_refused() {
    let key = &common::digits_keys().verifier;
    let bundle = &proven().bundle;
    verify_bundle(key, bundle, &id_only()).expect("the honest bundle verifies");
    let mut outputs = bundle.outputs.clone();
    outputs[0] += 1 << 16;
    outputs[1] -= 1;
    let carried = ProofBundle {
        outputs,
        ..bundle.clone()
    };
    let (honest, forged) = (bundle.public_inputs().unwrap(), carried.public_inputs().unwrap());
    assert_eq!(
        honest.to_instance(),
        forged.to_instance(),
        "the attack keeps the instance"
    );
    match verify_bundle(key, &carried, &id_only()) {
        Err(VerifyError::OutputRange { index: 0, .. }) => {}
        other => panic!("carried outputs: {other:?}"),
    }
    // And one just beyond the range on its own.
    let mut outputs = bundle.outputs.clone();
    outputs[3] = -32769;
    let wide = ProofBundle {
        outputs,
        ..bundle.clone()
    };
    assert!(matches!(
        verify_bundle(key, &wide, &id_only()),
        Err(VerifyError::OutputRange {
            index: 3,
            value: -32769
        })
    ));
}
