//! Node.js tools installed under `interop/node_modules` (by `npm ci --prefix interop`).

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's interop directory.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// `interop/node_modules/.bin/<name>` when installed.
pub fn bin(name: &str) -> Option<PathBuf> {
    let p = interop_dir().join("node_modules/.bin").join(name);
    p.exists().then_some(p)
}

/// Is `node` on PATH and are the interop packages installed?
pub fn available() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && interop_dir().join("node_modules").exists()
}
