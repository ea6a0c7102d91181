//! Throttling and permission errors of the direct fan-out, offline, with the SDK's mock HTTP
//! clients: a 429/5xx storm is retried until every batch completes; a 403 stops the run
//! with a message naming the missing permission, for Lambda and for S3 staging alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, IntoShared, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient, infallible_client_fn};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use propack_orchestrator::backend::aws::invoke::{
    FanoutOptions, InvocationOutcome, fan_out, outcome_from_invocations,
};
use propack_orchestrator::backend::aws::{AwsBackend, AwsClients, AwsError, AwsOptions};
use propack_orchestrator::backend::{NoProgress, Progress};
use propack_runtime::s3::{S3Error, S3Op};
use propack_runtime::{Batch, BuiltinSpec, Task, TaskAction, TaskStatus};
use serde_json::{Value, json};

fn client(http: aws_sdk_lambda::config::SharedHttpClient) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .http_client(http)
        // The fan-out retries by itself; the SDK must not hide attempts from it.
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

fn batches(n: usize, k: usize) -> Vec<Batch> {
    (0..n)
        .map(|b| Batch {
            run_id: Some("r".into()),
            batch_id: Some(format!("{b:06}")),
            output_prefix: None,
            parallelism: None,
            handler: None,
            max_result_bytes: None,
            logs_prefix: None,
            tasks: (0..k)
                .map(|t| Task {
                    id: format!("b{b}-t{t}"),
                    action: TaskAction::Builtin(BuiltinSpec {
                        name: "noop".into(),
                        params: Value::Null,
                    }),
                    timeout_ms: None,
                    inputs: Default::default(),
                    outputs: Default::default(),
                })
                .collect(),
        })
        .collect()
}

