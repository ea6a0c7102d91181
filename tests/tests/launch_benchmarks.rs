//! `orchestrator launch` end to end on the embedded local platform: every benchmark at a
//! small size on `unlimited` and `aws-2021`, checking the JSON summary and the run directory.

mod launch_support;

use std::path::Path;
use std::process::Command;

use propack_orchestrator::report::RunReport;
use propack_runtime::TaskStatus;
use serde_json::Value;

/// `orchestrator launch EXTRA --json --out TMP/run`, with the plan store in `TMP/plans.json`.
fn launch(tmp: &Path, extra: &[&str]) -> Value {
    let (orchestrator, bootstrap) = launch_support::binaries();
    let out = Command::new(orchestrator)
        .arg("launch")
        .args(extra)
        .args(["--json", "--kmax", "6", "--out"])
        .arg(tmp.join("run"))
        .env("PROPACK_BOOTSTRAP", bootstrap)
        .env("PROPACK_PLANS", tmp.join("plans.json"))
        .output()
        .expect("running orchestrator launch");
    assert!(
        out.status.success(),
        "launch {extra:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON summary")
}

fn check_metrics(m: &Value, what: &str) {
    for key in ["scale_s", "total_s", "tail_s", "median_s", "expense_usd"] {
        let v = m[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}.{key} missing in {m}"));
        assert!(v >= 0.0 && v.is_finite(), "{what}.{key} = {v}");
    }
    if what.contains("measured") {
        // Measured from task completions, so the order always holds (a prediction need not:
        // the model ends the last, partly filled instance early).
        assert!(
            m["total_s"].as_f64() >= m["median_s"].as_f64(),
            "{what}: total < median: {m}"
        );
    }
    assert!(
        m["expense_usd"].as_f64().unwrap() > 0.0,
        "{what}: no expense: {m}"
    );
}

/// Runs one benchmark and checks everything the issue promises about the output.
fn run_benchmark(benchmark: &str, size: &str, platform: &str, tasks: usize, baseline: bool) {
    let dir = tempfile::tempdir().unwrap();
    let c = tasks.to_string();
    let mut extra = vec![
        "--benchmark",
        benchmark,
        "--size",
        size,
        "--tasks",
        &c,
        "--platform",
        platform,
    ];
    if baseline {
        extra.push("--baseline");
    }
    let s = launch(dir.path(), &extra);

    // The summary's scripted keys.
    assert_eq!(s["backend"], "local");
    assert_eq!(s["platform"], platform);
    assert_eq!(s["tasks"], tasks);
    assert_eq!(s["verified"], true, "{s}");
    assert_eq!(s["failed_tasks"], 0);
    let k = s["k"].as_u64().unwrap() as usize;
    assert!((1..=6).contains(&k), "k = {k}");
    let instances = s["instances"].as_u64().unwrap() as usize;
    assert_eq!(
        instances,
        tasks.div_ceil(k),
        "one invocation per batch, no retries"
    );
    assert!(s["run_id"].as_str().unwrap().starts_with(benchmark));
    check_metrics(&s["measured"], "measured");
    check_metrics(&s["predicted"], "predicted");
    if baseline {
        assert_eq!(s["baseline"]["k"], 1);
        check_metrics(&s["baseline"]["measured"], "baseline.measured");
    } else {
        assert!(s["baseline"].is_null());
    }
    if platform == "aws-2021" {
        // Instance creation is paced at one per 47 ms: a lower bound, not a timing race.
        let floor = (instances - 1) as f64 * 0.047;
        assert!(
            s["measured"]["scale_s"].as_f64().unwrap() >= floor - 1e-6,
            "{s}"
        );
    }

    // The run directory.
    let run_dir = Path::new(s["run_dir"].as_str().unwrap());
    assert_eq!(run_dir, dir.path().join("run").canonicalize().unwrap());
    assert!(
        run_dir.join("profile.json").is_file(),
        "a fresh plan store means a local profile"
    );
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(report.run.k, k);
    assert_eq!(report.run.records.tasks.len(), tasks);
    assert!(
        report
            .run
            .records
            .tasks
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded
                && t.end_s.is_some_and(|e| e >= t.start_s.unwrap()))
    );
    assert_eq!(report.run.records.instances.len(), instances);
    assert!(
        report
            .run
            .records
            .instances
            .iter()
            .all(|i| i.ok && i.end_s >= i.start_s)
    );
    assert!(report.plan.is_some(), "--packing auto stores the plan");
    let csv = std::fs::read_to_string(run_dir.join("instances.csv")).unwrap();
    assert_eq!(csv.lines().count(), instances + 1, "{csv}");
    assert!(csv.starts_with("batch,attempt,instance_id,cold_start,requested_s,start_s,end_s"));
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        md.contains("verified: **true**") && md.contains(&format!("k = {k}")),
        "{md}"
    );
    for svg in ["timeline.svg", "predicted-vs-measured.svg"] {
        let text = std::fs::read_to_string(run_dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
    let timeline = std::fs::read_to_string(run_dir.join("timeline.svg")).unwrap();
    assert_eq!(timeline.matches("<title>batch").count(), instances);
    let def: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("definition.asl.json")).unwrap())
            .unwrap();
    assert!(def["States"].is_object());
    if baseline {
        assert!(run_dir.join("baseline-timeline.svg").is_file());
        let b = report.baseline.as_ref().unwrap();
        assert_eq!(b.records.instances.len(), tasks);
        assert!(b.verified);
    }
    // Every output exists (and passed the benchmark's check: verified above).
    let outputs = std::fs::read_dir(run_dir.join("storage/out"))
        .unwrap()
        .count();
    assert_eq!(outputs, tasks);
}

