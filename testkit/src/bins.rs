//! The workspace's binaries, where cargo has put them next to the running
//! test or bench.

use std::path::PathBuf;

/// Where cargo has built the workspace's binaries: `target/debug` for a test
/// (which runs from `target/debug/deps`), the bench's own directory for a
/// bench binary run from there (`target/release/keylease-bench`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dir = exe.parent().expect("a binary lives in a directory");
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir),
        _ => dir,
    }
    .to_path_buf()
}

/// The binary `name` in [`bin_dir`]; panics, saying how to build it, when it is not there.
pub fn binary(name: &str) -> PathBuf {
    let bin = bin_dir().join(name);
    assert!(
        bin.exists(),
        "no {}: run `cargo build --workspace` (make test does)",
        bin.display()
    );
    bin
}
