//! `sesame calibrate`: how long one password hash takes with the configured
//! Argon2 parameters, and how many hashes per second the machine completes with
//! every core hashing. Use it to choose parameters and to size capacity.

use sesame_core::Error;
use sesame_credentials::{Argon2Config, HashingConfig, PasswordHasher};
use std::time::{Duration, Instant};

/// What `calibrate` measured.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// Median wall time of one verification on an idle pool, in milliseconds.
    pub single_hash_ms: f64,
    /// Verifications per second with every worker busy.
    pub hashes_per_second: f64,
    /// Workers in the pool (one per core by default).
    pub workers: usize,
}

/// Measures with the server's own hashing pool and parameters.
pub async fn run(
    params: Argon2Config,
    pool: HashingConfig,
    samples: usize,
    duration: Duration,
) -> Result<Calibration, Error> {
    let hasher = PasswordHasher::new(params, pool)?;
    let workers = hasher.workers();
    let stored = hasher.hash("calibration password").await?;

    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        hasher.verify("calibration password", Some(&stored)).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let single_hash_ms = times[times.len() / 2];

    // Twice as many callers as workers keep every worker busy without queueing past the limit.
    let start = Instant::now();
    let deadline = start + duration;
    let callers: Vec<_> = (0..workers * 2)
        .map(|_| {
            let hasher = hasher.clone();
            let stored = stored.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if hasher
                        .verify("calibration password", Some(&stored))
                        .await
                        .is_ok()
                    {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0u64;
    for c in callers {
        total += c
            .await
            .map_err(|e| Error::internal_from("a calibration task failed", e))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Calibration {
        single_hash_ms,
        hashes_per_second: total as f64 / elapsed,
        workers,
    })
}
