//! API errors: each maps to a status and a JSON body `{"error": "..."}` that says what to fix,
//! without internal details.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A bad parameter: unknown layer, method or class, a value out of range, a malformed form.
    BadRequest(String),
    /// The upload is not an image we can decode (not an image, truncated, too many pixels).
    Image(String),
    /// The body is larger than the limit.
    TooLarge(usize),
    /// The body stalled for the read timeout or came slower than the minimum rate.
    SlowBody(Duration),
    /// No such route.
    NotFound,
    /// The route exists with another HTTP method.
    MethodNotAllowed,
    /// Every worker is busy and the queue is full.
    Overloaded,
    /// The request took longer than the limit.
    Timeout(Duration),
    /// The client already has this many connections open.
    TooManyConnections(usize),
    /// A bug or an unexpected failure (details go to the server's log, not to the client).
    Internal,
}

/// The kind of an error, attached to the response for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind(pub &'static str);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Image(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Overloaded | ApiError::TooManyConnections(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short name for the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Image(_) => "bad_image",
            ApiError::TooLarge(_) => "too_large",
            ApiError::SlowBody(_) => "slow_body",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Overloaded => "overloaded",
            ApiError::Timeout(_) => "timeout",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::Internal => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) | ApiError::Image(m) => m.clone(),
            ApiError::TooLarge(limit) => {
                format!("request body larger than the limit of {limit} bytes")
            }
            ApiError::SlowBody(t) => format!(
                "the request body stalled for {} s or came too slowly; send it faster",
                t.as_secs_f64()
            ),
            ApiError::NotFound => "no such route; see GET /v1/models, POST /v1/explain".into(),
            ApiError::MethodNotAllowed => "method not allowed on this route".into(),
            ApiError::Overloaded => {
                "server busy: every worker is busy and the queue is full; retry later".into()
            }
            ApiError::Timeout(t) => format!(
                "request took longer than the limit of {} s",
                t.as_secs_f64()
            ),
            ApiError::TooManyConnections(limit) => format!(
                "too many connections from your address (at most {limit} at once); \
                 close some or reuse them, and retry"
            ),
            ApiError::Internal => "internal error".into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(serde_json::json!({ "error": self.message() })),
        )
            .into_response();
        if matches!(self, ApiError::Overloaded | ApiError::TooManyConnections(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorKind(self.kind()));
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownLayer { .. }
            | Error::UnknownMethod { .. }
            | Error::UnknownModel { .. }
            | Error::Class(_)
            | Error::Invalid(_) => ApiError::BadRequest(e.to_string()),
            Error::Image { .. } => ApiError::Image(e.to_string()),
            // Nobody reads the answer to a cancelled request (its client had a 504).
            Error::Cancelled => ApiError::Internal,
            Error::Weights { .. }
            | Error::Download(_)
            | Error::Io { .. }
            | Error::NotConverged { .. }
            | Error::Onnx(_) => {
                eprintln!("gradcam serve: internal error: {e}");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_client_errors() {
        let e: ApiError = Error::Class("class 1000 is out of range".into()).into();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e: ApiError = crate::image::decode(b"hello", 100).unwrap_err().into();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message().contains("not a recognised image"), "{e}");
        let e: ApiError = Error::Download("pip failed at /root/secret".into()).into();
        assert_eq!(e.message(), "internal error");
    }
}
