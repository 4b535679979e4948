//! A hostile miner's verifying keys. The model id a validator pins must cover every byte the verifier reads: a
//! `vk.bin` with the genuine halo2 key and metadata but SRS points of the miner's choosing (the identity, a point
//! whose trapdoor it knows, another ceremony's) once kept the id and made any outputs, nonce and commitment pass.

mod common;

use group::{prime::PrimeCurveAffine, Curve};
use halo2_proofs::{
    halo2curves::bn256::{Bn256, G1Affine, G2Affine},
    plonk::verify_proof,
    poly::kzg::{
        commitment::{KZGCommitmentScheme, ParamsKZG},
        multiopen::VerifierSHPLONK,
        strategy::SingleStrategy,
    },
    transcript::{Blake2bRead, Challenge255, TranscriptReadBuffer},
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use serde::{Deserialize, Serialize};
use zkinfer_circuits::{field, Chip, Fr, PublicInputs};
use zkinfer_prover::Proven;
use zkinfer_verifier::decode::{decode_exact, encode};
use zkinfer_verifier::envelope::{self, FileKind};
use zkinfer_verifier::key::VERIFYING_KEY_VERSION;
use zkinfer_verifier::{
    verify_batch, verify_bundle, BatchItem, Expectations, ModelMeta, ProofBundle, SrsPoints, VerifierKey, VerifyError,
};

/// The layout of `vk.bin` after its header, as a hostile miner would decode and re-encode it.
#[derive(Clone, Serialize, Deserialize)]
struct KeyFileMirror {
    meta: ModelMeta,
    vk: Vec<u8>,
    srs: Vec<u8>,
}

fn genuine() -> &'static VerifierKey {
    &common::digits_keys().verifier
}

fn mirror() -> KeyFileMirror {
    let bytes = genuine().to_bytes();
    let payload = envelope::open(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, &bytes).expect("header");
    decode_exact(payload).expect("the test's mirror of the key file layout")
}

fn seal(file: &KeyFileMirror) -> Vec<u8> {
    envelope::seal(FileKind::VerifyingKey, VERIFYING_KEY_VERSION, &encode(file))
}

fn with_points(points: SrsPoints) -> Vec<u8> {
    let mut file = mirror();
    file.srs = points.to_bytes();
    seal(&file)
}

fn proven() -> &'static Proven {
    static PROVEN: std::sync::OnceLock<Proven> = std::sync::OnceLock::new();
    PROVEN.get_or_init(|| common::prove_digit(3))
}

/// Made-up outputs, a nonce never asked for and an arbitrary commitment, carrying an old (genuine) proof.
fn forged_bundle(model_id: [u8; 32]) -> ProofBundle {
    ProofBundle {
        model_id,
        input_commitment: field::to_bytes(&Fr::from(0xdead_beef_u64)),
        nonce: field::to_bytes(&Fr::from(0x5eed_u64)),
        outputs: vec![127; genuine().meta().output_len],
        proof: proven().bundle.proof.clone(),
    }
}

/// All three pins a careful validator sets: the genuine model id, the forged bundle's own nonce and commitment.
fn all_pins(bundle: &ProofBundle) -> Expectations {
    let public = bundle.public_inputs().expect("canonical");
    Expectations {
        model_id: Some(genuine().model_id()),
        input_commitment: Some(public.input_commitment),
        nonce: Some(public.nonce),
        allow_insecure_dev_srs: true,
    }
}

/// The doctored keys a miner could hand out: the genuine halo2 key and metadata with other SRS points.
fn doctored_variants() -> Vec<(&'static str, Vec<u8>)> {
    let good = genuine().srs_points();
    let known = |s: u64| (G2Affine::generator() * Fr::from(s)).to_affine();
    let other_ceremony = SrsPoints::of(&ParamsKZG::<Bn256>::setup(1, ChaCha20Rng::from_seed([9; 32])));
    vec![
        (
            "g_2 = s·g_2 = ∞",
            with_points(SrsPoints {
                g2: G2Affine::identity(),
                s_g2: G2Affine::identity(),
                ..good
            }),
        ),
        (
            "s·g_2 = ∞",
            with_points(SrsPoints {
                s_g2: G2Affine::identity(),
                ..good
            }),
        ),
        (
            "s·g_2 of a known trapdoor (s = 2)",
            with_points(SrsPoints { s_g2: known(2), ..good }),
        ),
        ("s·g_2 = g_2 (s = 1)", with_points(SrsPoints { s_g2: good.g2, ..good })),
        (
            "s·g_2 of another ceremony",
            with_points(SrsPoints {
                s_g2: other_ceremony.s_g2,
                ..good
            }),
        ),
        ("another ceremony's points", with_points(other_ceremony)),
        (
            "doctored g_0",
            with_points(SrsPoints {
                g0: (G1Affine::generator() * Fr::from(3)).to_affine(),
                ..good
            }),
        ),
        ("doctored g_2", with_points(SrsPoints { g2: known(5), ..good })),
    ]
}

