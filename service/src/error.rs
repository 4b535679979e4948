//! Errors of the service: what the HTTP API answers (status, message, metric reason) and what stops the server.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::ErrorBody;

/// An error answer of the HTTP API: a status, a message that says what to do, and, for 429, when to come back.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What was wrong and what to do.
    pub message: String,
    /// Seconds for the `Retry-After` header.
    pub retry_after_s: Option<u64>,
    /// Label of `zkinfer_rejections_total` (none for server faults).
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// A rejected request: `status`, the metric `reason`, and the message.
    pub fn rejected(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
            reason: Some(reason),
        }
    }

    /// 422: the request parsed but a value is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::rejected(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 404: no such model or job.
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::rejected(StatusCode::NOT_FOUND, reason, message)
    }

    /// 500: the server's own failure.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            retry_after_s: None,
            reason: None,
        }
    }

    /// The answer to a body that is not the JSON the route takes (syntax 400, fields 422, content type 415, size
    /// 413), with axum's description of what was wrong.
    pub fn from_json_rejection(rejection: JsonRejection, max_body_bytes: usize) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::rejected(
                status,
                "too_large",
                format!("request body over the server's limit of {max_body_bytes} bytes (serve --max-body-bytes)"),
            );
        }
        let hint = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "; send the body as JSON with `Content-Type: application/json`",
            _ => "; expected {\"input_data\": [[f32, ...]], \"salt\": HEX, \"nonce\": HEX, \"proof\": bool}",
        };
        Self::rejected(status, "invalid", format!("{}{hint}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.message })).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(reason) = self.reason {
            response.extensions_mut().insert(RejectionReason(reason));
        }
        response
    }
}

/// Marks a response as a rejection, for the metrics middleware.
#[derive(Clone, Copy, Debug)]
pub struct RejectionReason(pub &'static str);

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A model or key file could not be loaded.
    #[error("loading model {path}: {reason}")]
    Model {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The job database could not be opened or used.
    #[error("job database {path}: {reason}")]
    Store {
        /// The database file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding or serving the socket failed.
    #[error("listening on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
}
