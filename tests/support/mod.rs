//! What the integration tests share: the repository's root, the `brownout` program built for
//! this test run, and a run of it from the root. Each test file includes it as `mod support;`
//! and uses what it needs (hence `dead_code` allowed: no file uses everything).
//!
//! The other files here are included by path where needed (`leftovers.rs`, `chromium.rs`,
//! `cdp.rs`, `docker_api.rs`): they bring dependencies most test files do not use.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `brownout` program cargo built for this test run.
pub const BROWNOUT: &str = env!("CARGO_BIN_EXE_brownout");

/// The repository's root (the workspace; scenario files are named relative to it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `brownout ARGS…` run from the repository's root, its output collected.
pub fn brownout(args: &[&str]) -> Output {
    Command::new(BROWNOUT)
        .args(args)
        .current_dir(root())
        .output()
        .expect("run brownout")
}
