//! Greedy generation proven by one proof: a small causal attention language model (token ids, embedding, one
//! masked attention head, a residual, next-token logits per position) generates after a prompt, and the verifier
//! checks every token against the proof of the sequence it rebuilds. Each way a miner could lie is rejected: a token
//! that is not its row's argmax, tokens dropped, another prompt, salt or nonce, other padding, a proof of a model
//! whose attention is not masked or is masked one diagonal too wide (which setup marks as not causal). The CLI's
//! `generate` and `verify` and the miner service do the same.

mod common;
#[path = "../prover/tests/onnx/mod.rs"]
mod onnx;

use std::sync::OnceLock;

use onnx::{attr_int, attr_ints, node, random_values, tensor, tensor_bool, token_model, write};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkinfer_circuits::model::CausalOutputs;
use zkinfer_circuits::{CircuitParams, Fr, QuantizedModel};
use zkinfer_prover::{
    import_onnx, infer, quantize, save_model, setup, write_keys, GenerateRequest, KeyPair, ProveRequest, Prover,
    ProverError, SrsSource,
};
use zkinfer_verifier::generation::{proven_sequence, PAD_TOKEN};
use zkinfer_verifier::{field_to_hex, verify_generation, Expectations, GenerationBundle, VerifyError};

/// Positions (the context).
const T: usize = 8;
/// Vocabulary.
const V: usize = 12;
/// Width.
const D: usize = 8;

/// How the attention scores are masked before the softmax.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mask {
    /// `Where` of the causal condition (`j ≤ i`) between the scores and −1e9, as torch exports `masked_fill`.
    Where,
    /// `Add` of a constant 0 / −∞ matrix, as exporters write an additive causal mask.
    Add,
    /// An additive mask one diagonal too wide (`j ≤ i + 1`): every position sees the next one.
    AddOffByOne,
    /// No mask: bidirectional attention.
    None,
}

/// `x [1, T]` ids → `Gather(wte)` + `wpe` → Q, K, V → `Q·Kᵀ` scaled → the `mask` → `Softmax` → `·V` → `+`
/// residual → `lm_head` → logits `[1, T, V]`.
fn attention_lm(seed: u64, mask: Mask) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (t, v, d) = (T as i64, V as i64, D as i64);
    let mut nodes = vec![
        node("Gather", "wte", &["wte_weight", "x"], &["e"], vec![attr_int("axis", 0)]),
        node("Add", "pos", &["e", "wpe"], &["h"], vec![]),
        node("MatMul", "q_proj", &["h", "wq"], &["q"], vec![]),
        node("MatMul", "k_proj", &["h", "wk"], &["k"], vec![]),
        node("MatMul", "v_proj", &["h", "wv"], &["v"], vec![]),
        node("Transpose", "k_t", &["k"], &["kt"], vec![attr_ints("perm", &[0, 2, 1])]),
        node("MatMul", "scores", &["q", "kt"], &["s"], vec![]),
        node("Mul", "scale", &["s", "inv_sqrt"], &["s2"], vec![]),
    ];
    let scores = match mask {
        Mask::Where => {
            nodes.push(node("Where", "mask", &["causal", "s2", "minus_inf"], &["s3"], vec![]));
            "s3"
        }
        Mask::Add | Mask::AddOffByOne => {
            nodes.push(node("Add", "mask", &["s2", "additive"], &["s3"], vec![]));
            "s3"
        }
        Mask::None => "s2",
    };
    nodes.extend([
        node("Softmax", "weights", &[scores], &["a"], vec![attr_int("axis", -1)]),
        node("MatMul", "mix", &["a", "v"], &["o"], vec![]),
        node("Add", "residual", &["o", "h"], &["r"], vec![]),
        node("MatMul", "lm_head", &["r", "w_head"], &["y"], vec![]),
    ]);
    let reach = if mask == Mask::AddOffByOne { 1 } else { 0 };
    let visible = |e: usize| e % T <= e / T + reach;
    let condition: Vec<f32> = (0..T * T).map(|e| f32::from(u8::from(visible(e)))).collect();
    let additive: Vec<f32> = (0..T * T)
        .map(|e| if visible(e) { 0.0 } else { f32::NEG_INFINITY })
        .collect();
    let mut inits = vec![
        tensor("wte_weight", &[v, d], &random_values(&mut rng, V * D, 1.0)),
        tensor("wpe", &[t, d], &random_values(&mut rng, T * D, 0.5)),
        tensor("wq", &[d, d], &random_values(&mut rng, D * D, 0.7)),
        tensor("wk", &[d, d], &random_values(&mut rng, D * D, 0.7)),
        tensor("wv", &[d, d], &random_values(&mut rng, D * D, 0.7)),
        tensor("w_head", &[d, v], &random_values(&mut rng, D * V, 0.9)),
        tensor("inv_sqrt", &[], &[1.0 / (D as f32).sqrt()]),
    ];
    match mask {
        Mask::Where => inits.extend([
            tensor_bool("causal", &[1, t, t], &condition),
            tensor("minus_inf", &[], &[-1e9]),
        ]),
        Mask::Add | Mask::AddOffByOne => inits.push(tensor("additive", &[t, t], &additive)),
        Mask::None => {}
    }
    token_model(nodes, inits, &[1, t])
}

