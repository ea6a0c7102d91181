//! One billing: a local run's measured records, priced by `billing::bill`, give exactly the
//! expense its report shows, and the prediction is broken down the same way.

mod launch_support;

use std::collections::BTreeMap;

use propack_orchestrator::billing::{self, Expense};
use propack_orchestrator::model::{Metric, Objective};
use propack_orchestrator::pipeline::{
    self, BackendSpec, JobSource, LaunchRequest, Packing, PlanSpec, Ui,
};
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::report::RunReport;
use propack_workloads::Workload;

fn launch(tasks: usize, k: usize) -> (RunReport, tempfile::TempDir) {
    let (_, bootstrap) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let req = LaunchRequest {
        source: JobSource::Benchmark {
            workload: Workload::Sort,
            size: Some("2kB".into()),
            tasks,
        },
        plan: PlanSpec {
            packing: Packing::Fixed(k),
            objective: Objective::Time,
            metric: Metric::Total,
            kmax: k,
            store: dir.path().join("plans.json"),
            replan: false,
            memory_mb: None,
        },
        platform: PlatformProfile::aws_today(),
        backend: BackendSpec::Local {
            bootstrap: bootstrap.clone(),
            seed: 1,
            env: BTreeMap::new(),
            managed: None,
        },
        baseline: false,
        run_dir: dir.path().join("run"),
        run_id: format!("billing-{tasks}-{k}"),
        seed: 1,
    };
    let report = pipeline::launch(&req, Ui::QUIET).unwrap();
    assert!(report.run.verified, "{:?}", report.run.errors);
    (report, dir)
}

/// Σ of the handler durations rounded up to 1 ms, plus init of cold starts (aws-today bills it).
fn compute_by_hand(report: &RunReport) -> f64 {
    let p = &report.platform;
    let seconds: f64 = report
        .run
        .records
        .instances
        .iter()
        .map(|i| {
            let init = if i.cold_start {
                i.init_ms / 1000.0
            } else {
                0.0
            };
            ((i.end_s - i.start_s + init) * 1000.0 - 1e-6).ceil() / 1000.0
        })
        .sum();
    seconds * p.prices.gb_second_x86_64 * f64::from(p.memory_mb) / 1024.0
}

#[test]
fn an_inline_run_is_billed_from_its_records_exactly_as_reported() {
    // 12 tasks at k = 4: 3 batches, an inline Map: the Map state and 3 Task states.
    let (report, _dir) = launch(12, 4);
    let run = &report.run;
    let bill = billing::bill(&run.records, &report.platform);
    assert_eq!(bill, run.measured.expense);
    assert_eq!(bill.total_usd(), run.measured.expense_usd);
    assert_eq!(run.records.orchestration.standard_transitions, 4);
    assert_eq!(run.records.orchestration.express_executions, 0);
    let p = &report.platform.prices;
    assert!((bill.orchestration_usd - 4.0 * p.state_transition).abs() < 1e-15);
    assert!((bill.requests_usd - 3.0 * p.request).abs() < 1e-15);
    assert!((bill.compute_usd - compute_by_hand(&report)).abs() < 1e-12);
    // The prediction prices the same orchestration (no retries happened).
    let predicted: Expense = run.predicted.expect("a local profile predicts").expense;
    assert!((predicted.orchestration_usd - bill.orchestration_usd).abs() < 1e-15);
    assert!((predicted.requests_usd - bill.requests_usd).abs() < 1e-15);
    assert!(predicted.compute_usd > 0.0);
}

#[test]
fn a_distributed_run_bills_child_starts_and_express_children() {
    // 45 tasks at k = 1: 45 batches > 40, a Distributed Map with EXPRESS children (a sort task
    // is planned at 3 s): one transition for the Map state and one per child started.
    let (report, _dir) = launch(45, 1);
    let run = &report.run;
    let usage = run.records.orchestration;
    assert_eq!(usage.standard_transitions, 46);
    assert_eq!(usage.express_executions, 45);
    // Each child ran at least its handler, rounded up to 100 ms.
    assert!(usage.express_billed_s >= 4.5 - 1e-9, "{usage:?}");
    let bill = billing::bill(&run.records, &report.platform);
    assert_eq!(bill, run.measured.expense);
    let p = &report.platform.prices;
    let express =
        45.0 * p.express_request + usage.express_billed_s * 64.0 / 1024.0 * p.express_gb_second;
    assert!(
        (bill.orchestration_usd - (46.0 * p.state_transition + express)).abs() < 1e-15,
        "{bill:?}"
    );
}
