//! The end-to-end harness: the Temporal dev server, the broker, stripe-sim
//! and the worker, each for real, on free ports, one task queue per test.
//! What every crate's tests share (ports, binaries, databases, polling) is
//! in `keylease-testkit`.
//!
//! Modules:
//! - [`temporal`]: the dev server (one per test binary) from the project's own install,
//!   and a dedicated one on a database file for a test that restarts it.
//! - [`stack`]: [`Stack`], a broker, a stripe-sim and a worker for one test.
//! - [`sim`]: what stripe-sim holds, its control API, and PaymentIntents made straight at it.
//! - [`logs`]: every log line the in-process parts write, for secret checks.
//! - [`process`]: the worker binary as a child process to kill; the stack's settings for
//!   the testkit's broker process; a fault switch on the key API.
//! - [`raw`]: a foreign workflow that schedules Keylease's activities with raw JSON.
//! - [`compose`]: `docker-compose.yml` and `.env.example` as the tests read them.
//! - [`tls`]: a private CA and its certificates, and a TLS (mTLS, API key) gRPC front to a dev server.

pub mod compose;
pub mod logs;
pub mod process;
pub mod raw;
pub mod sim;
pub mod stack;
pub mod temporal;
pub mod tls;

pub use stack::Stack;
