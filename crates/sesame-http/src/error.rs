//! `ApiError`: every failure leaves as an RFC 9457 problem document with a stable
//! `code`. Internal errors are logged and answered with an opaque 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sesame_core::{Error, ErrorCode, FieldError};

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The error type of every handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self(Error::code(code))
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.error_code();
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (detail, errors, retry_after) = match &self.0 {
            Error::Problem { detail, .. } => (detail.as_str(), &[][..], None),
            Error::Invalid { errors, .. } => (code.title(), errors.as_slice(), None),
            Error::Busy {
                retry_after_secs, ..
            } => (code.title(), &[][..], Some(*retry_after_secs)),
            Error::Internal(_) => {
                tracing::error!(error = %self.0, "internal error");
                ("An internal error occurred", &[][..], None)
            }
        };
        let problem = Problem {
            kind: format!("urn:sesame:problem:{}", code.as_str()),
            title: code.title(),
            status: status.as_u16(),
            detail,
            code: code.as_str(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
