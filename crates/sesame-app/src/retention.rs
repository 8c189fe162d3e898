//! Bounded state: a sweeper on every instance deletes expired codes, refresh
//! tokens used long ago, ended sessions and old sign-in attempts. Each delete
//! stands alone, so instances sweeping at once do no harm.

use crate::App;
use serde::Deserialize;
use sesame_core::Error;
use sesame_credentials::{SweepBefore, Swept};
use time::Duration;

/// How long ended state is kept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Seconds between sweeps.
    pub sweep_every_secs: u64,
    /// Codes are deleted this long after they expired.
    pub expired_codes_secs: u64,
    /// Used refresh tokens are deleted this long after their use; a reuse
    /// after that is answered `invalid_token` instead of revoking the session.
    pub used_refresh_tokens_secs: u64,
    /// Sessions are deleted this long after they were revoked or expired.
    pub ended_sessions_secs: u64,
    /// Sign-in attempts are deleted this long after they were made.
    pub login_attempts_secs: u64,
    /// Events are deleted this long after every sink had them.
    pub delivered_events_secs: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            sweep_every_secs: 300,
            expired_codes_secs: 3600,
            used_refresh_tokens_secs: 7 * 86_400,
            ended_sessions_secs: 30 * 86_400,
            login_attempts_secs: 90 * 86_400,
            delivered_events_secs: 7 * 86_400,
        }
    }
}

impl App {
    /// Deletes what has outlived its use; returns what went, per table.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn sweep(&self) -> Result<Swept, Error> {
        let policy = self.0.settings.retention;
        let now = self.0.clock.now();
        let ago = |secs: u64| now - Duration::seconds(secs.min(i64::MAX as u64) as i64);
        let mut swept = self
            .0
            .stores
            .retention
            .sweep(SweepBefore {
                expired_codes: ago(policy.expired_codes_secs),
                used_refresh_tokens: ago(policy.used_refresh_tokens_secs),
                ended_sessions: ago(policy.ended_sessions_secs),
                login_attempts: ago(policy.login_attempts_secs),
            })
            .await?;
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        swept.counters = self.0.stores.counters.sweep_counters(now_ms).await?;
        swept.events = self
            .0
            .stores
            .outbox
            .prune_delivered(ago(policy.delivered_events_secs))
            .await?;
        swept.federation_flows = self
            .0
            .stores
            .federation
            .delete_expired_flows(ago(policy.expired_codes_secs))
            .await?;
        if swept != Swept::default() {
            tracing::info!(?swept, "swept ended state");
        }
        Ok(swept)
    }
}
