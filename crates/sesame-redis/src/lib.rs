//! Shared short-lived state on Redis: every instance of a deployment sees the
//! same cooldowns. Keys carry a configurable prefix and never a login itself
//! (callers pass keyed hashes).

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sesame_core::limits::ceil_secs;
use sesame_core::{Rate, SharedLimits, StoreError};
use std::time::Duration;
use time::OffsetDateTime;

/// GCRA in one atomic step: returns 0 when the event is allowed (and counted),
/// otherwise the milliseconds to wait. Mirrors `sesame_core::limits::gcra_step`.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
local allow_at = next - window
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], next, 'PX', math.max(next - now, 1))
return 0
";

/// Cooldowns (and later counters) in Redis.
#[derive(Clone)]
pub struct RedisLimits {
    conn: ConnectionManager,
    prefix: String,
    gcra: redis::Script,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::unavailable_from("redis", e)
}

impl RedisLimits {
    /// Connects to `url` (`redis://host:port/db`); fails when Redis does not
    /// answer, so that a misconfigured deployment stops at start-up.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        let limits = Self {
            conn,
            prefix: prefix.to_owned(),
            gcra: redis::Script::new(GCRA),
        };
        limits.ping().await?;
        Ok(limits)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }
}

#[async_trait]
impl SharedLimits for RedisLimits {
    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), StoreError> {
        RedisLimits::ping(self).await
    }

    async fn end_cooldown(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key("cooldown", key))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn cooldown_left(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let left_ms: i64 = redis::cmd("PTTL")
            .arg(self.key("cooldown", key))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((left_ms > 0).then(|| ceil_secs(left_ms)))
    }

    async fn hit(
        &self,
        key: &str,
        rate: Rate,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let wait_ms: i64 = self
            .gcra
            .key(self.key("rate", key))
            .arg(now_ms)
            .arg(rate.interval_ms())
            .arg(rate.window_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((wait_ms > 0).then(|| ceil_secs(wait_ms)))
    }

    async fn count_failure(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.key("failures", key);
        let (count, _): (u64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(count)
    }

    async fn reset_failures(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key("failures", key))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError> {
        let key = self.key("cooldown", key);
        let mut conn = self.conn.clone();
        let ms = ttl.as_millis().max(1) as u64;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if set.is_some() {
            return Ok(None);
        }
        let left_ms: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        // -2: expired in between; -1: no expiry (not set by us). Either way, wait a second.
        Ok(Some(ceil_secs(left_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis of the test machine, unless `SESAME_TEST_REDIS_URL` names another.
    fn url() -> String {
        std::env::var("SESAME_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    #[tokio::test]
    async fn a_cooldown_holds_until_it_expires() {
        let limits = match RedisLimits::connect(&url(), "sesame-test:").await {
            Ok(l) => l,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: no Redis at {} ({e})", url());
                return;
            }
            Err(e) => panic!("Redis is required under CI: {e}"),
        };
        let key = format!(
            "unit-{}-{}",
            std::process::id(),
            sesame_core::Clock::now(&sesame_core::SystemClock).unix_timestamp_nanos()
        );
        let ttl = Duration::from_millis(1500);
        assert_eq!(limits.start_cooldown(&key, ttl).await.unwrap(), None);
        let left = limits.start_cooldown(&key, ttl).await.unwrap();
        assert!(matches!(left, Some(1..=2)), "{left:?}");
        // A second client (another instance) sees the same cooldown.
        let other = RedisLimits::connect(&url(), "sesame-test:").await.unwrap();
        assert!(other.start_cooldown(&key, ttl).await.unwrap().is_some());
        // Another prefix is another deployment.
        let elsewhere = RedisLimits::connect(&url(), "sesame-other:").await.unwrap();
        assert_eq!(elsewhere.start_cooldown(&key, ttl).await.unwrap(), None);
        assert!(matches!(
            limits.cooldown_left(&key).await.unwrap(),
            Some(1..=2)
        ));
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(limits.cooldown_left(&key).await.unwrap(), None);
        assert_eq!(limits.start_cooldown(&key, ttl).await.unwrap(), None);

        // Rates follow the same algorithm as the in-process limits, shared.
        let now = sesame_core::Clock::now(&sesame_core::SystemClock);
        let rate = Rate::new(2, 10);
        assert_eq!(limits.hit(&key, rate, now).await.unwrap(), None);
        assert_eq!(other.hit(&key, rate, now).await.unwrap(), None);
        assert_eq!(limits.hit(&key, rate, now).await.unwrap(), Some(5));
        let later = now + time::Duration::seconds(5);
        assert_eq!(other.hit(&key, rate, later).await.unwrap(), None);

        let ttl = Duration::from_secs(5);
        assert_eq!(limits.count_failure(&key, ttl).await.unwrap(), 1);
        assert_eq!(other.count_failure(&key, ttl).await.unwrap(), 2);
        limits.reset_failures(&key).await.unwrap();
        assert_eq!(other.count_failure(&key, ttl).await.unwrap(), 1);
        other.reset_failures(&key).await.unwrap();
    }
}
