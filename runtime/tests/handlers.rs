//! Packed Python and Node handlers on warm workers: results, errors, output tails, crashes,
//! timeouts, `context`, init failures and worker reuse across invocations.
//!
//! Fixtures: `tests/fixtures/handlers/`, copied into a fresh task root per test. Each test
//! skips with a message when its interpreter (`python3`, `node`) is not in `PATH`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::{have, inits, last_bytes, noisy_expected, task_root};
use propack_runtime::contract::{Batch, BatchResult, ParseOptions, TaskResult, TaskStatus};
use propack_runtime::deadline::DeadlineResolver;
use propack_runtime::executor::{FunctionInfo, WorkerPools};
use propack_runtime::handler::Instance;
use propack_runtime::{ExecutorConfig, Storage, run_batch_in};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:packed-fn";

fn cfg(root: &Path, scratch: &Path, parallelism: usize) -> ExecutorConfig {
    ExecutorConfig {
        parallelism: Some(parallelism),
        scratch_root: scratch.to_path_buf(),
        task_root: root.to_path_buf(),
        function: FunctionInfo {
            function_name: Some("packed-fn".into()),
            function_version: Some("7".into()),
            memory_mb: Some(1769),
            log_group_name: Some("/aws/lambda/packed-fn".into()),
            log_stream_name: Some("2025/01/01/[7]0123abcd".into()),
            ..FunctionInfo::default()
        },
        invoked_function_arn: Some(ARN.into()),
        ..ExecutorConfig::default()
    }
}

fn run(batch: Value, cfg: &ExecutorConfig, pools: &Arc<WorkerPools>) -> BatchResult {
    let b = Batch::from_value(&batch, &ParseOptions::default()).expect("valid batch");
    run_batch_in(&b, cfg, &Storage::from_env().unwrap(), pools)
}

fn by_id<'a>(r: &'a BatchResult, id: &str) -> &'a TaskResult {
    r.tasks
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

/// Checks a succeeded task's output and exact tails.
#[track_caller]
fn assert_ok(t: &TaskResult, output: Value, stdout: &str, stderr: &str) {
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:#?}");
    assert_eq!(t.output, output, "{}", t.id);
    assert_eq!(t.stdout_tail, stdout, "{} stdout", t.id);
    assert_eq!(t.stderr_tail, stderr, "{} stderr", t.id);
    assert_eq!((&t.error, &t.error_type), (&None, &None), "{}", t.id);
}

