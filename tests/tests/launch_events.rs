//! `orchestrator launch --handler --code --events`: an unchanged Python handler on every event, packed, with `outputs.jsonl`.

mod launch_support;

use std::path::Path;

use serde_json::Value;

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
