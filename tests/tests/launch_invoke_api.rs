//! The local platform's Invoke API answers the real aws-sdk-lambda client like Lambda does:
//! responses, function errors (`X-Amz-Function-Error: Unhandled`), unknown functions and 429 throttling.

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
        .credentials_provider(aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "test"))
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
    let (addr, server) = invoke_api::spawn("127.0.0.1:0".parse().unwrap(), platform.clone()).await.unwrap();
    let lambda = client(format!("http://{addr}")).await;

    // A successful batch: the BatchResult comes back as the payload.
    let out = lambda.invoke().function_name("propack").payload(payload("noop", Value::Null)).send().await.unwrap();
    assert_eq!(out.status_code(), 200);
    assert!(out.function_error().is_none());
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["tasks"][0]["status"], "succeeded", "{body}");
    assert_eq!(body["cold_start"], true);
    // Warm reuse, addressed by ARN this time.
    let out = lambda.invoke().function_name(f.arn()).payload(payload("noop", Value::Null)).send().await.unwrap();
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
    assert!(err["errorType"].is_string() && err["errorMessage"].is_string(), "{err}");

    // Unknown function.
    let e = lambda.invoke().function_name("nope").send().await.unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());

    // Throttling: the account limit is 1 and a 1 s sleep holds it.
    let busy = {
        let lambda = lambda.clone();
        tokio::spawn(async move {
            lambda.invoke().function_name("propack").payload(payload("sleep", json!({"ms": 1000}))).send().await
        })
    };
    let mut throttled = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if platform.instances().iter().any(|i| i.busy) {
            let e = lambda.invoke().function_name("propack").payload(payload("noop", Value::Null)).send().await.unwrap_err();
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
