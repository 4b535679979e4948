//! A `zkinfer serve` process for tests: started on a free loopback port over the shipped digits model, killed when
//! dropped (SIGKILL, as a crash would), its stderr kept for failure messages.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{digits_keys, digits_model, temp_dir};

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
