//! The local platform's Invoke API answers the real aws-sdk-lambda client like Lambda does:
//! responses, function errors (`X-Amz-Function-Error: Unhandled`), unknown functions, 429 throttling
//! and the 6 MB payload limits.

mod launch_support;

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use propack_orchestrator::backend::local::invoke_api;
use propack_orchestrator::backend::local::lambda::{FunctionConfig, LambdaPlatform};
use propack_orchestrator::platform::PlatformProfile;
use serde_json::{Value, json};

async fn client(endpoint: String) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

fn payload(builtin: &str, params: Value) -> Blob {
    Blob::new(serde_json::to_vec(&json!({"run_id": "r", "tasks": [{"id": "t", "builtin": {"name": builtin, "params": params}}]})).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_invokes_functions_on_the_local_platform() {
    let (_, bootstrap) = launch_support::binaries();
    let mut profile = PlatformProfile::unlimited();
    profile.account_concurrency_limit = Some(1);
    let f = FunctionConfig::new("propack", bootstrap, &profile);
    let platform = LambdaPlatform::new(profile, vec![f.clone()], 1);
    let (addr, server) = invoke_api::spawn("127.0.0.1:0".parse().unwrap(), platform.clone())
        .await
        .unwrap();
    let lambda = client(format!("http://{addr}")).await;

    // A successful batch: the BatchResult comes back as the payload.
    let out = lambda
        .invoke()
        .function_name("propack")
        .payload(payload("noop", Value::Null))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert!(out.function_error().is_none());
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["tasks"][0]["status"], "succeeded", "{body}");
    assert_eq!(body["cold_start"], true);
    // Warm reuse, addressed by ARN this time.
    let out = lambda
        .invoke()
        .function_name(f.arn())
        .payload(payload("noop", Value::Null))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["cold_start"], false, "{body}");

    // A malformed batch is a function error, reported as Lambda does.
    let out = lambda
        .invoke()
        .function_name("propack")
        .payload(Blob::new(b"{\"nothing\": 1}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert!(
        err["errorType"].is_string() && err["errorMessage"].is_string(),
        "{err}"
    );

    // Unknown function.
    let e = lambda
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());

    // Throttling: the account limit is 1 and a 1 s sleep holds it.
    let busy = {
        let lambda = lambda.clone();
        tokio::spawn(async move {
            lambda
                .invoke()
                .function_name("propack")
                .payload(payload("sleep", json!({"ms": 1000})))
                .send()
                .await
        })
    };
    let mut throttled = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if platform.instances().iter().any(|i| i.busy) {
            let e = lambda
                .invoke()
                .function_name("propack")
                .payload(payload("noop", Value::Null))
                .send()
                .await
                .unwrap_err();
            assert!(e.into_service_error().is_too_many_requests_exception());
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the sleeping invocation never became busy");
    assert!(busy.await.unwrap().unwrap().function_error().is_none());
    server.abort();
    platform.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_kill_the_instance_and_the_account_limit_makes_invocations_wait() {
    use propack_orchestrator::backend::local::lambda::{AtLimit, InvokeStatus};
    let (_, bootstrap) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    // A function that takes its event and never answers: only the platform's timeout can end it
    // (the real runtime is deadline-aware and always answers in time).
    let hung = dir.path().join("hung-bootstrap");
    std::fs::write(
        &hung,
        "#!/bin/bash\nexec 3<>/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}\n\
         printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3\n\
         read -r status <&3\nexec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&hung, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut profile = PlatformProfile::unlimited();
    profile.account_concurrency_limit = Some(2);
    let mut hung_fn = FunctionConfig::new("hung", &hung, &profile);
    hung_fn.timeout_s = 1.0;
    let f = FunctionConfig::new("f", bootstrap, &profile);
    let platform = LambdaPlatform::new(profile, vec![f, hung_fn], 1);
    let body = |builtin: &str, ms: u64| {
        serde_json::to_vec(
            &json!({"tasks": [{"id": "t", "builtin": {"name": builtin, "params": {"ms": ms}}}]}),
        )
        .unwrap()
    };

    // The hung function: Lambda's timeout error at the 1 s deadline, and the instance is killed.
    let r = platform
        .invoke("hung", body("noop", 0), AtLimit::Wait)
        .await
        .unwrap();
    match &r.status {
        InvokeStatus::FunctionError { error_type, .. } => {
            assert_eq!(error_type, "Sandbox.Timedout")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        r.end_s - r.start_s < 20.0,
        "killed at the deadline, not when the sleep ended"
    );
    for _ in 0..100 {
        if platform.instances().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        platform.instances().is_empty(),
        "a timed-out instance is killed"
    );

    // Four 300 ms invocations under a limit of 2: all succeed, on at most 2 instances.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let p = platform.clone();
            let b = body("sleep", 300);
            tokio::spawn(async move { p.invoke("f", b, AtLimit::Wait).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for c in calls {
        let r = c.await.unwrap().unwrap();
        assert!(matches!(r.status, InvokeStatus::Ok(_)), "{:?}", r.status);
        ids.insert(r.instance_id);
    }
    assert!(
        ids.len() <= 2,
        "the account limit caps concurrent instances: {ids:?}"
    );
    platform.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_serve_runs_the_same_platform_standalone() {
    use std::io::BufRead;
    let (orchestrator, bootstrap) = launch_support::binaries();
    let mut child = std::process::Command::new(orchestrator)
        .args([
            "platform",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--platform",
            "unlimited",
            "--function",
        ])
        .arg(format!("propack={}", bootstrap.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Keep reading its stderr: a closed pipe would kill the server at its next log line.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    stderr.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let lambda = client(format!("http://{addr}")).await;
    let out = lambda
        .invoke()
        .function_name("propack")
        .payload(payload("noop", Value::Null))
        .send()
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let out = out.unwrap();
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["tasks"][0]["status"], "succeeded", "{body}");
}

/// Answers `{"respond_bytes": N}` with exactly N bytes, ignoring any result budget (the real
/// runtime fits its results, so it cannot go over), anything else with `{"received_bytes": N}`.
const SIZED_FUNCTION: &str =
    include_str!("../../orchestrator/src/backend/local/testdata/sized_function.py");

/// A JSON string of exactly `n` bytes.
fn json_string_of(n: usize) -> Vec<u8> {
    let mut v = vec![b'a'; n];
    v[0] = b'"';
    v[n - 1] = b'"';
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_enforces_lambdas_6_mb_payload_limits() {
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    use propack_orchestrator::backend::aws::invoke::{FanoutOptions, fan_out};
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bootstrap");
    std::fs::write(&script, SIZED_FUNCTION).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let profile = PlatformProfile::unlimited();
    let f = FunctionConfig::new("f", &script, &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let (addr, server) = invoke_api::spawn("127.0.0.1:0".parse().unwrap(), platform.clone())
        .await
        .unwrap();
    let lambda = client(format!("http://{addr}")).await;

    // Requests: 6,291,456 bytes run, one more is Lambda's 413 and nothing runs.
    let e = lambda
        .invoke()
        .function_name("f")
        .payload(Blob::new(json_string_of(6_291_457)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 413);
    assert_eq!(e.code(), Some("RequestEntityTooLargeException"));
    assert_eq!(
        e.message(),
        Some("Request must be smaller than 6291456 bytes for the InvokeFunction operation")
    );
    assert!(platform.instances().is_empty());
    let out = lambda
        .invoke()
        .function_name("f")
        .payload(Blob::new(json_string_of(6_291_456)))
        .send()
        .await
        .unwrap();
    assert!(out.function_error().is_none());
    assert_eq!(
        out.payload().unwrap().as_ref(),
        br#"{"received_bytes": 6291456}"#
    );

    // Responses: 6,291,556 bytes come back, one more is Lambda's function error.
    let ask = |n: usize| Blob::new(format!(r#"{{"respond_bytes": {n}}}"#));
    let out = lambda
        .invoke()
        .function_name("f")
        .payload(ask(6_291_556))
        .send()
        .await
        .unwrap();
    assert!(out.function_error().is_none());
    assert_eq!(out.payload().unwrap().as_ref(), json_string_of(6_291_556));
    let out = lambda
        .invoke()
        .function_name("f")
        .payload(ask(6_291_557))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(
        err,
        json!({
            "errorType": "Function.ResponseSizeTooLarge",
            "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        })
    );

    // The direct fan-out stops on an oversized batch and says how to make batches fit.
    let e = fan_out(
        &lambda,
        "f",
        vec![json_string_of(6_291_457)],
        &[1],
        &FanoutOptions::default(),
        std::time::Instant::now(),
        &propack_orchestrator::backend::NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "lambda:Invoke on f: batch 0's request is 6291457 bytes, over Lambda's 6291456-byte \
         synchronous payload limit (RequestEntityTooLargeException: Request must be smaller \
         than 6291456 bytes for the InvokeFunction operation); pack fewer tasks per batch \
         (--packing) or pass large inputs by URI"
    );
    server.abort();
    platform.shutdown();
}
