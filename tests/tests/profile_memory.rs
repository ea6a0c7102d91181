//! Packing measured per memory on the local platform: `profile packing --memory` writes one
//! curve per memory, and an instance of M MB runs on the ⌈vCPUs at M⌉ host CPUs it buys.

mod launch_support;

use bytes::Bytes;
use propack_orchestrator::backend::local::lambda::{
    AtLimit, FunctionConfig, InvokeStatus, LambdaPlatform,
};
use propack_orchestrator::model::profile::PackingFile;
use propack_orchestrator::platform::PlatformProfile;
use serde_json::{Value, json};

/// The CPUs an instance of `mb` MB may use on this host: Lambda's vCPUs, whole, at most
/// those this process may use.
fn expected_cpus(mb: u32) -> usize {
    let v = PlatformProfile::aws_today().cpus_at(mb).ceil() as usize;
    v.min(propack_orchestrator::backend::local::affinity::allowed_cpus().len())
}

#[test]
fn profile_packing_measures_one_curve_per_memory_on_the_cpus_each_buys() {
    let dir = tempfile::tempdir().unwrap();
    let out = launch_support::orchestrator_in(dir.path())
        .args([
            "profile",
            "packing",
            "--memory",
            "1769,3538",
            "--degrees",
            "1,2",
            "--builtin",
            "spin",
            "--params",
            r#"{"ms":200}"#,
            "--out",
            "prof",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let rows: Vec<(u64, u64, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["memory_mb"].as_u64().unwrap(),
                r["vcpus"].as_u64().unwrap(),
                r["k"].as_u64().unwrap(),
            )
        })
        .collect();
    let (one, two) = (expected_cpus(1_769) as u64, expected_cpus(3_538) as u64);
    assert_eq!(one, 1);
    assert_eq!(
        rows,
        vec![
            (1_769, one, 1),
            (1_769, one, 2),
            (3_538, two, 1),
            (3_538, two, 2)
        ]
    );

    // aws-today's 10,240 MB was not measured: the largest memory is the main curve.
    let file: PackingFile =
        serde_json::from_slice(&std::fs::read(dir.path().join("prof/spin.packing.json")).unwrap())
            .unwrap();
    assert_eq!(
        (file.packing.memory_mb, file.packing.vcpus as u64),
        (3_538, two)
    );
    assert_eq!(file.memory_curves.len(), 1);
    let low = &file.memory_curves[0];
    // vCPUs are what the instance's runtime saw (its sched_getaffinity): one CPU at 1,769 MB.
    assert_eq!((low.memory_mb, low.vcpus), (1_769, 1));
    for c in [&file.packing, low] {
        let ks: Vec<u64> = c.samples.iter().map(|s| s.k).collect();
        assert_eq!(ks, vec![1, 2], "{c:?}");
        assert!(
            c.samples
                .iter()
                .all(|s| s.seconds.len() == 1 && s.seconds[0] > 0.0)
        );
    }
}

/// What a task process itself sees: `Cpus_allowed_list` of /proc/self/status, counted.
fn task_cpus(result: &Value) -> usize {
    let t = &result["tasks"][0];
    assert_eq!(t["status"], "succeeded", "{result}");
    let line = t["stdout_tail"].as_str().unwrap().trim();
    let list = line.rsplit('\t').next().unwrap().trim();
    list.split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_process_inherits_the_cpus_its_memory_buys() {
    let (_, bootstrap) = launch_support::binaries();
    let batch = json!({"run_id": "r", "tasks": [
        {"id": "cpus", "exec": {"program": "grep", "args": ["Cpus_allowed_list", "/proc/self/status"]}},
    ]});
    for mb in [1_769, 3_538, 10_240] {
        let profile = PlatformProfile::aws_today().at_memory(mb);
        let f = FunctionConfig::new("f", bootstrap, &profile);
        assert_eq!(f.memory_mb, mb);
        let platform = LambdaPlatform::new(profile, vec![f], 1);
        let r = platform
            .invoke("f", Bytes::from(batch.to_string()), AtLimit::Wait)
            .await
            .unwrap();
        platform.shutdown();
        let InvokeStatus::Ok(body) = r.status else {
            panic!("{mb} MB: invocation failed: {:?}", r.status)
        };
        let result: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(task_cpus(&result), expected_cpus(mb), "{mb} MB: {result}");
        // The runtime's own count (affinity, and a cgroup quota if any) is no larger.
        let seen = result["vcpus"].as_u64().unwrap() as usize;
        assert!(seen >= 1 && seen <= expected_cpus(mb), "{mb} MB: {seen}");
    }
}