/// `n` random id sequences.
fn random_ids(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..T).map(|_| rng.gen_range(0..V) as f32).collect())
        .collect()
}

/// The language model with `mask`, quantized on random sequences.
fn language_model(mask: Mask) -> QuantizedModel {
    let name = format!("lm-{mask:?}.onnx");
    let float = import_onnx(write(&name, &attention_lm(21, mask))).expect("import");
    quantize(&float, &random_ids(22, 48)).expect("quantize")
}

/// The causal model and its keys (insecure development SRS), made once.
fn causal() -> &'static (QuantizedModel, KeyPair) {
    static MODEL: OnceLock<(QuantizedModel, KeyPair)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let model = language_model(Mask::Where);
        let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
        (model, keys)
    })
}

fn prover() -> Prover {
    let (model, keys) = causal();
    Prover::from_keys(model.clone(), keys.prover.clone(), keys.verifier.clone(), None).expect("prover")
}

const PROMPT: [i64; 3] = [4, 1, 7];
const STEPS: usize = 5;

fn salt_nonce() -> (Fr, Fr) {
    common::salt_and_nonce()
}

fn expectations() -> Expectations {
    let (_, nonce) = salt_nonce();
    Expectations {
        model_id: Some(causal().1.verifier.model_id()),
        nonce: Some(nonce),
        ..Expectations::for_insecure_dev_keys()
    }
}

/// A generation of [`STEPS`] tokens after [`PROMPT`], made once.
fn generated() -> &'static GenerationBundle {
    static BUNDLE: OnceLock<GenerationBundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let (salt, nonce) = salt_nonce();
        let request = GenerateRequest {
            prompt: &PROMPT,
            tokens: STEPS,
            salt,
            nonce,
        };
        prover().generate(&request).expect("generate").bundle
    })
}

#[test]
fn setup_marks_masked_attention_causal_and_unmasked_or_leaky_attention_not() {
    let (model, keys) = causal();
    let expected = CausalOutputs {
        positions: T,
        row_len: V,
    };
    assert_eq!(model.causal_outputs(), Ok(expected));
    assert_eq!(keys.verifier.meta().causal_outputs, Some(expected));
    assert_eq!(language_model(Mask::Add).causal_outputs(), Ok(expected));
    let e = language_model(Mask::None).causal_outputs().unwrap_err();
    assert!(e.contains("row 0 reads the token at position"), "{e}");
    // A mask one diagonal too wide: row 0 sees position 1, the first place the analysis looks.
    let e = language_model(Mask::AddOffByOne).causal_outputs().unwrap_err();
    assert!(e.contains("row 0 reads the token at position 1"), "{e}");
}

#[test]
fn each_generated_token_is_the_greedy_choice_whatever_follows_it() {
    let (model, _) = causal();
    let g = generated();
    assert_eq!((g.prompt_len, g.tokens.len()), (PROMPT.len(), STEPS));
    // Step by step, as an unproven generation runs: each step sees the prompt and the tokens before it, and the
    // positions after them hold anything at all (random ids here, not the proof's padding).
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let mut sequence = PROMPT.to_vec();
    for &token in &g.tokens {
        let mut input = sequence.clone();
        input.resize_with(T, || rng.gen_range(0..V as i64));
        let logits = infer(model, &input).expect("infer");
        let row = &logits[(sequence.len() - 1) * V..sequence.len() * V];
        let max = row.iter().max().unwrap();
        assert_eq!(row.iter().position(|v| v == max), Some(token as usize));
        sequence.push(token);
    }
    // The proof's outputs are the proven sequence's.
    let causal = model.causal_outputs().unwrap();
    let proven = proven_sequence(&causal, &PROMPT, &g.tokens).unwrap();
    assert_eq!(proven[..PROMPT.len() + STEPS - 1], sequence[..PROMPT.len() + STEPS - 1]);
    assert!(proven[PROMPT.len() + STEPS - 1..].iter().all(|&id| id == PAD_TOKEN));
    assert_eq!(g.bundle.outputs, infer(model, &proven).unwrap());
}

