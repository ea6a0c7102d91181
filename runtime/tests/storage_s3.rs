//! The `s3://` backend against moto's S3-compatible server (path-style, endpoint override, multipart).
//!
//! Runs when PROPACK_MOTO_URL is set (`eval "$(bash scripts/moto start)"`), otherwise skips.

use std::io::{Read, Write};
use std::net::TcpStream;

use propack_runtime::Storage;
use propack_runtime::contract::{Batch, ParseOptions, TaskStatus};
use propack_runtime::s3::S3Options;
use propack_runtime::{ExecutorConfig, run_batch};
use serde_json::json;

/// Creates a bucket with a raw path-style request (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}

#[test]
fn s3_backend_against_moto() {
    let Ok(endpoint) = std::env::var("PROPACK_MOTO_URL") else {
        eprintln!(
            "SKIPPED s3_backend_against_moto: PROPACK_MOTO_URL is not set (eval \"$(bash scripts/moto start)\")"
        );
        return;
    };
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var_os(k).is_none() {
            // SAFETY: this file's only test; nothing else reads the environment concurrently.
            unsafe { std::env::set_var(k, v) };
        }
    }
    let bucket = format!("propack-rt-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    let storage = Storage::with_s3_options(S3Options {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        ..S3Options::with_endpoint(Some(endpoint.clone()))
    });
    let root = format!("s3://{bucket}");

    storage
        .put_bytes(&format!("{root}/a/1.txt"), b"one")
        .unwrap();
    storage
        .put_bytes(&format!("{root}/a/2.txt"), b"two")
        .unwrap();
    storage
        .put_bytes(&format!("{root}/b.txt"), b"three")
        .unwrap();
    assert_eq!(
        storage.get_bytes(&format!("{root}/a/2.txt")).unwrap(),
        b"two"
    );
    assert_eq!(
        storage.list(&format!("{root}/a/")).unwrap(),
        vec![format!("{root}/a/1.txt"), format!("{root}/a/2.txt")]
    );

    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 251) as u8).collect();
    let big_path = dir.path().join("big.bin");
    std::fs::write(&big_path, &big).unwrap();
    assert_eq!(
        storage
            .upload(&big_path, &format!("{root}/big.bin"))
            .unwrap(),
        big.len() as u64
    );
    let back = dir.path().join("back/big.bin");
    assert_eq!(
        storage.fetch(&format!("{root}/big.bin"), &back).unwrap(),
        big.len() as u64
    );
    assert!(
        std::fs::read(&back).unwrap() == big,
        "multipart upload corrupted the object"
    );

    let err = storage.get_bytes(&format!("{root}/missing")).unwrap_err();
    assert!(err.to_string().contains("GetObject"), "{err}");

    // A batch whose tasks read and write s3:// objects.
    let b = Batch::from_value(
        &json!({"tasks": [{
            "id": "upper",
            "exec": {"program": "/bin/sh", "args": ["-c", "tr a-z A-Z < in.txt > out.txt"]},
            "inputs": {"in.txt": format!("{root}/b.txt")},
            "outputs": {"out.txt": format!("{root}/out/b.txt")},
        }]}),
        &ParseOptions::default(),
    )
    .unwrap();
    let r = run_batch(&b, &ExecutorConfig::default(), &storage);
    assert_eq!(r.tasks[0].status, TaskStatus::Succeeded, "{:?}", r.tasks[0]);
    assert_eq!(
        storage.get_bytes(&format!("{root}/out/b.txt")).unwrap(),
        b"THREE"
    );
}
