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

/// How long a failure budget kept in the shared limits remembers its count
/// after the last failure: 30 days.
const REMEMBER_FAILURES_SECS: u64 = 30 * 86_400;

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
    /// The default for code confirmations: ten failures across codes.
    pub const fn codes() -> Self {
        Self {
            max_failures: 10,
            lock_secs: 60,
            max_lock_secs: 3600,
        }
    }

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

/// Rate limits of every flow that hashes, sends or confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Attempts per login (type and identifier), for each action that has no
    /// budget of its own.
    pub per_identifier: Rate,
    /// Attempts per client address, for each action that has no budget of
    /// its own.
    pub per_ip: Rate,
    /// IPv6 clients are counted per network of this prefix length (one
    /// customer usually holds a whole /64).
    pub ipv6_prefix: u8,
    /// Password hashes one client address may have in the hashing pool at
    /// once, so that no client can fill its queue.
    pub hashing_per_address: u32,
    /// Password sign-ins and code sign-ins.
    pub sign_in: Budget,
    /// Registrations, with a password or a code.
    pub register: Budget,
    /// Code requests and password-reset requests.
    pub send_code: Budget,
    /// Code confirmations: verification, registration, binding, reset.
    pub confirm_code: Budget,
    /// Password changes.
    pub change_password: Budget,
    /// Introspections per service API key.
    pub per_api_key: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_identifier: Rate::new(10, 60),
            per_ip: Rate::new(100, 60),
            ipv6_prefix: 64,
            hashing_per_address: 8,
            sign_in: Budget::default(),
            register: Budget {
                per_identifier: None,
                per_ip: Some(Rate::new(20, 60)),
            },
            send_code: Budget::default(),
            confirm_code: Budget::default(),
            change_password: Budget::default(),
            per_api_key: crate::access::default_key_rate(),
        }
    }
}

impl RateLimits {
    /// The same rates for every action.
    pub fn uniform(per_identifier: Rate, per_ip: Rate) -> Self {
        let none = Budget::default();
        Self {
            per_identifier,
            per_ip,
            sign_in: none,
            register: none,
            send_code: none,
            confirm_code: none,
            change_password: none,
            ..Self::default()
        }
    }

    fn budget(&self, action: Action) -> Budget {
        match action {
            Action::SignIn => self.sign_in,
            Action::Register => self.register,
            Action::SendCode => self.send_code,
            Action::ConfirmCode => self.confirm_code,
            Action::ChangePassword => self.change_password,
        }
    }
}

/// An action's own rates; unset ones fall back to the defaults of
/// [`RateLimits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Per login.
    pub per_identifier: Option<Rate>,
    /// Per client address (IPv6 per network, see `ipv6_prefix`).
    pub per_ip: Option<Rate>,
}

/// The actions that are rate-limited, each with its own budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    SignIn,
    Register,
    SendCode,
    ConfirmCode,
    ChangePassword,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::Register => "register",
            Action::SendCode => "send_code",
            Action::ConfirmCode => "confirm_code",
            Action::ChangePassword => "change_password",
        }
    }
}

/// The address a client is counted under: IPv6 addresses by their network of
/// `prefix` bits; IPv4 (and IPv4-mapped) addresses whole.
pub fn client_network(ip: &str, prefix: u8) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = prefix.min(128);
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            let net = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{net}/{prefix}")
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| ip.to_owned(), |v4| v4.to_string()),
        _ => ip.to_owned(),
    }
}

/// Password hashes in flight per client address (see
/// [`RateLimits::hashing_per_address`]); an entry lives while its hashes do.
#[derive(Debug, Default)]
pub(crate) struct HashingSlots(std::sync::Mutex<std::collections::HashMap<String, u32>>);

/// One client's place in the hashing pool, given back when dropped.
pub(crate) struct HashingSlot {
    slots: std::sync::Arc<HashingSlots>,
    key: Option<String>,
}

