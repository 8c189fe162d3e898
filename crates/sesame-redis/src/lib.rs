//! Shared short-lived state on Redis: every instance of a deployment sees the
//! same cooldowns. Keys carry a configurable prefix and never a login itself
//! (callers pass keyed hashes).

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sesame_core::{SharedLimits, StoreError};
use std::time::Duration;

/// Cooldowns (and later counters) in Redis.
#[derive(Clone)]
pub struct RedisLimits {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
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
        Ok(Some((left_ms.max(1) as u64).div_ceil(1000)))
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
        let key = format!("unit-{}", std::process::id());
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
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(limits.start_cooldown(&key, ttl).await.unwrap(), None);
    }
}
