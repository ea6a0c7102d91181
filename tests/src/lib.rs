//! Cross-crate integration tests for ProPack-rs live in `tests/tests/`; this
//! library only holds helpers they share.

pub mod fault_proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// `cargo` (the one running these tests) in the workspace root, for tests that build a binary.
///
/// `cargo test` gives a test process the test crate's own variables; ring's build script
/// watches `CARGO_MANIFEST_DIR`, so passing them on made such a build, and every later
/// `cargo test` from a shell, rebuild ring and the AWS SDK above it (5 minutes each here).
pub fn cargo_build(args: &[&str]) -> std::process::Command {
    let mut cargo =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_crate = key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&key.as_ref());
        if per_crate {
            cargo.env_remove(key.as_ref());
        }
    }
    cargo.current_dir(workspace_root()).arg("build").args(args);
    cargo
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

/// The URL of the moto server started by `scripts/test` (`PROPACK_MOTO_URL`).
///
/// Missing is a failure, not a skip, so that a broken test set-up cannot pass
/// silently; `PROPACK_SKIP_MOTO=1` skips deliberately (returns `None`).
pub fn moto_url() -> Option<String> {
    match std::env::var("PROPACK_MOTO_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ if std::env::var("PROPACK_SKIP_MOTO").as_deref() == Ok("1") => {
            eprintln!("skipping: PROPACK_SKIP_MOTO=1 (moto server tests not run)");
            None
        }
        _ => panic!(
            "PROPACK_MOTO_URL is not set: these tests need moto's server. Start it with \
             `eval \"$(bash scripts/moto start)\"` (scripts/test does this), or set \
             PROPACK_SKIP_MOTO=1 to skip them deliberately"
        ),
    }
}

/// Sends one plain HTTP/1.1 request to a local server and returns (status, body).
/// Enough for moto's control API and IAM's query API, without an HTTP client dependency.
pub fn http_request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let hostport = url
        .strip_prefix("http://")
        .expect("plain http:// URL")
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(hostport).expect("connect to local server");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send request");
    let mut resp = String::new();
    stream.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Writes an executable script.
pub fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the script");
}

/// How often each line occurs in a file (a count file tasks append their id to); empty when
/// the file does not exist.
pub fn line_counts(path: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if !line.is_empty() {
            *out.entry(line.to_owned()).or_default() += 1;
        }
    }
    out
}

/// The lines of a run's `journal.jsonl` (every complete JSON line).
pub fn journal(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// For every task id in the journal's batch results: how many times some attempt returned
/// it `succeeded` (across the launch and every resume).
pub fn journal_successes(run_dir: &Path) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for e in journal(run_dir).iter().filter(|e| e["kind"] == "result") {
        for t in e["result"]["tasks"].as_array().into_iter().flatten() {
            if t["status"] == "succeeded" {
                *out.entry(t["id"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
    }
    out
}

/// Asserts the acceptance check of every fault: each of `ids` was returned `succeeded`
/// exactly once over all attempts of the run (none lost, none duplicated, no stranger).
pub fn assert_each_succeeded_once(run_dir: &Path, ids: &[String]) {
    let got = journal_successes(run_dir);
    let want: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 1)).collect();
    if got != want {
        let lost: Vec<&String> = ids.iter().filter(|i| !got.contains_key(*i)).collect();
        let twice: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
        panic!(
            "{}: every task must succeed exactly once: lost {lost:?}, duplicated {twice:?}, {} successes for {} tasks",
            run_dir.display(),
            got.values().sum::<usize>(),
            ids.len()
        );
    }
}
