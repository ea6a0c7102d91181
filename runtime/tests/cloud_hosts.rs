//! `bootstrap` driven the way Google Cloud Run and the Azure Functions host drive it: `$PORT`,
//! SIGTERM in the middle of a batch, and the custom-handler requests on `FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! These are local harnesses that send the documented requests; nothing here runs on
//! Google Cloud or Azure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{BOOTSTRAP, PATIENCE};
use serde_json::{Value, json};

/// A port nobody listens on now (the kernel's pick; released before the child binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `bootstrap ARGS` with `env` and no Lambda/Cloud Run/Azure variables of ours;
/// returns once it printed its address.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(BOOTSTRAP);
    cmd.args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("PORT")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .env_remove("PROPACK_SHUTDOWN_GRACE_MS")
        .env_remove("PROPACK_AZURE_FUNCTION")
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
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

/// POSTs `body` to `path` on 127.0.0.1:`port`; (status, body). `None` when the connection
/// failed or closed without an answer.
fn post(port: u16, path: &str, body: &[u8]) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, serde_json::from_str(body).unwrap()))
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits (up to PATIENCE) for `cond`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A batch of two quick tasks and one that signals `started` and then waits for `release`.
fn held_batch(dir: &Path) -> Vec<u8> {
    let script = format!(
        "touch {s}; i=0; while [ ! -e {r} ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; \
         [ -e {r} ] && echo released",
        s = dir.join("started").display(),
        r = dir.join("release").display()
    );
    serde_json::to_vec(&json!({"run_id": "cr", "tasks": [
        {"id": "quick-1", "exec": {"program": "/bin/echo", "args": ["one"]}},
        {"id": "held", "exec": {"program": "/bin/sh", "args": ["-c", script]}},
        {"id": "quick-2", "exec": {"program": "/bin/echo", "args": ["two"]}},
    ], "parallelism": 3}))
    .unwrap()
}

#[test]
fn cloud_run_port_is_served_on_post_root_and_invoke() {
    let port = free_port();
    let (mut child, addr) = spawn(&["serve"], &[("PORT", &port.to_string())]);
    let batch = br#"{"tasks": [{"id": "x", "exec": {"program": "/bin/echo", "args": ["ok"]}}]}"#;
    let root = post(port, "/", batch);
    let invoke = post(port, "/invoke", batch);
    let _ = child.kill();
    let _ = child.wait();
    // Cloud Run requires listening on all interfaces at $PORT.
    assert_eq!(addr, format!("0.0.0.0:{port}"));
    for (code, v) in [root.unwrap(), invoke.unwrap()] {
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["tasks"][0]["status"], "succeeded");
        assert_eq!(v["tasks"][0]["stdout_tail"], "ok\n");
    }
}

#[test]
fn sigterm_mid_batch_finishes_it_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, _) = spawn(
        &["serve"],
        &[
            ("PORT", &port.to_string()),
            ("PROPACK_SHUTDOWN_GRACE_MS", "60000"),
        ],
    );
    let batch = held_batch(dir.path());
    let client = std::thread::spawn(move || post(port, "/", &batch));
    wait_for("the held task to start", || {
        dir.path().join("started").exists()
    });
    sigterm(&child);
    // No new work is accepted once SIGTERM has arrived...
    wait_for("the listener to close", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // ...but the batch in flight completes and is answered whole.
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let (code, v) = client.join().unwrap().expect("an answer");
    let status = child.wait().unwrap();
    assert_eq!(code, 200, "{v}");
    let tasks = v["tasks"].as_array().unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["quick-1", "held", "quick-2"]);
    assert!(tasks.iter().all(|t| t["status"] == "succeeded"), "{v:#}");
    assert_eq!(tasks[1]["stdout_tail"], "released\n");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_past_the_grace_period_is_an_error_never_a_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, _) = spawn(
        &["serve"],
        &[
            ("PORT", &port.to_string()),
            ("PROPACK_SHUTDOWN_GRACE_MS", "200"),
        ],
    );
    let batch = held_batch(dir.path());
    let client = std::thread::spawn(move || post(port, "/invoke", &batch));
    wait_for("the held task to start", || {
        dir.path().join("started").exists()
    });
    sigterm(&child);
    let answer = client.join().unwrap();
    let status = child.wait().unwrap();
    // Let the abandoned task's loop end.
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let (code, v) = answer.expect("an answer, not a dropped connection");
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "Runtime.ShuttingDown");
    assert!(v.get("tasks").is_none(), "{v}");
    assert!(status.success(), "{status:?}");
}

