//! `orchestrator launch --exec ... --map ...`: the user's own script, packed, on the local platform.

mod launch_support;

use std::path::Path;

use serde_json::Value;

/// A script that upper-cases its input into its output and says where it ran.
const UPPER: &str = "#!/bin/sh\nset -e\ntr a-z A-Z < \"$1\" > \"$2\"\necho \"task=$PROPACK_TASK_ID root=$LAMBDA_TASK_ROOT\" >> \"$2\"\n";

fn orchestrator(args: &[&str], cwd: &Path) -> std::process::Output {
    launch_support::orchestrator_in(cwd)
        .args(args)
        .output()
        .expect("running orchestrator")
}

#[test]
fn a_script_in_the_function_dir_maps_over_200_files_packed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let func = root.join("fn");
    std::fs::create_dir_all(func.join("bin")).unwrap();
    let script = func.join("bin/upper.sh");
    std::fs::write(&script, UPPER).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for i in 0..200 {
        let sub = root.join("in").join(format!("part{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i:03}.txt")), format!("hello {i}\n")).unwrap();
    }
    let out = orchestrator(
        &[
            "launch",
            "--function-dir",
            "fn",
            "--exec",
            "bin/upper.sh {input} {output}",
            "--map",
            "in",
            "--output-prefix",
            "out",
            "--kmax",
            "8",
            "--json",
            "--out",
            "run",
        ],
        root,
    );
    assert!(
        out.status.success(),
        "launch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["workload"], "map", "{summary}");
    assert_eq!(summary["tasks"], 200);
    let k = summary["k"].as_u64().unwrap();
    assert!(
        summary["k_source"].as_str().unwrap().contains("profile"),
        "k was planned: {summary}"
    );
    assert!((1..=8).contains(&k), "{summary}");
    assert_eq!(summary["verified"], true, "{summary}");
    let abs_root = std::fs::canonicalize(&func).unwrap();
    // Every output is there, by content: the upper-cased input and the task's own environment.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let path = root
            .join("out")
            .join(format!("part{}", i % 3))
            .join(format!("f{i:03}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(format!("HELLO {i}").as_str()));
        let env = lines.next().unwrap();
        let id = env
            .strip_prefix("task=")
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(seen.insert(id.to_owned()), "task ids are distinct: {id}");
        let task_root = env.split("root=").nth(1).unwrap();
        assert_eq!(
            std::fs::canonicalize(task_root).unwrap(),
            abs_root,
            "LAMBDA_TASK_ROOT is the function dir"
        );
    }
    assert_eq!(seen.len(), 200);
}

#[test]
fn bad_map_requests_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("in")).unwrap();
    std::fs::write(root.join("in/a.txt"), "a").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--exec", "tool {inptu}", "--map", "in"],
            "unknown placeholder {inptu}",
        ),
        (&["--exec", "  ", "--map", "in"], "needs a program"),
        (&["--exec", "tool {input}", "--map", "empty"], "no objects"),
        (&["--exec", "tool {input}", "--map", "nowhere"], "nowhere"),
        (
            &[
                "--exec",
                "tool {input}",
                "--map",
                "in",
                "--function-dir",
                "nowhere",
            ],
            "not a directory",
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
