//! One span per request: method, route template, status, latency and a
//! request id, which every log line of the request carries and which the
//! response echoes as `x-request-id`.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The header that carries the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// A caller's request id is kept when it is short and plain (a proxy or the
/// calling service chose it); otherwise the request gets a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// A new request id: this process's random prefix and a counter, unique
/// across instances and restarts without a random draw per request.
fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::now_v7().simple().to_string()[16..].to_owned());
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The outermost layer: opens the request's span and closes it with the
/// status and latency.
pub(crate) async fn span_per_request(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let span = tracing::info_span!(
        "request",
        method = request.method().as_str(),
        route = tracing::field::Empty,
        request_id = %id,
        principal_id = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    // Recorded on the span only when its closing line is logged: each record
    // re-formats the span's fields, on every request.
    if tracing::enabled!(tracing::Level::DEBUG) {
        span.record("status", status);
        span.record("latency_us", latency_us);
        span.in_scope(|| tracing::debug!(status, latency_us, "request finished"));
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Inside routing, where the route is known: names it on the request's span
/// by its template (`/v1/me/sessions/{id}`), never the path itself.
pub(crate) async fn record_route(request: Request, next: Next) -> Response {
    if let Some(route) = request.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", route.as_str());
    }
    next.run(request).await
}
