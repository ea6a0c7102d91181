//! Cross-crate integration tests for ProPack-rs live in `tests/tests/`; this
//! library only holds helpers they share.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// The AWS measurements of the ProPack paper, if present beside the checkout
/// (`../shared/propack-aws-2021`). Tests that need them skip with a message
/// when this is `None`.
pub fn propack_aws_2021() -> Option<PathBuf> {
    let dir = std::env::var_os("PROPACK_AWS_2021")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/propack-aws-2021"));
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: AWS 2021 measurements not found at {} (set PROPACK_AWS_2021)",
            dir.display()
        );
        None
    }
}