#[test]
fn python_handler_results_errors_crashes_and_context() {
    if !have(
        "python3",
        "python_handler_results_errors_crashes_and_context",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let pools = Arc::new(WorkerPools::new());
    let lines = 20_000; // 1.22 MB of stdout
    // One worker, so the order of workers, crashes and replacements is fixed.
    let r = run(
        json!({"parallelism": 1, "handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": [
            {"id": "echo", "event": {"do": "echo", "v": [1, "two"]}},
            {"id": "raises", "event": {"do": "raises", "x": "q"}},
            {"id": "non-json", "event": {"do": "non_json"}},
            {"id": "noisy", "event": {"do": "noisy", "lines": lines}},
            {"id": "after-noisy", "event": {"do": "echo"}},
            {"id": "exits", "event": {"do": "exits", "code": 3}},
            {"id": "after-exit", "event": {"do": "echo"}},
            {"id": "sleeps", "event": {"do": "sleeps", "s": 30}, "timeout_ms": 300},
            {"id": "ctx", "event": {"do": "ctx"}, "timeout_ms": 5000},
            {"id": "last", "event": {"do": "echo"}},
        ]}),
        &cfg(root.path(), scratch.path(), 1),
        &pools,
    );

    // The import's output goes to the first task each worker runs.
    assert_ok(
        by_id(&r, "echo"),
        json!({"echo": {"do": "echo", "v": [1, "two"]}, "request_id": "echo"}),
        "app imported\n",
        "",
    );

    let t = by_id(&r, "raises");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("bad input: q"));
    assert_eq!(t.error_type.as_deref(), Some("ValueError"));
    let trace = t.stack_trace.as_ref().unwrap();
    assert_eq!(trace.len(), 2, "{trace:?}");
    assert!(
        trace[0].contains("app.py\", line") && trace[0].contains("in dispatch"),
        "{trace:?}"
    );
    assert!(
        trace[1].contains("in raises")
            && trace[1].contains("raise ValueError(\"bad input: %s\" % event[\"x\"])"),
        "{trace:?}"
    );
    assert_eq!(t.output, Value::Null);

    let t = by_id(&r, "non-json");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error_type.as_deref(), Some("Runtime.MarshalError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Unable to marshal response: Object of type object is not JSON serializable")
    );

    // 1.2 MB of stdout, a forged protocol line among it: the result is the real one and the
    // tails are exactly the last 4 KiB / the whole 2.2 KB of stderr, with no marker in them.
    let (out, err, total) = noisy_expected("noisy", lines);
    assert!(out.len() > 1_000_000);
    assert_ok(
        by_id(&r, "noisy"),
        json!({"total": total}),
        last_bytes(&out, 4096),
        &err,
    );
    assert_ok(
        by_id(&r, "after-noisy"),
        json!({"echo": {"do": "echo"}, "request_id": "after-noisy"}),
        "",
        "",
    );

    let t = by_id(&r, "exits");
    assert_eq!(t.status, TaskStatus::Failed, "{t:#?}");
    assert_eq!((t.exit_code, t.signal), (Some(3), None));
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ExitError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Runtime exited with error: exit status 3; the handler worker was replaced")
    );
    assert_eq!(t.stdout_tail, "about to exit\n");
    // The next task gets a fresh worker, which imports the handler again.
    assert_ok(
        by_id(&r, "after-exit"),
        json!({"echo": {"do": "echo"}, "request_id": "after-exit"}),
        "app imported\n",
        "",
    );

    let t = by_id(&r, "sleeps");
    assert_eq!(t.status, TaskStatus::TimedOut, "{t:#?}");
    assert_eq!(
        t.error.as_deref(),
        Some("exceeded its timeout of 300 ms; handler worker killed and replaced")
    );
    assert_eq!(t.signal, Some(9));

    let t = by_id(&r, "ctx");
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:#?}");
    assert_eq!(t.stdout_tail, "app imported\n");
    let o = &t.output;
    let cwd = root.path().canonicalize().unwrap();
    assert_eq!(
        (o["aws_request_id"].clone(), o["task_id"].clone()),
        (json!("ctx"), json!("ctx"))
    );
    assert_eq!(o["function_name"], "packed-fn");
    assert_eq!(o["function_version"], "7");
    assert_eq!(o["memory_limit_in_mb"], "1769");
    assert_eq!(o["invoked_function_arn"], ARN);
    assert_eq!(o["log_group_name"], "/aws/lambda/packed-fn");
    assert_eq!(o["log_stream_name"], "2025/01/01/[7]0123abcd");
    assert_eq!(o["scratch_is_dir"], true);
    assert_eq!(o["cwd"], cwd.to_str().unwrap());
    let (r1, r2) = (o["r1"].as_u64().unwrap(), o["r2"].as_u64().unwrap());
    assert!(
        r1 <= 5000 && r2 < r1,
        "remaining time must count down from the task's 5000 ms: {r1}, {r2}"
    );

    assert_ok(
        by_id(&r, "last"),
        json!({"echo": {"do": "echo"}, "request_id": "last"}),
        "",
        "",
    );

    // Three workers: the first, the one after the crash, the one after the timeout.
    assert_eq!(inits(root.path()).len(), 3);
    let stats = pools.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (
            stats[0].workers_started,
            stats[0].inits,
            stats[0].live,
            stats[0].idle
        ),
        (3, 3, 1, 1)
    );
}

