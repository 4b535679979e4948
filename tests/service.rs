//! The miner service end to end on loopback: `zkinfer serve` as a process, the `zkinfer client` CLI and the client
//! library against it, every proof verified; a load test; a crash mid-proof; a replayed answer.

mod common;

use std::time::Duration;

use common::miner::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use zkinfer_circuits::Fr;
use zkinfer_client::{Client, ClientError, RequestOptions};
use zkinfer_verifier::{
    input_commitment, verify_bundle, verify_fresh, Expectations, ProofBundle, ReplayCache, VerifyError,
};

#[test]
fn serve_client_and_verify_on_loopback() {
    let dir = common::temp_dir("svc-e2e");
    let miner = Miner::start(&dir.join("jobs.sqlite"), &[]);
    let (_, keys, model_id) = digits_files();

    let models: Value = http().get(miner.at("/v1/models")).send().unwrap().json().unwrap();
    assert_eq!(models[0]["model_id"], json!(model_id), "{models}");
    assert_eq!(models[0]["input_len"], json!(64));

    // The CLI client: one request, its proof verified by the client, then again by `zkinfer verify`.
    let bundle = dir.join("answer.bundle");
    let input = common::digits("input.json");
    let o = zkinfer(&[
        "client",
        "infer",
        "--allow-insecure-dev-srs",
        "--url",
        &miner.url,
        "--model-id",
        model_id,
        "--input",
        input.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), miner.stderr());
    assert!(text(&o).contains("proof VERIFIED"), "{}", text(&o));
    let o = zkinfer(&[
        "verify",
        "--allow-insecure-dev-srs",
        bundle.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--model-id",
        model_id,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // Pinning another model id: the server has no such model, the client says so and fails.
    let other = "11".repeat(32);
    let o = zkinfer(&[
        "client",
        "infer",
        "--allow-insecure-dev-srs",
        "--url",
        &miner.url,
        "--model-id",
        &other,
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("404") && text(&o).contains("no model"),
        "{}",
        text(&o)
    );

    // Output only: answered at once with status done and no bundle.
    let (status, answer, _) = post_infer(
        &miner,
        &json!({"input_data": [digit(1)], "salt": "01", "nonce": "0777", "proof": false}),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], json!("done"));
    assert_eq!(answer["bundle"], Value::Null);
    let bundle_status = http()
        .get(miner.at(&format!("/v1/jobs/{}/bundle", answer["job_id"].as_str().unwrap())))
        .send()
        .unwrap()
        .status();
    assert_eq!(bundle_status, StatusCode::NOT_FOUND);
}

#[test]
fn load_test_loses_no_request_and_every_proof_verifies() {
    let dir = common::temp_dir("svc-load");
    // A small queue next to more clients than slots: back-pressure (429) is part of the run.
    let miner = Miner::start(&dir.join("jobs.sqlite"), &["--workers", "2", "--queue", "3"]);
    let (_, _, model_id) = digits_files();
    let inputs = common::digits("test.json");
    let requests = 24;
    let o = zkinfer(&[
        "--json",
        "client",
        "test-batch",
        "--allow-insecure-dev-srs",
        "--url",
        &miner.url,
        "--model-id",
        model_id,
        "--inputs",
        inputs.to_str().unwrap(),
        "-n",
        &requests.to_string(),
        "--concurrency",
        "8",
        "--timeout-s",
        "240",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), miner.stderr());
    let report: Value = serde_json::from_slice(&o.stdout).expect("report JSON");
    eprintln!("load test report: {report}");
    assert_eq!(report["requests"], json!(requests));
    assert_eq!(report["succeeded"], json!(requests), "{report}");
    assert_eq!(report["failed"], json!(0), "{report}");
    assert_eq!(report["proofs_verified"], json!(requests), "{report}");
    assert_eq!(report["time_to_proof_ms"]["count"], json!(requests));
    assert!(report["time_to_proof_ms"]["p99"].as_f64().unwrap() >= report["time_to_proof_ms"]["p50"].as_f64().unwrap());
    assert!(report["proof_bytes"].as_u64().unwrap() > 1000, "{report}");

    // The server's own account agrees: every admitted job proven, none failed, nothing left queued.
    let text = metrics(&miner);
    assert_eq!(
        metric(&text, "zkinfer_proofs_total{outcome=\"ok\"}"),
        Some(requests as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "zkinfer_proofs_total{outcome=\"failed\"}"),
        None,
        "{text}"
    );
    assert_eq!(metric(&text, "zkinfer_queue_depth"), Some(0.0));
    let retries = report["retries_429"].as_u64().unwrap();
    let full = metric(&text, "zkinfer_rejections_total{reason=\"queue_full\"}").unwrap_or(0.0);
    assert_eq!(
        full, retries as f64,
        "every 429 the client waited out was counted by the server"
    );
}

#[test]
fn a_job_killed_mid_proof_finishes_after_restart() {
    let dir = common::temp_dir("svc-crash");
    let db = dir.join("jobs.sqlite");
    // The pause before proving keeps the job in `proving` long enough to kill the server there.
    let miner = Miner::start(&db, &["--debug-prove-delay-ms", "5000"]);
    let (salt, nonce) = (0x5a17, 0x0c0ffee);
    let (status, first, _) = post_infer(&miner, &request(&digit(3), salt, nonce));
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, second, _) = post_infer(&miner, &request(&digit(4), salt, nonce + 1));
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let id = first["job_id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(30), || job(&miner, &id, 0).status
            == zkinfer_service::JobStatus::Proving),
        "the job never started proving: {}",
        miner.stderr()
    );
    miner.kill();

    let miner = Miner::start(&db, &[]);
    assert!(
        wait_until(Duration::from_secs(5), || miner.stderr().contains("(2 resumed)")),
        "{}",
        miner.stderr()
    );
    let key = &common::digits_keys().verifier;
    for (answer, input, n) in [(&first, digit(3), nonce), (&second, digit(4), nonce + 1)] {
        let done = job(&miner, answer["job_id"].as_str().unwrap(), 30_000);
        assert_eq!(
            done.status,
            zkinfer_service::JobStatus::Done,
            "{done:?}\n{}",
            miner.stderr()
        );
        assert_eq!(
            json!(done.outputs),
            answer["outputs"],
            "the outputs answered before the crash are the proven ones"
        );
        let expect = Expectations {
            model_id: Some(key.model_id()),
            input_commitment: Some(input_commitment(key.meta(), &input, Fr::from(salt)).unwrap()),
            nonce: Some(Fr::from(n)),
            allow_insecure_dev_srs: true,
        };
        verify_bundle(key, &done.bundle.expect("bundle"), &expect).expect("the resumed proof verifies");
    }
}