impl Drop for HashingSlot {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut map = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
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
        let limits = &self.0.settings.rate_limits;
        let network = client_network(ip, limits.ipv6_prefix);
        let key = format!("{}:ip:{network}", action.as_str());
        let rate = limits.budget(action).per_ip.unwrap_or(limits.per_ip);
        self.limit(&key, rate).await
    }

    /// Counts one `action` on `login` against its rate.
    pub(crate) async fn limit_login(&self, action: Action, login: &Login) -> Result<(), Error> {
        let key = format!(
            "{}:login:{}",
            action.as_str(),
            self.0.codes.login_key(login)?
        );
        let limits = &self.0.settings.rate_limits;
        let rate = limits
            .budget(action)
            .per_identifier
            .unwrap_or(limits.per_identifier);
        self.limit(&key, rate).await
    }

    /// A place in the hashing pool for the client: refused with
    /// `429 rate_limited` while the client's address already has
    /// `hashing_per_address` hashes in flight.
    pub(crate) fn hashing_slot(&self, meta: &ClientMeta) -> Result<HashingSlot, Error> {
        let slots = self.0.hashing_slots.clone();
        let limits = &self.0.settings.rate_limits;
        let Some(ip) = &meta.ip else {
            return Ok(HashingSlot { slots, key: None });
        };
        let key = client_network(ip, limits.ipv6_prefix);
        {
            let mut map = slots.0.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key.clone()).or_insert(0);
            if *n >= limits.hashing_per_address.max(1) {
                return Err(rate_limited(1));
            }
            *n += 1;
        }
        Ok(HashingSlot {
            slots,
            key: Some(key),
        })
    }

    /// Counts one `action` by a signed-in principal against the per-login rate.
    pub(crate) async fn limit_principal(
        &self,
        action: Action,
        principal: PrincipalId,
    ) -> Result<(), Error> {
        let key = format!("{}:principal:{principal}", action.as_str());
        let limits = &self.0.settings.rate_limits;
        let rate = limits
            .budget(action)
            .per_identifier
            .unwrap_or(limits.per_identifier);
        self.limit(&key, rate).await
    }

    pub(crate) async fn limit(&self, key: &str, rate: Rate) -> Result<(), Error> {
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

    /// Claims one attempt against the failure budget `name` in the shared
    /// limits before a guess is evaluated: the count goes up first, and the
    /// claim that reaches `policy`'s limit starts the lock itself, so guesses
    /// released together evaluate at most the limit. While the lock holds
    /// nothing is counted and the answer is `423` with `Retry-After`. Each
    /// claim after a lock has run out starts a longer one.
    pub(crate) async fn claim_budget(
        &self,
        name: &str,
        policy: LockoutPolicy,
    ) -> Result<(), Error> {
        let limits = &self.0.stores.limits;
        let lock_key = format!("lock:{name}");
        if let Some(wait) = limits.cooldown_left(&lock_key).await? {
            return Err(locked(wait));
        }
        // Kept as long as a principal's count would plausibly matter, so that
        // waiting does not tell a login that belongs to nobody from one that
        // exists (whose count stays on its row until a success).
        let remember =
            std::time::Duration::from_secs((policy.max_lock_secs * 2).max(REMEMBER_FAILURES_SECS));
        let failures = limits
            .count_failure(&format!("failures:{name}"), remember)
            .await?;
        if let Some(lock) = policy.lock_for(failures as i64) {
            let ttl = std::time::Duration::from_secs(lock.whole_seconds().max(1) as u64);
            // Only the claim that starts the lock is evaluated.
            if let Some(wait) = limits.start_cooldown(&lock_key, ttl).await? {
                return Err(locked(wait));
            }
        }
        Ok(())
    }

    /// Gives a budget back after a right guess: the count and any lock go.
    pub(crate) async fn release_budget(&self, name: &str) -> Result<(), Error> {
        let limits = &self.0.stores.limits;
        limits.reset_failures(&format!("failures:{name}")).await?;
        limits.end_cooldown(&format!("lock:{name}")).await?;
        Ok(())
    }

    /// The password failure budget of an identifier that belongs to nobody:
    /// claimed like a principal's, so that a lock reveals nothing.
    pub(crate) fn unknown_login_budget(&self, login: &Login) -> Result<String, Error> {
        Ok(format!("password:{}", self.0.codes.login_key(login)?))
    }

    /// The identifier written to `login_attempts`: as typed for a login that
    /// belongs to someone, a keyed hash for one that belongs to nobody (so
    /// that mistyped passwords in the identifier field are not kept).
    pub(crate) fn attempt_identifier(
        &self,
        login: &Login,
        principal: Option<PrincipalId>,
    ) -> Result<String, Error> {
        Ok(match principal {
            Some(_) => login.identifier.clone(),
            None => format!("hmac:{}", self.0.codes.login_key(login)?),
        })
    }

    /// Seconds left of the lock on the budget `name`, if one holds.
    pub(crate) async fn budget_lock(&self, name: &str) -> Result<Option<u64>, Error> {
        let key = format!("lock:{name}");
        Ok(self.0.stores.limits.cooldown_left(&key).await?)
    }

    /// Writes a failed sign-in (see [`App::record_refusal`]); a refusal by a
    /// principal's lock also moves its attempt number, so that a right
    /// password being verified meanwhile does not count.
    pub(crate) async fn record_failure(
        &self,
        login: &Login,
        principal: Option<PrincipalId>,
        reason: ErrorCode,
        meta: &ClientMeta,
        lock: Option<(i64, OffsetDateTime)>,
    ) -> Result<(), Error> {
        let data = serde_json::json!({
            "login_type": login.login_type.as_str(),
            "reason": reason.as_str(),
            "known": principal.is_some(),
        });
        let refusal = Refusal {
            login,
            principal,
            reason: reason.as_str().to_owned(),
            event: "user.sign_in_failed",
            data,
            lock,
            locked_out: reason == ErrorCode::AccountLocked,
        };
        self.record_refusal(refusal, meta).await
    }

    /// Writes a refused attempt to `login_attempts` and the audit log and,
    /// when its claim locked the principal, the lock's event, in one
    /// transaction.
    pub(crate) async fn record_refusal(
        &self,
        refusal: Refusal<'_>,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let Refusal {
            login,
            principal,
            reason,
            event,
            data,
            lock,
            locked_out,
        } = refusal;
        let mut tx = self.begin().await?;
        if let (Some(id), true) = (principal, locked_out) {
            stores
                .principals
                .note_refused_attempt(tx.as_mut(), id)
                .await?;
        }
        let attempt = LoginAttempt {
            id: Uuid::now_v7(),
            login_type: login.login_type,
            identifier: self.attempt_identifier(login, principal)?,
            principal_id: principal,
            ip: meta.ip.clone(),
            success: false,
            reason: Some(reason),
            at: now,
        };
        stores
            .attempts
            .record_attempt(tx.as_mut(), &attempt)
            .await?;
        let audit = AuditEntry {
            id: Uuid::now_v7(),
            principal_id: principal,
            event: event.to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            data,
            at: now,
        };
        stores.audit.append_audit(tx.as_mut(), &audit).await?;
        if let (Some(id), Some(lock)) = (principal, lock) {
            self.announce_lock(&mut tx, id, lock, meta, now).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Announces (and audits) a lock a failed attempt earned: `lock` is the
    /// failure count and the end of the lock.
    pub(crate) async fn announce_lock(
        &self,
        tx: &mut crate::work::Work,
        principal: PrincipalId,
        (failures, until): (i64, OffsetDateTime),
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let data = serde_json::json!({
            "failures": failures,
            "locked_until": until.unix_timestamp(),
        });
        self.announce(
            tx,
            principal,
            sesame_events::topics::ACCOUNT_LOCKED,
            meta,
            data,
            now,
        )
        .await
    }
}

/// A refused attempt on a login, for [`App::record_refusal`].
pub(crate) struct Refusal<'a> {
    /// The login named.
    pub login: &'a Login,
    /// Its principal, when it has one.
    pub principal: Option<PrincipalId>,
    /// The reason kept in `login_attempts`.
    pub reason: String,
    /// The audit event.
    pub event: &'static str,
    /// The audit row's data (never a secret).
    pub data: serde_json::Value,
    /// The lock the attempt's claim earned: failures and until when.
    pub lock: Option<(i64, OffsetDateTime)>,
    /// Whether the principal's lock refused it.
    pub locked_out: bool,
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
    fn ipv6_clients_are_counted_per_network() {
        assert_eq!(
            client_network("2001:db8:1:2:aaaa::1", 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_network("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_network("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
        assert_eq!(client_network("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(client_network("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(client_network("2001:db8::1", 0), "::/0");
        assert_eq!(client_network("203.0.113.9", 64), "203.0.113.9");
        assert_eq!(client_network("::ffff:203.0.113.9", 64), "203.0.113.9");
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(secs_until(now + Duration::milliseconds(59_001), now), 60);
        assert_eq!(secs_until(now + Duration::seconds(60), now), 60);
        assert_eq!(secs_until(now, now), 1);
    }
}
