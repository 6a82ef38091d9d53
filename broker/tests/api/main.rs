//! End-to-end tests of the broker over real HTTP, a real SQLite file and a
//! recording upstream server, all on port 0.

mod helpers;
mod keys;
mod logs;
mod persistence;
mod proxy;
mod spend;
