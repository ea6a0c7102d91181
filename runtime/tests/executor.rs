//! Executor behaviour: failure isolation, panics, deadlines, inputs and outputs.

use std::time::{Duration, Instant};

use propack_runtime::contract::{Batch, ParseOptions, TaskStatus};
use propack_runtime::{ExecutorConfig, Storage, run_batch};
use serde_json::{Value, json};

fn batch(v: Value) -> Batch {
    Batch::from_value(&v, &ParseOptions::default()).expect("valid batch")
}

fn sh(id: &str, script: &str) -> Value {
    json!({"id": id, "exec": {"program": "/bin/sh", "args": ["-c", script]}})
}

/// Holds 64 MiB (every page touched) and spins until 300 ms of its own CPU time have passed.
const USAGE_SCRIPT: &str = "import time\nb = bytearray(64 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    pass\n";

fn cfg() -> ExecutorConfig {
    ExecutorConfig {
        parallelism: Some(5),
        ..ExecutorConfig::default()
    }
}

#[test]
fn failures_are_isolated() {
    let scratch = tempfile::tempdir().unwrap();
    let mut timeout = sh("timeout", "sleep 30");
    timeout["timeout_ms"] = json!(300);
    let b = batch(json!({"run_id": "iso", "tasks": [
        sh("exit1", "echo bad >&2; exit 1"),
        sh("signal", "kill -9 $$"),
        timeout,
        sh("flood", "head -c 100000000 /dev/zero"),
        sh("normal", "echo hello; echo done"),
        // Touches 64 MiB and burns 300 ms of CPU: the measured usage must be this process's.
        {"id": "usage", "exec": {"program": "python3", "args": ["-c", USAGE_SCRIPT]}},
    ]}));
    let cfg = ExecutorConfig {
        scratch_root: scratch.path().to_path_buf(),
        ..cfg()
    };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    assert_eq!(r.tasks.len(), 6);
    let by_id = |id: &str| r.tasks.iter().find(|t| t.id == id).unwrap();

    let t = by_id("exit1");
    assert_eq!((t.status, t.exit_code), (TaskStatus::Failed, Some(1)));
    assert_eq!(t.stderr_tail, "bad\n");

    let t = by_id("signal");
    assert_eq!((t.status, t.signal), (TaskStatus::Failed, Some(9)), "{t:?}");

    let t = by_id("timeout");
    assert_eq!(t.status, TaskStatus::TimedOut, "{t:?}");
    assert!(t.error.as_deref().unwrap().contains("300 ms"));

    let t = by_id("flood");
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    assert_eq!(t.stdout_tail.len(), 4096);

    let t = by_id("normal");
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.stdout_tail, "hello\ndone\n");
    assert!(t.started_at.unwrap() <= t.ended_at.unwrap());

    // cpu_ms and max_rss_kb are the task process's own (wait4), not the executor's or a
    // sibling's: ≥ 300 ms of CPU and ≥ 64 MiB resident, and not wildly more.
    let t = by_id("usage");
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    let cpu = t.cpu_ms.unwrap();
    assert!((300..3_000).contains(&cpu), "cpu_ms {cpu}");
    let rss = t.max_rss_kb.unwrap();
    assert!(
        (65_536..65_536 + 100_000).contains(&rss),
        "max_rss_kb {rss}"
    );

    assert_eq!(r.parallelism, 5);
    assert_eq!(r.run_id.as_deref(), Some("iso"));
    // Every scratch directory is removed afterwards.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn builtin_panic_is_a_failed_result() {
    let b = batch(json!({"tasks": [
        {"id": "p", "builtin": {"name": "panic", "params": {"message": "boom"}}},
        {"id": "n", "builtin": {"name": "noop"}},
        {"id": "s", "builtin": {"name": "spin", "params": {"ms": 1}}},
        {"id": "u", "builtin": {"name": "no-such-workload"}},
    ]}));
    let r = run_batch(&b, &cfg(), &Storage::from_env().unwrap());
    assert_eq!(r.tasks[0].status, TaskStatus::Failed);
    assert!(r.tasks[0].error.as_deref().unwrap().contains("boom"));
    assert_eq!(r.tasks[1].status, TaskStatus::Succeeded);
    assert_eq!(r.tasks[2].status, TaskStatus::Succeeded);
    // 1 ms of spinning at the calibrated rate (the same process, so the same calibration).
    assert_eq!(
        r.tasks[2].summary["iterations"].as_u64(),
        Some(propack_runtime::executor::builtin::spin_iterations_per_ms())
    );
    assert_eq!(r.tasks[3].status, TaskStatus::Failed);
}

