//! The S3 core against canned HTTP responses: client settings, denied calls, multipart edge cases.

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_http_client::test_util::infallible_client_fn;

use super::*;

const ENDPOINT: &str = "http://s3.test";

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<String>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A store whose every request is answered by `answer(method, uri)` and logged.
fn fake_s3(
    answer: impl Fn(&str, &str) -> http::Response<SdkBody> + Send + Sync + 'static,
) -> (S3Store, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let http = infallible_client_fn(move |req: http::Request<SdkBody>| {
        let (method, uri) = (req.method().to_string(), req.uri().to_string());
        seen.lock().unwrap().push(Seen {
            method: method.clone(),
            uri: uri.clone(),
            headers: req.headers().keys().map(|k| k.to_string()).collect(),
        });
        answer(&method, &uri)
    });
    let conf = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "secret", None, None, "test",
        )))
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    let opts = S3Options {
        multipart_threshold: MIN_PART_SIZE,
        part_size: MIN_PART_SIZE,
        ..S3Options::with_endpoint(Some(ENDPOINT.into()))
    };
    (S3Store::from_conf(&conf, &opts), log)
}

fn reply(status: u16, body: &str) -> http::Response<SdkBody> {
    http::Response::builder()
        .status(status)
        .body(SdkBody::from(body.to_owned()))
        .unwrap()
}

const DENIED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R1</RequestId></Error>"#;

#[tokio::test]
async fn a_denied_call_names_the_object_the_call_and_the_missing_permission() {
    let (store, _) = fake_s3(|_, _| reply(403, DENIED));
    let uri = S3Uri::new("b", "runs/r1/out/1.txt");
    let err = store.put_bytes(&uri, b"x".to_vec()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "S3 PutObject on s3://b/runs/r1/out/1.txt: access denied: the credentials lack \
         permission `s3:PutObject` (add it to the caller's IAM policy; `orchestrator deploy` \
         prints one). AWS said: AccessDenied: Access Denied"
    );
    assert!(
        matches!(&err, S3Error::AccessDenied { op: S3Op::PutObject, permission: "s3:PutObject", uri: u, .. } if *u == uri),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Denied);
    let source = std::error::Error::source(&err).expect("the SDK error is kept");
    assert!(
        source
            .downcast_ref::<SdkError<PutObjectError, HttpResponse>>()
            .is_some(),
        "{source:?}"
    );

    // Reads and listings need other permissions.
    let get = store.get_bytes(&uri).await.unwrap_err();
    assert!(
        matches!(
            get,
            S3Error::AccessDenied {
                permission: "s3:GetObject",
                ..
            }
        ),
        "{get:?}"
    );
    let list = store.list(&S3Uri::new("b", "runs/")).await.unwrap_err();
    assert!(
        matches!(
            list,
            S3Error::AccessDenied {
                op: S3Op::ListObjectsV2,
                permission: "s3:ListBucket",
                ..
            }
        ),
        "{list:?}"
    );
}

#[tokio::test]
async fn other_failures_keep_their_class_and_message() {
    let (store, _) = fake_s3(|_, _| {
        reply(
            404,
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        )
    });
    let err = store.get_bytes(&S3Uri::new("b", "k")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "S3 GetObject on s3://b/k: NoSuchKey: The specified key does not exist."
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    let (store, _) = fake_s3(|_, _| reply(503, "<Error><Code>SlowDown</Code></Error>"));
    let err = store.get_bytes(&S3Uri::new("b", "k")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Throttled, "{err}");
}

#[tokio::test]
async fn an_endpoint_override_means_path_style_and_no_default_checksums() {
    let (store, log) = fake_s3(|_, _| reply(200, ""));
    store
        .put_bytes(&S3Uri::new("bucket", "dir/x.txt"), b"hello".to_vec())
        .await
        .unwrap();
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.uri,
        format!("{ENDPOINT}/bucket/dir/x.txt?x-id=PutObject")
    );
    assert!(
        !seen
            .headers
            .iter()
            .any(|h| h.starts_with("x-amz-checksum") || h == "x-amz-sdk-checksum-algorithm"),
        "S3-compatible servers get no default checksums: {:?}",
        seen.headers
    );
}

