//! `orchestrator launch --handler --code --events`: an unchanged Python handler on every event, packed, with `outputs.jsonl`.

mod launch_support;

use std::path::Path;

use serde_json::{Value, json};

const APP: &str = "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('bad event %d' % event['n'])\n    return {'double': event['n'] * 2, 'request': context.aws_request_id}\n";

fn orchestrator(args: &[&str], cwd: &Path) -> std::process::Output {
    launch_support::orchestrator_in(cwd)
        .args(args)
        .output()
        .expect("running orchestrator")
}

#[test]
fn a_python_handler_runs_packed_on_every_event_and_outputs_keep_event_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("code")).unwrap();
    std::fs::write(root.join("code/app.py"), APP).unwrap();
    let events: String = (0..16)
        .map(|n| format!("{{\"n\": {n}, \"fail\": {}}}\n", n == 11))
        .collect();
    std::fs::write(root.join("events.jsonl"), events).unwrap();
    let out = orchestrator(
        &[
            "launch",
            "--handler",
            "app.handler",
            "--code",
            "code",
            "--events",
            "events.jsonl",
            "--packing",
            "4",
            "--kmax",
            "1",
            "--json",
            "--out",
            "run",
        ],
        root,
    );
    // One event raises: verification fails (exit 1) but every other output is there.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["workload"], "events");
    assert_eq!(summary["failed_tasks"], 1, "{summary}");
    assert_eq!(summary["instances"], 4, "16 events at k = 4");
    let text = std::fs::read_to_string(root.join("run/outputs.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 16);
    for (n, l) in lines.iter().enumerate() {
        assert_eq!(l["id"], format!("event-{n:04}"));
        if n == 11 {
            assert_eq!(l["status"], "failed");
            assert_eq!(l["error"]["errorType"], "ValueError");
            assert_eq!(l["error"]["errorMessage"], "bad event 11");
        } else {
            assert_eq!(l["status"], "succeeded", "{l}");
            assert_eq!(l["output"]["double"], n * 2);
            assert_eq!(
                l["output"]["request"],
                format!("event-{n:04}"),
                "context.aws_request_id is the task id"
            );
        }
    }
}

#[test]
fn bad_handler_requests_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("code")).unwrap();
    std::fs::write(root.join("code/app.py"), APP).unwrap();
    std::fs::write(root.join("events.jsonl"), "{\"n\": 1}\n{oops\n").unwrap();
    std::fs::write(root.join("good.jsonl"), "{\"n\": 1}\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--handler",
                "apphandler",
                "--code",
                "code",
                "--events",
                "good.jsonl",
            ],
            "not module.function",
        ),
        (
            &[
                "--handler",
                "other.handler",
                "--code",
                "code",
                "--events",
                "good.jsonl",
            ],
            "looked for other.py",
        ),
        (
            &[
                "--handler",
                "app.handler",
                "--code",
                "code",
                "--events",
                "events.jsonl",
            ],
            "events.jsonl:2",
        ),
        (
            &[
                "--handler",
                "app.handler",
                "--code",
                "code",
                "--events",
                "good.jsonl",
                "--handler-runtime",
                "ruby",
            ],
            "ruby",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["launch", "--out", "run"];
        all.extend_from_slice(args);
        let out = orchestrator(&all, root);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!root.join("run").exists(), "{args:?} ran nothing");
    }
}

/// The runtime's fixture handlers of `lang` (`python` or `node`) copied into `root/code`,
/// since they log each import beside themselves.
fn fixture_code(root: &Path, lang: &str) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/tests/fixtures/handlers")
        .join(lang);
    let dst = root.join("code");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    dst
}

/// One event per fixture behaviour of `lang`, as (event, expected outputs.jsonl line without `id`).
fn fixture_events(lang: &str) -> Vec<(Value, Value)> {
    let marshal = if lang == "node" {
        "Unable to stringify response body: Do not know how to serialize a BigInt"
    } else {
        "Unable to marshal response: Object of type object is not JSON serializable"
    };
    let exited = json!({"status": "failed", "error": {
        "errorType": "Runtime.ExitError",
        "errorMessage": "Runtime exited with error: exit status 5; the handler worker was replaced",
    }});
    let mut cases = vec![
        (
            json!({"do": "non_json"}),
            json!({"status": "failed", "error": {"errorType": "Runtime.MarshalError", "errorMessage": marshal}}),
        ),
        (json!({"do": "exits", "code": 5}), exited),
    ];
    if lang == "node" {
        cases[0].0 = json!({"do": "nonJson"});
        cases.extend([
            (json!({"do": "asyncEcho", "n": 1}), Value::Null),
            (
                json!({"do": "promise", "n": 3}),
                json!({"status": "succeeded", "output": {"promised": 3}}),
            ),
            (
                json!({"do": "callback", "n": 4}),
                json!({"status": "succeeded", "output": {"called": 4}}),
            ),
            (
                json!({"do": "rejects", "n": 5}),
                json!({"status": "failed", "error": {"errorType": "RangeError", "errorMessage": "too big: 5"}}),
            ),
            (
                json!({"do": "noisy", "lines": 2000}),
                json!({"status": "succeeded", "output": {"total": 3999}}),
            ),
        ]);
    } else {
        cases.extend([
            (json!({"do": "echo", "n": 1}), Value::Null),
            (
                json!({"do": "raises", "x": 9}),
                json!({"status": "failed", "error": {"errorType": "ValueError", "errorMessage": "bad input: 9"}}),
            ),
            (
                json!({"do": "noisy", "lines": 2000}),
                json!({"status": "succeeded", "output": {"total": 3999}}),
            ),
        ]);
    }
    cases.push((json!({"do": "ctx"}), Value::Null));
    cases
}