#[test]
fn deadline_stops_starting_and_kills_running_tasks() {
    // One worker: the first task runs into the cutoff, the rest never start. The deadline
    // is 2.5 s away and the margin 2 s, so the cutoff is at 0.5 s: the running task must
    // end there (plus the executor's grace of at most 500 ms, and a kill), well before the
    // deadline itself; an executor that ignored the margin would end it at 2.5 s or later.
    let b = batch(json!({"parallelism": 1, "tasks": [
        sh("long", "sleep 30"),
        sh("queued1", "true"),
        {"id": "queued2", "builtin": {"name": "noop"}},
    ]}));
    let epoch0 = propack_runtime::deadline::epoch_ms();
    let cfg = ExecutorConfig {
        deadline: Some(Instant::now() + Duration::from_millis(2_500)),
        safety_margin: Duration::from_millis(2_000),
        ..cfg()
    };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    let (cutoff, deadline) = (epoch0 + 500, epoch0 + 2_500);
    let long = &r.tasks[0];
    assert_eq!(long.status, TaskStatus::TimedOut, "{long:?}");
    let ended = long.ended_at.unwrap();
    assert!(
        (cutoff..deadline - 500).contains(&ended),
        "ended {} ms after the start; cutoff at 500, deadline at 2500",
        ended - epoch0
    );
    assert!(r.ended_at < deadline - 500, "{}", r.ended_at - epoch0);
    for t in &r.tasks[1..] {
        assert_eq!(t.status, TaskStatus::NotRun, "{t:?}");
        assert_eq!(t.started_at, None);
    }
}

#[test]
fn abandoned_builtin_is_timed_out() {
    let b = batch(json!({"parallelism": 1, "tasks": [
        {"id": "slow", "builtin": {"name": "sleep", "params": {"ms": 3000}}},
        {"id": "next", "builtin": {"name": "noop"}},
    ]}));
    let cfg = ExecutorConfig {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        safety_margin: Duration::from_millis(100),
        ..cfg()
    };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    assert_eq!(r.tasks[0].status, TaskStatus::TimedOut);
    assert_eq!(r.tasks[1].status, TaskStatus::NotRun);
}

#[test]
fn inputs_fetched_and_outputs_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let storage = Storage::from_env().unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        storage
            .put_bytes(
                &format!("file://{root}/in/{i}.txt"),
                format!("data {i}\n").as_bytes(),
            )
            .unwrap();
        tasks.push(json!({
            "id": format!("t{i}"),
            "exec": {"program": "/bin/sh", "args": ["-c", "tr a-z A-Z < in.txt > out.txt"]},
            "inputs": {"in.txt": format!("file://{root}/in/{i}.txt")},
            "outputs": {"out.txt": format!("file://{root}/out/{i}.txt")},
        }));
    }
    tasks.push(json!({
        "id": "missing-input", "exec": {"program": "/bin/true"},
        "inputs": {"x": format!("file://{root}/nope")},
    }));
    tasks.push(json!({
        "id": "missing-output", "exec": {"program": "/bin/true"},
        "outputs": {"x": format!("file://{root}/out/x")},
    }));
    let cfg = ExecutorConfig {
        parallelism: Some(2),
        prefetch_depth: 2,
        ..ExecutorConfig::default()
    };
    let r = run_batch(&batch(json!({"tasks": tasks})), &cfg, &storage);
    for i in 0..6 {
        let t = &r.tasks[i];
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(t.outputs["out.txt"], format!("file://{root}/out/{i}.txt"));
        let got = storage
            .get_bytes(&format!("file://{root}/out/{i}.txt"))
            .unwrap();
        assert_eq!(got, format!("DATA {i}\n").as_bytes());
    }
    assert_eq!(r.tasks[6].status, TaskStatus::Failed);
    assert!(r.tasks[6].error.as_deref().unwrap().contains("input \"x\""));
    assert_eq!(r.tasks[7].status, TaskStatus::Failed);
    assert!(
        r.tasks[7]
            .error
            .as_deref()
            .unwrap()
            .contains("output \"x\"")
    );
}

