//! The local platform's task root: with `FunctionConfig::with_task_root(DIR)` (and
//! `orchestrator platform serve --function-dir DIR`) instances get DIR as `LAMBDA_TASK_ROOT`,
//! and an exec task's relative program is the file in DIR, as `/var/task` on Lambda.

mod launch_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::Bytes;
use propack_orchestrator::backend::local::lambda::{
    AtLimit, FunctionConfig, InvokeStatus, LambdaPlatform,
};
use propack_orchestrator::platform::PlatformProfile;
use serde_json::{Value, json};

/// `DIR/bin/tool`: prints where it runs from and what the runtime told it.
fn function_dir(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("tool");
    std::fs::write(
        &tool,
        "#!/bin/sh\necho \"$0|$LAMBDA_TASK_ROOT|$PROPACK_TASK_ID|$(pwd)|$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn batch() -> Value {
    json!({"run_id": "r", "tasks": [
        {"id": "rel", "exec": {"program": "bin/tool", "args": ["a"]}},
        {"id": "missing", "exec": {"program": "no-such-tool-here"}},
    ]})
}

fn check(result: &Value, root: &Path) {
    let t = &result["tasks"][0];
    assert_eq!(t["status"], "succeeded", "{result}");
    let line = t["stdout_tail"].as_str().unwrap().trim_end();
    let parts: Vec<&str> = line.split('|').collect();
    let root = root.display().to_string();
    assert_eq!(parts[0], format!("{root}/bin/tool"), "{line}");
    assert_eq!(parts[1], root, "{line}");
    assert_eq!(parts[2], "rel");
    assert_ne!(parts[3], root, "tasks run in their scratch directory");
    assert_eq!(parts[4], "a");
    let m = &result["tasks"][1];
    assert_eq!(m["status"], "failed");
    let err = m["error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "exec.program \"no-such-tool-here\" not found: looked in {root}, /opt/bin, "
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_relative_programs_from_the_function_dir() {
    let (_, bootstrap) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    function_dir(&root);
    let profile = PlatformProfile::unlimited();
    let f = FunctionConfig::new("f", bootstrap, &profile).with_task_root(&root);
    assert_eq!(f.task_root.as_deref(), Some(root.as_path()));
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let r = platform
        .invoke("f", Bytes::from(batch().to_string()), AtLimit::Wait)
        .await
        .unwrap();
    platform.shutdown();
    let InvokeStatus::Ok(body) = r.status else {
        panic!("invocation failed: {:?}", r.status)
    };
    check(&serde_json::from_slice(&body).unwrap(), &root);
}

#[test]
fn platform_serve_takes_a_function_dir() {
    let (orchestrator, bootstrap) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    function_dir(&root);
    let function = format!("f={}", bootstrap.display());

    let missing = Command::new(orchestrator)
        .args([
            "platform",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--function",
            &function,
        ])
        .arg("--function-dir")
        .arg(root.join("nope"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("is not a directory"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let mut serve = Command::new(orchestrator)
        .args([
            "platform",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--platform",
            "unlimited",
        ])
        .args(["--function", &function, "--function-dir"])
        .arg(&root)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let result = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let req = http::Request::post(format!("http://{addr}/2015-03-31/functions/f/invocations"))
            .body(http_body_util::Full::new(Bytes::from(batch().to_string())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        serde_json::from_slice::<Value>(&body).unwrap()
    });
    serve.kill().unwrap();
    serve.wait().unwrap();
    check(&result, &root);
}