#[test]
fn sort_on_unlimited_with_baseline() {
    run_benchmark("sort", "20kB", "unlimited", 12, true);
}

#[test]
fn sort_on_aws_2021() {
    run_benchmark("sort", "20kB", "aws-2021", 12, false);
}

#[test]
fn statelesscost_on_unlimited() {
    run_benchmark("statelesscost", "200x200", "unlimited", 8, false);
}

#[test]
fn statelesscost_on_aws_2021() {
    run_benchmark("statelesscost", "200x200", "aws-2021", 8, false);
}

#[test]
fn video_on_unlimited() {
    run_benchmark("video", "64x48x3", "unlimited", 8, false);
}

#[test]
fn video_on_aws_2021() {
    run_benchmark("video", "64x48x3", "aws-2021", 8, false);
}

#[test]
fn a_tasks_file_runs_user_executables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let tasks: Vec<Value> = (0..5)
        .map(|i| {
            serde_json::json!({"id": format!("echo-{i}"), "exec": {"program": "/bin/sh", "args": ["-c", format!("echo {i}")]}})
        })
        .collect();
    let file = dir.path().join("tasks.json");
    std::fs::write(&file, serde_json::to_vec(&tasks).unwrap()).unwrap();
    let s = launch(
        dir.path(),
        &[
            "--tasks-file",
            file.to_str().unwrap(),
            "--packing",
            "2",
            "--platform",
            "unlimited",
        ],
    );
    assert_eq!(s["tasks"], 5);
    assert_eq!(s["k"], 2);
    assert_eq!(s["instances"], 3);
    assert_eq!(s["verified"], true);
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(report.workload, "tasks-file");
    assert_eq!(report.k_source, "--packing 2");
}

#[test]
fn a_stored_plan_is_reused_without_profiling() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--benchmark",
        "sort",
        "--size",
        "10kB",
        "--tasks",
        "6",
        "--platform",
        "unlimited",
    ];
    let first = launch(dir.path(), &args);
    let run = dir.path().join("run");
    std::fs::remove_dir_all(&run).unwrap();
    let second = launch(dir.path(), &args);
    assert_eq!(first["k"], second["k"]);
    assert_eq!(
        first["predicted"], second["predicted"],
        "predictions come from the stored plan"
    );
    assert!(!run.join("profile.json").exists());
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert!(
        report.k_source.starts_with("stored plan"),
        "{}",
        report.k_source
    );
    assert!(report.plan.is_some());
}

#[test]
fn usage_errors_exit_2_and_bad_platforms_exit_1() {
    let (orchestrator, _) = launch_support::binaries();
    let out = Command::new(orchestrator)
        .args(["launch", "--tasks", "3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --benchmark nor --tasks-file is a usage error"
    );
    let out = Command::new(orchestrator)
        .args([
            "launch",
            "--benchmark",
            "sort",
            "--tasks",
            "2",
            "--platform",
            "mars",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aws-2021, aws-today, unlimited"));
}
