//! The constraint system of every shipped model (and of the small models of the circuit tests) is pinned in
//! `tests/snapshots/constraint-systems.txt`: the planner's layout and `k`, the column counts by kind, the queries,
//! the degree (uncapped, and as halo2 reports it), every gate with its polynomials' degrees, every lookup with
//! its expressions' degrees, the equality-enabled columns, and a blake2b digest of halo2's pinned constraint
//! system (its `Debug` text, which holds every gate polynomial, query, lookup and permutation column).
//!
//! Any change to a chip, the planner or halo2 that changes what the verifying key commits to fails this test with
//! a diff. If the change is intended, rewrite the file with `ZKINFER_UPDATE_SNAPSHOTS=1 cargo test --test
//! circuit_audit snapshot` and have the new snapshot **reviewed** with the change: a constraint system is the
//! soundness argument, and a gate or lookup that disappears here is a forgery that becomes possible. The verifier
//! rebuilds the gates from its own code (they are not in `vk.bin`), so the snapshot records the verifying-key
//! format version and refuses to be rewritten with changed constraint systems under the same version.

use std::fmt::Write as _;
use std::path::PathBuf;

use halo2_proofs::halo2curves::bn256::G1Affine;
use halo2_proofs::plonk::{ConstraintSystem, Expression};
use halo2_proofs::transcript::{Blake2bWrite, Challenge255, EncodedChallenge, Transcript, TranscriptWriterBuffer};
use zkinfer_circuits::circuit::configure;
use zkinfer_circuits::layout::{plan, uncapped_degree};
use zkinfer_circuits::{field, CircuitParams, Fr, QuantizedModel};
use zkinfer_verifier::key::VERIFYING_KEY_VERSION;

use crate::models::{shipped, SHIPPED};
use crate::small;

/// Set to `1` to rewrite the snapshot file instead of comparing with it.
const UPDATE: &str = "ZKINFER_UPDATE_SNAPSHOTS";

fn snapshot_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/constraint-systems.txt")
}