#[test]
fn a_generation_verifies_against_the_prompt_and_salt_and_nothing_else() {
    let (_, keys) = causal();
    let key = &keys.verifier;
    let (salt, nonce) = salt_nonce();
    let g = generated();
    let ok = verify_generation(key, g, &PROMPT, salt, &expectations()).expect("accepted");
    assert_eq!(ok.tokens, g.tokens);

    let rejected = |g: &GenerationBundle, prompt: &[i64], salt: Fr, expect: &Expectations| {
        let e = verify_generation(key, g, prompt, salt, expect).expect_err("accepted");
        assert!(e.is_rejection(), "{e}");
        e
    };
    // A token that is not its row's argmax.
    let mut lie = g.clone();
    lie.tokens[2] = (lie.tokens[2] + 1) % V as i64;
    let e = rejected(&lie, &PROMPT, salt, &expectations());
    assert!(e.to_string().contains("token 2 is"), "{e}");
    // The last token dropped: the rows still choose the first tokens, but the proven sequence held the dropped
    // token's predecessor in a position the shorter generation pads.
    let mut short = g.clone();
    short.tokens.truncate(STEPS - 2);
    assert!(matches!(
        rejected(&short, &PROMPT, salt, &expectations()),
        VerifyError::InputCommitmentMismatch { .. }
    ));
    // Another prompt of the same length, another salt, another nonce.
    let other_prompt = [4, 1, 8];
    assert!(matches!(
        rejected(g, &other_prompt, salt, &expectations()),
        VerifyError::InputCommitmentMismatch { .. } | VerifyError::Generation { .. }
    ));
    rejected(g, &PROMPT, salt + Fr::from(1u64), &expectations());
    let other_nonce = Expectations {
        nonce: Some(nonce + Fr::from(1u64)),
        ..expectations()
    };
    assert!(matches!(
        rejected(g, &PROMPT, salt, &other_nonce),
        VerifyError::NonceMismatch { .. }
    ));
    // A prompt of another length than the bundle's.
    let mut longer = g.clone();
    longer.prompt_len += 1;
    rejected(&longer, &PROMPT, salt, &expectations());
    // The prompt plus the first token is a prompt of its own: the rest is a valid generation after it only if the
    // bundle says so, and this one says otherwise.
    let extended: Vec<i64> = PROMPT.iter().copied().chain([g.tokens[0]]).collect();
    rejected(g, &extended, salt, &expectations());
    // The last row's logits changed so that it chooses another token (two logits swapped), the last token to match
    // (the only one the proven sequence does not hold): the proof does not prove those outputs.
    let mut forged = g.clone();
    let last = STEPS - 1;
    let row = PROMPT.len() - 1 + last;
    let chosen = forged.tokens[last] as usize;
    forged.bundle.outputs.swap(row * V + chosen, row * V + (chosen + 1) % V);
    let causal = causal().0.causal_outputs().unwrap();
    forged.tokens[last] = zkinfer_verifier::generation::greedy_token(&causal, &forged.bundle.outputs, row).unwrap();
    assert_ne!(forged.tokens[last], g.tokens[last], "the swap changed nothing");
    assert!(matches!(
        rejected(&forged, &PROMPT, salt, &expectations()),
        VerifyError::ProofRejected
    ));
    // Too many tokens for the context.
    let mut long = g.clone();
    long.tokens = vec![0; T];
    rejected(&long, &PROMPT, salt, &expectations());
}