#[test]
fn node_handler_async_promise_callback_errors_crashes_and_context() {
    if !have(
        "node",
        "node_handler_async_promise_callback_errors_crashes_and_context",
    ) {
        return;
    }
    let root = task_root(&["node"]);
    let scratch = tempfile::tempdir().unwrap();
    let pools = Arc::new(WorkerPools::new());
    let lines = 20_000;
    let r = run(
        json!({"parallelism": 1, "handler": {"runtime": "node", "name": "app.dispatch"}, "tasks": [
            {"id": "async", "event": {"do": "asyncEcho", "v": [1, "two"]}},
            {"id": "promise", "event": {"do": "promise", "n": 2}},
            {"id": "callback", "event": {"do": "callback", "n": 3}},
            {"id": "waits", "event": {"do": "callbackWaits"}},
            {"id": "cb-error", "event": {"do": "callbackError"}},
            {"id": "rejects", "event": {"do": "rejects", "n": 5}},
            {"id": "non-json", "event": {"do": "nonJson"}},
            {"id": "noisy", "event": {"do": "noisy", "lines": lines}},
            {"id": "after-noisy", "event": {"do": "asyncEcho"}},
            {"id": "exits", "event": {"do": "exits", "code": 4}},
            {"id": "after-exit", "event": {"do": "asyncEcho"}},
            {"id": "sleeps", "event": {"do": "sleeps", "ms": 30000}, "timeout_ms": 300},
            {"id": "ctx", "event": {"do": "ctx"}, "timeout_ms": 5000},
            {"id": "last", "event": {"do": "asyncEcho"}},
        ]}),
        &cfg(root.path(), scratch.path(), 1),
        &pools,
    );

    assert_ok(
        by_id(&r, "async"),
        json!({"echo": {"do": "asyncEcho", "v": [1, "two"]}, "requestId": "async"}),
        "app imported\n",
        "",
    );
    assert_ok(by_id(&r, "promise"), json!({"promised": 2}), "", "");
    assert_ok(by_id(&r, "callback"), json!({"called": 3}), "", "");
    // callbackWaitsForEmptyEventLoop: the answer waited for the timer set after the callback.
    assert_ok(
        by_id(&r, "waits"),
        json!({"waited": true}),
        "timer after callback ran\n",
        "",
    );

    let t = by_id(&r, "cb-error");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(
        (t.error_type.as_deref(), t.error.as_deref()),
        (Some("Error"), Some("callback failed"))
    );

    let t = by_id(&r, "rejects");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(
        (t.error_type.as_deref(), t.error.as_deref()),
        (Some("RangeError"), Some("too big: 5"))
    );
    let trace = t.stack_trace.as_ref().unwrap();
    assert_eq!(trace[0], "RangeError: too big: 5");
    assert!(trace[1].contains("app.mjs"), "{trace:?}");
    assert!(
        !trace.iter().any(|l| l.contains("propack_worker")),
        "worker frames leak: {trace:?}"
    );

    let t = by_id(&r, "non-json");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error_type.as_deref(), Some("Runtime.MarshalError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Unable to stringify response body: Do not know how to serialize a BigInt")
    );

    let (out, err, total) = noisy_expected("noisy", lines);
    assert_ok(
        by_id(&r, "noisy"),
        json!({"total": total}),
        last_bytes(&out, 4096),
        &err,
    );
    assert_ok(
        by_id(&r, "after-noisy"),
        json!({"echo": {"do": "asyncEcho"}, "requestId": "after-noisy"}),
        "",
        "",
    );

    let t = by_id(&r, "exits");
    assert_eq!(t.status, TaskStatus::Failed, "{t:#?}");
    assert_eq!(
        (t.exit_code, t.error_type.as_deref()),
        (Some(4), Some("Runtime.ExitError"))
    );
    assert_eq!(t.stdout_tail, "about to exit\n");
    assert_ok(
        by_id(&r, "after-exit"),
        json!({"echo": {"do": "asyncEcho"}, "requestId": "after-exit"}),
        "app imported\n",
        "",
    );

    let t = by_id(&r, "sleeps");
    assert_eq!(t.status, TaskStatus::TimedOut, "{t:#?}");
    assert_eq!(
        t.error.as_deref(),
        Some("exceeded its timeout of 300 ms; handler worker killed and replaced")
    );

    let t = by_id(&r, "ctx");
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:#?}");
    assert_eq!(t.stdout_tail, "app imported\n");
    let o = &t.output;
    assert_eq!(o["awsRequestId"], "ctx");
    assert_eq!(o["taskId"], "ctx");
    assert_eq!(o["functionName"], "packed-fn");
    assert_eq!(o["functionVersion"], "7");
    assert_eq!(o["memoryLimitInMB"], "1769");
    assert_eq!(o["invokedFunctionArn"], ARN);
    assert_eq!(o["logGroupName"], "/aws/lambda/packed-fn");
    assert_eq!(o["logStreamName"], "2025/01/01/[7]0123abcd");
    assert_eq!(o["callbackWaitsForEmptyEventLoop"], true);
    assert_eq!(
        o["cwd"],
        root.path().canonicalize().unwrap().to_str().unwrap()
    );
    let (r1, r2) = (o["r1"].as_u64().unwrap(), o["r2"].as_u64().unwrap());
    assert!(
        r1 <= 5000 && r2 < r1,
        "remaining time must count down from the task's 5000 ms: {r1}, {r2}"
    );

    assert_ok(
        by_id(&r, "last"),
        json!({"echo": {"do": "asyncEcho"}, "requestId": "last"}),
        "",
        "",
    );
    assert_eq!(inits(root.path()).len(), 3);
    let s = &pools.stats()[0];
    assert_eq!((s.workers_started, s.inits), (3, 3));
}

