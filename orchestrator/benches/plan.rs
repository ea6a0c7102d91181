//! Benchmark of the planner: C = 100,000 tasks, k in 1..=1,000 (the target is under 50 ms).
//!
//! Uses the `sort` profile of the AWS 2021 artifact when it is present
//! (env `PROPACK_AWS_2021` or `../shared/propack-aws-2021`), a synthetic
//! profile of the same shape otherwise.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use propack_orchestrator::model::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun, WorkloadProfile,
};
use propack_orchestrator::model::{
    Metric, Model, ModelKind, Objective, PlanRequest, artifact, plan,
};
use propack_orchestrator::platform::PlatformProfile;

/// 47 ms per instance, 5,000 instances, k up to 40.
fn synthetic() -> AppProfile {
    let runs = [100u64, 1000, 5000]
        .iter()
        .map(|&c| ScalingRun {
            concurrency: c,
            scale_time_s: Some(0.047 * c as f64),
            service_time_s: Some(0.047 * c as f64 + 3.0),
            instances: (0..c)
                .map(|i| InstanceSample {
                    start_s: 0.047 * i as f64,
                    duration_s: 0.7 + 0.3 * ((i % 7) as f64 / 7.0),
                })
                .collect(),
        })
        .collect();
    let v = PROFILE_SCHEMA_VERSION;
    AppProfile {
        schema_version: v,
        app: "synthetic".into(),
        scaling: ScalingProfile {
            schema_version: v,
            app: "synthetic".into(),
            platform: "aws-2021".into(),
            runs,
        },
        packing: PackingProfile {
            schema_version: v,
            app: "synthetic".into(),
            memory_mb: 10_240,
            vcpus: 6,
            samples: [1u64, 2, 4, 8, 16, 40]
                .iter()
                .map(|&k| PackingSample {
                    k,
                    seconds: vec![1.4 + 0.6 * (k - 1) as f64],
                    cpu_seconds: Vec::new(),
                })
                .collect(),
        },
        memory_curves: Vec::new(),
        workload: WorkloadProfile {
            schema_version: v,
            name: "synthetic".into(),
            tasks: 100_000,
            memory_mb_per_task: 8.0,
            tmp_mb_per_task: 0.0,
            payload_bytes_per_task: 200,
        },
    }
}

fn profile() -> AppProfile {
    let dir = std::env::var_os("PROPACK_AWS_2021")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/propack-aws-2021")
        });
    match artifact::import(&dir, "sort") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("using a synthetic profile ({e})");
            synthetic()
        }
    }
}

fn bench(c: &mut Criterion) {
    let model =
        Model::new(&profile(), PlatformProfile::aws_2021(), ModelKind::Propack).expect("model");
    let req = PlanRequest {
        tasks: 100_000,
        objective: Objective::Both {
            w_cost: 0.55,
            w_time: 0.45,
        },
        metric: Metric::Total,
        kmax: 1_000,
        memory_mb_per_task: 8.0,
        tmp_mb_per_task: 0.0,
        payload_bytes_per_task: 200,
        // The memory search multiplies the work by its 25 sizes; this bench times k.
        memory_mb: Some(10_240),
    };
    let p = plan(&model, &req).expect("plan");
    eprintln!(
        "C = 100,000, kmax = 1,000: k = {} ({} points)",
        p.k,
        p.curve.len()
    );
    c.bench_function("plan C=100000 kmax=1000", |b| {
        b.iter(|| plan(black_box(&model), black_box(&req)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
