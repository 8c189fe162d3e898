//! The one hashing service: Argon2id on a fixed set of worker threads, each
//! reusing one memory block of the configured cost for every hash, so that
//! peak memory is workers × cost plus a constant however hard sign-ins flood
//! in. A full queue refuses at once with `overloaded` instead of letting every
//! request stall.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

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

/// A job for a hashing worker, given the worker's memory block.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Hashes and verifies passwords off the async runtime, with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    jobs: std::sync::mpsc::Sender<Job>,
    workers: usize,
    admission: Arc<Semaphore>,
    dummy_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
    retry_after_secs: u64,
    /// Admission permits in all: workers plus queue.
    capacity: usize,
    /// Hashes running on a worker now.
    running: Arc<AtomicUsize>,
    /// Hashes refused because the queue was full.
    rejected: Arc<AtomicU64>,
}

/// What the hashing pool is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Hashes running.
    pub busy: usize,
    /// Hashes admitted and waiting for a worker.
    pub queued: usize,
    /// Hashes refused since start because the queue was full.
    pub rejected: u64,
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
        .map_err(|e| Error::internal_from("invalid Argon2 parameters", e))?;
        let argon2 = Arc::new(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            argon_params,
        ));
        let workers = match pool.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut memory = vec![Block::default(); argon2.params().block_count()];
        let dummy_hash = hash_now(&argon2, b"sesame dummy password", &mut memory)?.into();
        drop(memory);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let blocks = argon2.params().block_count();
        for i in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("sesame-hash-{i}"))
                .spawn(move || {
                    // Allocated once, on first use, and reused for every hash.
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else {
                            return;
                        };
                        if memory.len() != blocks {
                            memory = vec![Block::default(); blocks];
                        }
                        job(&mut memory);
                    }
                })
                .map_err(|e| Error::internal_from("no hashing thread", e))?;
        }
        Ok(Self {
            argon2,
            jobs,
            workers,
            admission: Arc::new(Semaphore::new(workers + pool.queue)),
            dummy_hash,
            retry_after_secs: 1,
            verifications: Arc::default(),
            capacity: workers + pool.queue,
            running: Arc::default(),
            rejected: Arc::default(),
        })
    }

    /// Hashes a new password to a PHC string with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        self.run(move |memory| hash_now(&argon2, password.as_bytes(), memory))
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
        let argon2 = self.argon2.clone();
        let dummy = self.dummy_hash.to_string();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verdict = self
            .run(move |memory| {
                let pwd = password.as_bytes();
                if super::legacy::is_current(&phc, argon2.params()) {
                    if verify_current(&argon2, pwd, &phc, memory) {
                        Verified::Yes
                    } else {
                        Verified::No
                    }
                } else if super::legacy::verify(pwd, &phc) == Some(true) {
                    Verified::Outdated
                } else {
                    // A wrong password against a hash of another scheme or
                    // cost is answered no sooner than against a current one.
                    let _ = verify_current(&argon2, pwd, &dummy, memory);
                    Verified::No
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
        self.workers
    }

    /// Running, waiting and refused hashes.
    pub fn stats(&self) -> PoolStats {
        let admitted = self
            .capacity
            .saturating_sub(self.admission.available_permits());
        let busy = self.running.load(Ordering::Relaxed).min(admitted);
        PoolStats {
            busy,
            queued: admitted - busy,
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let admitted = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            Error::Busy {
                code: ErrorCode::Overloaded,
                retry_after_secs: self.retry_after_secs,
            }
        })?;
        let (done, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let running = self.running.clone();
        let job: Job = Box::new(move |memory| {
            running.fetch_add(1, Ordering::Relaxed);
            let out = span.in_scope(|| job(memory));
            running.fetch_sub(1, Ordering::Relaxed);
            let _ = done.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("hashing pool closed"))?;
        let result = answer
            .await
            .map_err(|_| Error::internal("a hashing task failed"));
        drop(admitted);
        result
    }
}

/// Argon2id of `password` with a new salt, into the worker's `memory`, as a
/// PHC string.
fn hash_now(argon2: &Argon2<'_>, password: &[u8], memory: &mut [Block]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::internal_from("no randomness", e))?;
    let mut out = [0u8; 32];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut out, memory)
        .map_err(|e| Error::internal_from("hashing failed", e))?;
    let p = argon2.params();
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost(),
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// Whether `password` matches `stored`, an Argon2id hash with exactly the
/// current parameters, computed in the worker's `memory`.
fn verify_current(
    argon2: &Argon2<'_>,
    password: &[u8],
    stored: &str,
    memory: &mut [Block],
) -> bool {
    let mut parts = stored.split('$').skip(4);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (B64.decode(salt), B64.decode(hash)) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let hasher = match Params::new(
        argon2.params().m_cost(),
        argon2.params().t_cost(),
        argon2.params().p_cost(),
        Some(expected.len()),
    ) {
        Ok(params) => Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        Err(_) => return false,
    };
    hasher
        .hash_password_into_with_memory(password, &salt, &mut out, memory)
        .is_ok()
        && bool::from(out.ct_eq(&expected))
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
