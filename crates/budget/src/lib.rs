//! Memory and thread budgets for crashguard.
//!
//! The two silent killers of long-running services are the kernel's OOM killer and thread
//! exhaustion. This crate gives a service the means to act before either: [`memory`] holds the
//! counting global allocator and the RSS / cgroup sampler, [`thread`] the guarded spawn API, the
//! thread census and the discovery of the limits that apply.

mod error;
pub mod memory;
pub mod thread;

pub use error::{Error, Result};
