//! What every request and response passes through on its way in and out: a
//! span per request (method, route template, status, latency and a request
//! id, which every log line of the request carries and which the response
//! echoes as `x-request-id`), and `Cache-Control: no-store` on the API.
//!
//! Written as a plain tower service rather than `middleware::from_fn`: it is
//! on the path of every request, and a named future costs no allocation.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service};

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

/// The outermost layer of every route (and of the fallback). Axum applies
/// `Router::layer` after routing, so the route template is already known.
#[derive(Clone, Copy, Default)]
pub(crate) struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Edge<S> {
    inner: S,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let id = request_id(&request);
        // The route by its template (`/v1/me/sessions/{id}`), never the path.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let span = tracing::info_span!(
            "request",
            method = request.method().as_str(),
            route,
            request_id = %id,
            principal_id = tracing::field::Empty,
            status = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        let api = request.uri().path().starts_with("/v1/");
        let labels = Labels {
            method: request.method().clone(),
            route: route.map(str::to_owned),
        };
        let inner = span.in_scope(|| self.inner.call(request));
        EdgeFuture {
            inner,
            span,
            id: Some(id),
            api,
            labels,
            started: Instant::now(),
        }
    }
}

/// What a request is counted under: its method and route template.
pub(crate) struct Labels {
    method: axum::http::Method,
    route: Option<String>,
}

impl Labels {
    /// Counts the request and its latency (the route template, never the
    /// path: ids in paths would make a series per user).
    fn record(&mut self, status: u16, seconds: f64) {
        let method = self.method.as_str().to_owned();
        let route = self.route.take().unwrap_or_else(|| "unmatched".into());
        metrics::histogram!(
            "sesame_http_request_duration_seconds",
            "method" => method.clone(),
            "route" => route.clone()
        )
        .record(seconds);
        metrics::counter!(
            "sesame_http_requests_total",
            "method" => method,
            "route" => route,
            "status" => status.to_string()
        )
        .increment(1);
    }
}

pin_project! {
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        id: Option<String>,
        api: bool,
        labels: Labels,
        started: Instant,
    }
}

impl<F, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let mut response = match result {
            Ok(response) => response,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let status = response.status().as_u16();
        let elapsed = this.started.elapsed();
        this.labels.record(status, elapsed.as_secs_f64());
        // Recorded on the span only when its closing line is logged: each
        // record re-formats the span's fields, on every request.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            this.span.record("status", status);
            this.span.record("latency_us", latency_us);
            this.span
                .in_scope(|| tracing::debug!(status, latency_us, "request finished"));
        }
        let headers = response.headers_mut();
        if let Some(id) = this.id.take()
            && let Ok(value) = HeaderValue::try_from(id)
        {
            headers.insert(REQUEST_ID, value);
        }
        // Responses of the API carry tokens, codes and account data: no cache
        // may keep them. The key set and the OpenAPI document stay cacheable.
        if *this.api {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Poll::Ready(Ok(response))
    }
}
