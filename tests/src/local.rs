//! What the tests find on this machine: free ports and the workspace's binaries.

use std::net::TcpListener;
use std::path::PathBuf;

/// A port nothing listens on now (bound, then released for a process to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// `target/debug`, where `cargo test --workspace` has built the binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug/deps/<test>")
        .to_path_buf()
}
