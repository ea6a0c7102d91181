//! `orchestrator plan` / `plans` end to end on a small generated profile, with the plan store in a temp dir.

use std::path::Path;
use std::process::{Command, Output};

use propack_orchestrator::model::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun, WorkloadProfile,
};

/// T0 = 2 s, 50 ms per instance, k = 1 tasks 1 s at scale, one warm instance 1.5 + 0.5 (k − 1) s:
/// the planner's hand-computed case (time picks k = 6 at C = 400, cost picks k = 16).
fn write_profile(path: &Path) {
    let v = PROFILE_SCHEMA_VERSION;
    let runs = [100u64, 400]
        .iter()
        .map(|&c| ScalingRun {
            concurrency: c,
            scale_time_s: Some(0.05 * c as f64),
            service_time_s: Some(0.05 * (c - 1) as f64 + 3.0),
            instances: (0..c)
                .map(|i| InstanceSample {
                    start_s: 0.05 * i as f64,
                    duration_s: 1.0,
                })
                .collect(),
        })
        .collect();
    AppProfile {
        schema_version: v,
        app: "syn".into(),
        scaling: ScalingProfile {
            schema_version: v,
            app: "syn".into(),
            platform: "aws-2021".into(),
            runs,
        },
        packing: PackingProfile {
            schema_version: v,
            app: "syn".into(),
            memory_mb: 10_240,
            vcpus: 6,
            samples: [1u64, 2, 4, 8, 16]
                .iter()
                .map(|&k| PackingSample {
                    k,
                    seconds: vec![1.5 + 0.5 * (k - 1) as f64],
                    cpu_seconds: Vec::new(),
                })
                .collect(),
        },
        memory_curves: Vec::new(),
        workload: WorkloadProfile {
            schema_version: v,
            name: "syn".into(),
            tasks: 400,
            memory_mb_per_task: 0.0,
            tmp_mb_per_task: 0.0,
            payload_bytes_per_task: 0,
        },
    }
    .save(path)
    .unwrap();
}

fn orchestrator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .env_remove("PROPACK_PLANS")
        .env_remove("PROPACK_HOME")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn plan_stores_reuses_refreshes_and_lists() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("syn.json");
    write_profile(&profile);
    let store = d.path().join("plans.json");
    let (p, s) = (profile.to_str().unwrap(), store.to_str().unwrap());
    let base = [
        "plan",
        "--profile",
        p,
        "--tasks",
        "400",
        "--metric",
        "total",
        "--store",
        s,
        // The measured memory: this test is about k and the store (memory is searched below).
        "--memory",
        "10240",
        "--json",
    ];

    let time = json(&orchestrator(
        &[&base[..], &["--objective", "time"]].concat(),
    ));
    assert_eq!(time["k"], 6);
    assert_eq!(time["memory_mb"], 10_240);
    assert_eq!(time["reused"], false);
    assert_eq!(time["curve"].as_array().unwrap().len(), 16);
    assert!(time["pareto"].as_array().unwrap().contains(&6.into()));
    let cost = json(&orchestrator(
        &[&base[..], &["--objective", "cost"]].concat(),
    ));
    assert_eq!(cost["k"], 16);

    // Same key: reused, even with another kmax; --refresh re-plans with it.
    let again = json(&orchestrator(
        &[&base[..], &["--objective", "time", "--kmax", "4"]].concat(),
    ));
    assert_eq!(
        (again["reused"].as_bool(), again["k"].as_u64()),
        (Some(true), Some(6))
    );
    let fresh = json(&orchestrator(
        &[
            &base[..],
            &["--objective", "time", "--kmax", "4", "--refresh"],
        ]
        .concat(),
    ));
    assert_eq!(
        (fresh["reused"].as_bool(), fresh["k"].as_u64()),
        (Some(false), Some(4))
    );

    let listed = json(&orchestrator(&["plans", "--store", s, "--json"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|p| p["key"]["objective"] == "cost" && p["k"] == 16)
    );

    // Text output names the choice and the baseline.
    let text = orchestrator(&[
        "plan",
        "--profile",
        p,
        "--tasks",
        "400",
        "--objective",
        "time",
        "--store",
        s,
        "--memory",
        "10240",
    ]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("k = 4") && out.contains("right-sized") && out.contains("reused"),
        "{out}"
    );
    // The profile's one curve was measured at 10,240 MB.
    assert!(
        out.contains("10240 MB  k = 4") && out.contains("curve measured"),
        "{out}"
    );

    // Memory searched: its own key, the chosen memory and both k = 1 baselines.
    let free = json(&orchestrator(&[
        "plan",
        "--profile",
        p,
        "--tasks",
        "400",
        "--objective",
        "cost",
        "--store",
        s,
        "--json",
    ]));
    assert_eq!(free["reused"], false);
    assert_eq!(free["memories"].as_array().unwrap().len(), 25);
    // One curve, measured at 10,240 MB: every other memory is derived from it.
    for m in free["memories"].as_array().unwrap() {
        let want = if m["memory_mb"] == 10_240 {
            "measured"
        } else {
            "derived"
        };
        assert_eq!(m["curve"], want, "{m}");
    }
    let chosen_source = if free["memory_mb"] == 10_240 {
        "measured"
    } else {
        "derived"
    };
    assert_eq!(free["curve_source"], chosen_source);
    let mem = free["memory_mb"].as_u64().unwrap();
    assert_eq!(free["baselines"]["same_memory_k1"]["memory_mb"], mem);
    let rs = &free["baselines"]["right_sized_k1"];
    assert_eq!(rs["prediction"]["k"], 1);
    assert!(rs["cost_improvement_pct"].is_number() && rs["time_improvement_pct"].is_number());
    // Cheaper than the pinned 10,240 MB plan of the same objective.
    assert!(
        free["prediction"]["expense_usd"].as_f64() < cost["prediction"]["expense_usd"].as_f64()
    );
}

#[test]
fn infeasible_and_bad_arguments_fail_with_the_right_codes() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("syn.json");
    write_profile(&profile);
    let store = d.path().join("plans.json");
    let (p, s) = (profile.to_str().unwrap(), store.to_str().unwrap());
    let o = orchestrator(&[
        "plan",
        "--profile",
        p,
        "--memory-mb-per-task",
        "20000",
        "--store",
        s,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no feasible packing degree") && err.contains("memory"),
        "{err}"
    );
    assert!(!store.exists(), "an infeasible plan must not be stored");
    let o = orchestrator(&["plan", "--profile", p, "--objective", "fastest"]);
    assert_eq!(o.status.code(), Some(2));
    let o = orchestrator(&["plan", "--profile", &format!("{p}.missing"), "--store", s]);
    assert_eq!(o.status.code(), Some(1));
}
