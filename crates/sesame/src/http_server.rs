//! The HTTP listener: every connection is bounded in number and in time, so
//! that slow or many clients cannot exhaust the server. Headers must arrive
//! within `header_read_timeout_secs`, bodies within `body_timeout_secs`, whole
//! requests within `request_timeout_secs`; at most `max_connections` are open
//! at once (the rest wait in the kernel's backlog), and running out of file
//! descriptors pauses accepting instead of failing.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Limits of the HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (also while a
    /// kept-alive connection sits idle).
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout_secs: u64,
    /// Seconds a whole request may take.
    pub request_timeout_secs: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 768,
            header_read_timeout_secs: 10,
            body_timeout_secs: 10,
            request_timeout_secs: 30,
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open
/// connections finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        Duration::from_secs(limits.body_timeout_secs.max(1)),
    ));
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(limits.request_timeout_secs.max(1)),
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (or another passing error): wait a
                    // little for connections to close instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}
