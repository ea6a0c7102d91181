//! `evaluate` on the AWS 2021 apps (a reduced grid, to stay fast in debug builds):
//! the JSON shape scripts rely on, the Oracle's optimality, and that aws-2021 and
//! aws-today give different answers.

use propack_orchestrator::evaluate::{
    EvalConfig, EvalReport, evaluate_app, load_artifact, pywren_calibration, summarise,
};
use propack_orchestrator::platform::PlatformProfile;

#[test]
fn reduced_grid_on_both_platforms() {
    let Some(dir) = propack_tests::propack_aws_2021() else {
        return;
    };
    let workloads =
        load_artifact(&dir, &["statelesscost".to_owned()]).expect("statelesscost loads");
    assert_eq!(workloads.len(), 1);
    let w = &workloads[0].workload;
    let pywren = pywren_calibration(&dir, Some(&w.profile)).expect("pywren data parses");
    assert!(pywren.measured);
    // PyWren issued 5,000 invocations in ~22 s in 2021, far faster than the 47 ms per instance of the artifact's client.
    assert!(
        pywren.rate_per_s > 100.0 && pywren.rate_per_s < 1000.0,
        "{pywren:?}"
    );
    let cfg = EvalConfig {
        tasks: vec![100, 2000],
        seeds: 2,
        ..EvalConfig::default()
    };
    let mut rows = Vec::new();
    for p in [PlatformProfile::aws_2021(), PlatformProfile::aws_today()] {
        rows.extend(evaluate_app(w, &p, &pywren, &cfg).expect("evaluates"));
    }
    assert_eq!(rows.len(), 2 * 2 * 3 * 3);
    for r in &rows {
        assert!(r.regret_pct >= -1e-9, "the Oracle is exhaustive: {r:?}");
    }
    // At C = 2000 on aws-2021 packing pays off a lot (the paper: ~80 %).
    let t = rows
        .iter()
        .find(|r| {
            r.platform == "aws-2021"
                && r.tasks == 2000
                && r.objective == "time"
                && r.metric == "total"
        })
        .expect("row exists");
    assert!(t.k_oracle > 1 && t.improvement_time_pct > 50.0, "{t:?}");
    // The two platforms disagree somewhere: aws-today starts 1,000 instances at once.
    let differ = rows
        .iter()
        .filter(|r| r.platform == "aws-2021")
        .filter(|a| {
            rows.iter().any(|b| {
                b.platform == "aws-today"
                    && (b.tasks, &b.objective, &b.metric) == (a.tasks, &a.objective, &a.metric)
                    && b.k_propack != a.k_propack
            })
        })
        .count();
    assert!(differ > 0);

    let report = EvalReport {
        summary: summarise(&rows),
        rows,
    };
    let json = serde_json::to_value(&report).expect("serialises");
    let row = &json["rows"][0];
    for key in [
        "workload",
        "platform",
        "tasks",
        "objective",
        "metric",
        "k_propack",
        "k_oracle",
        "regret_pct",
        "improvement_time_pct",
        "improvement_cost_pct",
        "pywren",
    ] {
        assert!(!row[key].is_null(), "row lacks {key}: {row}");
    }
    assert!(row["pywren"].is_object());
    for p in ["aws-2021", "aws-today"] {
        for key in [
            "time_regret_mean_pct",
            "cost_regret_mean_pct",
            "worst_regret_pct",
        ] {
            assert!(
                json["summary"][p][key].is_number(),
                "summary.{p}.{key} missing"
            );
        }
    }
}

#[test]
fn evaluation_is_reproducible() {
    let Some(dir) = propack_tests::propack_aws_2021() else {
        return;
    };
    let workloads = load_artifact(&dir, &["video".to_owned()]).expect("video loads");
    let w = &workloads[0].workload;
    let cfg = EvalConfig {
        tasks: vec![500],
        seeds: 2,
        ..EvalConfig::default()
    };
    let pw = Default::default();
    let a = evaluate_app(w, &PlatformProfile::aws_today(), &pw, &cfg).unwrap();
    let b = evaluate_app(w, &PlatformProfile::aws_today(), &pw, &cfg).unwrap();
    assert_eq!(a, b);
}
