//! The simulator against the AWS 2021 measurements: the artifact's own measure of service time,
//! replayed on the simulated `aws-2021` platform, is within 15 % median error per app.

use propack_orchestrator::evaluate::{calibration_check, load_artifact};
use propack_orchestrator::platform::PlatformProfile;

#[test]
fn simulated_propack_runs_match_the_measurements() {
    let Some(dir) = propack_tests::propack_aws_2021() else {
        return;
    };
    let workloads = load_artifact(&dir, &[]).expect("the artifact loads");
    assert!(!workloads.is_empty());
    let platform = PlatformProfile::aws_2021();
    for w in &workloads {
        assert!(
            !w.runs.is_empty(),
            "{}: no propack_performance runs",
            w.workload.app
        );
        // k = 1 runs are dominated by the deterministic arrival schedule and are
        // the expensive ones (up to 5,000 instances): one seed. A packed run's
        // service time hangs on one instance's duration draw: the median of 5 seeds.
        let (unpacked, packed): (Vec<_>, Vec<_>) = w.runs.iter().cloned().partition(|r| r.k == 1);
        let u = calibration_check(&w.workload, &unpacked, &platform, 1);
        let mut c = calibration_check(&w.workload, &packed, &platform, 5);
        c.unpacked_n = u.unpacked_n;
        c.unpacked_median_pct = u.unpacked_median_pct;
        c.points.extend(u.points);
        eprintln!(
            "{}: slope factor {:.2} ({} runs); k=1 {} runs median err {:.1}%; packed {} runs median err {:.1}% (held out {:.1}%)",
            c.app,
            c.calibration.slope_factor,
            c.calibration.fitted_runs,
            c.unpacked_n,
            c.unpacked_median_pct,
            c.packed_n,
            c.packed_median_pct,
            c.packed_heldout_median_pct
        );
        if std::env::var_os("SIM_CALIBRATION_POINTS").is_some() {
            for p in &c.points {
                eprintln!(
                    "  {} {} C={} k={} measured {:.1} sim {:.1} err {:.1}%",
                    p.objective, p.metric, p.tasks, p.k, p.measured_s, p.simulated_s, p.abs_err_pct
                );
            }
        }
        assert!(
            c.unpacked_median_pct <= 15.0,
            "{}: k = 1 median error {:.1}%",
            c.app,
            c.unpacked_median_pct
        );
        assert!(
            c.packed_median_pct <= 15.0,
            "{}: packed median error {:.1}%",
            c.app,
            c.packed_median_pct
        );
        assert!(
            c.packed_heldout_median_pct <= 15.0,
            "{}: held-out packed median error {:.1}%",
            c.app,
            c.packed_heldout_median_pct
        );
    }
}
