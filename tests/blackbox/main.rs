//! Black-box HTTP tests: each boots the real server on an ephemeral port with a
//! fresh SQLite file and talks to it over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

mod admin;
mod admin_users;
mod audit;
mod codes;
mod crash;
mod delivery_faults;
mod erasure;
mod errors;
mod federation;
mod federation_linking;
mod federation_oidc;
mod kinds;
mod legacy;
mod lockout;
mod logins;
mod me;
mod metrics;
mod mfa;
mod nats;
mod overload;
mod passkeys;
mod password;
mod races;
mod registration;
mod retention;
mod sessions;
mod smtp;
mod step_up;
mod takeover;
mod timing;
mod tokens;
mod webhooks;
