//! Passwords: the policy a new password must meet and the hashing pool.

mod hasher;
pub mod legacy;
mod policy;

pub use hasher::{Argon2Config, HashingConfig, PasswordHasher, PoolStats, Verified};
pub use policy::{MAX_LEN, MIN_LEN, check_new_password};
