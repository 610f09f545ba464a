//! The workspace's binaries, for integration tests of a crate that does not build them.

use std::path::PathBuf;

/// The binary `name` built next to `beside` (a `CARGO_BIN_EXE_*` path of the calling
/// crate): `cargo test --workspace` builds every binary into the same directory.
pub fn sibling(beside: &str, name: &str) -> PathBuf {
    let path = std::path::Path::new(beside).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        path.display()
    );
    path
}
