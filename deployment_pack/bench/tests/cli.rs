//! End-to-end tests of the `propack-bench` executable: workloads over file:// URIs, exit codes, and a tiny bench.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_propack-bench"))
        .args(args)
        .output()
        .expect("propack-bench runs")
}

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    o
}

#[track_caller]
fn fails(o: Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "expected {needle:?} in: {}",
        stderr(&o)
    );
}

#[test]
fn sort_both_formats_sorted_permutation() {
    let d = tempfile::tempdir().unwrap();
    for format in ["text", "terasort"] {
        let (i, o) = (
            d.path().join(format!("{format}.in")),
            d.path().join(format!("{format}.out")),
        );
        ok(bench(&[
            "gen",
            "sort",
            "--output",
            &uri(&i),
            "--seed",
            "3",
            "--size",
            "50kB",
            "--format",
            format,
        ]));
        let params = json!({"format": format}).to_string();
        let out = ok(bench(&[
            "sort",
            "--input",
            &uri(&i),
            "--output",
            &uri(&o),
            "--params",
            &params,
        ]));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["format"], format);
        let (input, output) = (std::fs::read(&i).unwrap(), std::fs::read(&o).unwrap());
        propack_workloads::verify("sort", &json!({"format": format}), Some(&input), &output)
            .unwrap();
        ok(bench(&[
            "verify",
            "sort",
            "--input",
            &uri(&i),
            "--output",
            &uri(&o),
            "--params",
            &params,
        ]));
        // The unsorted input does not pass as an output.
        fails(
            bench(&[
                "verify",
                "sort",
                "--input",
                &uri(&i),
                "--output",
                &uri(&i),
                "--params",
                &params,
            ]),
            1,
            "verification failed",
        );
    }
}

#[test]
fn statelesscost_is_300_square_and_deterministic() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("params.json");
    ok(bench(&[
        "gen",
        "statelesscost",
        "--output",
        &uri(&p),
        "--seed",
        "7",
        "--size",
        "256x256",
    ]));
    let (a, b) = (d.path().join("a.jpg"), d.path().join("b.jpg"));
    ok(bench(&[
        "statelesscost",
        "--input",
        &uri(&p),
        "--output",
        &uri(&a),
    ]));
    ok(bench(&[
        "statelesscost",
        "--output",
        &uri(&b),
        "--params",
        r#"{"seed":7,"width":256,"height":256}"#,
    ]));
    let (ab, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ab, bb);
    let img = image::load_from_memory(&ab).unwrap();
    assert_eq!((img.width(), img.height()), (300, 300));
    ok(bench(&["verify", "statelesscost", "--output", &uri(&a)]));
}

#[test]
fn video_one_line_per_frame() {
    let d = tempfile::tempdir().unwrap();
    let (i, o) = (d.path().join("c.y4m"), d.path().join("c.jsonl"));
    ok(bench(&[
        "gen",
        "video",
        "--output",
        &uri(&i),
        "--seed",
        "1",
        "--size",
        "64x48x5",
    ]));
    let header = std::fs::read(&i).unwrap();
    assert!(header.starts_with(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg XFRAMES=5\n"));
    ok(bench(&["video", "--input", &uri(&i), "--output", &uri(&o)]));
    let text = std::fs::read_to_string(&o).unwrap();
    assert_eq!(text.lines().count(), 5);
    ok(bench(&[
        "verify",
        "video",
        "--input",
        &uri(&i),
        "--output",
        &uri(&o),
    ]));
}

#[test]
fn plain_paths_are_relative_to_the_working_directory() {
    // As an exec task in a packed batch: the runtime stages `input` in the
    // scratch directory, runs the program there, and uploads `output`.
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_propack-bench"))
            .args(args)
            .current_dir(d.path())
            .output()
            .unwrap()
    };
    ok(run(&[
        "gen", "sort", "--output", "input", "--seed", "2", "--size", "10kB",
    ]));
    ok(run(&["sort", "--input", "input", "--output", "output"]));
    ok(run(&[
        "verify", "sort", "--input", "input", "--output", "output",
    ]));
    assert!(d.path().join("output").is_file());
}

#[test]
fn generators_are_deterministic_across_processes() {
    let d = tempfile::tempdir().unwrap();
    for (wl, size) in [
        ("sort", "20kB"),
        ("video", "32x32x2"),
        ("statelesscost", "200x200"),
    ] {
        let (a, b) = (
            d.path().join(format!("{wl}.a")),
            d.path().join(format!("{wl}.b")),
        );
        ok(bench(&[
            "gen",
            wl,
            "--output",
            &uri(&a),
            "--seed",
            "11",
            "--size",
            size,
        ]));
        ok(bench(&[
            "gen",
            wl,
            "--output",
            &uri(&b),
            "--seed",
            "11",
            "--size",
            size,
        ]));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{wl}"
        );
    }
}

