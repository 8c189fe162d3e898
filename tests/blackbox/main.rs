//! Black-box HTTP tests: each boots the real server on an ephemeral port with a
//! fresh SQLite file and talks to it over HTTP.

mod crash;
mod errors;
mod me;
mod overload;
mod registration;
mod sessions;
mod tokens;
