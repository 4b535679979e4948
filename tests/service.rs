//! The miner service end to end on loopback: `zkinfer serve` as a process, the `zkinfer client` CLI and the client
//! library against it, every proof verified; a load test; a crash mid-proof; bad requests; replays; TLS; the
//! dashboard in headless Chromium.

#[path = "common/chromium.rs"]
mod chromium;
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::miner::{digits_files, metric, wait_until, Miner};
use reqwest::blocking::Client as Http;
use reqwest::StatusCode;
use serde_json::{json, Value};
use zkinfer_circuits::Fr;
use zkinfer_service::client::{Client, RequestOptions};
use zkinfer_service::JobView;
use zkinfer_verifier::{
    field_to_hex, input_commitment, verify_bundle, verify_fresh, Expectations, ProofBundle, ReplayCache, VerifyError,
};

fn zkinfer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args(args)
        .output()
        .expect("run zkinfer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn http() -> Http {
    Http::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

fn hex_field(n: u64) -> String {
    field_to_hex(&Fr::from(n))
}

fn digit(i: usize) -> Vec<f32> {
    common::digits_test().inputs[i].clone()
}

/// POSTs an inference request; returns the status, the JSON answer and the Retry-After header.
fn post_infer(miner: &Miner, body: &Value) -> (StatusCode, Value, Option<String>) {
    let url = miner.at(&format!("/v1/models/{}/infer", miner.model_id()));
    let response = http().post(url).json(body).send().expect("POST infer");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    (status, response.json().unwrap_or(Value::Null), retry)
}

fn request(input: &[f32], salt: u64, nonce: u64) -> Value {
    json!({"input_data": [input], "salt": hex_field(salt), "nonce": hex_field(nonce)})
}

fn job(miner: &Miner, id: &str, wait_ms: u64) -> JobView {
    http()
        .get(miner.at(&format!("/v1/jobs/{id}?wait_ms={wait_ms}")))
        .send()
        .expect("GET job")
        .json()
        .expect("job JSON")
}

fn metrics(miner: &Miner) -> String {
    http()
        .get(miner.at("/metrics"))
        .send()
        .expect("GET metrics")
        .text()
        .expect("metrics text")
}

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
            input_commitment: Some(input_commitment(&key.meta, &input, Fr::from(salt)).unwrap()),
            nonce: Some(Fr::from(n)),
        };
        verify_bundle(key, &done.bundle.expect("bundle"), &expect).expect("the resumed proof verifies");
    }
}