/// Unchanged fixture handlers through `launch` on the local platform: Node on the provided
/// runtime (the handler in every task), and Node and Python on their managed runtimes, where
/// the platform starts each instance the way Lambda runs `AWS_LAMBDA_EXEC_WRAPPER` and the
/// handler comes from the function's configuration.
#[test]
fn fixture_handlers_run_through_launch_on_provided_and_managed_runtimes() {
    let function = propack_step_functions::build::DEFAULT_FUNCTION;
    for (lang, runtime_args) in [
        ("node", ["--handler-runtime", "node"]),
        ("node", ["--runtime", "nodejs22.x"]),
        ("python", ["--runtime", "python3.13"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let code = fixture_code(root, lang);
        let cases = fixture_events(lang);
        let events: String = cases.iter().map(|(e, _)| format!("{e}\n")).collect();
        std::fs::write(root.join("events.jsonl"), events).unwrap();
        let mut args = vec![
            "launch",
            "--handler",
            "app.dispatch",
            "--code",
            "code",
            "--events",
            "events.jsonl",
            "--packing",
            "3",
            "--kmax",
            "1",
            "--json",
            "--out",
            "run",
        ];
        args.extend(runtime_args);
        // One worker per instance, whatever the host's cores: then the import count below is
        // bounded by instances, not by the timing of which tasks overlapped.
        let out = launch_support::orchestrator_in(root)
            .args(&args)
            .env("PROPACK_PARALLELISM", "1")
            .output()
            .expect("running orchestrator");
        let what = format!("{lang} {runtime_args:?}");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: failing events fail verification: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(root.join("run/outputs.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), cases.len(), "{what}");
        for (n, ((event, want), got)) in cases.iter().zip(&lines).enumerate() {
            let id = format!("event-{n:04}");
            assert_eq!(got["id"], id, "{what}");
            match event["do"].as_str().unwrap() {
                "echo" | "asyncEcho" => {
                    assert_eq!(got["status"], "succeeded", "{what}: {got}");
                    assert_eq!(got["output"]["echo"], *event, "{what}: {got}");
                }
                "ctx" => {
                    let o = &got["output"];
                    let (req, name, group) = if lang == "node" {
                        ("awsRequestId", "functionName", "logGroupName")
                    } else {
                        ("aws_request_id", "function_name", "log_group_name")
                    };
                    assert_eq!(
                        [&o[req], &o[name], &o[group]],
                        [
                            &json!(id),
                            &json!(function),
                            &json!(format!("/aws/lambda/{function}"))
                        ],
                        "{what}: {got}"
                    );
                }
                _ => {
                    let mut got = got.clone();
                    got.as_object_mut().unwrap().remove("id");
                    if let Some(e) = got.get_mut("error").and_then(Value::as_object_mut) {
                        e.remove("stackTrace");
                    }
                    assert_eq!(&got, want, "{what}: {event}");
                }
            }
        }
        let logs: String = std::fs::read_dir(root.join("run/logs"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect();
        let wrapped = logs.contains("propack-exec-wrapper: starting");
        assert_eq!(
            wrapped,
            runtime_args[0] == "--runtime",
            "{what}: instances start through the exec wrapper exactly on managed runtimes"
        );
        // The handler module was imported once per worker, not once per event. `launch` profiles
        // a few events on instances of its own first, then writes launch.json before the first
        // batch: the run's imports are those after it. One worker per instance, at most one
        // instance per invocation of 3 events, plus the worker that replaced the one `exits` killed.
        let run_start_ms = std::fs::metadata(root.join("run/launch.json"))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let inits = std::fs::read_to_string(code.join("inits.log")).unwrap();
        let mut pids = std::collections::BTreeSet::new();
        let mut in_run = 0;
        for line in inits.lines() {
            let (pid, at) = line.split_once(' ').unwrap();
            assert!(
                pids.insert(pid),
                "{what}: worker {pid} imported twice: {inits}"
            );
            in_run += usize::from(at.parse::<u128>().unwrap() >= run_start_ms);
        }
        let bound = cases.len().div_ceil(3) + 1;
        assert!(
            (1..=bound).contains(&in_run),
            "{what}: {in_run} imports in the run for {} events (at most {bound}): {inits}",
            cases.len()
        );
    }
}