#[test]
fn node_loads_commonjs_and_type_module_packages() {
    if !have("node", "node_loads_commonjs_and_type_module_packages") {
        return;
    }
    let root = task_root(&["node"]);
    let scratch = tempfile::tempdir().unwrap();
    let r = run(
        json!({"tasks": [
            {"id": "cjs", "event": {"n": 1}, "handler": {"runtime": "node", "name": "legacy.handler"}},
            {"id": "esm", "event": {"n": 2}, "handler": {"runtime": "node", "name": "esm/mod.handler"}},
        ]}),
        &cfg(root.path(), scratch.path(), 2),
        &Arc::new(WorkerPools::new()),
    );
    assert_ok(
        by_id(&r, "cjs"),
        json!({"cjs": true, "n": 1, "typeofRequire": "function"}),
        "",
        "",
    );
    assert_ok(
        by_id(&r, "esm"),
        json!({"esm": true, "n": 2, "typeofRequire": "undefined"}),
        "",
        "",
    );
}

#[test]
fn crashes_and_hangs_fail_only_their_own_tasks_in_parallel() {
    if !have(
        "python3",
        "crashes_and_hangs_fail_only_their_own_tasks_in_parallel",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        tasks.push(match i % 4 {
            0 => json!({"id": format!("x{i}"), "event": {"do": "exits", "code": 7}}),
            1 => json!({"id": format!("s{i}"), "event": {"do": "sleeps", "s": 30}, "timeout_ms": 200}),
            _ => json!({"id": format!("e{i}"), "event": {"do": "echo", "i": i}}),
        });
    }
    let r = run(
        json!({"handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": tasks}),
        &cfg(root.path(), scratch.path(), 3),
        &Arc::new(WorkerPools::new()),
    );
    for t in &r.tasks {
        let i: i64 = t.id[1..].parse().unwrap();
        match &t.id[..1] {
            "x" => {
                assert_eq!(
                    (t.status, t.exit_code),
                    (TaskStatus::Failed, Some(7)),
                    "{t:#?}"
                );
                assert_eq!(t.error_type.as_deref(), Some("Runtime.ExitError"));
            }
            "s" => assert_eq!(t.status, TaskStatus::TimedOut, "{t:#?}"),
            _ => {
                assert_eq!(t.status, TaskStatus::Succeeded, "{t:#?}");
                assert_eq!(
                    t.output,
                    json!({"echo": {"do": "echo", "i": i}, "request_id": t.id})
                );
                assert!(
                    t.stdout_tail.is_empty() || t.stdout_tail == "app imported\n",
                    "{t:#?}"
                );
            }
        }
    }
    assert_eq!(r.count(TaskStatus::Succeeded), 6);
}

