//! Prometheus metrics: counters and histograms recorded where things happen
//! (requests, sign-ins, sessions, deliveries), gauges read when scraped (the
//! hashing pool, the outbox lag), rendered in the text exposition format.
//!
//! The recorder is global to the process and installed once.

use crate::App;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sesame_core::Error;
use std::sync::OnceLock;

/// Latency buckets of requests, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` when another
/// recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sesame_http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "sesame_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    describe_counter!("sesame_sign_ins_total", "Sign-ins by method and outcome");
    describe_counter!("sesame_sessions_opened_total", "Sessions opened");
    describe_counter!("sesame_sessions_revoked_total", "Sessions revoked");
    describe_gauge!("sesame_hashing_busy", "Password hashes running now");
    describe_gauge!(
        "sesame_hashing_queued",
        "Password hashes waiting for a worker"
    );
    describe_counter!(
        "sesame_hashing_rejected_total",
        "Password hashes refused because the queue was full (answered 503 overloaded)"
    );
    describe_gauge!(
        "sesame_outbox_lag_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest event some sink has not had yet (0 when none waits)"
    );
    describe_counter!(
        "sesame_event_deliveries_total",
        "Event delivery attempts by sink and outcome"
    );
    describe_counter!(
        "sesame_relay_errors_total",
        "Outbox relay errors (database)"
    );
    describe_counter!(
        "sesame_consumer_errors_total",
        "Consumed messages terminated as malformed, and consumer errors"
    );
}

/// Counts a sign-in attempt's outcome.
/// A provider's answer refused at a federation callback.
pub(crate) fn federation_refused(code: &'static str, reason: &'static str) {
    metrics::counter!("sesame_federation_refusals_total", "code" => code, "reason" => reason)
        .increment(1);
}

pub(crate) fn sign_in<T>(method: &'static str, result: &Result<T, Error>, mfa_required: bool) {
    let outcome = match result {
        Ok(_) if mfa_required => "mfa_required",
        Ok(_) => "success",
        Err(e) => match e.error_code().as_str() {
            "invalid_credentials" | "invalid_code" => "failure",
            "account_locked" => "locked",
            "rate_limited" => "rate_limited",
            "account_suspended" => "suspended",
            _ => "error",
        },
    };
    metrics::counter!("sesame_sign_ins_total", "method" => method, "outcome" => outcome)
        .increment(1);
}

impl App {
    /// `GET /metrics`: every metric in the Prometheus text format, the
    /// gauges read now.
    pub async fn metrics_text(&self) -> String {
        let Some(handle) = handle() else {
            return String::new();
        };
        let pool = self.0.hasher.stats();
        metrics::gauge!("sesame_hashing_busy").set(pool.busy as f64);
        metrics::gauge!("sesame_hashing_queued").set(pool.queued as f64);
        metrics::counter!("sesame_hashing_rejected_total").absolute(pool.rejected);
        let lag = match self.0.stores.outbox.oldest_undelivered().await {
            Ok(Some(at)) => (self.0.clock.now() - at).as_seconds_f64().max(0.0),
            Ok(None) => 0.0,
            Err(e) => {
                tracing::warn!(error = %e, "reading the outbox lag failed");
                metrics::counter!("sesame_relay_errors_total").increment(1);
                -1.0
            }
        };
        metrics::gauge!("sesame_outbox_lag_seconds").set(lag);
        handle.render()
    }
}