/// The attack is real: halo2's KZG verifier, given the genuine key and `g_2 = s·g_2 = ∞`, accepts made-up outputs,
/// nonce and commitment with an old proof. Everything below must keep such points away from it.
#[test]
fn identity_g2_points_would_accept_any_outputs_at_the_halo2_level() {
    let key = genuine();
    let bundle = forged_bundle(key.model_id());
    let instance = PublicInputs {
        input_commitment: Fr::from(0xdead_beef_u64),
        nonce: Fr::from(0x5eed_u64),
        outputs: bundle.outputs.clone(),
    }
    .to_instance();
    let check = |params: &ParamsKZG<Bn256>| {
        let mut transcript = Blake2bRead::<_, G1Affine, Challenge255<_>>::init(&bundle.proof[..]);
        verify_proof::<KZGCommitmentScheme<Bn256>, VerifierSHPLONK<'_, Bn256>, _, _, _>(
            params,
            key.vk(),
            SingleStrategy::new(params),
            &[&[&instance]],
            &mut transcript,
        )
        .is_ok()
    };
    assert!(!check(key.srs()), "the genuine points reject the forgery");
    let g0 = key.srs_points().g0;
    let doctored = ParamsKZG::<Bn256>::setup(0, ChaCha20Rng::from_seed([1; 32])).from_parts(
        key.meta().k,
        vec![g0],
        Some(vec![g0]),
        G2Affine::identity(),
        G2Affine::identity(),
    );
    assert!(
        check(&doctored),
        "with g_2 = s·g_2 = ∞ the forgery passes halo2's pairing check (else this test shows nothing)"
    );
}

#[test]
fn doctored_srs_points_never_pass_a_pinned_verifier() {
    let genuine_id = genuine().model_id();
    for (what, bytes) in doctored_variants() {
        // Pinned: refused on the raw bytes, before anything is parsed.
        match VerifierKey::from_pinned_bytes(&bytes, &genuine_id) {
            Err(VerifyError::KeyModelMismatch { .. }) => {}
            other => panic!(
                "{what}: a pinned load gave {:?}",
                other.map(|k| hex::encode(k.model_id()))
            ),
        }
        // Unpinned, the file is refused, or it is a key of another model: the pinned verification refuses it.
        let Ok(key) = VerifierKey::from_bytes(&bytes) else {
            continue;
        };
        assert_ne!(key.model_id(), genuine_id, "{what}: the model id did not change");
        for bundle in [forged_bundle(key.model_id()), forged_bundle(genuine_id)] {
            let verdict = verify_bundle(&key, &bundle, &all_pins(&bundle));
            assert!(
                matches!(verdict, Err(VerifyError::KeyModelMismatch { .. })),
                "{what}: {verdict:?}"
            );
            let items = [BatchItem {
                key: &key,
                bundle: &bundle,
                expect: all_pins(&bundle),
            }];
            let report = verify_batch(&items, None);
            assert!(
                matches!(report.results[0], Err(VerifyError::KeyModelMismatch { .. })),
                "{what}: batch {:?}",
                report.results[0]
            );
        }
    }
}

/// Identity and points outside G2's prime-order subgroup are refused when the file is read, pinned or not.
#[test]
fn identity_and_non_subgroup_points_are_refused_when_read() {
    let good = genuine().srs_points();
    let outside = outside_subgroup();
    for (what, points) in [
        (
            "s·g_2 = ∞",
            SrsPoints {
                s_g2: G2Affine::identity(),
                ..good
            },
        ),
        (
            "g_2 = ∞",
            SrsPoints {
                g2: G2Affine::identity(),
                ..good
            },
        ),
        ("s·g_2 outside the subgroup", SrsPoints { s_g2: outside, ..good }),
    ] {
        let bytes = with_points(points);
        let err = VerifierKey::from_bytes(&bytes).expect_err(what);
        assert!(err.to_string().contains("SRS points"), "{what}: {err}");
        let pinned = model_id(&bytes);
        let err = VerifierKey::from_pinned_bytes(&bytes, &pinned).expect_err(what);
        assert!(
            err.to_string().contains("SRS points"),
            "{what} (pinned to its own id): {err}"
        );
    }
}