#[test]
fn handler_resolution_task_then_batch_then_function() {
    if !have(
        "python3",
        "handler_resolution_task_then_batch_then_function",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let pools = Arc::new(WorkerPools::new());
    let mut c = cfg(root.path(), scratch.path(), 2);
    c.function.handler = Some("app.echo".into());
    c.function.handler_runtime = Some(propack_runtime::HandlerRuntime::Python3);
    // Task's own handler beats the batch's; the batch's beats the function's.
    let r = run(
        json!({"handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": [
            {"id": "own", "event": {"x": 1}, "handler": {"runtime": "python3", "name": "app.echo"}},
            {"id": "batch", "event": {"do": "echo", "x": 2}},
        ]}),
        &c,
        &pools,
    );
    assert_eq!(
        by_id(&r, "own").output,
        json!({"echo": {"x": 1}, "request_id": "own"})
    );
    assert_eq!(
        by_id(&r, "batch").output,
        json!({"echo": {"do": "echo", "x": 2}, "request_id": "batch"})
    );
    let r = run(json!({"tasks": [{"id": "fn", "event": [3]}]}), &c, &pools);
    assert_eq!(
        by_id(&r, "fn").output,
        json!({"echo": [3], "request_id": "fn"})
    );
    let names: Vec<String> = pools.stats().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["app.dispatch", "app.echo"]);

    // Nothing to go by, or a Handler setting that is no module.function: clear errors.
    c.function.handler = None;
    let r = run(json!({"tasks": [{"id": "none", "event": {}}]}), &c, &pools);
    let t = by_id(&r, "none");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.HandlerNotFound"));
    assert_eq!(
        t.error.as_deref(),
        Some(
            "no handler for this event: the task and its batch name no `handler` and _HANDLER is not set"
        )
    );
    c.function.handler = Some("bootstrap".into());
    let r = run(json!({"tasks": [{"id": "bad", "event": {}}]}), &c, &pools);
    let t = by_id(&r, "bad");
    assert_eq!(
        t.error_type.as_deref(),
        Some("Runtime.MalformedHandlerName")
    );
    assert_eq!(
        t.error.as_deref(),
        Some(
            "Bad handler _HANDLER=\"bootstrap\": expected module.function (e.g. \"app.handler\"), got \"bootstrap\""
        )
    );
}

