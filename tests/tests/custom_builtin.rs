//! The example crate `propack-example-builtin` (a Rust `bootstrap` with the custom built-in
//! `wordcount`) runs packed on the local platform through `orchestrator launch`, a panicking
//! call fails only its own task, and `orchestrator package --prebuilt` ships it as `bootstrap`.

mod launch_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use propack_orchestrator::backend::aws::zip::list_zip;
use propack_orchestrator::report::RunReport;
use propack_runtime::TaskStatus;
use serde_json::{Value, json};

/// The example's binary from this workspace's debug build (built on first use).
fn example_bootstrap() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = propack_tests::workspace_root();
        let status = propack_tests::cargo_build(&["-p", "propack-example-builtin"])
            .status()
            .expect("running cargo build");
        assert!(
            status.success(),
            "cargo build -p propack-example-builtin failed"
        );
        root.join("target/debug/propack-example-builtin")
    })
}

/// Document i: i + 1 lines of "w{i} x{j}" words, so every count differs.
fn document(i: usize) -> String {
    (0..=i).map(|j| format!("w{i} x{j} end\n")).collect()
}

const TASKS: usize = 12;
/// In the third batch of 4: a local launch first profiles the job's first tasks (up to
/// `--kmax`, and a burst of up to the platform's 6 vCPUs), and refuses to plan from a
/// failing one, so the panicking task stays out of those.
const PANICKING: usize = 9;

#[test]
fn the_example_builtin_runs_packed_and_a_panic_fails_only_its_own_task() {
    let (orchestrator, _) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| {
            let input = root.join(format!("in/{i}.txt"));
            std::fs::write(&input, document(i)).unwrap();
            json!({
                "id": format!("wc-{i:02}"),
                "builtin": {"name": "wordcount", "params": {"panic": i == PANICKING}},
                "inputs": {"input": format!("file://{}", input.display())},
                "outputs": {"output": format!("file://{}/out/{i}.txt", root.display())},
            })
        })
        .collect();
    let file = root.join("tasks.json");
    std::fs::write(&file, serde_json::to_vec(&tasks).unwrap()).unwrap();
    let run_dir = root.join("run");
    let out = Command::new(orchestrator)
        .args(["launch", "--tasks-file"])
        .arg(&file)
        .args([
            "--packing",
            "4",
            "--kmax",
            "4",
            "--platform",
            "unlimited",
            "--json",
        ])
        .arg("--bootstrap")
        .arg(example_bootstrap())
        .arg("--out")
        .arg(&run_dir)
        .env("PROPACK_PLANS", root.join("plans.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One task failed, so verification fails (exit 1), but the run itself completed.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("verification failed (1 failed tasks"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("the --json summary");
    assert_eq!(summary["tasks"], TASKS);
    assert_eq!(summary["k"], 4);
    assert_eq!(summary["instances"], 3);
    assert_eq!(summary["verified"], false);

    let report: RunReport =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(report.run.k, 4);
    assert_eq!(report.run.failed_tasks, 1);
    assert_eq!(
        report.run.errors,
        [format!(
            "task wc-{PANICKING:02}: Failed: built-in \"wordcount\" panicked: wordcount task \
             wc-{PANICKING:02} was asked to panic"
        )]
    );
    let records = &report.run.records.tasks;
    assert_eq!(records.len(), TASKS);
    let panicking = records
        .iter()
        .find(|t| t.id == format!("wc-{PANICKING:02}"))
        .unwrap();
    assert_eq!(panicking.status, TaskStatus::Failed);
    // Its three batch neighbours (k = 4: tasks 8..12 share one instance) all succeeded.
    for t in records.iter().filter(|t| t.batch == panicking.batch) {
        if t.id != panicking.id {
            assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        }
    }
    assert_eq!(
        records
            .iter()
            .filter(|t| t.batch == panicking.batch)
            .count(),
        4
    );

    // Every other output is there with the counts of its own input.
    for i in 0..TASKS {
        let path = root.join(format!("out/{i}.txt"));
        if i == PANICKING {
            assert!(!path.exists(), "a failed task's output is not uploaded");
            continue;
        }
        let lines = i + 1;
        let expected = format!("{} {lines} {}\n", 3 * lines, document(i).len());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            expected,
            "task {i}"
        );
    }
}

#[test]
fn the_example_runs_a_batch_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("doc.txt");
    std::fs::write(&input, "one two three\nfour\n").unwrap();
    let batch = json!({"tasks": [
        {"id": "wc", "builtin": {"name": "wordcount"}, "inputs": {"input": format!("file://{}", input.display())}},
        {"id": "shipped", "builtin": {"name": "noop"}},
        {"id": "bad", "builtin": {"name": "wordcount", "params": {"colour": "red"}}},
    ]});
    let batch_file = dir.path().join("batch.json");
    std::fs::write(&batch_file, batch.to_string()).unwrap();
    let out = Command::new(example_bootstrap())
        .args(["run", "--compact", "--batch"])
        .arg(&batch_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one task fails");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["tasks"][0]["status"], "succeeded");
    assert_eq!(
        r["tasks"][0]["summary"],
        json!({"words": 4, "lines": 2, "bytes": 19})
    );
    assert_eq!(r["tasks"][1]["status"], "succeeded");
    assert_eq!(r["tasks"][2]["status"], "failed");
    let err = r["tasks"][2]["error"].as_str().unwrap();
    assert!(
        err.starts_with(
            "built-in \"wordcount\": params {\"colour\":\"red\"}: unknown field `colour`"
        ),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "propack-example-builtin: 1 of 3 tasks did not succeed"
    );
}

#[test]
fn package_prebuilt_ships_the_example_as_bootstrap() {
    let (orchestrator, _) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let out = Command::new(orchestrator)
        .args(["package", "--prebuilt"])
        .arg(example_bootstrap())
        .arg("--out-dir")
        .arg(dir.path())
        .args(["--arch", arch, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["kind"], "function");
    let zip = PathBuf::from(p["zip"].as_str().unwrap());
    let entries = list_zip(&std::fs::read(&zip).unwrap()).unwrap();
    let size = std::fs::metadata(example_bootstrap()).unwrap().len();
    let listing: Vec<(String, u32, u64)> = entries
        .into_iter()
        .map(|e| (e.name, e.mode, e.size))
        .collect();
    assert_eq!(listing, [("bootstrap".to_owned(), 0o755, size)]);
    assert_eq!(p["unzipped_bytes"], size);
}
