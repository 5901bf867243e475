//! The `crashguard` command as a library: reading report directories, report files and raw black
//! boxes, symbolizing recorded frames offline, and rendering reports for humans.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit statuses; everything
//! else lives here so that tests and other tools can use it.

#![forbid(unsafe_code)]

pub mod backtrace;
pub mod commands;
pub mod error;
pub mod exit_codes;
pub mod input;
pub mod list;
pub mod render;
pub mod symbolize;
pub mod units;

pub use error::{CliExit, Error};