/// What the runtime would return for a batch payload: every task succeeded.
fn result_for(payload: &[u8]) -> Value {
    let batch: Value = serde_json::from_slice(payload).unwrap();
    let tasks: Vec<Value> = batch["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!({"id": t["id"], "status": "succeeded", "exit_code": null, "started_at": 1_000, "ended_at": 2_000}))
        .collect();
    json!({"schema_version": 1, "batch_id": batch["batch_id"], "instance_id": format!("i-{}", batch["batch_id"].as_str().unwrap()),
           "cold_start": true, "init_ms": 3, "received_at": 900, "started_at": 1_000, "ended_at": 2_000,
           "vcpus": 6, "parallelism": 6, "tasks": tasks})
}

#[derive(Default)]
struct Count {
    tasks: AtomicUsize,
    failed: AtomicUsize,
}

impl Progress for Count {
    fn batch_done(&self, tasks: usize, failed: usize) {
        self.tasks.fetch_add(tasks, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_is_retried_until_every_batch_completes() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    // The first 60 requests are throttled (429), then every fourth gets a 502.
    let http = infallible_client_fn(move |req: http::Request<SdkBody>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        if n < 60 {
            http::Response::builder()
                .status(429)
                .header("x-amzn-errortype", "TooManyRequestsException")
                .header("content-type", "application/json")
                .body(SdkBody::from(r#"{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#))
                .unwrap()
        } else if n.is_multiple_of(4) {
            http::Response::builder()
                .status(502)
                .header("x-amzn-errortype", "ServiceException")
                .body(SdkBody::from(r#"{"message":"bad gateway"}"#))
                .unwrap()
        } else {
            let body = result_for(req.body().bytes().unwrap()).to_string();
            http::Response::builder()
                .status(200)
                .header("x-amz-executed-version", "$LATEST")
                .body(SdkBody::from(body))
                .unwrap()
        }
    });
    let lambda = client(http);
    let batches = batches(20, 3);
    let payloads: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    let sizes: Vec<usize> = batches.iter().map(|b| b.tasks.len()).collect();
    let opts = FanoutOptions {
        max_in_flight: 8,
        max_attempts: 100,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..FanoutOptions::default()
    };
    let progress = Count::default();
    let records = fan_out(
        &lambda,
        "propack",
        payloads,
        &sizes,
        &opts,
        Instant::now(),
        &progress,
    )
    .await
    .unwrap();

    assert_eq!(records.len(), 20);
    let retries: usize = records.iter().map(|r| r.retries()).sum();
    let total = requests.load(Ordering::SeqCst);
    assert_eq!(retries + 20, total, "every request is one recorded attempt");
    assert!(retries >= 60, "the storm must have been retried: {retries}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.batch, i);
        assert!(
            r.sent_s.windows(2).all(|w| w[0] <= w[1]),
            "send times are in order"
        );
        match &r.outcome {
            InvocationOutcome::Result(res) => {
                let ids: Vec<&str> = res.tasks.iter().map(|t| t.id.as_str()).collect();
                let want: Vec<String> = (0..3).map(|t| format!("b{i}-t{t}")).collect();
                assert_eq!(ids, want, "batch {i} got its own result");
            }
            other => panic!("batch {i} did not complete: {other:?}"),
        }
    }
    assert_eq!(progress.tasks.load(Ordering::Relaxed), 60);
    assert_eq!(progress.failed.load(Ordering::Relaxed), 0);

    let outcome = outcome_from_invocations(&batches, &records, 0);
    assert_eq!(outcome.records.instances.len(), 20);
    assert_eq!(outcome.records.tasks.len(), 60);
    assert!(
        outcome
            .records
            .tasks
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded)
    );
    assert!(
        outcome
            .records
            .instances
            .iter()
            .all(|i| i.ok && i.start_s == 0.9 && i.end_s == 2.0)
    );
    assert_eq!(outcome.records.orchestration, Default::default());
}

#[tokio::test]
async fn retries_are_bounded_and_the_batch_is_recorded_as_failed() {
    let http = infallible_client_fn(|_req: http::Request<SdkBody>| {
        http::Response::builder()
            .status(429)
            .header("x-amzn-errortype", "TooManyRequestsException")
            .body(SdkBody::from(r#"{"message":"Rate Exceeded."}"#))
            .unwrap()
    });
    let batches = batches(2, 2);
    let payloads: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    let opts = FanoutOptions {
        max_in_flight: 2,
        max_attempts: 4,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        ..FanoutOptions::default()
    };
    let progress = Count::default();
    let records = fan_out(
        &client(http),
        "propack",
        payloads,
        &[2, 2],
        &opts,
        Instant::now(),
        &progress,
    )
    .await
    .unwrap();
    for r in &records {
        assert_eq!(r.sent_s.len(), 4);
        match &r.outcome {
            InvocationOutcome::GaveUp(why) => {
                assert!(why.contains("TooManyRequestsException"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(progress.failed.load(Ordering::Relaxed), 4);
    let outcome = outcome_from_invocations(&batches, &records, 0);
    assert!(
        outcome
            .records
            .tasks
            .iter()
            .all(|t| t.status == TaskStatus::Failed)
    );
    assert!(outcome.records.instances.iter().all(|i| !i.ok));
}

#[tokio::test]
async fn a_permanent_403_stops_with_the_missing_permission() {
    let denied = ReplayEvent::new(
        http::Request::builder()
            .uri("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/propack/invocations")
            .body(SdkBody::empty())
            .unwrap(),
        http::Response::builder()
            .status(403)
            .header("x-amzn-errortype", "AccessDeniedException")
            .header("content-type", "application/json")
            .body(SdkBody::from(
                r#"{"Message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:propack"}"#,
            ))
            .unwrap(),
    );
    let replay = StaticReplayClient::new(vec![denied]);
    let lambda = client(replay.clone().into_shared());
    let batches = batches(5, 1);
    let payloads: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    let opts = FanoutOptions {
        max_in_flight: 1,
        ..Default::default()
    };
    let err = fan_out(
        &lambda,
        "propack",
        payloads,
        &[1; 5],
        &opts,
        Instant::now(),
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("lambda:InvokeFunction"), "{err}");
    assert!(err.contains("propack"), "{err}");
    assert_eq!(
        replay.actual_requests().count(),
        1,
        "a denied call is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_upload_while_staging_names_the_missing_s3_permission() {
    let http = infallible_client_fn(|_req: http::Request<SdkBody>| {
        http::Response::builder()
            .status(403)
            .body(SdkBody::from(
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            ))
            .unwrap()
    });
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(
            Credentials::new("AKID", "secret", None, None, "test"),
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    let backend = AwsBackend::with_clients(
        AwsClients::from_conf(&conf, true),
        AwsOptions::new("bucket"),
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"data").unwrap();
    let task = Task {
        id: "t".into(),
        action: TaskAction::Builtin(BuiltinSpec {
            name: "noop".into(),
            params: Value::Null,
        }),
        timeout_ms: None,
        inputs: [("input".to_owned(), format!("file://{}", input.display()))].into(),
        outputs: Default::default(),
    };
    let err = backend.stage("r1", &[task]).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AwsError::S3(S3Error::AccessDenied {
                op: S3Op::PutObject,
                permission: "s3:PutObject",
                ..
            })
        ),
        "the S3 error stays typed: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        "S3 PutObject on s3://bucket/propack/runs/r1/in/0/input: access denied: the credentials \
         lack permission `s3:PutObject` (add it to the caller's IAM policy; `orchestrator \
         deploy` prints one). AWS said: AccessDenied: Access Denied"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK error is the source"
    );
}