#[test]
fn a_proof_over_other_padding_is_not_the_generation() {
    // An honest-looking proof of the prompt and tokens with another filler: valid as a proof, but its commitment
    // is not the one of the sequence the verifier rebuilds.
    let (model, keys) = causal();
    let (salt, nonce) = salt_nonce();
    let g = generated();
    let causal = model.causal_outputs().unwrap();
    let mut sequence = proven_sequence(&causal, &PROMPT, &g.tokens).unwrap();
    for id in &mut sequence[PROMPT.len() + STEPS - 1..] {
        *id = 5;
    }
    let input: Vec<f32> = sequence.iter().map(|&id| id as f32).collect();
    let request = ProveRequest {
        input: &input,
        salt,
        nonce,
    };
    let proof = zkinfer_prover::prove(model, &keys.prover, &keys.verifier, &request).expect("prove");
    let padded_otherwise = GenerationBundle {
        bundle: proof.bundle,
        ..g.clone()
    };
    let e = verify_generation(&keys.verifier, &padded_otherwise, &PROMPT, salt, &expectations()).unwrap_err();
    assert!(matches!(e, VerifyError::InputCommitmentMismatch { .. }), "{e}");
}

#[test]
fn a_model_that_is_not_causal_cannot_generate() {
    let model = language_model(Mask::None);
    let keys = setup(&model, CircuitParams::for_model(&model), &SrsSource::InsecureDev).expect("setup");
    assert_eq!(keys.verifier.meta().causal_outputs, None);
    let prover = Prover::from_keys(model.clone(), keys.prover.clone(), keys.verifier.clone(), None).unwrap();
    let (salt, nonce) = salt_nonce();
    let request = GenerateRequest {
        prompt: &PROMPT,
        tokens: 2,
        salt,
        nonce,
    };
    let e = prover.generate(&request).unwrap_err();
    assert!(
        matches!(e, ProverError::Generation { .. }) && e.to_string().contains("not a causal language model"),
        "{e}"
    );
    // A miner wrapping a proof of that model as a generation is refused by the key, whatever the tokens.
    let causal = CausalOutputs {
        positions: T,
        row_len: V,
    };
    let sequence = proven_sequence(&causal, &PROMPT, &[0, 0]).unwrap();
    let input: Vec<f32> = sequence.iter().map(|&id| id as f32).collect();
    let proof = zkinfer_prover::prove(
        &model,
        &keys.prover,
        &keys.verifier,
        &ProveRequest {
            input: &input,
            salt,
            nonce,
        },
    )
    .unwrap();
    let tokens: Vec<i64> = (0..2)
        .map(|j| zkinfer_verifier::generation::greedy_token(&causal, &proof.bundle.outputs, PROMPT.len() - 1 + j))
        .map(Option::unwrap)
        .collect();
    let wrapped = GenerationBundle {
        prompt_len: PROMPT.len(),
        tokens,
        bundle: proof.bundle,
    };
    let e = verify_generation(
        &keys.verifier,
        &wrapped,
        &PROMPT,
        salt,
        &Expectations::for_insecure_dev_keys(),
    );
    assert!(matches!(e, Err(VerifyError::NotCausal { .. })), "{e:?}");
}

#[test]
fn prompts_the_context_cannot_hold_are_refused_before_proving() {
    let (salt, nonce) = salt_nonce();
    let prompt = [1; 6];
    let e = prover()
        .generate(&GenerateRequest {
            prompt: &prompt,
            tokens: 4,
            salt,
            nonce,
        })
        .unwrap_err();
    assert!(e.to_string().contains("generate at most 3 tokens"), "{e}");
    assert!(!e.to_string().contains("rejected"), "one prefix only: {e}");
    // A length no context holds is refused before anything is allocated for it.
    let e = prover()
        .generate(&GenerateRequest {
            prompt: &PROMPT,
            tokens: usize::MAX,
            salt,
            nonce,
        })
        .unwrap_err();
    assert!(e.to_string().contains("generate at most 6 tokens"), "{e}");
    for (prompt, tokens) in [(&[][..], 2), (&[1][..], 0)] {
        let e = prover()
            .generate(&GenerateRequest {
                prompt,
                tokens,
                salt,
                nonce,
            })
            .unwrap_err();
        assert!(matches!(e, ProverError::Generation { .. }), "{e}");
    }
    let e = prover()
        .generate(&GenerateRequest {
            prompt: &[1, V as i64],
            tokens: 1,
            salt,
            nonce,
        })
        .unwrap_err();
    assert!(e.to_string().contains("index 1"), "{e}");
}