#[test]
fn custom_builtins_run_packed_with_panics_isolated_and_outputs_uploaded() {
    use propack_runtime::executor::{BoxError, BuiltinTask, Builtins};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let storage = Storage::from_env().unwrap();
    let mut builtins = Builtins::new();
    builtins.insert("upper", |t: &BuiltinTask<'_>| -> Result<Value, BoxError> {
        if t.params["panic"] == true {
            panic!("upper told to panic");
        }
        let text = std::fs::read_to_string(t.input("in.txt")?)?;
        std::fs::write(t.output("out.txt")?, text.to_uppercase())?;
        Ok(json!({"bytes": text.len(), "id": t.id, "has_deadline": t.deadline.is_some()}))
    });
    // A custom built-in shadows a shipped one of the same name.
    builtins.insert("noop", |_: &BuiltinTask<'_>| -> Result<&str, BoxError> {
        Ok("custom noop")
    });
    let mut tasks = Vec::new();
    for i in 0..4 {
        storage
            .put_bytes(
                &format!("file://{root}/in/{i}"),
                format!("word {i}").as_bytes(),
            )
            .unwrap();
        tasks.push(json!({
            "id": format!("u{i}"), "timeout_ms": 60000,
            "builtin": {"name": "upper", "params": {"panic": i == 2}},
            "inputs": {"in.txt": format!("file://{root}/in/{i}")},
            "outputs": {"out.txt": format!("file://{root}/out/{i}")},
        }));
    }
    tasks.push(json!({"id": "missing", "builtin": {"name": "upper"}}));
    tasks.push(json!({"id": "noop", "builtin": {"name": "noop"}}));
    tasks.push(json!({"id": "spin", "builtin": {"name": "spin", "params": {"ms": 1}}}));
    let cfg = ExecutorConfig {
        parallelism: Some(4),
        builtins,
        ..cfg()
    };
    let r = run_batch(&batch(json!({"tasks": tasks})), &cfg, &storage);
    assert_eq!(r.parallelism, 4);
    for i in [0, 1, 3] {
        let t = &r.tasks[i];
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(
            t.summary,
            json!({"bytes": 6, "id": format!("u{i}"), "has_deadline": true})
        );
        assert_eq!(t.outputs["out.txt"], format!("file://{root}/out/{i}"));
        let got = storage
            .get_bytes(&format!("file://{root}/out/{i}"))
            .unwrap();
        assert_eq!(got, format!("WORD {i}").as_bytes());
    }
    let panicked = &r.tasks[2];
    assert_eq!(panicked.status, TaskStatus::Failed);
    assert_eq!(
        panicked.error.as_deref(),
        Some("built-in \"upper\" panicked: upper told to panic")
    );
    assert!(panicked.outputs.is_empty());
    assert!(storage.get_bytes(&format!("file://{root}/out/2")).is_err());
    assert_eq!(r.tasks[4].status, TaskStatus::Failed);
    assert_eq!(
        r.tasks[4].error.as_deref(),
        Some("built-in \"upper\": the task has no input named \"in.txt\" (it has: none)")
    );
    assert_eq!(r.tasks[5].status, TaskStatus::Succeeded);
    assert_eq!(r.tasks[5].summary, json!("custom noop"));
    // Names not registered still reach the shipped built-ins.
    assert_eq!(r.tasks[6].status, TaskStatus::Succeeded);
    assert!(r.tasks[6].summary["iterations"].as_u64().unwrap() > 0);
}

/// Inputs of queued tasks are fetched while earlier tasks run: with one worker, the first
/// task removes the second task's source after 500 ms, which only a prefetched input survives.
#[test]
fn queued_inputs_are_prefetched() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("second.txt");
    std::fs::write(&src, "fetched early\n").unwrap();
    let b = batch(json!({"parallelism": 1, "tasks": [
        sh("first", &format!("sleep 0.5; rm {}", src.display())),
        {"id": "second", "exec": {"program": "/bin/cat", "args": ["in.txt"]},
         "inputs": {"in.txt": format!("file://{}", src.display())}},
    ]}));
    let cfg = ExecutorConfig {
        parallelism: Some(1),
        prefetch_depth: 1,
        ..ExecutorConfig::default()
    };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    assert_eq!(r.tasks[0].status, TaskStatus::Succeeded, "{:?}", r.tasks[0]);
    assert!(!src.exists());
    assert_eq!(r.tasks[1].status, TaskStatus::Succeeded, "{:?}", r.tasks[1]);
    assert_eq!(r.tasks[1].stdout_tail, "fetched early\n");
}

