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
        let status = propack_tests::cargo_build(&[
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

/// Kills a server process when the test ends, however it ends.
#[allow(dead_code, reason = "only the tests that run `platform serve` use it")]
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Environment of every process that talks to "AWS": S3 at `s3_url` (moto, or a proxy in
/// front of it), static credentials, nothing from the user's own AWS configuration.
#[allow(dead_code, reason = "only the AWS-backend tests use it")]
pub fn aws_env(cmd: &mut Command, s3_url: &str) {
    cmd.env("AWS_ENDPOINT_URL_S3", s3_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("PROPACK_S3_PATH_STYLE", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN");
}

/// `orchestrator platform serve` on an ephemeral port serving `propack` (this build's
/// `bootstrap`) on `platform`, with `extra` arguments; its instances reach S3 at `s3_url`.
/// Returns the server and its Invoke API URL.
#[allow(dead_code, reason = "only the tests that run `platform serve` use it")]
pub fn platform_serve(platform: &str, s3_url: &str, extra: &[&str]) -> (Server, String) {
    use std::io::BufRead;
    let (orchestrator, bootstrap) = binaries();
    let mut cmd = Command::new(orchestrator);
    cmd.args([
        "platform",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--platform",
        platform,
    ])
    .arg("--function")
    .arg(format!("propack={}", bootstrap.display()))
    .args(extra)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    // The instances inherit this environment: that is how the runtime finds S3.
    aws_env(&mut cmd, s3_url);
    let mut child = cmd.spawn().expect("starting orchestrator platform serve");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("platform serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (server, url)
}
