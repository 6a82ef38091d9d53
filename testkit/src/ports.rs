//! Ports nothing listens on, for a process that must be told where to listen.

use std::net::{SocketAddr, TcpListener};

/// A port nothing listens on now (bound, then released for a process to take).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// `127.0.0.1` and a [`free_port`].
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
}
