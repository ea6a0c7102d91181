//! Results that fit their budget, full logs at `logs_prefix`, and the program policy, through an `Instance`.

use propack_runtime::budget;
use propack_runtime::contract::{BatchResult, TaskStatus};
use propack_runtime::deadline::DeadlineResolver;
use propack_runtime::executor::TaskPolicy;
use propack_runtime::handler::Instance;
use propack_runtime::limits::LAMBDA_RESPONSE_LIMIT;
use propack_runtime::{ExecutorConfig, Storage};
use serde_json::{Value, json};

fn instance(scratch: &std::path::Path, policy: TaskPolicy) -> Instance {
    let cfg = ExecutorConfig {
        parallelism: Some(4),
        scratch_root: scratch.to_path_buf(),
        policy,
        ..ExecutorConfig::default()
    };
    Instance::new(
        cfg,
        Storage::from_env().unwrap(),
        DeadlineResolver::new(None),
    )
}

fn run(inst: &Instance, batch: &Value) -> BatchResult {
    inst.handle_value(batch, None, Some("req-1".into()))
        .expect("valid batch")
}

/// A task writing `n` bytes of distinct lines to stdout and to stderr.
fn noisy(id: &str, n: usize) -> Value {
    let script = format!(
        "i=0; while [ $i -lt {lines} ]; do printf 'out %06d %s\\n' $i {id}; printf 'err %06d %s\\n' $i {id} >&2; i=$((i+1)); done",
        lines = n / (12 + id.len())
    );
    json!({"id": id, "exec": {"program": "/bin/sh", "args": ["-c", script]}})
}

/// The acceptance case: 60 tasks each writing ~8 KB to stdout and stderr under a
/// 240,000-byte budget, with full logs under a file:// prefix.
#[test]
fn sixty_noisy_tasks_fit_240k_and_keep_full_logs() {
    let scratch = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let inst = instance(scratch.path(), TaskPolicy::default());
    let tasks: Vec<Value> = (0..60).map(|i| noisy(&format!("t{i:02}"), 8192)).collect();

    let unbudgeted = run(&inst, &json!({"run_id": "run/1", "tasks": tasks}));
    let unbudgeted_bytes = budget::serialized_len(&unbudgeted);
    assert!(unbudgeted.tasks.iter().all(|t| t.stdout_tail.len() == 4096));
    // 120 full 4 KiB tails alone are 491,520 bytes: far over Step Functions' 256 KiB.
    assert!(unbudgeted_bytes > 256 * 1024, "{unbudgeted_bytes}");
    assert!(!unbudgeted.truncated);

    let prefix = format!("file://{}/logs", logs.path().display());
    let r = run(
        &inst,
        &json!({"Items": tasks, "BatchInput": {
            "run_id": "run/1", "max_result_bytes": 240_000, "logs_prefix": prefix}}),
    );
    let bytes = serde_json::to_vec(&r).unwrap();
    assert!(bytes.len() <= 240_000, "{}", bytes.len());
    assert!(
        bytes.len() > 230_000,
        "the cut is even and tight: {}",
        bytes.len()
    );
    assert!(r.truncated);
    assert_eq!(r.tasks.len(), 60);
    let cap = r.tasks[0].stdout_tail.len();
    assert!((1000..4096).contains(&cap), "{cap}");
    for (i, t) in r.tasks.iter().enumerate() {
        let id = format!("t{i:02}");
        assert_eq!(t.id, id);
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(t.exit_code, Some(0));
        assert!(t.truncated && t.started_at.is_some() && t.ended_at.is_some());
        assert!(t.stdout_tail.len() <= cap && t.stderr_tail.len() <= cap);
        // The run id `run/1` is one path segment in the log URIs.
        let out_uri = format!("{prefix}/run%2F1/{id}.stdout");
        assert_eq!(t.stdout_uri.as_deref(), Some(out_uri.as_str()));
        assert_eq!(t.logs_error, None);
        let full_out =
            std::fs::read_to_string(logs.path().join(format!("logs/run%2F1/{id}.stdout"))).unwrap();
        let full_err =
            std::fs::read_to_string(logs.path().join(format!("logs/run%2F1/{id}.stderr"))).unwrap();
        let lines = 8192 / (12 + id.len());
        assert_eq!(full_out.len(), lines * (12 + id.len()));
        assert!(full_out.starts_with(&format!("out 000000 {id}\n")));
        assert!(full_err.starts_with(&format!("err 000000 {id}\n")));
        // What the record kept is the end of the full log.
        assert!(full_out.ends_with(&t.stdout_tail) && full_err.ends_with(&t.stderr_tail));
    }
    // Nothing of the staged log files is left in the scratch root.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn function_cap_bounds_batches_that_ask_for_more() {
    let scratch = tempfile::tempdir().unwrap();
    let inst = instance(scratch.path(), TaskPolicy::default()).with_result_limit(20_000);
    let tasks: Vec<Value> = (0..8).map(|i| noisy(&format!("c{i}"), 6000)).collect();
    let r = run(
        &inst,
        &json!({"tasks": tasks, "max_result_bytes": LAMBDA_RESPONSE_LIMIT}),
    );
    assert!(budget::serialized_len(&r) <= 20_000);
    assert!(r.truncated && r.tasks.iter().all(|t| t.truncated));
    // Without logs_prefix no log URIs are claimed.
    assert!(r.tasks.iter().all(|t| t.stdout_uri.is_none()));
}

