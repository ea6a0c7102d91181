//! Fault injection on the local platform: an instance SIGKILLed mid-batch makes the
//! definition's Map Retry re-run that batch, and no task is lost or duplicated.

mod launch_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use propack_orchestrator::backend::local::LocalBackend;
use propack_orchestrator::backend::{Backend, Job, NoProgress};
use propack_orchestrator::platform::PlatformProfile;
use propack_runtime::{BuiltinSpec, Task, TaskAction, TaskStatus};
use propack_step_functions::{DefinitionOptions, ModeRequest, build_definition};
use serde_json::json;

fn sleep_task(i: usize, ms: u64) -> Task {
    Task {
        id: format!("t{i}"),
        action: TaskAction::Builtin(BuiltinSpec {
            name: "sleep".into(),
            params: json!({"ms": ms}),
        }),
        timeout_ms: None,
        inputs: Default::default(),
        outputs: Default::default(),
    }
}

#[test]
fn a_killed_instance_is_retried_without_losing_or_duplicating_tasks() {
    let (_, bootstrap) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (6, 3);
    let tasks: Vec<Task> = (0..c).map(|i| sleep_task(i, 800)).collect();
    let mut opts = DefinitionOptions::new(c as u64, k as u64);
    opts.mode = ModeRequest::Distributed;
    let built = build_definition(&opts).unwrap();
    let job = Job {
        run_id: "kill-test".into(),
        tasks: tasks.clone(),
        k,
        definition: built,
        run_dir: dir.path().to_owned(),
        platform: PlatformProfile::unlimited(),
        stop: Default::default(),
    };
    let mut backend = LocalBackend::new(bootstrap);
    let handle = backend.platform_handle();

    // SIGKILL the first instance seen busy, 300 ms into its batch of 800 ms sleeps.
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut first_busy: Option<(u32, Instant)> = None;
        while Instant::now() < deadline {
            if let Some(p) = handle.get() {
                let busy = p.instances().into_iter().find(|i| i.busy && i.pid != 0);
                match (first_busy, busy) {
                    (None, Some(i)) => first_busy = Some((i.pid, Instant::now())),
                    (Some((pid, since)), _) if since.elapsed() >= Duration::from_millis(300) => {
                        let st = std::process::Command::new("kill")
                            .args(["-9", &pid.to_string()])
                            .status()
                            .unwrap();
                        assert!(st.success());
                        return pid;
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no instance became busy");
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(backend.run(&job, &NoProgress)).unwrap();
    killer.join().unwrap();

    // The killed attempt failed and the same batch succeeded on a retry.
    let failed: Vec<_> = outcome.records.instances.iter().filter(|i| !i.ok).collect();
    assert_eq!(failed.len(), 1, "{:#?}", outcome.records.instances);
    let killed_batch = failed[0].batch;
    assert_eq!(failed[0].attempt, 0);
    let retried: Vec<_> = outcome
        .records
        .instances
        .iter()
        .filter(|i| i.batch == killed_batch && i.ok)
        .collect();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempt, 1);
    assert_ne!(
        retried[0].instance_id, failed[0].instance_id,
        "a killed instance is never reused"
    );

    // Every task exactly once in the collected results, all succeeded.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &outcome.results {
        for t in &r.tasks {
            assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
            *seen.entry(t.id.clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), c, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert!(
        outcome
            .records
            .tasks
            .iter()
            .all(|t| t.status == TaskStatus::Succeeded)
    );

    // ResultWriter recorded both batches as succeeded child executions.
    let results_dir = dir
        .path()
        .join("storage/propack-local/propack/runs/kill-test/results");
    let run = std::fs::read_dir(&results_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    let ok: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("SUCCEEDED_0.json")).unwrap()).unwrap();
    assert_eq!(ok.len(), c / k);
}
