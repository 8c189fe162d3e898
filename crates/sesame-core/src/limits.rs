//! Short-lived state that decides whether a request may go on: rate limits,
//! failure counters and cooldowns. In process memory by default ([`MemoryLimits`]);
//! shared by every instance through Redis when it is configured.

use crate::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// A rate: at most `limit` events per `window`, with bursts up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rate {
    /// Events allowed per window.
    pub limit: u32,
    /// The window in seconds.
    pub window_secs: u64,
}

impl Default for Rate {
    /// Ten a minute.
    fn default() -> Self {
        Self::new(10, 60)
    }
}

impl Rate {
    /// `limit` per `window_secs`.
    pub const fn new(limit: u32, window_secs: u64) -> Self {
        Self { limit, window_secs }
    }

    /// Time between two events at the sustained rate, in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        (self.window_secs as i64 * 1000) / i64::from(self.limit.max(1))
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.window_secs as i64 * 1000
    }
}

/// Seconds, rounded up, from a positive number of milliseconds.
pub fn ceil_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

/// One step of GCRA (the generic cell rate algorithm): given the stored
/// theoretical arrival time `tat` (ms), either the new one to store, or the
/// milliseconds to wait.
pub fn gcra_step(tat: Option<i64>, now_ms: i64, rate: Rate) -> Result<i64, i64> {
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    let next = tat + rate.interval_ms();
    let allow_at = next - rate.window_ms();
    if now_ms < allow_at {
        Err(allow_at - now_ms)
    } else {
        Ok(next)
    }
}

/// Rate limits, failure counters and cooldowns.
#[async_trait]
pub trait SharedLimits: Send + Sync {
    /// Whether every instance sees the same state (Redis) or only this process.
    fn is_shared(&self) -> bool;

    /// Starts the cooldown `key` for `ttl` unless it is running already, in one
    /// atomic step; `Some(seconds left)` when it was running.
    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError>;

    /// Ends the cooldown `key` now, if it is running.
    async fn end_cooldown(&self, key: &str) -> Result<(), StoreError>;

    /// Seconds left of the cooldown `key`, if it is running.
    async fn cooldown_left(&self, key: &str) -> Result<Option<u64>, StoreError>;

