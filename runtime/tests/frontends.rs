//! The `bootstrap` binary's front-ends: the Lambda Runtime API loop against a mock, `serve` and `run`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BOOTSTRAP, MockApi, PATIENCE};
use serde_json::{Value, json};

fn spawn_runtime(api: &MockApi, extra_env: &[(&str, &str)]) -> Child {
    runtime_command(api, extra_env)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bootstrap")
}

fn runtime_command(api: &MockApi, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BOOTSTRAP);
    cmd.env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "propack-test")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
        .env_remove("PROPACK_PARALLELISM")
        .env_remove("AWS_LAMBDA_FUNCTION_TIMEOUT")
        .env_remove("PROPACK_SAFETY_MARGIN_MS")
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

fn future_deadline() -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Some((now + 60_000).to_string())
}

#[test]
fn runtime_api_loop_responses_and_errors() {
    let good = json!({"Items": [
        {"id": "a", "exec": {"program": "/bin/sh", "args": ["-c", "echo hi"]}},
        {"id": "b", "builtin": {"name": "noop"}},
    ], "BatchInput": {"run_id": "r"}});
    let api = MockApi::start(vec![
        (
            "req-1",
            future_deadline(),
            serde_json::to_vec(&good).unwrap(),
        ),
        ("req-2", future_deadline(), br#"{"tasks": []}"#.to_vec()),
        (
            "req-3",
            Some("5000".into()),
            serde_json::to_vec(&good).unwrap(),
        ),
        ("req-4", future_deadline(), b"this is not json".to_vec()),
    ]);
    let mut child = spawn_runtime(&api, &[]);
    let posts = api.wait_posts(4);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(posts.len(), 4, "{posts:#?}");
    let find = |suffix: &str| {
        posts
            .iter()
            .find(|p| p.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no POST to …{suffix}: {posts:#?}"))
    };

    let r1 = find("/invocation/req-1/response").json();
    assert_eq!(r1["schema_version"], 1);
    assert_eq!(r1["cold_start"], true);
    assert_eq!(r1["request_id"], "req-1");
    assert_eq!(r1["run_id"], "r");
    assert_eq!(r1["memory_mb"], 1769);
    assert_eq!(r1["tasks"][0]["status"], "succeeded");
    assert_eq!(r1["tasks"][0]["stdout_tail"], "hi\n");
    assert_eq!(r1["tasks"][1]["status"], "succeeded");

    let e2 = find("/invocation/req-2/error");
    assert_eq!(e2.json()["errorType"], "InvalidBatch");
    assert!(
        e2.json()["errorMessage"]
            .as_str()
            .unwrap()
            .contains("tasks")
    );
    // lambda_runtime always sends the header as "unhandled"; the body carries the type.
    assert!(
        e2.headers
            .contains_key(propack_runtime::contract::headers::FUNCTION_ERROR_TYPE)
    );

    // An emulator's constant deadline must not make the tasks "not run".
    let r3 = find("/invocation/req-3/response").json();
    assert_eq!(r3["cold_start"], false);
    assert_eq!(r3["instance_id"], r1["instance_id"]);
    assert_eq!(r3["tasks"][0]["status"], "succeeded");

    find("/invocation/req-4/error");
}

/// lambda_runtime 1.5 panics on a `/next` response without the deadline header and stops
/// on a non-integer one; bootstrap's shim must keep the instance alive and the fallback
/// (the function timeout) must still bound the batch.
#[test]
fn missing_or_garbled_deadline_header_falls_back_to_function_timeout() {
    let quick = json!({"tasks": [{"id": "q", "builtin": {"name": "noop"}}]});
    let slow = json!({"tasks": [
        {"id": "long", "builtin": {"name": "sleep", "params": {"ms": 600_000}}},
    ]});
    let api = MockApi::start(vec![
        (
            "req-1",
            Some("abc".into()),
            serde_json::to_vec(&quick).unwrap(),
        ),
        ("req-2", None, serde_json::to_vec(&slow).unwrap()),
        ("req-3", None, serde_json::to_vec(&quick).unwrap()),
    ]);
    // Timeout 4 s minus a 3 s margin: the executor must give up on `long` after ~1 s,
    // while `noop` tasks have a whole second to start even on a loaded machine.
    let mut child = runtime_command(
        &api,
        &[
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "4"),
            ("PROPACK_SAFETY_MARGIN_MS", "3000"),
            ("PROPACK_PARALLELISM", "2"),
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn bootstrap");
    let posts = api.wait_posts(3);
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(still_running, "bootstrap exited: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(posts.len(), 3, "{posts:#?}\n{stderr}");
    let find = |suffix: &str| {
        posts
            .iter()
            .find(|p| p.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no POST to …{suffix}: {posts:#?}\n{stderr}"))
            .json()
    };

    let r1 = find("/invocation/req-1/response");
    assert_eq!(r1["tasks"][0]["status"], "succeeded", "{r1:#}");
    let r2 = find("/invocation/req-2/response");
    let long = &r2["tasks"][0];
    // It starts at once (two workers, one task) and is cut off at the cutoff the fallback
    // gives, 4 s − 3 s = 1 s after the batch arrived (plus ≤ 500 ms of grace), not at 4 s.
    assert_eq!(
        long["status"], "timed_out",
        "a 10-minute task must be cut off by the 4 s function timeout: {r2:#}"
    );
    let ran = r2["ended_at"].as_u64().unwrap() - r2["received_at"].as_u64().unwrap();
    assert!((1_000..3_000).contains(&ran), "batch ran {ran} ms: {r2:#}");
    let r3 = find("/invocation/req-3/response");
    assert_eq!(r3["tasks"][0]["status"], "succeeded", "{r3:#}");

    // One warning for the process, naming the fallback, not one per invocation.
    assert_eq!(stderr.matches("warned once").count(), 1, "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_FUNCTION_TIMEOUT"), "{stderr}");
}

#[test]
fn init_failure_goes_to_the_init_error_endpoint() {
    let api = MockApi::start(vec![]);
    let mut child = spawn_runtime(&api, &[("PROPACK_PARALLELISM", "lots")]);
    let posts = api.wait_posts(1);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > PATIENCE {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert!(
        posts[0].path.ends_with("/runtime/init/error"),
        "{}",
        posts[0].path
    );
    let body = posts[0].json();
    assert_eq!(body["errorType"], "Runtime.InitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("PROPACK_PARALLELISM")
    );
}

fn http_post(addr: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

#[test]
fn serve_answers_invoke() {
    let mut child = Command::new(BOOTSTRAP)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();

    let (code, v) = http_post(
        &addr,
        "/invoke",
        br#"{"tasks": [{"id": "x", "exec": {"program": "/bin/echo", "args": ["ok"]}}]}"#,
    );
    let (bad_code, bad) = http_post(&addr, "/invoke", br#"{"tasks": [{"id": "x"}]}"#);
    let (nf_code, _) = http_post(&addr, "/nope", b"{}");
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(code, 200, "{v}");
    assert_eq!(v["tasks"][0]["stdout_tail"], "ok\n");
    assert_eq!(v["cold_start"], true);
    assert_eq!(bad_code, 400);
    assert_eq!(bad["errorType"], "InvalidBatch");
    assert!(
        bad["errorMessage"]
            .as_str()
            .unwrap()
            .contains("tasks[0].exec")
    );
    assert_eq!(nf_code, 404);
}

fn run_cli(stdin: &[u8]) -> (Option<i32>, String) {
    let mut child = Command::new(BOOTSTRAP)
        .args(["run", "--batch", "-", "--compact"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn run_prints_result_and_exit_status() {
    let (code, out) = run_cli(br#"{"tasks": [{"id": "t", "builtin": {"name": "noop"}}]}"#);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tasks"][0]["status"], "succeeded");

    let (code, out) = run_cli(br#"{"tasks": [{"id": "t", "exec": {"program": "/bin/false"}}]}"#);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tasks"][0]["status"], "failed");

    let (code, out) = run_cli(b"{}");
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errorType"], "InvalidBatch");
}

#[test]
fn example_batch_runs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/batch.json");
    let out = Command::new(BOOTSTRAP)
        .args(["run", "--batch", path])
        .env("PROPACK_SPIN_ITERS_PER_MS", "1000")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["tasks"].as_array().unwrap().len(), 7);
}

/// Starts `bootstrap serve` on a free port with `env`; returns the child and its address.
fn spawn_serve(env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(BOOTSTRAP);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("PROPACK_MAX_BODY_BYTES")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    (child, addr)
}

/// Sends `head` and then `body` (write errors ignored: the server may answer and close
/// early) without finishing the request, and reads the answer.
fn send_partial(addr: &str, head: &str, body: &[u8]) -> (u16, Value, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {resp:?}"));
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap(), head.to_owned())
}

#[test]
fn serve_refuses_oversized_bodies_without_reading_them() {
    // Default cap (6 MiB + 64 KiB): a declared 300 MB body is refused on its header; the
    // client sends 1 KiB of it and gets the answer, so the server never waited for the rest.
    let (mut child, addr) = spawn_serve(&[]);
    let (code, v, head) = send_partial(
        &addr,
        "POST /invoke HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 300000000\r\n\r\n",
        &[b' '; 1024],
    );
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["errorType"], "RequestEntityTooLargeException");
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("300000000 bytes") && msg.contains("limit of 6356992 bytes"),
        "{msg}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    // A body just under the default cap is still read and parsed.
    let mut big = br#"{"tasks": [{"id": "x", "builtin": {"name": "noop"}}], "pad": ""#.to_vec();
    big.resize(6 * 1024 * 1024, b'p');
    big.extend_from_slice(b"\"}");
    let (code, v) = http_post(&addr, "/invoke", &big);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["tasks"][0]["status"], "succeeded");
    let _ = child.kill();
    let _ = child.wait();

    // A chunked body (no length announced) is cut off once it passes the cap: 3 chunks of
    // 512 bytes against a 1,000-byte cap, and no final chunk is ever sent.
    let (mut child, addr) = spawn_serve(&[("PROPACK_MAX_BODY_BYTES", "1000")]);
    let chunk = format!("200\r\n{}\r\n", " ".repeat(512));
    let (code, v, _) = send_partial(
        &addr,
        "POST /invoke HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        chunk.repeat(3).as_bytes(),
    );
    assert_eq!(code, 413, "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("over the limit of 1000 bytes"),
        "{v}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A malformed cap is a start-up error, not a silent default.
    let out = Command::new(BOOTSTRAP)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("PROPACK_MAX_BODY_BYTES", "6MB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PROPACK_MAX_BODY_BYTES"));
}