#[test]
fn the_client_library_verifies_once_and_rejects_a_replayed_answer() {
    let dir = common::temp_dir("svc-replay");
    let miner = Miner::start(&dir.join("jobs.sqlite"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = Client::new(&miner.url, None).unwrap();
        let model_id = common::digits_keys().verifier.model_id();
        let key = client.verifier_key(&model_id).await.expect("pinned key");
        let replay = ReplayCache::new(16);
        let answer = client
            .infer_verified(
                &key,
                &digit(5),
                &RequestOptions {
                    allow_insecure_dev_srs: true,
                    ..RequestOptions::default()
                },
                &replay,
            )
            .await
            .expect("verified answer");
        assert!(answer.time_to_proof.unwrap() >= answer.time_to_output);
        let bundle = answer.bundle.expect("bundle");
        assert_eq!(client.bundle(&answer.job_id).await.expect("binary bundle"), bundle);

        // The same answer offered again (a miner replaying a cached proof) is refused.
        let public = bundle.public_inputs().unwrap();
        let expect = Expectations {
            model_id: Some(model_id),
            input_commitment: Some(public.input_commitment),
            nonce: Some(public.nonce),
            allow_insecure_dev_srs: true,
        };
        assert!(matches!(
            verify_fresh(&key, &bundle, &expect, &replay),
            Err(VerifyError::Replay { .. })
        ));
        // And it proves nothing about another request's nonce.
        let other = Expectations {
            nonce: Some(public.nonce + Fr::from(1)),
            ..expect
        };
        assert!(matches!(
            verify_bundle(&key, &bundle, &other),
            Err(VerifyError::NonceMismatch { .. })
        ));
        // A tampered output in the same bundle is rejected.
        let mut forged: ProofBundle = bundle.clone();
        forged.outputs[0] += 1;
        assert!(verify_bundle(&key, &forged, &Expectations::for_insecure_dev_keys()).is_err());
    });
}

/// What a lying miner sends back in [`the_client_catches_a_lying_miner`].
#[derive(Clone, Copy)]
enum Lie {
    /// The answer carries the commitment of another input.
    OtherCommitment,
    /// Right commitment and nonce in the answer, but the proof is an old one for another request.
    OldProof,
    /// A real proof of the request, but the first answer claimed another class and other float outputs.
    OtherClass,
    /// A real proof of the request, but the first answer claimed other outputs.
    OtherOutputs,
    /// A verifying key with the genuine halo2 key and metadata and other SRS points, served for the pinned id.
    DoctoredKey,
}