/// Answers a multipart upload; `complete` and `head_len` decide how it ends, and
/// UploadPart number `fail_part` (if any) gets a 500.
fn multipart_server(
    complete: &'static str,
    head_len: u64,
    fail_part: Option<u32>,
) -> impl Fn(&str, &str) -> http::Response<SdkBody> + Send + Sync + 'static {
    move |method, uri| match method {
        "POST" if uri.ends_with("?uploads") || uri.contains("?uploads&") => reply(
            200,
            "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>big</Key>\
             <UploadId>U1</UploadId></InitiateMultipartUploadResult>",
        ),
        "PUT" if uri.contains("partNumber=") => {
            let n: u32 = uri
                .split("partNumber=")
                .nth(1)
                .and_then(|s| s.split('&').next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            if Some(n) == fail_part {
                return reply(500, "<Error><Code>InternalError</Code></Error>");
            }
            http::Response::builder()
                .status(200)
                .header("ETag", format!("\"e{n}\""))
                .body(SdkBody::empty())
                .unwrap()
        }
        "POST" if uri.contains("uploadId=U1") => reply(200, complete),
        "HEAD" => http::Response::builder()
            .status(200)
            .header("Content-Length", head_len.to_string())
            .body(SdkBody::empty())
            .unwrap(),
        "DELETE" => reply(204, ""),
        _ => reply(400, "<Error><Code>Unexpected</Code></Error>"),
    }
}

/// moto 5.1+'s reply to CompleteMultipartUpload: the wrong root element.
const MOTO_COMPLETE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://s3.test/b/big</Location><Bucket>b</Bucket><Key>big</Key><ETag>"x-3"</ETag></CompleteMultipartUploadResponse>"#;

const LEN: u64 = 2 * MIN_PART_SIZE + 123;

fn big_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; LEN as usize]).unwrap();
    path
}

fn calls(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|s| {
            let query = s.uri.split_once('?').map_or("", |(_, q)| q);
            format!("{} {query}", s.method)
        })
        .collect()
}

#[tokio::test]
async fn a_moto_style_completion_is_trusted_only_when_the_object_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(&dir);
    let uri = S3Uri::new("b", "big");

    let (store, log) = fake_s3(multipart_server(MOTO_COMPLETE, LEN, None));
    let up = store.put_file(&uri, &path).await.unwrap();
    assert_eq!(
        up,
        Upload {
            bytes: LEN,
            parts: 3
        },
        "5 MiB + 5 MiB + 123 bytes"
    );
    assert_eq!(
        calls(&log),
        [
            "POST uploads",
            "PUT x-id=UploadPart&partNumber=1&uploadId=U1",
            "PUT x-id=UploadPart&partNumber=2&uploadId=U1",
            "PUT x-id=UploadPart&partNumber=3&uploadId=U1",
            "POST uploadId=U1",
            "HEAD ",
        ]
    );

    // The same reply with a truncated object is an error, and the upload is aborted.
    let (store, log) = fake_s3(multipart_server(MOTO_COMPLETE, LEN - 1, None));
    let err = store.put_file(&uri, &path).await.unwrap_err();
    assert!(
        matches!(
            err,
            S3Error::Service {
                op: S3Op::CompleteMultipartUpload,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        calls(&log).last().unwrap(),
        "DELETE x-id=AbortMultipartUpload&uploadId=U1"
    );
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(&dir);
    let (store, log) = fake_s3(multipart_server(MOTO_COMPLETE, LEN, Some(2)));
    let err = store
        .put_file(&S3Uri::new("b", "big"), &path)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            S3Error::Service {
                op: S3Op::UploadPart,
                class: ErrorClass::Transient,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        calls(&log),
        [
            "POST uploads",
            "PUT x-id=UploadPart&partNumber=1&uploadId=U1",
            "PUT x-id=UploadPart&partNumber=2&uploadId=U1",
            "DELETE x-id=AbortMultipartUpload&uploadId=U1"
        ]
    );
}

#[tokio::test]
async fn a_file_up_to_the_threshold_goes_up_in_one_put() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exact.bin");
    std::fs::write(&path, vec![1u8; MIN_PART_SIZE as usize]).unwrap();
    let (store, log) = fake_s3(|_, _| reply(200, ""));
    assert_eq!(store.multipart_threshold, MIN_PART_SIZE);
    let up = store.put_file(&S3Uri::new("b", "s"), &path).await.unwrap();
    assert_eq!(
        up,
        Upload {
            bytes: MIN_PART_SIZE,
            parts: 1
        }
    );
    assert_eq!(calls(&log), ["PUT x-id=PutObject"]);
}