/// A blake2b digest of `text` (through halo2's Blake2b transcript: 31-byte chunks absorbed as scalars after the
/// length, one challenge squeezed), as 64 hex digits.
fn digest(text: &str) -> String {
    let mut transcript = Blake2bWrite::<Vec<u8>, G1Affine, Challenge255<G1Affine>>::init(Vec::new());
    transcript.common_scalar(Fr::from(text.len() as u64)).expect("absorb");
    for chunk in text.as_bytes().chunks(31) {
        let mut bytes = [0u8; 32];
        bytes[..chunk.len()].copy_from_slice(chunk);
        transcript
            .common_scalar(field::from_bytes(&bytes).expect("below p"))
            .expect("absorb");
    }
    let challenge: Challenge255<G1Affine> = transcript.squeeze_challenge();
    field::to_bytes(&challenge.get_scalar())
        .iter()
        .rev()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn degrees(expressions: &[Expression<Fr>]) -> String {
    expressions
        .iter()
        .map(|e| e.degree().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The snapshot of one model with one layout.
fn describe(name: &str, model: &QuantizedModel, params: CircuitParams) -> String {
    let mut cs = ConstraintSystem::<Fr>::default();
    configure(&mut cs, &params);
    let phases = cs.advice_column_phase();
    let second = phases.iter().filter(|&&p| p > 0).count();
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "## {name}");
    let _ = writeln!(w, "params: {params:?}");
    let _ = writeln!(w, "k: {}", plan(model, &params).expect("plan").k);
    let _ = writeln!(
        w,
        "columns: advice {} (second phase {second}), fixed {}, instance {}, selectors {}, challenges {}, equality {}",
        cs.num_advice_columns(),
        cs.num_fixed_columns(),
        cs.num_instance_columns(),
        cs.num_selectors(),
        cs.num_challenges(),
        cs.permutation().get_columns().len()
    );
    let _ = writeln!(
        w,
        "queries: advice {}, fixed {}, instance {}",
        cs.advice_queries().len(),
        cs.fixed_queries().len(),
        cs.instance_queries().len()
    );
    let _ = writeln!(w, "degree: {} uncapped, {} in halo2", uncapped_degree(&cs), cs.degree());
    for gate in cs.gates() {
        let _ = writeln!(
            w,
            "gate {:?}: {} polynomials, degrees {}",
            gate.name(),
            gate.polynomials().len(),
            degrees(gate.polynomials())
        );
    }
    for lookup in cs.lookups() {
        let _ = writeln!(
            w,
            "lookup {:?}: {} expressions, input degrees {}, table degrees {}",
            lookup.name(),
            lookup.input_expressions().len(),
            degrees(lookup.input_expressions()),
            degrees(lookup.table_expressions())
        );
    }
    let _ = writeln!(w, "pinned: {}", digest(&format!("{:?}", cs.pinned())));
    s
}

/// The snapshot line that records the verifying-key format version the constraint systems belong to.
const VERSION_LINE: &str = "verifying-key version: ";

fn expected_or_empty(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The verifier rebuilds the gates from its own code, not from `vk.bin`: keys made for another constraint system
/// must be refused by their format version. So a snapshot whose constraint systems change must change the
/// version line too (an empty old snapshot is a first write).
fn version_bumped_with_the_circuit(old: &str, new: &str) -> Result<(), String> {
    let split = |text: &str| -> (Option<String>, String) {
        let version = text.lines().find(|l| l.starts_with(VERSION_LINE)).map(str::to_string);
        let body = text
            .lines()
            .filter(|l| !l.starts_with(VERSION_LINE))
            .collect::<Vec<_>>()
            .join("\n");
        (version, body)
    };
    let ((old_version, old_body), (new_version, new_body)) = (split(old), split(new));
    if old.is_empty() || old_body == new_body || old_version != new_version {
        Ok(())
    } else {
        Err(format!(
            "the constraint systems changed but the verifying-key format did not ({}): bump VERIFYING_KEY_VERSION \
             (verifier/src/key.rs) and PROVING_KEY_VERSION (prover/src/keys.rs), so that keys of the old circuit \
             are refused instead of verified against the new one, then rewrite the snapshot",
            new_version.unwrap_or_default().trim()
        ))
    }
}

/// Every model and layout the snapshot covers, described.
fn snapshot() -> String {
    let mut out = String::from(
        "# Constraint systems of the shipped and test models. Regenerate with ZKINFER_UPDATE_SNAPSHOTS=1 and have\n\
         # every change reviewed (see tests/circuit_audit/snapshot.rs).\n",
    );
    let _ = writeln!(out, "{VERSION_LINE}{VERIFYING_KEY_VERSION}");
    for name in SHIPPED {
        let model = shipped(name);
        out += &describe(name, model, CircuitParams::for_model(model));
    }
    let planned = |model: QuantizedModel| {
        let params = CircuitParams::for_model(&model);
        (model, params)
    };
    let cnn = small::small_cnn();
    let [mac, freivalds] = small::forge::cnn_params(&cnn);
    for (label, (model, params)) in [
        ("test: small", planned(small::small_model())),
        ("test: small-wide", planned(small::small_wide_model())),
        ("test: small-gated", planned(small::small_gated_model())),
        ("test: small-attention", planned(small::small_attention_model())),
        ("test: small-softmax", planned(small::small_softmax_model())),
        ("test: small-argmax", planned(small::small_argmax_model())),
        ("test: small-layer-norm", planned(small::small_layer_norm_model())),
        ("test: small-cnn", planned(cnn.clone())),
        ("test: small-cnn/mac", (cnn.clone(), mac)),
        ("test: small-cnn/freivalds", (cnn.clone(), freivalds.clone())),
        (
            "test: small-cnn/freivalds+clamp-table",
            (
                cnn.clone(),
                CircuitParams {
                    clamp_bits: zkinfer_circuits::layout::clamp_table_bits(&cnn),
                    ..freivalds
                },
            ),
        ),
    ] {
        out += &describe(label, &model, params);
    }
    out
}

/// A line diff of `old` and `new` (longest common subsequence): `-` lines only in `old`, `+` only in `new`.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn the_line_diff_shows_removed_and_added_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nc\nd\n"), "- b\n+ d\n");
    assert_eq!(diff("x\n", "x\n"), "");
}

#[test]
fn the_digest_is_blake2b_of_the_text_and_separates_texts() {
    assert_eq!(digest("gate"), digest("gate"));
    assert_ne!(digest("gate"), digest("gate "));
    assert_ne!(digest(""), digest("\0"));
    assert_eq!(digest("x").len(), 64);
    let old = format!("# head\n{VERSION_LINE}5\ngate a\n");
    assert!(version_bumped_with_the_circuit("", &old).is_ok());
    assert!(version_bumped_with_the_circuit(&old, &old).is_ok());
    assert!(version_bumped_with_the_circuit(&old, &old.replace("gate a", "gate b")).is_err());
    let bumped = old
        .replace("gate a", "gate b")
        .replace(&format!("{VERSION_LINE}5"), &format!("{VERSION_LINE}6"));
    assert!(version_bumped_with_the_circuit(&old, &bumped).is_ok());
}

/// The constraint systems match the checked-in snapshot (see the module documentation to update it).
#[test]
fn constraint_systems_match_the_snapshot() {
    let actual = snapshot();
    let path = snapshot_file();
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        if let Err(e) = version_bumped_with_the_circuit(&expected_or_empty(&path), &actual) {
            panic!("{e}");
        }
        std::fs::write(&path, &actual).expect("write the snapshot");
        eprintln!("rewrote {}: review the change", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the constraint systems differ from {} (- snapshot, + now):\n{}\nIf intended, rerun with {UPDATE}=1 and \
         have the new snapshot reviewed.",
        path.display(),
        diff(&expected, &actual)
    );
}
