//! Crash-safe runs: the journal keeps every returned batch through a SIGKILL of the
//! orchestrator, and `orchestrator resume` runs only what is not done.

mod launch_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn orchestrator(cwd: &Path) -> Command {
    launch_support::orchestrator_in(cwd)
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    orchestrator(cwd)
        .args(args)
        .output()
        .expect("running orchestrator")
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn resume_reruns_only_failed_tasks_and_merges_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    for i in 0..12 {
        std::fs::write(root.join(format!("in/f{i:02}.txt")), format!("v{i}\n")).unwrap();
    }
    // Tasks whose key has a 3 or a 7 fail while the marker exists; each run appends to a count file.
    let marker = root.join("flaky");
    std::fs::write(&marker, "").unwrap();
    script(
        &root.join("t.sh"),
        &format!(
            "#!/bin/sh\nset -e\necho \"$1\" >> {count}\ncase \"$1\" in *3*|*7*) [ -e {marker} ] && exit 3;; esac\ntr a-z A-Z < \"$2\" > \"$3\"\n",
            count = root.join("count").display(),
            marker = marker.display()
        ),
    );
    let exec = format!(
        "{} {{key}} {{input}} {{output}}",
        root.join("t.sh").display()
    );
    let launch = run(
        root,
        &[
            "launch",
            "--exec",
            &exec,
            "--map",
            "in",
            "--output-prefix",
            "out",
            "--packing",
            "3",
            "--kmax",
            "1",
            "--json",
            "--out",
            "run",
        ],
    );
    assert_eq!(
        launch.status.code(),
        Some(1),
        "verification fails: 2 tasks failed"
    );
    let summary = json(&launch);
    assert_eq!(summary["failed_tasks"], 2, "{summary}");

    let status = json(&run(root, &["status", "run", "--json"]));
    assert_eq!(status["done"], 10, "{status}");
    assert_eq!(status["unsuccessful"]["failed"], 2, "{status}");
    assert_eq!(status["complete"], false);

