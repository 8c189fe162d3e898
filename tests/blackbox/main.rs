//! Black-box HTTP tests: each boots the real server on an ephemeral port with a
//! fresh SQLite file and talks to it over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

mod crash;
mod errors;
mod me;
mod overload;
mod registration;
mod sessions;
mod tokens;
