//! Shared by the launch_* tests: builds the `orchestrator` and `bootstrap` binaries once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `(orchestrator, bootstrap)` from this workspace's debug build.
///
/// Cargo does not expose other packages' binaries to this crate's tests, so the
/// first caller runs `cargo build` for both (a no-op when they are fresh).
pub fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let root = propack_tests::workspace_root();
        let status =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .current_dir(&root)
                .args([
                    "build",
                    "-p",
                    "propack-runtime",
                    "--bin",
                    "bootstrap",
                    "-p",
                    "propack-orchestrator",
                    "--bin",
                    "orchestrator",
                ])
                .status()
                .expect("running cargo build");
        assert!(
            status.success(),
            "cargo build of orchestrator and bootstrap failed"
        );
        let dir = root.join("target").join("debug");
        (dir.join("orchestrator"), dir.join("bootstrap"))
    })
}

/// `orchestrator` to run in `cwd`, with this build's `bootstrap` and a plan store of its own
/// in `cwd` (so no test reuses another's plan).
#[allow(
    dead_code,
    reason = "only the launch_* tests that run in a directory use it"
)]
pub fn orchestrator_in(cwd: &Path) -> Command {
    let (orchestrator, bootstrap) = binaries();
    let mut cmd = Command::new(orchestrator);
    cmd.current_dir(cwd)
        .env("PROPACK_BOOTSTRAP", bootstrap)
        .env("PROPACK_PLANS", cwd.join("plans.json"));
    cmd
}