#[test]
fn bad_requests_get_4xx_with_a_message() {
    let dir = common::temp_dir("svc-bad");
    let miner = Miner::start(
        &dir.join("jobs.sqlite"),
        &[
            "--max-body-bytes",
            "4096",
            "--queue",
            "1",
            "--debug-prove-delay-ms",
            "3000",
        ],
    );
    let url = miner.at(&format!("/v1/models/{}/infer", miner.model_id()));
    let raw = |body: &str, content_type: &str| {
        let r = http()
            .post(&url)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status(), r.text().unwrap())
    };
    let good = digit(0);
    let cases: Vec<(&str, (StatusCode, String), &str)> = vec![
        ("not JSON", raw("{\"input_data\": [", "application/json"), "parse"),
        (
            "wrong content type",
            raw(&request(&good, 1, 1).to_string(), "text/plain"),
            "Content-Type",
        ),
        (
            "missing nonce",
            raw(
                &json!({"input_data": [good], "salt": "01"}).to_string(),
                "application/json",
            ),
            "nonce",
        ),
        (
            "unknown field",
            raw(
                &json!({"input_data": [good], "salt": "01", "nonce": "01", "extra": 1}).to_string(),
                "application/json",
            ),
            "extra",
        ),
        (
            "short input",
            raw(&request(&good[..10], 1, 1).to_string(), "application/json"),
            "takes 64",
        ),
        (
            "two rows",
            raw(
                &json!({"input_data": [good, good], "salt": "01", "nonce": "01"}).to_string(),
                "application/json",
            ),
            "exactly one",
        ),
        (
            "salt not hex",
            raw(
                &json!({"input_data": [good], "salt": "xyz", "nonce": "01"}).to_string(),
                "application/json",
            ),
            "salt",
        ),
        (
            "nonce over the modulus",
            raw(
                &json!({"input_data": [good], "salt": "01", "nonce": "ff".repeat(32)}).to_string(),
                "application/json",
            ),
            "nonce",
        ),
        (
            "oversized",
            raw(
                &format!(
                    "{{\"input_data\": [[{}]], \"salt\": \"01\", \"nonce\": \"01\"}}",
                    vec!["0.5"; 4000].join(",")
                ),
                "application/json",
            ),
            "limit of 4096 bytes",
        ),
    ];
    for (what, (status, body), needle) in &cases {
        assert!(status.is_client_error(), "{what}: {status} {body}");
        let message: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
        let message = message["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {status}: {message}");
    }
    let statuses: Vec<u16> = cases.iter().map(|(_, (s, _), _)| s.as_u16()).collect();
    assert_eq!(statuses, [400, 415, 422, 422, 422, 422, 422, 422, 413]);

    let get = |path: &str| http().get(miner.at(path)).send().unwrap().status();
    assert_eq!(
        get(&format!("/v1/models/{}/infer", "00".repeat(32))),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(get("/v1/jobs/feedbeef"), StatusCode::NOT_FOUND);
    assert_eq!(get("/v1/nothing"), StatusCode::NOT_FOUND);
    let other = http()
        .post(miner.at(&format!("/v1/models/{}/infer", "00".repeat(32))))
        .json(&request(&good, 1, 1))
        .send()
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    // Back-pressure: one job proving (paused), one queued (capacity 1), the next is told when to come back.
    let (s1, first, _) = post_infer(&miner, &request(&good, 1, 100));
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    let id = first["job_id"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(10), || job(&miner, &id, 0).status
        != zkinfer_service::JobStatus::Queued));
    let (s2, second, _) = post_infer(&miner, &request(&good, 1, 101));
    assert_eq!(s2, StatusCode::ACCEPTED, "{second}");
    let (s3, third, retry) = post_infer(&miner, &request(&good, 1, 102));
    assert_eq!(s3, StatusCode::TOO_MANY_REQUESTS, "{third}");
    assert!(third["error"].as_str().unwrap().contains("queue is full"), "{third}");
    assert!(
        retry.and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r >= 1),
        "429 carries Retry-After"
    );
    // The bundle of an unfinished job is not there yet, and says how to wait.
    let pending = http().get(miner.at(&format!("/v1/jobs/{id}/bundle"))).send().unwrap();
    assert_eq!(pending.status(), StatusCode::CONFLICT);
    assert!(pending.text().unwrap().contains("wait_ms"));

    // A nonce is answered once per model: the same request again is refused as a replay.
    let (s4, replay, _) = post_infer(&miner, &request(&good, 1, 100));
    assert_eq!(s4, StatusCode::CONFLICT, "{replay}");
    assert!(replay["error"].as_str().unwrap().contains("already used"), "{replay}");

    let text = metrics(&miner);
    assert!(
        metric(&text, "zkinfer_rejections_total{reason=\"invalid\"}").unwrap_or(0.0) >= 8.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "zkinfer_rejections_total{reason=\"too_large\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "zkinfer_rejections_total{reason=\"queue_full\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "zkinfer_rejections_total{reason=\"replay\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("zkinfer_inference_seconds_bucket"), "{text}");
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
            .infer_verified(&key, &digit(5), &RequestOptions::default(), &replay)
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
        assert!(verify_bundle(&key, &forged, &Expectations::default()).is_err());
    });
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let dir = common::temp_dir("svc-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
    let miner = Miner::start(
        &dir.join("jobs.sqlite"),
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    assert!(miner.url.starts_with("https://127.0.0.1:"), "{}", miner.url);
    let url = miner.url.replace("127.0.0.1", "localhost");
    let (_, _, model_id) = digits_files();
    let input = common::digits("input.json");
    let args = |ca: Option<&str>| {
        let mut a = vec![
            "client",
            "infer",
            "--url",
            &url,
            "--model-id",
            model_id,
            "--input",
            input.to_str().unwrap(),
        ];
        if let Some(ca) = ca {
            a.extend(["--ca-cert", ca]);
        }
        zkinfer(&a.iter().map(|s| &**s).collect::<Vec<_>>())
    };
    let o = args(Some(cert_pem.to_str().unwrap()));
    assert!(o.status.success(), "{}\n{}", text(&o), miner.stderr());
    assert!(text(&o).contains("proof VERIFIED"), "{}", text(&o));
    // Without trusting the certificate the client refuses the connection; plain HTTP gets no answer either.
    let o = args(None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).to_lowercase().contains("certificate"), "{}", text(&o));
    let plain = http().get(url.replace("https://", "http://") + "/v1/models").send();
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be served on the TLS port"
    );
    let bad = zkinfer(&[
        "serve",
        "--model",
        "x.zkm",
        "--keys",
        "k",
        "--tls-cert",
        "/nonexistent.pem",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "--tls-cert without --tls-key: {}",
        text(&bad)
    );
}

#[test]
fn the_dashboard_plots_live_metrics_in_headless_chromium() {
    let Some(_) = chromium::find_chromium() else {
        if std::env::var_os("ZKINFER_REQUIRE_CHROMIUM").is_some() {
            panic!("ZKINFER_REQUIRE_CHROMIUM is set but no chromium was found (apt-get install chromium)");
        }
        eprintln!("NO CHROMIUM: dashboard test skipped (apt-get install chromium to run it)");
        return;
    };
    let dir = common::temp_dir("svc-dashboard");
    let miner = Miner::start(&dir.join("jobs.sqlite"), &[]);
    for i in 0..3u64 {
        let (status, answer, _) = post_infer(&miner, &request(&digit(i as usize), 7, 900 + i));
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let _ = post_infer(&miner, &json!({"input_data": [[1.0]], "salt": "01", "nonce": "01"}));
    let page = http().get(miner.at("/dashboard")).send().unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    let dom = chromium::dump_dom(&miner.at("/dashboard?interval_ms=200"), 5000).expect("chromium dump");
    for series in [
        "requests_per_s",
        "queue_depth",
        "jobs_proving",
        "proofs_per_s",
        "failures",
        "rejections_per_s",
        "proving_ms_mean",
        "inference_ms_mean",
    ] {
        let points = chromium::polyline_points(&dom, series);
        assert!(
            points.is_some_and(|n| n >= 2),
            "series {series}: {points:?} points\n{dom}"
        );
        assert!(
            chromium::element_text(&dom, &format!("value-{series}")).is_some(),
            "value-{series}"
        );
    }
    let status = chromium::element_text(&dom, "status").unwrap_or_default();
    assert!(status.contains("live"), "status: {status}");
    assert!(dom.contains("digits"), "the models table lists the served model");
}