#[test]
fn python_init_failures_are_lambda_errors_found_once_per_pool() {
    if !have(
        "python3",
        "python_init_failures_are_lambda_errors_found_once_per_pool",
    ) {
        return;
    }
    let root = task_root(&["broken"]);
    let scratch = tempfile::tempdir().unwrap();
    let pools = Arc::new(WorkerPools::new());
    let h = |name: &str| json!({"runtime": "python3", "name": name});
    let mut tasks: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("syntax{i}"), "event": {}, "handler": h("bad_syntax.handler")}))
        .collect();
    tasks.extend([
        json!({"id": "import", "event": {}, "handler": h("bad_import.handler")}),
        json!({"id": "missing-fn", "event": {}, "handler": h("no_handler.handler")}),
        json!({"id": "missing-module", "event": {}, "handler": h("nowhere.handler")}),
        json!({"id": "crash", "event": {}, "handler": h("crash_on_import.handler")}),
    ]);
    let c = cfg(root.path(), scratch.path(), 3);
    let batch = json!({"tasks": tasks});
    let r = run(batch.clone(), &c, &pools);

    for i in 0..6 {
        let t = by_id(&r, &format!("syntax{i}"));
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(
            t.error_type.as_deref(),
            Some("Runtime.UserCodeSyntaxError"),
            "{t:#?}"
        );
        let msg = t.error.as_deref().unwrap();
        assert!(
            msg.starts_with("Syntax error in module 'bad_syntax': ")
                && msg.contains("bad_syntax.py, line 1"),
            "{msg}"
        );
        assert!(
            t.stack_trace.as_ref().unwrap()[0].contains("bad_syntax.py\" Line 1"),
            "{t:#?}"
        );
    }
    let t = by_id(&r, "import");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Unable to import module 'bad_import': No module named 'propack_no_such_module'")
    );
    let t = by_id(&r, "missing-fn");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.HandlerNotFound"));
    assert_eq!(
        t.error.as_deref(),
        Some("Handler 'handler' missing on module 'no_handler'")
    );
    let t = by_id(&r, "missing-module");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Unable to import module 'nowhere': No module named 'nowhere'")
    );
    let t = by_id(&r, "crash");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ExitError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Runtime exited with error: exit status 5 (while initialising the handler)")
    );
    assert_eq!(
        (t.exit_code, t.stdout_tail.as_str()),
        (Some(5), "dying during import\n")
    );

    // Once per pool, across invocations too: no retry storm.
    run(batch, &c, &pools);
    for s in pools.stats() {
        assert_eq!((s.workers_started, s.inits), (1, 0), "{s:#?}");
        assert!(s.failure.is_some());
    }
}

#[test]
fn node_init_failures_are_lambda_errors() {
    if !have("node", "node_init_failures_are_lambda_errors") {
        return;
    }
    let root = task_root(&["broken"]);
    let scratch = tempfile::tempdir().unwrap();
    let h = |name: &str| json!({"runtime": "node", "name": name});
    let r = run(
        json!({"tasks": [
            {"id": "syntax", "event": {}, "handler": h("bad_syntax.handler")},
            {"id": "missing-fn", "event": {}, "handler": h("no_handler.handler")},
            {"id": "missing-module", "event": {}, "handler": h("nowhere.handler")},
        ]}),
        &cfg(root.path(), scratch.path(), 3),
        &Arc::new(WorkerPools::new()),
    );
    let t = by_id(&r, "syntax");
    assert_eq!(
        t.error_type.as_deref(),
        Some("Runtime.UserCodeSyntaxError"),
        "{t:#?}"
    );
    assert!(
        t.error.as_deref().unwrap().starts_with("SyntaxError: "),
        "{t:#?}"
    );
    let t = by_id(&r, "missing-fn");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.HandlerNotFound"));
    assert_eq!(
        t.error.as_deref(),
        Some("no_handler.handler is undefined or not exported")
    );
    let t = by_id(&r, "missing-module");
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(
        t.error.as_deref(),
        Some(
            format!(
                "Error: Cannot find module 'nowhere' in {}",
                root.path().display()
            )
            .as_str()
        )
    );
}