#[test]
fn failures_and_usage_errors_have_distinct_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let out = uri(&d.path().join("out"));
    let empty = d.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let bad_y4m = d.path().join("bad.y4m");
    std::fs::write(&bad_y4m, b"YUV4MPEG2 W64 Hxx\nFRAME\n").unwrap();

    // Task failures: exit 1 with a clear message.
    fails(
        bench(&[
            "statelesscost",
            "--output",
            &out,
            "--params",
            r#"{"seed":"abc"}"#,
        ]),
        1,
        "invalid type: string \"abc\"",
    );
    fails(
        bench(&["video", "--input", &uri(&bad_y4m), "--output", &out]),
        1,
        "corrupt y4m header",
    );
    fails(
        bench(&["sort", "--input", &uri(&empty), "--output", &out]),
        1,
        "input object is empty",
    );
    fails(
        bench(&["video", "--input", &uri(&empty), "--output", &out]),
        1,
        "input object is empty",
    );
    fails(
        bench(&[
            "sort",
            "--input",
            &uri(&d.path().join("missing")),
            "--output",
            &out,
        ]),
        1,
        "fetching input",
    );

    // Usage errors: exit 2.
    fails(
        bench(&[
            "sort",
            "--input",
            &uri(&empty),
            "--output",
            &out,
            "--params",
            "{",
        ]),
        2,
        "not valid JSON",
    );
    fails(bench(&["sort", "--output", &out]), 2, "needs --input");
    fails(bench(&["video", "--input", &uri(&empty)]), 2, "--output");
    fails(
        bench(&["gen", "sort", "--output", &out, "--seed", "x"]),
        2,
        "invalid value 'x'",
    );
    fails(
        bench(&[
            "gen",
            "sort",
            "--output",
            &out,
            "--seed",
            "1",
            "--size",
            "10 parsecs",
        ]),
        2,
        "bad size",
    );
    fails(
        bench(&["gen", "audio", "--output", &out, "--seed", "1"]),
        2,
        "unknown built-in workload \"audio\" (known: sort, statelesscost, video)",
    );
}

#[test]
fn tiny_bench_writes_a_packing_profile() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("profile-{app}.json");
    let out = ok(bench(&[
        "bench",
        "--json",
        "--max-k",
        "2",
        "--workloads",
        "sort,video",
        "--size",
        "sort=20kB",
        "--size",
        "video=32x32x3",
        "--profile-out",
        profile.to_str().unwrap(),
        "--work-dir",
        d.path().join("work").to_str().unwrap(),
    ]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        // The peak comes from the child's own VmHWM report, not the inflated ru_maxrss.
        let name = c["case"].as_str().unwrap();
        let hwm: u64 =
            std::fs::read_to_string(d.path().join("work").join(name).join("single-peak-rss-kb"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        assert!(hwm > 0);
        assert_eq!(c["single"]["max_rss_kb"].as_u64(), Some(hwm), "{c}");
        assert_eq!(c["packing"].as_array().unwrap().len(), 2, "{c}");
    }
    let p: Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("profile-video.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(p["schema_version"], 1);
    assert_eq!(p["app"], "video");
    let samples = p["samples"].as_array().unwrap();
    assert_eq!(
        samples
            .iter()
            .map(|s| s["k"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(
        samples
            .iter()
            .all(|s| s["seconds"][0].as_f64().unwrap() > 0.0)
    );
    // Several cases need {app} in the path; that is a usage error.
    fails(
        bench(&[
            "bench",
            "--no-single",
            "--max-k",
            "1",
            "--profile-out",
            "/tmp/x.json",
        ]),
        2,
        "must contain {app}",
    );
}
