//! The miner service's edges: malformed, oversized and replayed requests, back-pressure, TLS, an unusable
//! configuration, and the dashboard rendered in headless Chromium.

#[path = "common/chromium.rs"]
mod chromium;
mod common;

use std::time::Duration;

use common::miner::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

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
            "empty nonce (an unset shell variable must not mean 0)",
            raw(
                &json!({"input_data": [good], "salt": "01", "nonce": ""}).to_string(),
                "application/json",
            ),
            "empty",
        ),
        (
            "nonce 0x",
            raw(
                &json!({"input_data": [good], "salt": "01", "nonce": "0x"}).to_string(),
                "application/json",
            ),
            "empty",
        ),
        (
            "doubled 0x",
            raw(
                &json!({"input_data": [good], "salt": "01", "nonce": "0x0x12"}).to_string(),
                "application/json",
            ),
            "not hex",
        ),
        (
            "empty salt",
            raw(
                &json!({"input_data": [good], "salt": "", "nonce": "01"}).to_string(),
                "application/json",
            ),
            "salt",
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
    assert_eq!(
        statuses,
        [400, 415, 422, 422, 422, 422, 422, 422, 422, 422, 422, 422, 413]
    );

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
    let message = replay["error"].as_str().unwrap();
    assert!(message.contains("already used"), "{replay}");
    // The earlier job may be another client's: its id (which reads its outputs) is not handed out.
    assert!(!message.contains(&id) && !message.contains("job"), "{replay}");

    let text = metrics(&miner);
    assert!(
        metric(&text, "zkinfer_rejections_total{reason=\"invalid\"}").unwrap_or(0.0) >= 12.0,
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
            "--allow-insecure-dev-srs",
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

#[test]
fn serve_refuses_an_unusable_configuration_with_a_clear_error() {
    let dir = common::temp_dir("svc-config");
    let (zkm, keys, _) = digits_files();
    let (zkm, keys) = (zkm.to_str().unwrap(), keys.to_str().unwrap());
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--device", "cpu"];
        args.extend(extra);
        zkinfer(&args)
    };
    let o = serve(&["--model", zkm, "--model", zkm, "--keys", keys]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("one key directory per model"), "{}", text(&o));

    let missing = dir.join("missing.zkm");
    let o = serve(&["--model", missing.to_str().unwrap(), "--keys", keys]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("missing.zkm"), "{}", text(&o));

    let not_sqlite = dir.join("jobs.sqlite");
    std::fs::write(&not_sqlite, vec![0x5a; 4096]).unwrap();
    let o = serve(&["--model", zkm, "--keys", keys, "--db", not_sqlite.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("job database") && text(&o).contains("jobs.sqlite"),
        "{}",
        text(&o)
    );

    let o = serve(&[
        "--model",
        zkm,
        "--keys",
        keys,
        "--workers",
        "0",
        "--db",
        dir.join("ok.sqlite").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("at least 1"), "{}", text(&o));
}

/// A connection that never finishes its headers (slowloris) is closed after `--header-timeout-s`; a complete
/// request on another connection is served meanwhile.
#[test]
fn connections_that_never_finish_their_headers_are_closed() {
    use std::io::{Read, Write};
    let dir = common::temp_dir("svc-slow");
    let miner = Miner::start(&dir.join("jobs.sqlite"), &["--header-timeout-s", "1"]);
    let addr = miner.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert_eq!(
        http().get(miner.at("/v1/models")).send().unwrap().status(),
        StatusCode::OK,
        "others are served meanwhile"
    );
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server ends the connection (EOF, possibly after an error response, or a reset) instead of waiting.
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "the half-sent request held its connection for {waited:?}"
    );
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        !answer.contains("200 OK"),
        "a request without its end of headers was served: {answer}"
    );
}
