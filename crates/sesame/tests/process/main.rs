//! The `sesame` binary run as a process, as an operator runs it: the command
//! line, several instances on one database, restarts, `kill -9`, slow
//! clients, key commands, imports and what reaches the log. One test binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

mod common;

mod cli;
mod events;
mod files;
mod import;
mod instances;
mod keys;
mod restart;
mod secrets;
mod slow_clients;
mod split;
