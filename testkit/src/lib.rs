//! What the workspace's tests and benches share, written once: free ports,
//! the binaries cargo has built, PostgreSQL databases of a test's own,
//! polling with a deadline, child processes, and the broker binary as one.
//! It depends on no crate of the project, so any crate's tests can use it.
//!
//! Modules:
//! - [`ports`]: ports nothing listens on.
//! - [`bins`]: the workspace's binaries next to the running test or bench.
//! - [`postgres`]: a fresh database on the test PostgreSQL server, dropped with its guard.
//! - [`poll`]: [`eventually`], polling a condition until a deadline.
//! - [`process`]: stopping a child process with SIGTERM; a binary that must refuse to start.
//! - [`table`]: tables of bad inputs, every row checked and every problem listed.
//! - [`broker`]: [`BrokerProcess`], `keylease-broker` as a child process.
//! - [`machine`]: the machine a bench ran on, as a report states it.

#![forbid(unsafe_code)]

pub mod bins;
pub mod broker;
pub mod machine;
pub mod poll;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod table;

pub use broker::{BrokerProcess, BrokerSettings};
pub use poll::eventually;