#[test]
fn workers_stay_warm_across_invocations_of_one_instance() {
    if !have(
        "python3",
        "workers_stay_warm_across_invocations_of_one_instance",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let instance = Instance::new(
        cfg(root.path(), scratch.path(), 2),
        Storage::from_env().unwrap(),
        DeadlineResolver::new(None).missing_header_expected(),
    );
    let mut pids_per_invocation = Vec::new();
    for inv in 0..2 {
        // The first two tasks wait for each other, so two workers must exist at once.
        let meet = tempfile::tempdir().unwrap();
        let tasks: Vec<Value> = (0..4)
            .map(|i| json!({"id": format!("i{inv}t{i}"), "event": {"do": "rendezvous", "dir": meet.path(), "n": 2}}))
            .collect();
        let r = instance
            .handle_value(
                &json!({"handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": tasks}),
                None,
                None,
            )
            .unwrap();
        assert_eq!(r.count(TaskStatus::Succeeded), 4, "{r:#?}");
        let pids: BTreeSet<u64> = r.tasks.iter().map(|t| t.output.as_u64().unwrap()).collect();
        pids_per_invocation.push(pids);
    }
    // Two workers, each initialised once, serving both invocations.
    let logged: BTreeSet<u64> = inits(root.path()).into_iter().map(u64::from).collect();
    assert_eq!(inits(root.path()).len(), 2);
    assert_eq!(pids_per_invocation[0], logged);
    assert_eq!(pids_per_invocation[1], logged);
    let s = &instance.worker_pools().stats()[0];
    assert_eq!((s.workers_started, s.inits, s.idle), (2, 2, 2));
    // Dropping the instance kills its workers.
    drop(instance);
    for pid in logged {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} outlived its instance"
        );
    }
}

#[test]
fn invocation_deadline_caps_context_kills_running_and_skips_queued_handlers() {
    if !have(
        "python3",
        "invocation_deadline_caps_context_kills_running_and_skips_queued_handlers",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path(), scratch.path(), 1);
    // Room for a cold interpreter on a loaded machine before the 4.5 s cutoff.
    c.deadline = Some(std::time::Instant::now() + std::time::Duration::from_millis(5000));
    c.safety_margin = std::time::Duration::from_millis(500);
    let r = run(
        json!({"handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": [
            {"id": "ctx", "event": {"do": "ctx"}, "timeout_ms": 60000},
            {"id": "sleeps", "event": {"do": "sleeps", "s": 60}},
            {"id": "queued", "event": {"do": "echo"}},
        ]}),
        &c,
        &Arc::new(WorkerPools::new()),
    );
    // The task's 60 s are capped by the invocation's 5 s minus the 0.5 s margin.
    let r1 = by_id(&r, "ctx").output["r1"].as_u64().unwrap();
    assert!(
        r1 <= 4500,
        "remaining {r1} ms exceeds the invocation cutoff"
    );
    let t = by_id(&r, "sleeps");
    assert_eq!(t.status, TaskStatus::TimedOut, "{t:#?}");
    assert_eq!(
        t.error.as_deref(),
        Some(
            "still running at the invocation deadline (minus the safety margin); handler worker killed and replaced"
        )
    );
    assert_eq!(by_id(&r, "queued").status, TaskStatus::NotRun);
}

#[test]
fn a_segfaulting_handler_fails_its_task_with_the_signal() {
    if !have(
        "python3",
        "a_segfaulting_handler_fails_its_task_with_the_signal",
    ) {
        return;
    }
    let root = task_root(&["python"]);
    let scratch = tempfile::tempdir().unwrap();
    let r = run(
        json!({"parallelism": 1, "handler": {"runtime": "python3", "name": "app.dispatch"}, "tasks": [
            {"id": "segv", "event": {"do": "segfault"}},
            {"id": "after", "event": {"do": "echo"}},
        ]}),
        &cfg(root.path(), scratch.path(), 1),
        &Arc::new(WorkerPools::new()),
    );
    let t = by_id(&r, "segv");
    assert_eq!(
        (t.status, t.signal, t.exit_code),
        (TaskStatus::Failed, Some(11), None),
        "{t:#?}"
    );
    assert_eq!(t.error_type.as_deref(), Some("Runtime.ExitError"));
    assert_eq!(
        t.error.as_deref(),
        Some("Runtime exited with error: signal: 11 (SIGSEGV); the handler worker was replaced")
    );
    assert_eq!(t.stdout_tail, "app imported\nreading address 0\n");
    assert_ok(
        by_id(&r, "after"),
        json!({"echo": {"do": "echo"}, "request_id": "after"}),
        "app imported\n",
        "",
    );
}