#[test]
fn generation_bundles_round_trip_and_refuse_damage() {
    let g = generated();
    assert_eq!(&GenerationBundle::from_bytes(&g.to_bytes()).unwrap(), g);
    assert_eq!(&GenerationBundle::from_json(&g.to_json()).unwrap(), g);
    assert!(GenerationBundle::is_generation(&g.to_bytes()) && GenerationBundle::is_generation(g.to_json().as_bytes()));
    assert!(!GenerationBundle::is_generation(&g.bundle.to_bytes()));
    assert!(!GenerationBundle::is_generation(g.bundle.to_json().as_bytes()));
    let bytes = g.to_bytes();
    for cut in [4, 8, 20, bytes.len() - 1] {
        assert!(GenerationBundle::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A plain bundle is not a generation, and an empty generation is refused when read.
    assert!(GenerationBundle::from_bytes(&g.bundle.to_bytes()).is_err());
    let mut empty = g.clone();
    empty.tokens.clear();
    assert!(GenerationBundle::from_bytes(&empty.to_bytes()).is_err());
    let json = g.to_json().replace("\"version\": 1", "\"version\": 9");
    assert!(GenerationBundle::from_json(&json)
        .unwrap_err()
        .to_string()
        .contains("version 9"));
}

#[test]
fn the_cli_generates_and_verifies_a_generation() {
    let (model, keys) = causal();
    let dir = common::temp_dir("generation-cli");
    let (zkm, key_dir, out) = (dir.join("lm.zkm"), dir.join("keys"), dir.join("gen.json"));
    save_model(&zkm, model).unwrap();
    write_keys(keys, &key_dir).unwrap();
    let (salt, nonce) = salt_nonce();
    let (salt, nonce) = (field_to_hex(&salt), field_to_hex(&nonce));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = |args: &[&str]| common::miner::zkinfer(args);
    let generate = run(&[
        "generate",
        &path(&zkm),
        "--keys",
        &path(&key_dir),
        "--tokens",
        "4,1,7",
        "-n",
        "5",
        "--nonce",
        &nonce,
        "--salt",
        &salt,
        "-o",
        &path(&out),
        "--device",
        "cpu",
    ]);
    assert!(generate.status.success(), "{}", common::miner::text(&generate));
    let ids = format!("{:?}", generated().tokens);
    assert!(
        common::miner::text(&generate).contains(&ids),
        "{}",
        common::miner::text(&generate)
    );
    let model_id = hex::encode(keys.verifier.model_id());
    let verify = |prompt: &str, salt: &str| {
        let mut args = vec![
            "verify",
            out.to_str().unwrap(),
            "--keys",
            key_dir.to_str().unwrap(),
            "--model-id",
            &model_id,
            "--nonce",
            &nonce,
            "--allow-insecure-dev-srs",
            "--tokens",
            prompt,
        ];
        if !salt.is_empty() {
            args.extend(["--salt", salt]);
        }
        run(&args)
    };
    let accepted = verify("4 1 7", &salt);
    assert_eq!(accepted.status.code(), Some(0), "{}", common::miner::text(&accepted));
    assert!(common::miner::text(&accepted).contains("ACCEPTED"));
    let other_prompt = verify("4,1,8", &salt);
    assert_eq!(
        other_prompt.status.code(),
        Some(1),
        "{}",
        common::miner::text(&other_prompt)
    );
    let no_salt = verify("4,1,7", "");
    assert_eq!(no_salt.status.code(), Some(2));
    assert!(
        common::miner::text(&no_salt).contains("--salt"),
        "{}",
        common::miner::text(&no_salt)
    );

    // A plain proof of the language model: `verify` states the next token of each position, not one class.
    let input = dir.join("ids.json");
    std::fs::write(
        &input,
        serde_json::json!({"input_data": [random_ids(25, 1)[0]]}).to_string(),
    )
    .unwrap();
    let plain = dir.join("plain.bundle");
    let proved = run(&[
        "prove",
        &path(&zkm),
        "--keys",
        &path(&key_dir),
        "--input",
        &path(&input),
        "--nonce",
        "0x5",
        "-o",
        &path(&plain),
        "--device",
        "cpu",
    ]);
    assert!(proved.status.success(), "{}", common::miner::text(&proved));
    let checked = run(&[
        "verify",
        &path(&plain),
        "--keys",
        &path(&key_dir),
        "--allow-insecure-dev-srs",
    ]);
    let said = common::miner::text(&checked);
    assert!(
        checked.status.success() && said.contains("8 rows of 12 logits"),
        "{said}"
    );
}

/// The causal model and its keys as files: (`lm.zkm`, key directory, model id hex). Written once.
fn causal_files() -> &'static (std::path::PathBuf, std::path::PathBuf, String) {
    static FILES: OnceLock<(std::path::PathBuf, std::path::PathBuf, String)> = OnceLock::new();
    FILES.get_or_init(|| {
        let (model, keys) = causal();
        let dir = common::temp_dir("generation-served");
        let (zkm, key_dir) = (dir.join("lm.zkm"), dir.join("keys"));
        save_model(&zkm, model).unwrap();
        write_keys(keys, &key_dir).unwrap();
        (zkm, key_dir, hex::encode(keys.verifier.model_id()))
    })
}

#[test]
fn a_miner_answers_generations_at_once_and_proves_them_once() {
    use common::miner::{http, job, Miner};
    let (zkm, key_dir, lm_id) = causal_files();
    let dir = common::temp_dir("generation-miner");
    let miner = Miner::start(
        &dir.join("jobs.sqlite"),
        &["--model", zkm.to_str().unwrap(), "--keys", key_dir.to_str().unwrap()],
    );
    let post = |model: &str, body: serde_json::Value| {
        let response = http()
            .post(miner.at(&format!("/v1/models/{model}/infer")))
            .json(&body)
            .send()
            .expect("POST infer");
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().unwrap_or_default())
    };
    let (salt, _) = salt_nonce();
    let body = |prompt: &[i64], generate: usize, nonce: u64| {
        serde_json::json!({"input_data": [prompt], "salt": field_to_hex(&salt),
            "nonce": common::miner::hex_field(nonce), "generate": generate})
    };
    // The tokens come with the answer; the proof, once done, is a generation bundle that verifies.
    let (status, answer) = post(lm_id, body(&PROMPT, STEPS, 1));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["generation"]["tokens"], serde_json::json!(generated().tokens));
    let job_id = answer["job_id"].as_str().unwrap().to_string();
    let done = job(&miner, &job_id, 30_000);
    assert_eq!(done.status, zkinfer_service::JobStatus::Done, "{:?}", done.error);
    let bytes = http()
        .get(miner.at(&format!("/v1/jobs/{job_id}/bundle")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let bundle = GenerationBundle::from_bytes(&bytes).expect("a generation bundle");
    let expect = Expectations {
        nonce: Some(Fr::from(1u64)),
        ..expectations()
    };
    let verified = verify_generation(&causal().1.verifier, &bundle, &PROMPT, salt, &expect).expect("verified");
    assert_eq!(verified.tokens, generated().tokens);

    // Requests that cannot be generations are refused with 422, not failed on the server.
    let (status, e) = post(miner.model_id(), body(&[1, 2], 2, 2));
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("not a causal language model"),
        "{e}"
    );
    let (status, e) = post(lm_id, body(&[1; 7], 3, 3));
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("generate at most 2 tokens"),
        "{e}"
    );
    let (status, e) = post(lm_id, body(&[1, V as i64], 1, 4));
    assert_eq!(status, 422, "{e}");
    let (status, e) = post(lm_id, body(&[1; T + 1], 1, 5));
    assert_eq!(status, 422, "{e}");
    // A length no context holds is answered 422 (it once made the server allocate it), and the server lives on.
    let (status, e) = post(lm_id, body(&PROMPT, 100_000_000_000_000, 6));
    assert_eq!(status, 422, "{e}");
    let (status, e) = post(lm_id, body(&PROMPT, usize::MAX, 7));
    assert_eq!(status, 422, "{e}");

    // The client's test batch: time to first token and to a verified generation, every proof checked.
    let inputs = dir.join("prompts.json");
    let rows: Vec<Vec<f32>> = random_ids(24, 3);
    std::fs::write(&inputs, serde_json::json!({ "input_data": rows }).to_string()).unwrap();
    let out = common::miner::zkinfer(&[
        "--json",
        "client",
        "test-batch",
        "--url",
        &miner.url,
        "--model-id",
        lm_id,
        "--inputs",
        inputs.to_str().unwrap(),
        "--generate",
        "3",
        "-n",
        "3",
        "--concurrency",
        "2",
        "--allow-insecure-dev-srs",
    ]);
    assert!(out.status.success(), "{}", common::miner::text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["proofs_verified"], 3, "{report}");
    assert_eq!(report["generated_tokens"], 3, "{report}");
    assert!(report["time_to_output_ms"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    // The digits model is not causal: the client says so before sending anything.
    let refused = common::miner::zkinfer(&[
        "client",
        "test-batch",
        "--url",
        &miner.url,
        "--model-id",
        miner.model_id(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--generate",
        "3",
        "--allow-insecure-dev-srs",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(common::miner::text(&refused).contains("not a causal language model"));
}
