//! The one hashing service: Argon2id on a bounded pool of blocking workers, each
//! hash computing its lanes in parallel. A full queue refuses at once with
//! `overloaded` instead of letting every request stall.

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    /// Memory per hash in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes, computed in parallel.
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 4,
        }
    }
}

/// Size of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingConfig {
    /// Hashes computed at once; 0 means one per core.
    pub workers: usize,
    /// Hashes allowed to wait for a worker before requests are refused.
    pub queue: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            queue: 64,
        }
    }
}

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password does not match (or nothing was stored).
    No,
    /// It matches a hash made with the current parameters.
    Yes,
    /// It matches a hash of another scheme or cost: re-hash it now.
    Outdated,
}

/// Hashes and verifies passwords off the async runtime, with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    dummy_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
    retry_after_secs: u64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon2.params())
            .finish()
    }
}

impl PasswordHasher {
    /// Builds the pool and computes the dummy hash used for unknown identifiers.
    pub fn new(params: Argon2Config, pool: HashingConfig) -> Result<Self, Error> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("invalid Argon2 parameters: {e}")))?;
        let argon2 = Arc::new(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            argon_params,
        ));
        let workers = match pool.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let dummy_hash = hash_now(&argon2, b"sesame dummy password")?.into();
        Ok(Self {
            argon2,
            workers: Arc::new(Semaphore::new(workers)),
            admission: Arc::new(Semaphore::new(workers + pool.queue)),
            dummy_hash,
            retry_after_secs: 1,
            verifications: Arc::default(),
        })
    }

    /// Hashes a new password to a PHC string with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        self.run(move || hash_now(&argon2, password.as_bytes()))
            .await?
    }

    /// Verifies `password` against a stored hash; with `None` (unknown
    /// identifier) it verifies against a dummy hash so the time taken is the same,
    /// and answers false. Hashes made elsewhere (see [`super::legacy`]) verify
    /// too; a hash in an unknown format never matches.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, Error> {
        Ok(self.check(password, stored).await? != Verified::No)
    }

    /// Like [`PasswordHasher::verify`], and says whether a matching hash
    /// should be replaced by one with the current parameters.
    pub async fn check(&self, password: &str, stored: Option<&str>) -> Result<Verified, Error> {
        let password = password.to_owned();
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let params = self.argon2.params().clone();
        let dummy = self.dummy_hash.to_string();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verdict = self
            .run(move || {
                if super::legacy::verify(password.as_bytes(), &phc) != Some(true) {
                    // A wrong password against a hash of another scheme or
                    // cost is answered no sooner than against a current one.
                    if !super::legacy::is_current(&phc, &params) {
                        let _ = super::legacy::verify(password.as_bytes(), &dummy);
                    }
                    Verified::No
                } else if super::legacy::is_current(&phc, &params) {
                    Verified::Yes
                } else {
                    Verified::Outdated
                }
            })
            .await?;
        Ok(if known { verdict } else { Verified::No })
    }

    /// Password verifications started so far (dummy ones included).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The number of hashes that may run at once.
    pub fn workers(&self) -> usize {
        self.workers.available_permits()
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let admitted = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy {
                code: ErrorCode::Overloaded,
                retry_after_secs: self.retry_after_secs,
            })?;
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("hashing pool closed".into()))?;
        let span = tracing::Span::current();
        let result = tokio::task::spawn_blocking(move || span.in_scope(job))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| Error::Internal(format!("hashing task failed: {e}")));
        drop(worker);
        drop(admitted);
        result
    }
}

fn hash_now(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    argon2
        .hash_password_with_salt(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Config {
        Argon2Config {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 2,
        }
    }

    #[test]
    fn defaults_are_the_documented_cost() {
        assert_eq!(
            Argon2Config::default(),
            Argon2Config {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 4
            }
        );
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = PasswordHasher::new(cheap(), HashingConfig::default()).unwrap();
        let phc = h.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=2$"), "{phc}");
        assert!(h.verify("correct horse", Some(&phc)).await.unwrap());
        assert!(!h.verify("wrong horse", Some(&phc)).await.unwrap());
        // Same password, different salt.
        assert_ne!(phc, h.hash("correct horse").await.unwrap());
    }

    #[tokio::test]
    async fn unknown_identifier_verifies_against_the_dummy_and_fails() {
        let h = PasswordHasher::new(cheap(), HashingConfig::default()).unwrap();
        assert!(!h.verify("sesame dummy password", None).await.unwrap());
    }

    #[tokio::test]
    async fn garbage_hash_never_verifies() {
        let h = PasswordHasher::new(cheap(), HashingConfig::default()).unwrap();
        assert!(!h.verify("x", Some("not a phc string")).await.unwrap());
    }

    #[tokio::test]
    async fn full_queue_refuses_at_once() {
        let params = Argon2Config {
            memory_kib: 8192,
            iterations: 4,
            parallelism: 1,
        };
        let h = PasswordHasher::new(
            params,
            HashingConfig {
                workers: 1,
                queue: 1,
            },
        )
        .unwrap();
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash("some password").await })
            })
            .collect();
        let mut refused = 0;
        let mut done = 0;
        for j in jobs {
            match j.await.unwrap() {
                Ok(_) => done += 1,
                Err(Error::Busy {
                    code: ErrorCode::Overloaded,
                    retry_after_secs,
                }) => {
                    assert!(retry_after_secs >= 1);
                    refused += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(refused >= 1, "refused {refused}, done {done}");
        assert!(done >= 1, "refused {refused}, done {done}");
    }
}