    /// Counts one event against `rate` for `key` at `now`; `Some(seconds to
    /// wait)` when the event is over the limit (and then it is not counted).
    async fn hit(
        &self,
        key: &str,
        rate: Rate,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;

    /// Adds one to the failure counter `key`, which expires `ttl` after the
    /// last failure; returns the new count.
    async fn count_failure(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// Forgets the failure counter `key`.
    async fn reset_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Whether the store answers (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Cooldowns and failure counters kept in the database, so that locks and
/// budgets outlive a restart and are seen by every instance of a shared
/// database. Times are milliseconds since the Unix epoch. Every method is one
/// statement that commits on its own.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Starts the cooldown `key` until `until_ms` unless one runs at `now_ms`;
    /// the end of the running one otherwise.
    async fn start_cooldown_at(
        &self,
        key: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// The end of the cooldown `key`, if it runs at `now_ms`.
    async fn cooldown_until(&self, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError>;
    /// Adds one to the counter `key` (starting over if it ended before
    /// `now_ms`), which now ends at `until_ms`; the new count.
    async fn count_at(&self, key: &str, now_ms: i64, until_ms: i64) -> Result<u64, StoreError>;
    /// Forgets `key`.
    async fn forget(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes every entry that ended before `now_ms`; how many went.
    async fn sweep_counters(&self, now_ms: i64) -> Result<u64, StoreError>;
}

/// Rate limits in this process (they are hit on every request), cooldowns
/// and failure counters in the database.
pub struct DurableLimits {
    memory: MemoryLimits,
    counters: std::sync::Arc<dyn CounterStore>,
    clock: std::sync::Arc<dyn crate::Clock>,
}

impl DurableLimits {
    /// Counters in `counters`, by `clock`.
    pub fn new(
        counters: std::sync::Arc<dyn CounterStore>,
        clock: std::sync::Arc<dyn crate::Clock>,
    ) -> Self {
        Self {
            memory: MemoryLimits::with_clock(clock.clone()),
            counters,
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait]
impl SharedLimits for DurableLimits {
    fn is_shared(&self) -> bool {
        false
    }

    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError> {
        let now = self.now_ms();
        let key = format!("cooldown:{key}");
        let running = self
            .counters
            .start_cooldown_at(&key, now, now + ms(ttl).max(1))
            .await?;
        Ok(running.map(|until| ceil_secs(until - now)))
    }

    async fn end_cooldown(&self, key: &str) -> Result<(), StoreError> {
        self.counters.forget(&format!("cooldown:{key}")).await
    }

    async fn cooldown_left(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let now = self.now_ms();
        let until = self
            .counters
            .cooldown_until(&format!("cooldown:{key}"), now)
            .await?;
        Ok(until.map(|until| ceil_secs(until - now)))
    }

    async fn hit(
        &self,
        key: &str,
        rate: Rate,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        self.memory.hit(key, rate, now).await
    }

    async fn count_failure(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let now = self.now_ms();
        self.counters
            .count_at(&format!("failures:{key}"), now, now + ms(ttl).max(1))
            .await
    }

    async fn reset_failures(&self, key: &str) -> Result<(), StoreError> {
        self.counters.forget(&format!("failures:{key}")).await
    }
}

/// Shared limits that fall back to this process's own while the shared store
/// (Redis) fails: limits keep holding per instance, and sign-ins keep being
/// answered, instead of every request failing. Each failure is logged, at
/// most once a second.
pub struct FallbackLimits {
    primary: std::sync::Arc<dyn SharedLimits>,
    fallback: MemoryLimits,
    last_warning_ms: std::sync::atomic::AtomicU64,
}

impl FallbackLimits {
    /// `primary`, backed by `fallback` while it fails.
    pub fn new(primary: std::sync::Arc<dyn SharedLimits>, fallback: MemoryLimits) -> Self {
        Self {
            primary,
            fallback,
            last_warning_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn warn(&self, error: &StoreError) {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(
            crate::Clock::now(&crate::SystemClock).unix_timestamp_nanos() / 1_000_000,
        )
        .unwrap_or(0);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %error, "shared limits unavailable; limiting in this process");
        }
    }
}

macro_rules! fall_back {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self.primary.$method($($arg),*).await {
            Ok(value) => Ok(value),
            Err(e) => {
                $self.warn(&e);
                $self.fallback.$method($($arg),*).await
            }
        }
    };
}

#[async_trait]
impl SharedLimits for FallbackLimits {
    fn is_shared(&self) -> bool {
        self.primary.is_shared()
    }

    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError> {
        fall_back!(self.start_cooldown(key, ttl))
    }

    async fn end_cooldown(&self, key: &str) -> Result<(), StoreError> {
        fall_back!(self.end_cooldown(key))
    }

    async fn cooldown_left(&self, key: &str) -> Result<Option<u64>, StoreError> {
        fall_back!(self.cooldown_left(key))
    }

    async fn hit(
        &self,
        key: &str,
        rate: Rate,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        fall_back!(self.hit(key, rate, now))
    }

    async fn count_failure(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        fall_back!(self.count_failure(key, ttl))
    }

    async fn reset_failures(&self, key: &str) -> Result<(), StoreError> {
        fall_back!(self.reset_failures(key))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.primary.ping().await
    }
}

/// What [`MemoryLimits`] keeps under a key.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A cooldown or a failure counter, until `until` (monotonic ms).
    Until { until: u128, count: u64 },
    /// A GCRA theoretical arrival time (ms since the Unix epoch, by the
    /// caller's clock), useless after `until` (monotonic ms).
    Tat { tat: i64, until: u128 },
}

impl Slot {
    fn until(&self) -> u128 {
        match self {
            Slot::Until { until, .. } | Slot::Tat { until, .. } => *until,
        }
    }
}

/// Limits in this process only: right for one instance, and the default.
pub struct MemoryLimits {
    slots: Mutex<HashMap<String, Slot>>,
    started: std::time::Instant,
    /// Where time comes from, when not the monotonic clock (tests move it).
    clock: Option<std::sync::Arc<dyn crate::Clock>>,
    /// Entries kept before expired ones are swept.
    sweep_at: usize,
}

impl std::fmt::Debug for MemoryLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimits")
            .field("sweep_at", &self.sweep_at)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            clock: None,
            sweep_at: 100_000,
        }
    }
}

impl MemoryLimits {
    /// Limits whose cooldowns and counters expire by `clock`.
    pub fn with_clock(clock: std::sync::Arc<dyn crate::Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::default()
        }
    }

    fn now_ms(&self) -> u128 {
        match &self.clock {
            Some(clock) => (clock.now().unix_timestamp_nanos() / 1_000_000).max(0) as u128,
            None => self.started.elapsed().as_millis(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Slot>, u128) -> T) -> T {
        let now = self.now_ms();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= self.sweep_at {
            slots.retain(|_, slot| slot.until() > now);
            if slots.len() >= self.sweep_at {
                // Still full of live state: the entries that end soonest go,
                // a tenth at a time; live limits are never all forgotten.
                let mut ends: Vec<u128> = slots.values().map(Slot::until).collect();
                let cut = ends.len() / 10;
                ends.select_nth_unstable(cut);
                let threshold = ends[cut];
                let mut over = slots.len() + 1 - self.sweep_at.saturating_sub(cut);
                slots.retain(|_, slot| {
                    if over > 0 && slot.until() <= threshold {
                        over -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        f(&mut slots, now)
    }
}

#[async_trait]
impl SharedLimits for MemoryLimits {
    fn is_shared(&self) -> bool {
        false
    }

    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|slots, now| {
            if let Some(Slot::Until { until, .. }) = slots.get(key)
                && *until > now
            {
                return Some(ceil_secs((*until - now) as i64));
            }
            slots.insert(
                key.to_owned(),
                Slot::Until {
                    until: now + ttl.as_millis(),
                    count: 1,
                },
            );
            None
        }))
    }

    async fn end_cooldown(&self, key: &str) -> Result<(), StoreError> {
        self.with(|slots, _| slots.remove(key));
        Ok(())
    }

    async fn cooldown_left(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|slots, now| match slots.get(key) {
            Some(Slot::Until { until, .. }) if *until > now => {
                Some(ceil_secs((*until - now) as i64))
            }
            _ => None,
        }))
    }

    async fn hit(
        &self,
        key: &str,
        rate: Rate,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        Ok(self.with(|slots, mono| {
            let tat = match slots.get(key) {
                Some(Slot::Tat { tat, .. }) => Some(*tat),
                _ => None,
            };
            match gcra_step(tat, now_ms, rate) {
                Ok(next) => {
                    let until = mono + (next - now_ms).max(0) as u128;
                    slots.insert(key.to_owned(), Slot::Tat { tat: next, until });
                    None
                }
                Err(wait_ms) => Some(ceil_secs(wait_ms)),
            }
        }))
    }

    async fn count_failure(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        Ok(self.with(|slots, now| {
            let count = match slots.get(key) {
                Some(Slot::Until { until, count }) if *until > now => count + 1,
                _ => 1,
            };
            slots.insert(
                key.to_owned(),
                Slot::Until {
                    until: now + ttl.as_millis(),
                    count,
                },
            );
            count
        }))
    }

    async fn reset_failures(&self, key: &str) -> Result<(), StoreError> {
        self.with(|slots, _| slots.remove(key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_the_sustained_rate() {
        let rate = Rate::new(5, 60); // one every 12 s, bursts of 5
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(gcra_step(tat, 0, rate).unwrap());
        }
        assert_eq!(gcra_step(tat, 0, rate), Err(12_000));
        assert_eq!(gcra_step(tat, 11_999, rate), Err(1));
        let after = gcra_step(tat, 12_000, rate).unwrap();
        assert_eq!(gcra_step(Some(after), 12_000, rate), Err(12_000));
        // A long pause refills the whole burst.
        let mut tat = Some(after);
        for _ in 0..5 {
            tat = Some(gcra_step(tat, 1_000_000, rate).unwrap());
        }
        assert!(gcra_step(tat, 1_000_000, rate).is_err());
    }

    #[tokio::test]
    async fn a_full_memory_evicts_the_entries_that_end_soonest() {
        let limits = MemoryLimits {
            sweep_at: 100,
            ..MemoryLimits::default()
        };
        // A long lock first, then many short-lived entries fill the map.
        let long = Duration::from_secs(3600);
        assert_eq!(
            limits.start_cooldown("lock:victim", long).await.unwrap(),
            None
        );
        for i in 0..500 {
            let ttl = Duration::from_secs(60 + i);
            limits.start_cooldown(&format!("c{i}"), ttl).await.unwrap();
        }
        // The long lock survived every eviction; the map stayed bounded.
        assert_eq!(
            limits.cooldown_left("lock:victim").await.unwrap(),
            Some(3600)
        );
        let len = limits.slots.lock().unwrap().len();
        assert!(len <= 100, "{len}");
        // The newest short entries are there too.
        assert!(limits.cooldown_left("c499").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn memory_limits_count_and_forget() {
        let limits = MemoryLimits::default();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let rate = Rate::new(2, 10);
        assert_eq!(limits.hit("k", rate, now).await.unwrap(), None);
        assert_eq!(limits.hit("k", rate, now).await.unwrap(), None);
        assert_eq!(limits.hit("k", rate, now).await.unwrap(), Some(5));
        assert_eq!(limits.hit("other", rate, now).await.unwrap(), None);
        let later = now + time::Duration::seconds(5);
        assert_eq!(limits.hit("k", rate, later).await.unwrap(), None);

        let ttl = Duration::from_secs(60);
        assert_eq!(limits.count_failure("f", ttl).await.unwrap(), 1);
        assert_eq!(limits.count_failure("f", ttl).await.unwrap(), 2);
        limits.reset_failures("f").await.unwrap();
        assert_eq!(limits.count_failure("f", ttl).await.unwrap(), 1);

        assert_eq!(limits.cooldown_left("c").await.unwrap(), None);
        assert_eq!(limits.start_cooldown("c", ttl).await.unwrap(), None);
        assert_eq!(limits.start_cooldown("c", ttl).await.unwrap(), Some(60));
        assert_eq!(limits.cooldown_left("c").await.unwrap(), Some(60));
    }
}
