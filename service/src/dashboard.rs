//! The live dashboard served at `GET /dashboard` (and `/`): one self-contained HTML page (no external resources)
//! that polls `GET /metrics` every second (`?interval_ms=N` to change it), plots the queue depth, proving rate,
//! failures, rejections and mean latencies as inline SVG charts, and lists the models of `GET /v1/models`.

/// The dashboard page, `text/html; charset=utf-8`.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");
