//! Brute-force defences: rate limits per client IP and per login, and the
//! temporary lock with exponential back-off after consecutive failed sign-ins.
//!
//! A principal's lock lives on its row (`failed_attempts`, `locked_until`), so
//! every instance sees it. An identifier that belongs to nobody gets the same
//! treatment from the shared limits (a failure counter and a lock cooldown under
//! a keyed hash of the login), so a lock reveals nothing about who exists.

use crate::{App, ClientMeta};
use serde::Deserialize;
use sesame_core::{Error, ErrorCode, PrincipalId, Rate};
use sesame_credentials::{AuditEntry, Login, LoginAttempt};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// When consecutive failures lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Consecutive failed sign-ins that lock the account (0 turns locking off).
    pub max_failures: u32,
    /// The first lock, in seconds; each further failure doubles it.
    pub lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_secs: 60,
            max_lock_secs: 3600,
        }
    }
}

impl LockoutPolicy {
    /// The lock that `failures` consecutive failures earn, if any.
    pub fn lock_for(&self, failures: i64) -> Option<Duration> {
        if self.max_failures == 0 || failures < i64::from(self.max_failures) {
            return None;
        }
        let doublings = (failures - i64::from(self.max_failures)).min(30) as u32;
        let secs = self
            .lock_secs
            .saturating_mul(1u64 << doublings)
            .min(self.max_lock_secs.max(self.lock_secs));
        Some(Duration::seconds(secs as i64))
    }
}

/// Rate limits of sign-ins, code requests and code confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Attempts per login (type and identifier), for each of the three actions.
    pub per_identifier: Rate,
    /// Attempts per client IP, for each of the three actions.
    pub per_ip: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_identifier: Rate::new(10, 60),
            per_ip: Rate::new(100, 60),
        }
    }
}

/// The actions that are rate-limited, each with its own budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    SignIn,
    SendCode,
    ConfirmCode,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::SendCode => "send_code",
            Action::ConfirmCode => "confirm_code",
        }
    }
}

fn rate_limited(retry_after_secs: u64) -> Error {
    Error::Busy {
        code: ErrorCode::RateLimited,
        retry_after_secs,
    }
}

/// The answer to any sign-in while a lock holds, whatever the password.
pub(crate) fn locked(retry_after_secs: u64) -> Error {
    Error::Busy {
        code: ErrorCode::AccountLocked,
        retry_after_secs: retry_after_secs.max(1),
    }
}

/// Whole seconds from `now` until `until`, rounded up.
pub(crate) fn secs_until(until: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let left = until - now;
    (left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0)).max(1) as u64
}

impl App {
    /// Counts one `action` from the client's IP against its rate.
    pub(crate) async fn limit_ip(&self, action: Action, meta: &ClientMeta) -> Result<(), Error> {
        let Some(ip) = &meta.ip else {
            return Ok(());
        };
        let key = format!("{}:ip:{ip}", action.as_str());
        self.limit(&key, self.0.settings.rate_limits.per_ip).await
    }

    /// Counts one `action` on `login` against its rate.
    pub(crate) async fn limit_login(&self, action: Action, login: &Login) -> Result<(), Error> {
        let key = format!(
            "{}:login:{}",
            action.as_str(),
            self.0.codes.login_key(login)?
        );
        self.limit(&key, self.0.settings.rate_limits.per_identifier)
            .await
    }

    async fn limit(&self, key: &str, rate: Rate) -> Result<(), Error> {
        match self
            .0
            .stores
            .limits
            .hit(key, rate, self.0.clock.now())
            .await?
        {
            Some(wait) => Err(rate_limited(wait)),
            None => Ok(()),
        }
    }

    /// The lock on an identifier that belongs to nobody, if one holds.
    pub(crate) async fn unknown_login_lock(&self, login: &Login) -> Result<Option<u64>, Error> {
        let key = format!("lock:{}", self.0.codes.login_key(login)?);
        Ok(self.0.stores.limits.cooldown_left(&key).await?)
    }

    /// Counts a failed sign-in on an identifier that belongs to nobody, locking
    /// it exactly as a principal would be locked.
    pub(crate) async fn fail_unknown_login(&self, login: &Login) -> Result<(), Error> {
        let policy = self.0.settings.lockout;
        let name = self.0.codes.login_key(login)?;
        let limits = &self.0.stores.limits;
        let remember = std::time::Duration::from_secs(policy.max_lock_secs.max(3600) * 2);
        let failures = limits
            .count_failure(&format!("failures:{name}"), remember)
            .await?;
        if let Some(lock) = policy.lock_for(failures as i64) {
            let ttl = std::time::Duration::from_secs(lock.whole_seconds().max(1) as u64);
            limits.start_cooldown(&format!("lock:{name}"), ttl).await?;
        }
        Ok(())
    }

    /// Writes a failed attempt (and, for a known principal, the failure count,
    /// the lock it earns and their audit rows) in one transaction.
    pub(crate) async fn record_failure(
        &self,
        login: &Login,
        principal: Option<PrincipalId>,
        reason: ErrorCode,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let mut tx = stores.db.begin().await?;
        let mut lock = None;
        if let Some(id) = principal
            && reason == ErrorCode::InvalidCredentials
        {
            let failures = stores
                .principals
                .record_failed_sign_in(tx.as_mut(), id, now)
                .await?;
            if let Some(duration) = self.0.settings.lockout.lock_for(failures) {
                let until = now + duration;
                stores
                    .principals
                    .lock_principal(tx.as_mut(), id, until, now)
                    .await?;
                lock = Some((failures, until));
            }
        }
        let attempt = LoginAttempt {
            id: Uuid::now_v7(),
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            principal_id: principal,
            ip: meta.ip.clone(),
            success: false,
            reason: Some(reason.as_str().to_owned()),
            at: now,
        };
        stores
            .attempts
            .record_attempt(tx.as_mut(), &attempt)
            .await?;
        let audit = |event: &str, data: serde_json::Value| AuditEntry {
            id: Uuid::now_v7(),
            principal_id: principal,
            event: event.to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            data,
            at: now,
        };
        let data = serde_json::json!({
            "login_type": login.login_type.as_str(),
            "reason": reason.as_str(),
            "known": principal.is_some(),
        });
        stores
            .audit
            .append_audit(tx.as_mut(), &audit("user.sign_in_failed", data))
            .await?;
        if let (Some(id), Some((failures, until))) = (principal, lock) {
            let data = serde_json::json!({
                "failures": failures,
                "locked_until": until.unix_timestamp(),
            });
            self.announce(
                tx.as_mut(),
                id,
                sesame_events::topics::ACCOUNT_LOCKED,
                meta,
                data,
                now,
            )
            .await?;
        }
        stores.db.commit(tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_limit_and_double_up_to_the_cap() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.lock_for(4), None);
        assert_eq!(policy.lock_for(5), Some(Duration::seconds(60)));
        assert_eq!(policy.lock_for(6), Some(Duration::seconds(120)));
        assert_eq!(policy.lock_for(8), Some(Duration::seconds(480)));
        assert_eq!(policy.lock_for(100), Some(Duration::seconds(3600)));
        let off = LockoutPolicy {
            max_failures: 0,
            ..policy
        };
        assert_eq!(off.lock_for(1000), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(secs_until(now + Duration::milliseconds(59_001), now), 60);
        assert_eq!(secs_until(now + Duration::seconds(60), now), 60);
        assert_eq!(secs_until(now, now), 1);
    }
}
