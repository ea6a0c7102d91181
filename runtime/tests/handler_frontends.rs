//! Packed handlers through the `bootstrap` binary: `bootstrap run`, the Lambda Runtime API
//! loop (against the mock API), and the exec wrapper run the way Lambda runs it.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{BOOTSTRAP, MockApi, have, inits, last_bytes, noisy_expected, task_root, which};
use serde_json::{Value, json};

/// The ARN the mock Runtime API sends with every event.
const MOCK_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:propack";

/// `bootstrap` (or `program`) with a function's environment and nothing inherited that
/// would change how handlers are found.
fn function_command(program: &str, root: &Path, scratch: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LAMBDA_TASK_ROOT", root)
        .env("PROPACK_SCRATCH_ROOT", scratch)
        .env("AWS_LAMBDA_FUNCTION_NAME", "packed-fn")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "7")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/packed-fn")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/01/[7]0123abcd")
        .env("_HANDLER", "app.dispatch")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
        .env("PROPACK_PARALLELISM", "2");
    for var in [
        "PROPACK_PYTHON",
        "PROPACK_NODE",
        "PROPACK_HANDLER_RUNTIME",
        "PROPACK_SAFETY_MARGIN_MS",
        "AWS_LAMBDA_FUNCTION_TIMEOUT",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        cmd.env_remove(var);
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

fn task<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {r:#}"))
}

const NODE: &str = r#"{"runtime": "node", "name": "app.dispatch"}"#;
/// Lines the `noisy` fixtures print: 1.2 MB.
const LINES: usize = 20_000;

/// Every fixture behaviour in both languages, in one batch. Python tasks name no handler:
/// they use the function's `_HANDLER` in the language `AWS_EXECUTION_ENV` names.
fn matrix() -> Value {
    let node: Value = serde_json::from_str(NODE).unwrap();
    json!({"tasks": [
        {"id": "py-echo", "event": {"do": "echo", "n": 1}},
        {"id": "py-raise", "event": {"do": "raises", "x": 9}},
        {"id": "py-non-json", "event": {"do": "non_json"}},
        {"id": "py-noisy", "event": {"do": "noisy", "lines": LINES}},
        {"id": "py-exit", "event": {"do": "exits", "code": 6}},
        {"id": "py-sleep", "event": {"do": "sleeps", "s": 30}, "timeout_ms": 300},
        {"id": "py-ctx", "event": {"do": "ctx"}, "timeout_ms": 4000},
        {"id": "node-async", "event": {"do": "asyncEcho", "n": 2}, "handler": node},
        {"id": "node-promise", "event": {"do": "promise", "n": 3}, "handler": node},
        {"id": "node-callback", "event": {"do": "callback", "n": 4}, "handler": node},
        {"id": "node-reject", "event": {"do": "rejects", "n": 5}, "handler": node},
        {"id": "node-non-json", "event": {"do": "nonJson"}, "handler": node},
        {"id": "node-noisy", "event": {"do": "noisy", "lines": LINES}, "handler": node},
        {"id": "node-exit", "event": {"do": "exits", "code": 4}, "handler": node},
        {"id": "node-sleep", "event": {"do": "sleeps", "ms": 30000}, "handler": node, "timeout_ms": 300},
        {"id": "node-ctx", "event": {"do": "ctx"}, "handler": node, "timeout_ms": 4000},
    ]})
}

/// Pins every task of [`matrix`]; `arn` is what the front-end knows of the function ARN.
fn check_matrix(r: &Value, arn: Option<&str>) {
    let fields = |id: &str, keys: &[&str]| -> Vec<Value> {
        let t = task(r, id);
        keys.iter().map(|k| t[*k].clone()).collect()
    };
    let ok = |id: &str, output: Value| {
        assert_eq!(
            fields(id, &["status", "output", "error", "error_type"]),
            [json!("succeeded"), output, Value::Null, Value::Null],
            "{id}: {:#}",
            task(r, id)
        );
    };
    let failed = |id: &str, error_type: &str, error: &str| {
        assert_eq!(
            fields(id, &["status", "error_type", "error"]),
            [json!("failed"), json!(error_type), json!(error)],
            "{id}: {:#}",
            task(r, id)
        );
    };
    let timed_out = |id: &str| {
        assert_eq!(
            fields(id, &["status", "error"]),
            [
                json!("timed_out"),
                json!("exceeded its timeout of 300 ms; handler worker killed and replaced")
            ],
            "{id}"
        );
    };
    let (out, err, total) = noisy_expected("-", LINES);
    let noisy = |id: &str| {
        ok(id, json!({"total": total}));
        let t = task(r, id);
        assert_eq!(t["stdout_tail"], last_bytes(&out, 4096), "{id}");
        assert_eq!(t["stderr_tail"], err, "{id}");
    };
    let exited = |id: &str, code: i32, error: &str| {
        failed(id, "Runtime.ExitError", error);
        let t = task(r, id);
        assert_eq!(t["exit_code"], code, "{id}");
        assert!(
            t["stdout_tail"]
                .as_str()
                .unwrap()
                .ends_with("about to exit\n"),
            "{t:#}"
        );
    };
    let arn = arn.map_or(Value::Null, |a| json!(a));

    ok(
        "py-echo",
        json!({"echo": {"do": "echo", "n": 1}, "request_id": "py-echo"}),
    );
    failed("py-raise", "ValueError", "bad input: 9");
    assert_eq!(
        task(r, "py-raise")["stack_trace"].as_array().unwrap().len(),
        2
    );
    failed(
        "py-non-json",
        "Runtime.MarshalError",
        "Unable to marshal response: Object of type object is not JSON serializable",
    );
    noisy("py-noisy");
    exited(
        "py-exit",
        6,
        "Runtime exited with error: exit status 6; the handler worker was replaced",
    );
    timed_out("py-sleep");
    let o = &task(r, "py-ctx")["output"];
    assert_eq!(
        [
            &o["aws_request_id"],
            &o["task_id"],
            &o["function_name"],
            &o["function_version"]
        ],
        [
            &json!("py-ctx"),
            &json!("py-ctx"),
            &json!("packed-fn"),
            &json!("7")
        ]
    );
    assert_eq!(
        [
            &o["memory_limit_in_mb"],
            &o["invoked_function_arn"],
            &o["log_group_name"],
            &o["log_stream_name"]
        ],
        [
            &json!("1769"),
            &arn,
            &json!("/aws/lambda/packed-fn"),
            &json!("2025/01/01/[7]0123abcd")
        ]
    );
    assert!(
        o["r1"].as_u64().unwrap() <= 4000 && o["r2"].as_u64() < o["r1"].as_u64(),
        "{o:#}"
    );

    ok(
        "node-async",
        json!({"echo": {"do": "asyncEcho", "n": 2}, "requestId": "node-async"}),
    );
    ok("node-promise", json!({"promised": 3}));
    ok("node-callback", json!({"called": 4}));
    failed("node-reject", "RangeError", "too big: 5");
    failed(
        "node-non-json",
        "Runtime.MarshalError",
        "Unable to stringify response body: Do not know how to serialize a BigInt",
    );
    noisy("node-noisy");
    exited(
        "node-exit",
        4,
        "Runtime exited with error: exit status 4; the handler worker was replaced",
    );
    timed_out("node-sleep");
    let o = &task(r, "node-ctx")["output"];
    assert_eq!(
        [
            &o["awsRequestId"],
            &o["taskId"],
            &o["functionName"],
            &o["functionVersion"]
        ],
        [
            &json!("node-ctx"),
            &json!("node-ctx"),
            &json!("packed-fn"),
            &json!("7")
        ]
    );
    assert_eq!(
        [
            &o["memoryLimitInMB"],
            &o["invokedFunctionArn"],
            &o["logGroupName"],
            &o["logStreamName"]
        ],
        [
            &json!("1769"),
            &arn,
            &json!("/aws/lambda/packed-fn"),
            &json!("2025/01/01/[7]0123abcd")
        ]
    );
    assert_eq!(o["callbackWaitsForEmptyEventLoop"], true);
    assert!(
        o["r1"].as_u64().unwrap() <= 4000 && o["r2"].as_u64() < o["r1"].as_u64(),
        "{o:#}"
    );
}

#[test]
fn handlers_through_bootstrap_run() {
    if !have("python3", "handlers_through_bootstrap_run")
        || !have("node", "handlers_through_bootstrap_run")
    {
        return;
    }
    let root = task_root(&["python", "node"]);
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("batch.json");
    std::fs::write(&path, matrix().to_string()).unwrap();
    let out = function_command(BOOTSTRAP, root.path(), scratch.path())
        .args(["run", "--compact", "--batch"])
        .arg(&path)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("8 of 16 tasks did not succeed"), "{stderr}");
    // `run` knows no function ARN.
    check_matrix(&r, None);
}

