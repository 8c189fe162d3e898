//! Extractors whose rejections are problem documents: JSON bodies (content type,
//! size, syntax, unknown fields, each invalid field), bearer authentication and
//! client metadata.

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;
use sesame_app::access::Caller;
use sesame_app::{App, AuthContext, ClientMeta};
use sesame_core::{Error, ErrorCode, FieldError};
use std::net::SocketAddr;

/// A JSON request body, rejected as `415`, `413` or `400 validation_failed`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(
            req.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        ) {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody).map_err(ApiError)
    }
}

/// The whole body: `413` beyond the limit, `400` when it cannot be read.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::from(ErrorCode::PayloadTooLarge)
        } else {
            ApiError(Error::field("", "unreadable_body"))
        }
    })
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises JSON, naming the offending field in the error. Every body of
/// the API is an object: anything else (an array, which serde would read as
/// a struct's fields in order, or a scalar) is refused as such.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(Error::field("", "invalid_type")),
        None => return Err(Error::field("", "malformed_json")),
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = err.into_inner();
        Error::validation(vec![field_error(&path, &inner)])
    })?;
    Ok(value)
}

fn field_error(path: &str, err: &serde_json::Error) -> FieldError {
    use serde_json::error::Category;
    if matches!(
        err.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        // A syntax error has a position, not a field.
        return FieldError::new("", "malformed_json");
    }
    let msg = err.to_string();
    // The path may or may not already end with the named field.
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = || msg.split('`').nth(1).unwrap_or_default().to_owned();
    if msg.starts_with("unknown field") {
        FieldError::new(join(&quoted()), "unknown_field")
    } else if msg.starts_with("missing field") {
        FieldError::new(join(&quoted()), "required")
    } else if msg.starts_with("invalid type") {
        FieldError::new(path, "invalid_type")
    } else if msg.starts_with("unknown variant") || msg.starts_with("invalid value") {
        FieldError::new(path, "invalid_value")
    } else {
        FieldError::new(path, "invalid")
    }
}

/// The bearer credential of a request, or `401 invalid_token`.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError(Error::problem(
                ErrorCode::InvalidToken,
                "A bearer access token is required",
            ))
        })
}

/// The caller, authenticated by a bearer access token whose session is active.
pub struct Auth(pub AuthContext);

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let auth = app.authenticate(bearer(parts)?).await.map_err(ApiError)?;
        sesame_app::record_principal(auth.principal_id);
        Ok(Auth(auth))
    }
}

/// The caller of an admin or service call: a bearer access token or a
/// service API key.
pub struct CallerAuth(pub Caller);

impl FromRequestParts<App> for CallerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller = app.caller(bearer(parts)?).await.map_err(ApiError)?;
        if let Some(principal) = caller.principal() {
            sesame_app::record_principal(principal);
        }
        Ok(CallerAuth(caller))
    }
}

/// A body sent as JSON or, as OAuth endpoints accept it, as
/// `application/x-www-form-urlencoded`.
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return JsonBody::from_request(req, state)
                .await
                .map(|JsonBody(t)| JsonOrForm(t));
        }
        let bytes = read_body(req, state).await?;
        serde_urlencoded::from_bytes(&bytes)
            .map(JsonOrForm)
            .map_err(|_| ApiError(Error::field("", "malformed_form")))
    }
}

/// The caller when a bearer token is sent, `None` when none is; a bad token is
/// still refused.
pub struct MaybeAuth(pub Option<AuthContext>);

impl FromRequestParts<App> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            Auth::from_request_parts(parts, app)
                .await
                .map(|Auth(a)| MaybeAuth(Some(a)))
        } else {
            Ok(MaybeAuth(None))
        }
    }
}

/// Longest user agent kept, in bytes.
const MAX_USER_AGENT: usize = 512;

/// Client IP and user agent.
pub struct Meta(pub ClientMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // Several header lines are one list (RFC 9110 §5.3), the last line
        // appended by the nearest proxy; a line that is not text stops the
        // walk from the right there.
        let lines: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("unreadable"))
            .collect();
        let joined = lines.join(",");
        let forwarded_for = (!lines.is_empty()).then_some(joined.as_str());
        let ip = peer.map(|peer| {
            match parts
                .extensions
                .get::<std::sync::Arc<crate::TrustedProxies>>()
            {
                Some(proxies) => proxies.client_ip(peer, forwarded_for),
                None => peer,
            }
            .to_string()
        });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                let mut end = ua.len().min(MAX_USER_AGENT);
                while !ua.is_char_boundary(end) {
                    end -= 1;
                }
                ua[..end].to_owned()
            });
        Ok(Meta(ClientMeta { ip, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        identifier: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        login: Inner,
        password: Option<String>,
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(Error::Invalid {
                code: ErrorCode::ValidationFailed,
                errors,
            }) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            fields(r#"{"login":{"identifier":"a"},"extra":1}"#),
            [("extra".into(), "unknown_field".into())]
        );
        assert_eq!(
            fields(r#"{"login":{"identifier":"a","x":1}}"#),
            [("login.x".into(), "unknown_field".into())]
        );
        assert_eq!(
            fields(r#"{"login":{}}"#),
            [("login.identifier".into(), "required".into())]
        );
        assert_eq!(
            fields(r#"{"login":{"identifier":5}}"#),
            [("login.identifier".into(), "invalid_type".into())]
        );
        assert_eq!(
            fields(r#"{"login":"#),
            [("".into(), "malformed_json".into())]
        );
        assert_eq!(fields(""), [("".into(), "malformed_json".into())]);
    }

    #[test]
    fn content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }
}