/// A built-in's `cpu_ms` is the CPU its own run took on the worker thread, not the thread's
/// total: on one worker a no-op after a 300 ms spin reports far less than the spin.
#[test]
fn builtin_cpu_time_is_per_task() {
    let b = batch(json!({"parallelism": 1, "tasks": [
        {"id": "spin", "builtin": {"name": "spin", "params": {"ms": 300}}},
        {"id": "noop", "builtin": {"name": "noop"}},
    ]}));
    let r = run_batch(&b, &cfg(), &Storage::from_env().unwrap());
    let spin = r.tasks[0].cpu_ms.unwrap();
    let noop = r.tasks[1].cpu_ms.unwrap();
    assert!(spin >= 20, "spin cpu_ms {spin}");
    assert!(noop < spin / 2, "noop cpu_ms {noop} after a spin of {spin}");
}

/// A built-in cannot be killed, so its timeout is judged when it returns: one that ran past
/// it is timed out, one within it succeeds, and one that failed (after its timeout) stays
/// failed.
#[test]
fn builtin_timeouts_are_judged_after_the_fact() {
    use propack_runtime::executor::{BoxError, BuiltinTask, Builtins};
    let mut builtins = Builtins::new();
    builtins.insert(
        "slow_failure",
        |_: &BuiltinTask<'_>| -> Result<Value, BoxError> {
            std::thread::sleep(Duration::from_millis(50));
            Err("failed on purpose".into())
        },
    );
    let b = batch(json!({"tasks": [
        {"id": "over", "timeout_ms": 100, "builtin": {"name": "sleep", "params": {"ms": 300}}},
        {"id": "within", "timeout_ms": 60000, "builtin": {"name": "noop"}},
        {"id": "failed", "timeout_ms": 1, "builtin": {"name": "slow_failure"}},
    ]}));
    let cfg = ExecutorConfig { builtins, ..cfg() };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    let t = &r.tasks[0];
    assert_eq!(t.status, TaskStatus::TimedOut, "{t:?}");
    let e = t.error.as_deref().unwrap();
    assert!(
        e.starts_with("built-in ran ") && e.ends_with(" ms, over its timeout of 100 ms"),
        "{e}"
    );
    assert_eq!(r.tasks[1].status, TaskStatus::Succeeded, "{:?}", r.tasks[1]);
    let t = &r.tasks[2];
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    assert!(
        t.error.as_deref().unwrap().ends_with("failed on purpose"),
        "{t:?}"
    );
}

/// With a `logs_prefix` an exec task's whole stdout and stderr go to
/// `<prefix>/<run_id>/<task_id>.stdout|.stderr` (the run id as one URI segment), named in
/// its record, and the staged files leave the scratch root.
#[test]
fn full_logs_go_under_the_logs_prefix() {
    let scratch = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let prefix = format!("file://{}/logs", logs.path().display());
    let b = batch(json!({"run_id": "r 1", "logs_prefix": prefix, "tasks": [
        sh("t1", "echo out; echo err >&2"),
    ]}));
    let cfg = ExecutorConfig {
        scratch_root: scratch.path().to_path_buf(),
        ..cfg()
    };
    let r = run_batch(&b, &cfg, &Storage::from_env().unwrap());
    let t = &r.tasks[0];
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    assert_eq!(t.logs_error, None);
    let uri = |ext: &str| format!("{prefix}/r%201/t1.{ext}");
    assert_eq!(t.stdout_uri.as_deref(), Some(uri("stdout").as_str()));
    assert_eq!(t.stderr_uri.as_deref(), Some(uri("stderr").as_str()));
    let read = |ext: &str| {
        std::fs::read_to_string(logs.path().join(format!("logs/r%201/t1.{ext}"))).unwrap()
    };
    assert_eq!(
        (read("stdout"), read("stderr")),
        ("out\n".to_owned(), "err\n".to_owned())
    );
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