#[test]
fn handlers_through_runtime_api_loop() {
    if !have("python3", "handlers_through_runtime_api_loop")
        || !have("node", "handlers_through_runtime_api_loop")
    {
        return;
    }
    let root = task_root(&["python", "node"]);
    let scratch = tempfile::tempdir().unwrap();
    let api = MockApi::start(vec![(
        "req-m",
        future_deadline(),
        serde_json::to_vec(&matrix()).unwrap(),
    )]);
    let child = function_command(BOOTSTRAP, root.path(), scratch.path())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let posts = api.wait_posts(1);
    let stderr = kill(child);
    assert_eq!(posts.len(), 1, "{posts:#?}\n{stderr}");
    assert!(
        posts[0].path.ends_with("/invocation/req-m/response"),
        "{}",
        posts[0].path
    );
    let r = posts[0].json();
    assert_eq!(r["request_id"], "req-m");
    // The ARN the Runtime API sent with the invocation reaches the handlers' context.
    check_matrix(&r, Some(MOCK_ARN));
}

fn kill(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn handlers_through_runtime_api_loop_stay_warm_across_invocations() {
    if !have(
        "python3",
        "handlers_through_runtime_api_loop_stay_warm_across_invocations",
    ) || !have(
        "node",
        "handlers_through_runtime_api_loop_stay_warm_across_invocations",
    ) {
        return;
    }
    let root = task_root(&["python", "node"]);
    let scratch = tempfile::tempdir().unwrap();
    let meet: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let node: Value = serde_json::from_str(NODE).unwrap();
    let events: Vec<(String, Vec<u8>)> = (0..2)
        .map(|inv| {
            // Two Python tasks wait for each other (two workers at once), two more follow.
            let mut tasks: Vec<Value> = (0..4)
                .map(|i| json!({"id": format!("i{inv}-py{i}"),
                                "event": {"do": "rendezvous", "dir": meet[inv].path(), "n": 2}}))
                .collect();
            tasks.push(json!({"id": format!("i{inv}-node"), "event": {"do": "ctx"}, "handler": node, "timeout_ms": 5000}));
            (format!("req-{inv}"), serde_json::to_vec(&json!({"Items": tasks})).unwrap())
        })
        .collect();
    let api = MockApi::start(
        events
            .iter()
            .map(|(id, body)| (id.as_str(), future_deadline(), body.clone()))
            .collect(),
    );
    let child = function_command(BOOTSTRAP, root.path(), scratch.path())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let posts = api.wait_posts(2);
    let stderr = kill(child);
    assert_eq!(posts.len(), 2, "{posts:#?}\n{stderr}");

    let mut py_pids = Vec::new();
    for inv in 0..2 {
        let post = posts
            .iter()
            .find(|p| p.path.ends_with(&format!("/invocation/req-{inv}/response")))
            .unwrap_or_else(|| panic!("no response for req-{inv}: {posts:#?}\n{stderr}"));
        let r = post.json();
        assert_eq!(r["request_id"], format!("req-{inv}"));
        assert_eq!(r["cold_start"], inv == 0);
        let pids: BTreeSet<u64> = (0..4)
            .map(|i| {
                let t = task(&r, &format!("i{inv}-py{i}"));
                assert_eq!(t["status"], "succeeded", "{t:#}");
                t["output"].as_u64().unwrap()
            })
            .collect();
        py_pids.push(pids);
        let o = &task(&r, &format!("i{inv}-node"))["output"];
        assert_eq!(o["awsRequestId"], format!("i{inv}-node"));
        // The ARN the Runtime API sent with the invocation reaches the handler's context.
        assert_eq!(o["invokedFunctionArn"], MOCK_ARN);
        assert_eq!(o["functionName"], "packed-fn");
    }
    // Two Python workers and one Node worker, each initialised once for both invocations.
    assert_eq!(py_pids[0].len(), 2);
    assert_eq!(py_pids[0], py_pids[1]);
    assert_eq!(inits(root.path()).len(), 3, "{stderr}");
}

/// A stand-in for a managed runtime's interpreter at `dir/name`: logs that it ran, then
/// runs the real one, so a test can tell which interpreter the workers used.
fn fake_interpreter(dir: &Path, name: &str, real: &Path) -> PathBuf {
    let path = dir.join(name);
    let log = dir.join("used.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$0\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn real_python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

const WRAPPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wrapper/propack-exec-wrapper");

#[test]
fn exec_wrapper_starts_bootstrap_with_the_managed_interpreter() {
    if !have(
        "python3",
        "exec_wrapper_starts_bootstrap_with_the_managed_interpreter",
    ) || !have(
        "node",
        "exec_wrapper_starts_bootstrap_with_the_managed_interpreter",
    ) {
        return;
    }
    let mode = std::fs::metadata(WRAPPER).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o755,
        "the wrapper must be executable as Lambda runs it"
    );
    let root = task_root(&["python", "node"]);
    let scratch = tempfile::tempdir().unwrap();
    let lang = tempfile::tempdir().unwrap();
    let python = fake_interpreter(lang.path(), "python3.13", &real_python());
    let node = fake_interpreter(lang.path(), "node", &which("node").unwrap());
    // What Lambda runs: the wrapper, with the managed runtime's start command as arguments.
    let cases: [(&str, Vec<String>, Value); 2] = [
        (
            "AWS_Lambda_python3.13",
            vec![
                python.display().to_string(),
                "/var/runtime/bootstrap.py".into(),
            ],
            json!({"echo": {"do": "echo"}, "request_id": "w"}),
        ),
        (
            "AWS_Lambda_nodejs22.x",
            vec![
                node.display().to_string(),
                "--expose-gc".into(),
                "--max-http-header-size".into(),
                "81920".into(),
                "/var/runtime/index.mjs".into(),
            ],
            json!({"echo": {"do": "asyncEcho"}, "requestId": "w"}),
        ),
    ];
    for (exec_env, args, want) in cases {
        let lang_do = if exec_env.contains("python") {
            "echo"
        } else {
            "asyncEcho"
        };
        let batch = json!({"tasks": [{"id": "w", "event": {"do": lang_do}}]});
        let api = MockApi::start(vec![(
            "req-w",
            future_deadline(),
            serde_json::to_vec(&batch).unwrap(),
        )]);
        let child = function_command(WRAPPER, root.path(), scratch.path())
            .args(&args)
            .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_EXECUTION_ENV", exec_env)
            .env("PROPACK_BOOTSTRAP", BOOTSTRAP)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let posts = api.wait_posts(1);
        let stderr = kill(child);
        assert_eq!(posts.len(), 1, "{exec_env}: {posts:#?}\n{stderr}");
        assert!(
            posts[0].path.ends_with("/invocation/req-w/response"),
            "{}",
            posts[0].path
        );
        let r = posts[0].json();
        let t = task(&r, "w");
        assert_eq!(t["status"], "succeeded", "{exec_env}: {t:#}\n{stderr}");
        assert_eq!(t["output"], want, "{exec_env}");
        assert!(
            stderr.contains("propack-exec-wrapper: starting"),
            "{stderr}"
        );
        // The worker ran on the interpreter Lambda named, not whatever PATH has.
        let used = std::fs::read_to_string(lang.path().join("used.log")).unwrap_or_default();
        let interpreter = &args[0];
        assert!(
            used.lines().any(|l| l == interpreter),
            "{exec_env}: {interpreter} never ran; used: {used:?}\n{stderr}"
        );
    }
}

#[test]
fn exec_wrapper_without_bootstrap_says_so() {
    let out = Command::new(WRAPPER)
        .args(["/var/lang/bin/python3.13", "/var/runtime/bootstrap.py"])
        .env("PROPACK_BOOTSTRAP", "/nonexistent/bootstrap")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "propack-exec-wrapper: /nonexistent/bootstrap is not an executable file (is the ProPack layer attached?)\n"
    );
}

#[test]
fn malformed_handler_runtime_setting_is_an_init_error() {
    let root = tempfile::tempdir().unwrap();
    let out = function_command(BOOTSTRAP, root.path(), root.path())
        .env("PROPACK_HANDLER_RUNTIME", "ruby3.3")
        .args(["run", "--batch", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "environment variable PROPACK_HANDLER_RUNTIME=\"ruby3.3\": expected python3 or node"
        ),
        "{stderr}"
    );
}