#[test]
fn the_client_catches_a_lying_miner() {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    use axum::{Json, Router};

    /// A miner that forwards to an honest one and lies in one way.
    #[derive(Clone)]
    struct Liar {
        lie: Lie,
        upstream: String,
        vk: Vec<u8>,
        old: ProofBundle,
    }

    async fn infer(State(liar): State<Liar>, Path(id): Path<String>, Json(request): Json<Value>) -> Json<Value> {
        let url = format!("{}/v1/models/{id}/infer", liar.upstream);
        let mut answer: Value = reqwest::Client::new()
            .post(url)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match liar.lie {
            Lie::OtherCommitment => answer["input_commitment"] = json!("01"),
            Lie::OtherOutputs => answer["outputs"][0] = json!(answer["outputs"][0].as_i64().unwrap() + 1),
            Lie::OtherClass => {
                let outputs = answer["outputs"].as_array().unwrap().len();
                let wrong = (answer["argmax"].as_u64().unwrap_or(0) + 1) % outputs as u64;
                answer["argmax"] = json!(wrong);
                answer["float_outputs"] = json!(vec![-1.0; outputs]);
            }
            Lie::OldProof | Lie::DoctoredKey => {}
        }
        Json(answer)
    }

    async fn job(State(liar): State<Liar>, Path(id): Path<String>) -> Json<Value> {
        let url = format!("{}/v1/jobs/{id}?wait_ms=30000", liar.upstream);
        let mut job: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        if let Lie::OldProof = liar.lie {
            // The bundle of an earlier request (same model, valid proof), served for this one.
            job["bundle"] = serde_json::to_value(&liar.old).unwrap();
        }
        Json(job)
    }

    let dir = common::temp_dir("svc-liar");
    let miner = Miner::start(&dir.join("jobs.sqlite"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = common::digits_keys().verifier.clone();
    runtime.block_on(async {
        let honest = Client::new(&miner.url, None).unwrap();
        let old = honest
            .infer_verified(
                &key,
                &digit(2),
                &RequestOptions {
                    allow_insecure_dev_srs: true,
                    ..RequestOptions::default()
                },
                &ReplayCache::new(4),
            )
            .await
            .expect("honest answer");
        for lie in [
            Lie::OtherCommitment,
            Lie::OldProof,
            Lie::OtherClass,
            Lie::OtherOutputs,
            Lie::DoctoredKey,
        ] {
            let mut vk = key.to_bytes();
            if let Lie::DoctoredKey = lie {
                let points_at = vk.len() - zkinfer_verifier::srs_points::SRS_POINTS_BYTES;
                let genuine = key.srs_points();
                let doctored = zkinfer_verifier::SrsPoints {
                    s_g2: -genuine.s_g2,
                    ..genuine
                };
                vk[points_at..].copy_from_slice(&doctored.to_bytes());
            }
            let liar = Liar {
                lie,
                upstream: miner.url.clone(),
                vk,
                old: old.bundle.clone().unwrap(),
            };
            let app = Router::new()
                .route(
                    "/v1/models/{id}/vk",
                    get(|State(liar): State<Liar>| async move { liar.vk }),
                )
                .route("/v1/models/{id}/infer", post(infer))
                .route("/v1/jobs/{id}", get(job))
                .with_state(liar);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let client = Client::new(&url, None).unwrap();
            if let Lie::DoctoredKey = lie {
                match client.verifier_key(&key.model_id()).await {
                    Err(ClientError::KeyMismatch { .. }) => {}
                    other => panic!("a doctored key was not refused: {:?}", other.map(|k| k.model_id())),
                }
                server.abort();
                continue;
            }
            let outcome = client
                .infer_verified(
                    &key,
                    &digit(2),
                    &RequestOptions {
                        allow_insecure_dev_srs: true,
                        ..RequestOptions::default()
                    },
                    &ReplayCache::new(4),
                )
                .await;
            match (lie, outcome) {
                (Lie::OtherCommitment, Err(ClientError::Mismatch(m))) => assert!(m.contains("input commitment"), "{m}"),
                (Lie::OldProof, Err(ClientError::Rejected(e))) => assert!(
                    matches!(
                        e,
                        VerifyError::InputCommitmentMismatch { .. } | VerifyError::NonceMismatch { .. }
                    ),
                    "{e}"
                ),
                (Lie::OtherOutputs, Err(ClientError::Mismatch(m))) => assert!(m.contains("differ"), "{m}"),
                (Lie::OtherClass, Ok(answer)) => {
                    let proven = answer.outputs.clone();
                    assert_eq!(
                        answer.argmax,
                        zkinfer_verifier::bundle::argmax(&proven),
                        "the class is the proven one"
                    );
                    assert!(
                        answer.float_outputs.iter().all(|&f| f != -1.0),
                        "{:?}",
                        answer.float_outputs
                    );
                    let scale = key.meta().output_scale;
                    let expected: Vec<f32> = proven.iter().map(|&q| q as f32 * scale).collect();
                    assert_eq!(answer.float_outputs, expected, "floats come from the key's scale");
                }
                (_, other) => panic!("a lying miner was not caught: {other:?}"),
            }
            server.abort();
        }
    });
}
