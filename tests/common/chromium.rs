//! Headless Chromium for tests of the dashboard page: find a browser, load a URL with a virtual-time budget and
//! read back the DOM that the page's scripts built (`--dump-dom`), then pick values out of it.
//!
//! Include it with `#[path = "common/chromium.rs"] mod chromium;` and skip the test when [`find_chromium`]
//! returns `None`. Standalone, std only.
//!
//! Under `--virtual-time-budget`, timers run in virtual time but virtual time stands still while a network
//! request is in flight, so a page polling every 200 ms gets about `budget_ms / 200` polls however slow the
//! server is: the wall time is roughly the sum of the request latencies (about a second against a fast local
//! server). A request that never answers stalls the dump; [`dump_dom`] kills the browser after a wall-clock limit.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Browser executables looked up on `PATH`, in order.
const NAMES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "chromium-headless-shell",
    "google-chrome",
];

/// Install locations tried when none is on `PATH`.
const LOCATIONS: &[&str] = &[
    "/usr/lib/chromium/chromium",
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/lib/chromium-browser/chromium-browser",
    "/opt/google/chrome/chrome",
];

/// Wall-clock limit of one dump on top of its virtual-time budget.
const WALL_LIMIT: Duration = Duration::from_secs(60);

/// The Chromium to use: `$ZKINFER_CHROMIUM` if set, else the first of [`NAMES`] on `PATH`, else a known location.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ZKINFER_CHROMIUM") {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    NAMES
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .chain(LOCATIONS.iter().map(PathBuf::from))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Loads `url` in headless Chromium, lets the page run for `budget_ms` of virtual time and returns the serialized
/// DOM. Fails when no browser is found, the browser fails, prints nothing, or runs past `budget_ms` + 60 s of
/// wall-clock time (then it and its child processes are killed).
pub fn dump_dom(url: &str, budget_ms: u64) -> Result<String, String> {
    let chromium = find_chromium().ok_or("no chromium found")?;
    let profile = fresh_dir()?;
    let mut command = Command::new(&chromium);
    command
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Own process group, so that a timeout kills the renderer and helper processes too.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let result = run(command, Duration::from_millis(budget_ms) + WALL_LIMIT, &chromium);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

fn run(mut command: Command, limit: Duration, chromium: &Path) -> Result<String, String> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                kill(&mut child);
                return Err(format!("chromium ran past {} s; killed", limit.as_secs()));
            }
            Err(e) => {
                kill(&mut child);
                return Err(format!("waiting for chromium: {e}"));
            }
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("chromium failed ({status}): {}", tail(&err)));
    }
    if out.trim().is_empty() {
        return Err(format!("chromium printed no DOM: {}", tail(&err)));
    }
    Ok(out)
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of chromium's stderr (which is noisy: D-Bus errors are normal in a container).
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn fresh_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "zkinfer-chromium-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The `data-points` of the `<polyline>` whose `data-series` is `series`, in a dumped DOM.
pub fn polyline_points(dom: &str, series: &str) -> Option<usize> {
    let wanted = format!("data-series=\"{series}\"");
    dom.match_indices("<polyline")
        .filter_map(|(at, _)| dom[at..].split('>').next())
        .find(|tag| tag.contains(&wanted))
        .and_then(|tag| attribute(tag, "data-points"))
        .and_then(|v| v.parse().ok())
}

/// The text of the element with id `id` up to its first child tag (entities left as they are), in a dumped DOM:
/// e.g. `element_text(dom, "status")` or `element_text(dom, "value-queue_depth")`.
pub fn element_text(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!(" id=\"{id}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<').map_or(rest.len(), |e| start + e);
    Some(rest[start..end].trim().to_string())
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}