fn model_id(bytes: &[u8]) -> [u8; 32] {
    zkinfer_verifier::model_id_of_file(bytes)
}

/// A point on the twist curve that is not in the prime-order subgroup.
fn outside_subgroup() -> G2Affine {
    use ff::Field;
    use group::cofactor::CofactorGroup;
    use halo2_proofs::halo2curves::bn256::{Fq2, G2};
    let g = G2Affine::generator();
    let b = g.y.square() - g.x.square() * g.x;
    let mut x = Fq2::ONE;
    loop {
        x += Fq2::ONE;
        if let Some(y) = Option::<Fq2>::from((x.square() * x + b).sqrt()) {
            let p = G2Affine { x, y };
            if !bool::from(G2::from(p).is_torsion_free()) {
                return p;
            }
        }
    }
}

/// Every field of `vk.bin` (metadata, circuit parameters, halo2 key, SRS points, header): a change is refused or
/// changes the model id, and a pinned load refuses it before parsing. Changes no honest setup writes (sizes out of
/// range, scales that are not positive numbers, trailing bytes, another header) are refused by the parser itself.
#[test]
fn every_field_of_the_key_file_is_covered_by_the_model_id() {
    let genuine_id = genuine().model_id();
    let file = mirror();
    // (what, bytes, whether parsing alone must refuse it)
    let mut variants: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut meta_change = |what: &str, must_refuse: bool, change: &dyn Fn(&mut ModelMeta)| {
        let mut f = file.clone();
        change(&mut f.meta);
        variants.push((format!("meta.{what}"), seal(&f), must_refuse));
    };
    meta_change("name", false, &|m| m.name.push('!'));
    meta_change("name of 2 KiB", true, &|m| m.name = "x".repeat(2048));
    meta_change("input_shape", false, &|m| m.input_shape = vec![m.input_len]);
    meta_change("input_shape empty", true, &|m| m.input_shape.clear());
    meta_change("input_len", true, &|m| m.input_len += 1);
    meta_change("input_shape: a batch of 2", false, &|m| {
        m.input_shape = vec![2, m.input_len / 2]
    });
    meta_change("input_shape: a batch that does not divide the outputs", true, &|m| {
        m.input_shape = vec![4, m.input_len / 4]
    });
    meta_change("output_len", false, &|m| m.output_len -= 1);
    meta_change("output_len = 0", true, &|m| m.output_len = 0);
    meta_change("input scale ×2", false, &|m| m.input.scales[0] *= 2.0);
    meta_change("input scale = 0", true, &|m| m.input.scales[0] = 0.0);
    meta_change("input scale NaN", true, &|m| m.input.scales[0] = f32::NAN);
    meta_change("input scales: one more channel", true, &|m| {
        let extra = m.input.scales[0];
        m.input.scales.push(extra)
    });
    meta_change("input scales: none", true, &|m| m.input.scales.clear());
    meta_change("input scales: 2^21 channels", true, &|m| {
        m.input.scales = vec![1.0; 1 << 21]
    });
    meta_change("input scales: stride 0", true, &|m| {
        m.input.scales = vec![1.0; m.input_len];
        m.input.stride = 0
    });
    meta_change("input scales: stride", false, &|m| m.input.stride += 1);
    use zkinfer_circuits::model::{CausalOutputs, InputQuantization};
    meta_change("input: token ids of a vocabulary of 17", false, &|m| {
        m.input = InputQuantization::tokens(17)
    });
    meta_change("input: a vocabulary of 2^20", true, &|m| {
        m.input = InputQuantization::tokens(1 << 20)
    });
    meta_change("causal outputs of an input that is not token ids", true, &|m| {
        m.causal_outputs = Some(CausalOutputs {
            positions: m.input_len,
            row_len: 1,
        })
    });
    meta_change("causal outputs that are not the outputs", true, &|m| {
        m.input = InputQuantization::tokens(17);
        m.causal_outputs = Some(CausalOutputs {
            positions: m.input_len,
            row_len: 3,
        })
    });
    // A miner calling a model causal that setup did not: consistent, so it parses, but under another model id.
    meta_change("causal outputs claimed for 10 token positions", false, &|m| {
        m.input = InputQuantization::tokens(17);
        m.input_shape = vec![1, 10];
        m.input_len = 10;
        m.causal_outputs = Some(CausalOutputs {
            positions: 10,
            row_len: m.output_len / 10,
        })
    });
    meta_change("output_scale ×2", false, &|m| m.output_scale *= 2.0);
    meta_change("output_scale negated", true, &|m| m.output_scale = -m.output_scale);
    meta_change("output_scale NaN", true, &|m| m.output_scale = f32::NAN);
    meta_change("output_scale ∞", true, &|m| m.output_scale = f32::INFINITY);
    meta_change("k + 1", true, &|m| m.k += 1);
    meta_change("k − 1", true, &|m| m.k -= 1);
    meta_change("k = 40", true, &|m| m.k = 40);
    meta_change("mac_lanes", false, &|m| m.circuit_params.mac_lanes *= 2);
    meta_change("mac_lanes = 10^9", true, &|m| {
        m.circuit_params.mac_lanes = 1_000_000_000
    });
    meta_change("mac_lanes = 0", true, &|m| m.circuit_params.mac_lanes = 0);
    meta_change("mac_taps", false, &|m| m.circuit_params.mac_taps += 1);
    meta_change("mac_taps = 10^9", true, &|m| m.circuit_params.mac_taps = 1_000_000_000);
    meta_change("range_columns", false, &|m| m.circuit_params.range_columns += 1);
    meta_change("range_columns = 10^9", true, &|m| {
        m.circuit_params.range_columns = 1_000_000_000
    });
    meta_change("limb_bits", false, &|m| {
        m.circuit_params.limb_bits = if m.circuit_params.limb_bits == 8 { 9 } else { 8 }
    });
    meta_change("limb_bits = 40", true, &|m| m.circuit_params.limb_bits = 40);
    meta_change("limb_bits = 0", true, &|m| m.circuit_params.limb_bits = 0);
    meta_change("requant_sets", false, &|m| m.circuit_params.requant_sets += 1);
    meta_change("requant_sets = 10^9", true, &|m| {
        m.circuit_params.requant_sets = 1_000_000_000
    });
    meta_change("freivalds_pairs", false, &|m| m.circuit_params.freivalds_pairs += 1);
    meta_change("freivalds_pairs = 10^9", true, &|m| {
        m.circuit_params.freivalds_pairs = 1_000_000_000
    });
    meta_change("freivalds_layers", false, &|m| {
        m.circuit_params.freivalds_layers.insert(0);
    });
    meta_change("freivalds layer 2^20", true, &|m| {
        m.circuit_params.freivalds_layers.insert(1 << 20);
    });
    meta_change("freivalds_widths", false, &|m| {
        m.circuit_params.freivalds_layers.insert(0);
        m.circuit_params.freivalds_widths.insert(3);
    });
    meta_change("freivalds width 1", true, &|m| {
        m.circuit_params.freivalds_layers.insert(0);
        m.circuit_params.freivalds_widths.insert(1);
    });
    meta_change("freivalds width 2^30", true, &|m| {
        m.circuit_params.freivalds_layers.insert(0);
        m.circuit_params.freivalds_widths.insert(1 << 30);
    });
    meta_change("9 freivalds widths", true, &|m| {
        m.circuit_params.freivalds_layers.insert(0);
        m.circuit_params.freivalds_widths.extend(2..11);
    });
    meta_change("freivalds widths without layers", true, &|m| {
        m.circuit_params.freivalds_layers.clear();
        m.circuit_params.freivalds_widths.insert(4);
    });
    meta_change("clamp_bits", false, &|m| {
        m.circuit_params.clamp_bits = if m.circuit_params.clamp_bits == 12 { 11 } else { 12 };
    });
    meta_change("clamp table of 17 bits", true, &|m| m.circuit_params.clamp_bits = 17);
    meta_change("clamp table of 1 bit", true, &|m| m.circuit_params.clamp_bits = 1);
    for chip in [
        Chip::MaxPool,
        Chip::Table,
        Chip::Product,
        Chip::WideRelu,
        Chip::FusedTables,
    ] {
        meta_change(&format!("chip {chip:?}"), false, &|m| {
            let chips = &mut m.circuit_params.chips;
            if !chips.remove(&chip) {
                chips.insert(chip);
            }
        });
    }
    let mut halo2_change = |what: &str, at: usize, must_refuse: bool| {
        let mut f = file.clone();
        f.vk[at] ^= 1;
        variants.push((format!("halo2 key {what} (byte {at})"), seal(&f), must_refuse));
    };
    halo2_change("version", 0, true);
    halo2_change("k", 1, true);
    halo2_change("selector compression", 5, true);
    halo2_change("fixed column count", 6, true);
    halo2_change("first fixed commitment", 10, false);
    halo2_change("last byte", file.vk.len() - 1, false);
    let mut truncated = file.clone();
    truncated.vk.pop();
    variants.push(("halo2 key one byte short".into(), seal(&truncated), true));
    let mut longer = file.clone();
    longer.vk.push(0);
    variants.push(("halo2 key with a trailing byte".into(), seal(&longer), true));
    for (what, at, must_refuse) in [
        ("g_0", 0, true),
        ("g_2", 40, true),
        ("s·g_2", 100, false),
        ("s·g_2 sign", 159, false),
    ] {
        let mut f = file.clone();
        f.srs[at] ^= 1;
        variants.push((format!("SRS {what}"), seal(&f), must_refuse));
    }
    let genuine_bytes = genuine().to_bytes();
    for at in 0..envelope::HEADER_LEN {
        let mut bytes = genuine_bytes.clone();
        bytes[at] ^= 1;
        variants.push((format!("header byte {at}"), bytes, true));
    }
    let mut trailing = genuine_bytes.clone();
    trailing.push(0);
    variants.push(("a trailing byte".into(), trailing, true));

    let mut parsed = Vec::new();
    for (what, bytes, must_refuse) in &variants {
        assert_ne!(bytes, &genuine_bytes, "{what}: no change made");
        assert!(
            matches!(
                VerifierKey::from_pinned_bytes(bytes, &genuine_id),
                Err(VerifyError::KeyModelMismatch { .. })
            ),
            "{what}: a pinned load did not refuse it"
        );
        if let Ok(key) = VerifierKey::from_bytes(bytes) {
            assert!(!must_refuse, "{what}: parsed");
            assert_ne!(key.model_id(), genuine_id, "{what}: parsed with the genuine model id");
            parsed.push(what.as_str());
        }
    }
    eprintln!(
        "{} altered key files, each refused by a pinned load; parsed unpinned (each under its own id): {parsed:?}",
        variants.len()
    );
}

