//! The Sesame server: configuration and wiring, usable from the binary and from
//! the black-box tests.

pub mod calibrate;
pub mod commands;
pub mod config;
pub mod federation_config;
pub mod http_server;
pub mod import;
pub mod server;

pub use commands::{
    AdminCommand, EventsCommand, KeysCommand, admin, events, import, keys, migrate,
};
pub use config::{Config, WebauthnConfig};
pub use server::{Backend, Hooks, Server, StartError};
pub use sesame_store_postgres::RoleNames;