/// The request the Functions host sends a queue-triggered function (Microsoft's documented
/// shape: the message text under the trigger binding's name, queue metadata beside it).
fn queue_request(message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "Data": {"batch": message},
        "Metadata": {
            "DequeueCount": 1,
            "ExpirationTime": "2026-12-09T08:00:00+00:00",
            "Id": "9f0e3a5c-0000-4c08-badd-f08e5a34b865",
            "InsertionTime": "2026-12-02T08:00:00+00:00",
            "NextVisibleTime": "2026-12-02T08:10:00+00:00",
            "PopReceipt": "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
            "sys": {"MethodName": "propack-queue", "UtcNow": "2026-12-02T08:00:01Z",
                    "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9"}
        }
    }))
    .unwrap()
}

#[test]
fn azure_host_requests_are_answered_in_the_custom_handler_protocol() {
    let port = free_port();
    // Started the way the host starts it: no arguments, the port in the environment.
    let (mut child, addr) = spawn(&[], &[("FUNCTIONS_CUSTOMHANDLER_PORT", &port.to_string())]);
    let batch = r#"{"run_id": "az", "tasks": [{"id": "a", "exec": {"program": "/bin/echo", "args": ["hi"]}}, {"id": "b", "builtin": {"name": "noop"}}]}"#;

    // HTTP trigger with enableForwardingHttpRequest: the caller's request, at its own route.
    let forwarded = post(port, "/api/propack", batch.as_bytes());
    let forwarded_bad = post(port, "/api/propack", br#"{"tasks": [{"id": "x"}]}"#);
    // Queue trigger: {"Data", "Metadata"} at /<function name>.
    let queued = post(port, "/propack-queue", &queue_request(batch));
    let queued_bad = post(port, "/propack-queue", &queue_request("{\"tasks\": 3}"));
    // HTTP trigger without forwarding: the request data under `req`.
    let http_data = serde_json::to_vec(&json!({
        "Data": {"req": {"Url": "http://localhost:7071/api/propack", "Method": "POST", "Query": "{}",
                         "Headers": {"Content-Type": ["application/json"]}, "Params": {}, "Body": batch}},
        "Metadata": {}
    }))
    .unwrap();
    let via_data = post(port, "/propack", &http_data);
    let unknown = post(port, "/other", &queue_request(batch));
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let (code, v) = forwarded.unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["run_id"], "az");
    assert_eq!(v["tasks"][0]["stdout_tail"], "hi\n");
    let (code, v) = forwarded_bad.unwrap();
    assert_eq!((code, v["errorType"].as_str()), (400, Some("InvalidBatch")));

    let (code, v) = queued.unwrap();
    assert_eq!(code, 200, "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["Logs", "Outputs", "ReturnValue"]);
    assert_eq!(v["ReturnValue"], Value::Null);
    let result = &v["Outputs"]["result"];
    assert_eq!(v["Outputs"].as_object().unwrap().len(), 1);
    assert_eq!(result["run_id"], "az");
    assert_eq!(result["tasks"][1]["status"], "succeeded");
    assert_eq!(
        v["Logs"],
        json!(["propack: 2 tasks: 2 succeeded, 0 failed, 0 timed out, 0 not run"])
    );
    // A refused batch is a result (retrying the message could not help), logged as such.
    let (code, v) = queued_bad.unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["Outputs"]["result"]["errorType"], "InvalidBatch");
    assert!(
        v["Logs"][0]
            .as_str()
            .unwrap()
            .starts_with("propack: batch refused: InvalidBatch: "),
        "{v}"
    );

    let (code, v) = via_data.unwrap();
    assert_eq!(code, 200, "{v}");
    let res = &v["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["headers"]["Content-Type"], "application/json");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["tasks"][0]["stdout_tail"], "hi\n");

    let (code, v) = unknown.unwrap();
    assert_eq!((code, v["errorType"].as_str()), (404, Some("NotFound")));
}

#[test]
fn azure_function_name_is_configurable_and_the_subcommand_takes_a_port() {
    let port = free_port();
    let (mut child, _) = spawn(
        &["azure", "--port", &port.to_string()],
        &[("PROPACK_AZURE_FUNCTION", "packed")],
    );
    let batch = br#"{"tasks": [{"id": "n", "builtin": {"name": "noop"}}]}"#;
    let renamed = post(port, "/api/packed", batch);
    let default_name = post(port, "/api/propack", batch);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(renamed.unwrap().0, 200);
    assert_eq!(default_name.unwrap().0, 404);
}

#[test]
fn without_any_host_variable_it_says_what_it_needs() {
    let out = Command::new(BOOTSTRAP)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("AWS_LAMBDA_RUNTIME_API") && err.contains("FUNCTIONS_CUSTOMHANDLER_PORT"),
        "{err}"
    );
}