/// Every byte of `vk.bin` flipped with two masks: a pinned load refuses every one; an unpinned load refuses it or
/// yields another model id.
#[test]
fn byte_flips_of_the_key_file_never_keep_the_model_id() {
    let genuine_id = genuine().model_id();
    let bytes = genuine().to_bytes();
    let (mut tried, mut parsed) = (0, 0);
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            tried += 1;
            assert!(
                VerifierKey::from_pinned_bytes(&flipped, &genuine_id).is_err(),
                "byte {at} mask {mask:#x}"
            );
            if let Ok(key) = VerifierKey::from_bytes(&flipped) {
                parsed += 1;
                assert_ne!(key.model_id(), genuine_id, "byte {at} mask {mask:#x}");
                assert!(
                    verify_bundle(&key, &proven().bundle, &all_pins(&proven().bundle)).is_err(),
                    "byte {at} mask {mask:#x}: the genuine proof passed a pinned check under an altered key"
                );
            }
        }
    }
    eprintln!("vk.bin byte flips: {tried} tried, {parsed} parsed (each with another model id), 0 accepted");
}

/// A validator need not take a model id on trust: setup is deterministic, so whoever holds the model and the
/// ceremony's parameters recomputes the same `vk.bin`, byte for byte, and so the same id.
#[test]
fn setup_is_reproducible_so_a_validator_can_recompute_the_model_id() {
    let model = common::digits_model();
    let again = zkinfer_prover::setup(
        model,
        zkinfer_circuits::CircuitParams::for_model(model),
        &zkinfer_prover::SrsSource::InsecureDev,
    )
    .expect("setup");
    let first = &common::digits_keys().verifier;
    assert_eq!(again.verifier.to_bytes(), first.to_bytes());
    assert_eq!(again.verifier.model_id(), first.model_id());
}