    std::fs::remove_file(&marker).unwrap();
    std::fs::write(root.join("count"), "").unwrap();
    let resumed = run(root, &["resume", "run", "--json"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let r = json(&resumed);
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["ran"], 2, "only the two failed tasks run again: {r}");
    assert_eq!(r["status"]["complete"], true, "{r}");
    let again = std::fs::read_to_string(root.join("count")).unwrap();
    let mut keys: Vec<&str> = again.lines().filter(|l| !l.is_empty()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["f03.txt", "f07.txt"], "the failed tasks, once each");
    for i in 0..12 {
        let out = std::fs::read_to_string(root.join(format!("out/f{i:02}.txt"))).unwrap();
        assert_eq!(out, format!("V{i}\n"));
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(root.join("run/run.json")).unwrap()).unwrap();
    assert_eq!(report["run"]["verified"], true);
    assert_eq!(report["attempts"][1]["tasks"], 2);
    let md = std::fs::read_to_string(root.join("run/report.md")).unwrap();
    assert!(md.contains("## Attempts"), "{md}");

    // Nothing left: a second resume runs nothing.
    let r = json(&run(root, &["resume", "run", "--json"]));
    assert_eq!(r["ran"], 0, "{r}");
    assert_eq!(r["attempt"], Value::Null);
}

#[test]
fn a_sigkilled_launch_of_400_tasks_keeps_every_returned_batch_and_resume_runs_only_the_rest() {
    const C: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let args: String = (0..C).map(|i| format!("[\"{i}\"]\n")).collect();
    std::fs::write(root.join("args.jsonl"), args).unwrap();
    // Each run of a task appends its id to `count`; only in the run proper (once launch.json
    // exists), since a local launch first profiles a few of the job's own tasks.
    script(
        &root.join("tiny.sh"),
        &format!(
            "#!/bin/sh\n[ -e {run}/launch.json ] && echo \"$1\" >> {count}\necho \"done $3\" > \"$2\"\n",
            run = root.join("run").display(),
            count = root.join("count").display()
        ),
    );
    let exec = format!("{} {{id}} {{output}}", root.join("tiny.sh").display());
    // 100 batches of 4 on aws-2021, whose scaling rule starts an instance every ~47 ms: the
    // batches return one by one over a few seconds.
    let mut child = orchestrator(root)
        .args(["launch", "--exec", &exec, "--map-args", "args.jsonl"])
        .args(["--output-prefix", "out", "--packing", "4", "--kmax", "1"])
        .args(["--platform", "aws-2021", "--json", "--out", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = root.join("run/journal.jsonl");
    let results = |text: &str| {
        text.lines()
            .filter(|l| l.contains("\"kind\":\"result\""))
            .count()
    };
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"attempt\":1") && results(&text) >= 50 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no batch returned");
        assert!(
            child.try_wait().unwrap().is_none(),
            "launch ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no chance to flush anything more.
    child.kill().unwrap();
    child.wait().unwrap();

    // The tasks whose results were journalled before the kill.
    let journalled = propack_tests::journal_successes(&root.join("run"));
    assert!(journalled.values().all(|&n| n == 1), "{journalled:?}");
    let returned = journalled.len();
    let status = json(&run(root, &["status", "run", "--json"]));
    assert_eq!(
        status["done"].as_u64().unwrap() as usize,
        returned,
        "every journalled success counts as done: {status}"
    );
    assert!(
        (200..C).contains(&returned),
        "the kill came after 50 batches and before the end: {status}"
    );
    assert_eq!(status["complete"], false);

    let resumed = run(root, &["resume", "run", "--json"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let r = json(&resumed);
    assert_eq!(r["ran"].as_u64().unwrap() as usize, C - returned, "{r}");
    assert_eq!(r["status"]["complete"], true, "{r}");
    assert_eq!(r["status"]["done"], C, "{r}");
    let ids: Vec<String> = (0..C).map(|i| format!("task-{i:04}")).collect();
    propack_tests::assert_each_succeeded_once(&root.join("run"), &ids);
    // Per-task run counts: a task journalled before the kill never ran again; any other ran
    // once in the resume, after at most one start in a batch the kill cut off.
    let counts = propack_tests::line_counts(&root.join("count"));
    let mut rerun = 0;
    for (i, id) in ids.iter().enumerate() {
        let n = counts.get(id).copied().unwrap_or(0);
        if journalled.contains_key(id) {
            assert_eq!(n, 1, "{id} was journalled before the kill: {counts:?}");
        } else {
            assert!((1..=2).contains(&n), "{id} ran {n} times: {counts:?}");
            rerun += n - 1;
        }
        let out = std::fs::read_to_string(root.join(format!("out/{id}"))).unwrap();
        assert_eq!(out, format!("done {i}\n"));
    }
    eprintln!(
        "400 tasks: {returned} journalled before the SIGKILL (run once), {} run by resume, \
         {rerun} of those had started in a batch the kill cut off",
        C - returned
    );
}

/// The first Ctrl-C stops starting invocations, lets the ones in flight finish into the
/// journal, and ends with the `resume` command; `resume` then runs exactly the rest.
#[test]
fn ctrl_c_drains_in_flight_batches_and_resume_runs_the_rest_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    for i in 0..12 {
        std::fs::write(root.join(format!("in/{i:02}")), format!("{i}\n")).unwrap();
    }
    // Two instances at a time, so most invocations are still waiting when Ctrl-C comes.
    let mut platform = propack_orchestrator::platform::PlatformProfile::unlimited();
    platform.name = "two-at-a-time".into();
    platform.account_concurrency_limit = Some(2);
    std::fs::write(
        root.join("two.json"),
        serde_json::to_vec(&platform).unwrap(),
    )
    .unwrap();
    // Every start of the run is counted (profiling, before launch.json exists, is not).
    script(
        &root.join("slow.sh"),
        &format!(
            "#!/bin/sh\n[ -e {launch} ] && echo \"$PROPACK_TASK_ID\" >> {count}\nsleep 0.4\ncat \"$1\" > \"$2\"\n",
            launch = root.join("run/launch.json").display(),
            count = root.join("count").display()
        ),
    );
    let exec = format!("{} {{input}} {{output}}", root.join("slow.sh").display());
    let child = orchestrator(root)
        .args([
            "launch",
            "--exec",
            &exec,
            "--map",
            "in",
            "--output-prefix",
            "out",
            "--packing",
            "1",
            "--kmax",
            "1",
            "--platform",
            "two.json",
            "--json",
            "--out",
            "run",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let journal = root.join("run/journal.jsonl");
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"attempt\":1") && text.matches("\"kind\":\"result\"").count() >= 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no batch returned");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains("run the rest with: orchestrator resume /"),
        "{stderr}"
    );

    let before: usize = propack_tests::line_counts(&root.join("count"))
        .values()
        .sum();
    let status = json(&run(root, &["status", "run", "--json"]));
    assert_eq!(
        status["done"].as_u64().unwrap() as usize,
        before,
        "every started task finished into the journal: {status}"
    );
    assert!(before < 12, "the interrupt stopped the run: {status}");

    let resumed = run(root, &["resume", "run", "--json"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let r = json(&resumed);
    assert_eq!(r["ran"].as_u64().unwrap() as usize, 12 - before, "{r}");
    let runs = propack_tests::line_counts(&root.join("count"));
    assert_eq!(runs.len(), 12, "every task started: {runs:?}");
    assert!(
        runs.values().all(|&n| n == 1),
        "each task started once in all: {runs:?}"
    );
    for i in 0..12 {
        let out = std::fs::read_to_string(root.join(format!("out/{i:02}"))).unwrap();
        assert_eq!(out, format!("{i}\n"));
    }
}