#[test]
fn refused_programs_fail_alone_and_never_start() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("ran");
    let policy = TaskPolicy::from_values(Some("/bin/echo"), None).unwrap();
    let inst = instance(scratch.path(), policy);
    let r = run(
        &inst,
        &json!({"tasks": [
            {"id": "ok", "exec": {"program": "/bin/echo", "args": ["fine"]}},
            {"id": "sh", "exec": {"program": "/bin/sh", "args": ["-c", format!("touch {}", marker.display())]}},
            {"id": "dots", "exec": {"program": "/bin/../bin/sh", "args": ["-c", "true"]}},
            {"id": "b", "builtin": {"name": "noop"}},
        ]}),
    );
    let by = |id: &str| r.tasks.iter().find(|t| t.id == id).unwrap();
    assert_eq!(by("ok").status, TaskStatus::Succeeded);
    assert_eq!(by("ok").stdout_tail, "fine\n");
    assert_eq!(by("b").status, TaskStatus::Succeeded);
    assert_eq!(by("sh").status, TaskStatus::Failed);
    assert_eq!(
        by("sh").error.as_deref(),
        Some(
            "refused: program \"/bin/sh\" is not in this function's PROPACK_ALLOWED_PROGRAMS (1 entries)"
        )
    );
    assert_eq!(by("sh").exit_code, None);
    assert_eq!(by("dots").status, TaskStatus::Failed);
    assert!(!marker.exists(), "a refused task must not start");

    let inst = instance(
        scratch.path(),
        TaskPolicy::from_values(None, Some("1")).unwrap(),
    );
    let r = run(
        &inst,
        &json!({"tasks": [
            {"id": "e", "exec": {"program": "/bin/echo"}},
            {"id": "h", "event": {"n": 1}, "handler": {"runtime": "python3", "name": "app.handler"}},
            {"id": "b", "builtin": {"name": "noop"}},
        ]}),
    );
    let statuses: Vec<TaskStatus> = r.tasks.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Failed,
            TaskStatus::Failed,
            TaskStatus::Succeeded
        ]
    );
    assert!(
        r.tasks[0]
            .error
            .as_deref()
            .unwrap()
            .contains("PROPACK_BUILTINS_ONLY=1")
    );
}

#[test]
fn batch_fields_are_checked() {
    let scratch = tempfile::tempdir().unwrap();
    let inst = instance(scratch.path(), TaskPolicy::default());
    let task = json!({"id": "a", "builtin": {"name": "noop"}});
    let err = inst
        .handle_value(&json!({"tasks": [task], "max_result_bytes": 0}), None, None)
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidBatch");
    assert_eq!(
        err.error_message,
        "field `max_result_bytes`: must be positive"
    );
    let err = inst
        .handle_value(
            &json!({"Items": [task], "BatchInput": {"logs_prefix": "http://x/logs"}}),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        err.error_message
            .starts_with("field `BatchInput.logs_prefix`: unsupported URI"),
        "{}",
        err.error_message
    );
    let err = inst
        .handle_value(
            &json!({"tasks": [task], "max_result_bytes": "big"}),
            None,
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.error_message,
        "field `max_result_bytes`: invalid type: string \"big\", expected u64"
    );
    let err = inst
        .handle_value(
            &json!({"Items": [task], "BatchInput": {"max_result_bytes": -1}}),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        err.error_message
            .starts_with("field `BatchInput.max_result_bytes`: invalid value"),
        "{}",
        err.error_message
    );
}
