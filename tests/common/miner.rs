//! A `zkinfer serve` process for tests: started on a free loopback port over the shipped digits model, killed when
//! dropped (SIGKILL, as a crash would), its stderr kept for failure messages.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::Client as Http;
use reqwest::StatusCode;
use serde_json::{json, Value};
use zkinfer_circuits::Fr;
use zkinfer_service::JobView;
use zkinfer_verifier::field_to_hex;

use super::{digits_keys, digits_model, digits_test, temp_dir};

/// The digits model and its keys as files: (`model.zkm`, key directory, model id hex). Written once per binary.
pub fn digits_files() -> &'static (PathBuf, PathBuf, String) {
    static FILES: OnceLock<(PathBuf, PathBuf, String)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = temp_dir("miner-model");
        let zkm = dir.join("model.zkm");
        let keys = dir.join("keys");
        zkinfer_prover::save_model(&zkm, digits_model()).expect("save model");
        zkinfer_prover::write_keys(digits_keys(), &keys).expect("write keys");
        let id = hex::encode(digits_keys().verifier.model_id());
        (zkm, keys, id)
    })
}

/// A running server.
pub struct Miner {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl Miner {
    /// Starts `zkinfer serve` on the digits model with the job database `db` and `extra` arguments.
    pub fn start(db: &Path, extra: &[&str]) -> Miner {
        let (zkm, keys, _) = digits_files();
        let mut child = Command::new(env!("CARGO_BIN_EXE_zkinfer"))
            .args(["serve", "--listen", "127.0.0.1:0", "--device", "cpu", "--model"])
            .arg(zkm)
            .arg("--keys")
            .arg(keys)
            .arg("--db")
            .arg(db)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zkinfer serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = err.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout);
        lines.read_line(&mut first).expect("read the listening line");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while lines.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        let Some(url) = first.trim().strip_prefix("listening on ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "serve did not start: stdout {first:?}, stderr {}",
                stderr.lock().unwrap()
            );
        };
        Miner { child, url, stderr }
    }

    /// What the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the server at once (SIGKILL: no graceful shutdown, as in a crash).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The model id served (hex).
    pub fn model_id(&self) -> &'static str {
        &digits_files().2
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// The value of an unlabelled or labelled sample line (`name{labels} value`) in a metrics text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs the `zkinfer` binary.
pub fn zkinfer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkinfer"))
        .args(args)
        .output()
        .expect("run zkinfer")
}

/// stdout and stderr of a run.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A blocking HTTP client with a generous timeout.
pub fn http() -> Http {
    Http::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// `n` as the API's hex field element.
pub fn hex_field(n: u64) -> String {
    field_to_hex(&Fr::from(n))
}

/// Test digit `i` of the shipped split.
pub fn digit(i: usize) -> Vec<f32> {
    digits_test().inputs[i].clone()
}

/// POSTs an inference request; returns the status, the JSON answer and the Retry-After header.
pub fn post_infer(miner: &Miner, body: &Value) -> (StatusCode, Value, Option<String>) {
    let url = miner.at(&format!("/v1/models/{}/infer", miner.model_id()));
    let response = http().post(url).json(body).send().expect("POST infer");
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    (status, response.json().unwrap_or(Value::Null), retry)
}

/// An inference request body.
pub fn request(input: &[f32], salt: u64, nonce: u64) -> Value {
    json!({"input_data": [input], "salt": hex_field(salt), "nonce": hex_field(nonce)})
}

/// `GET /v1/jobs/{id}?wait_ms=`.
pub fn job(miner: &Miner, id: &str, wait_ms: u64) -> JobView {
    http()
        .get(miner.at(&format!("/v1/jobs/{id}?wait_ms={wait_ms}")))
        .send()
        .expect("GET job")
        .json()
        .expect("job JSON")
}

/// `GET /metrics`.
pub fn metrics(miner: &Miner) -> String {
    http()
        .get(miner.at("/metrics"))
        .send()
        .expect("GET metrics")
        .text()
        .expect("metrics text")
}
