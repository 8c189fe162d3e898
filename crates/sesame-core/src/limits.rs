//! Short-lived state that every instance must see the same way: cooldowns (and,
//! later, rate-limit counters). Shared through Redis when it is configured.

use crate::StoreError;
use async_trait::async_trait;
use std::time::Duration;

/// Cooldowns shared by every instance.
#[async_trait]
pub trait SharedLimits: Send + Sync {
    /// Starts the cooldown `key` for `ttl` unless it is running already, in one
    /// atomic step; `Some(seconds left)` when it was running.
    async fn start_cooldown(&self, key: &str, ttl: Duration) -> Result<Option<u64>, StoreError>;
}
