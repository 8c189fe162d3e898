//! The Sesame server: configuration and wiring, usable from the binary and from
//! the black-box tests.

pub mod calibrate;
pub mod config;
pub mod http_server;
pub mod import;
pub mod server;

pub use config::Config;
pub use server::{Backend, Hooks, KeysCommand, Server, StartError, import, keys, migrate};
pub use sesame_store_postgres::RoleNames;
