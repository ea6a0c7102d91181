//! `report.md` of a launch and of an evaluation, one short function per section.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::evaluate::{CalibrationSummary, EvalReport, EvalRow};
use crate::records::{Metrics, RunRecords, quantile};

use super::{MeasuredRun, RunReport, SERVICE_TIMES, pct_error};

// Writing to a `String` cannot fail, hence the `let _ =` on every `writeln!`.

/// A table's header line and its alignment line.
fn table_head(md: &mut String, head: &str, align: &str) {
    let _ = writeln!(md, "{head}\n{align}");
}

/// Mean of `v`, 0 when empty (not the −0 an empty float sum gives, which would show as "-0.00").
fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// A launch's `report.md`.
pub fn run_report(report: &RunReport) -> String {
    let mut md = String::new();
    run_overview(&mut md, report);
    metrics_table(&mut md, &report.metric_rows());
    expense_table(&mut md, &report.metric_rows());
    let r = &report.run;
    if let Some(p) = &r.predicted {
        prediction_error(&mut md, r.k, &r.measured, p);
    }
    if let Some(b) = &report.baseline
        && b.measured.total_s > 0.0
    {
        against_baseline(&mut md, &r.measured, &b.measured);
    }
    instance_notes(&mut md, &r.records);
    attempts(&mut md, &report.attempts);
    errors(&mut md, r);
    run_files(&mut md, report.baseline.is_some());
    md
}

/// How many tasks each attempt ran, once a run was resumed.
fn attempts(md: &mut String, attempts: &[crate::journal::AttemptSummary]) {
    if attempts.is_empty() {
        return;
    }
    md.push_str("\n## Attempts\n\n| attempt | run id | k | tasks run | succeeded | failed | never returned |\n|---|---|---|---|---|---|---|\n");
    for a in attempts {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            a.attempt, a.run_id, a.k, a.tasks, a.succeeded, a.failed, a.missing
        ));
    }
}

/// Title and the bullet list of what ran where, with which k.
fn run_overview(md: &mut String, report: &RunReport) {
    let r = &report.run;
    let size = report
        .size
        .as_ref()
        .map(|x| format!(" (size {x})"))
        .unwrap_or_default();
    let platform = &report.platform;
    let bullets = [
        format!(
            "workload: **{}**{size} — {} tasks",
            report.workload, report.tasks
        ),
        format!(
            "backend: {} on platform **{}** ({})",
            report.backend, platform.name, platform.description
        ),
        format!(
            "packing: **k = {}** ({}) → {} invocations on {} distinct instances",
            r.k, report.k_source, r.instances, r.distinct_instances
        ),
        format!(
            "objective: {} / metric: {}",
            report.objective, report.metric
        ),
        format!(
            "verified: **{}** ({} failed tasks)",
            r.verified, r.failed_tasks
        ),
    ];
    let _ = writeln!(md, "# ProPack run {}\n", r.run_id);
    for b in bullets {
        let _ = writeln!(md, "- {b}");
    }
    md.push('\n');
}

/// One line per (`predicted`/`measured`, k): the service times, then expense.
fn metrics_table(md: &mut String, rows: &[(&str, usize, Metrics)]) {
    md.push_str("| |");
    for (name, _) in SERVICE_TIMES {
        let _ = write!(md, " {name} (s) |");
    }
    md.push_str(" expense (USD) |\n|---|");
    md.push_str(&"---:|".repeat(SERVICE_TIMES.len() + 1));
    md.push('\n');
    for (what, k, m) in rows {
        let _ = write!(md, "| {what}, k = {k} |");
        for (_, f) in SERVICE_TIMES {
            let _ = write!(md, " {:.3} |", f(m));
        }
        let _ = writeln!(md, " {:.6} |", m.expense_usd);
    }
    md.push('\n');
}

/// The same rows' expense broken down, so predicted and measured bills compare line by line.
fn expense_table(md: &mut String, rows: &[(&str, usize, Metrics)]) {
    md.push_str(
        "| expense (USD) | compute | requests | orchestration | total |\n|---|---:|---:|---:|---:|\n",
    );
    for (what, k, m) in rows {
        let e = &m.expense;
        let _ = writeln!(
            md,
            "| {what}, k = {k} | {:.6} | {:.6} | {:.6} | {:.6} |",
            e.compute_usd, e.requests_usd, e.orchestration_usd, m.expense_usd
        );
    }
    md.push_str(
        "\nCompute is billed duration × memory; requests one per invocation; orchestration \
         the Step Functions transitions and EXPRESS child executions (none for direct invokes).\n\n",
    );
}

fn prediction_error(md: &mut String, k: usize, measured: &Metrics, predicted: &Metrics) {
    let _ = writeln!(
        md,
        "Prediction error (measured vs predicted, k = {k}): total {:+.1} %, tail {:+.1} %, median {:+.1} %, expense {:+.1} %.\n",
        pct_error(measured.total_s, predicted.total_s),
        pct_error(measured.tail_s, predicted.tail_s),
        pct_error(measured.median_s, predicted.median_s),
        pct_error(measured.expense_usd, predicted.expense_usd),
    );
}

/// The packed run against its k = 1 baseline (whose total is positive).
fn against_baseline(md: &mut String, packed: &Metrics, base: &Metrics) {
    let cheaper = if base.expense_usd > 0.0 {
        (1.0 - packed.expense_usd / base.expense_usd) * 100.0
    } else {
        0.0
    };
    let _ = writeln!(
        md,
        "Against k = 1: total service time {:.3} s vs {:.3} s ({:.2}×, {:.1} % faster); expense {:.6} vs {:.6} USD ({cheaper:.1} % cheaper).\n",
        packed.total_s,
        base.total_s,
        packed.total_s / base.total_s,
        (1.0 - packed.total_s / base.total_s) * 100.0,
        packed.expense_usd,
        base.expense_usd,
    );
}

/// Cold starts and retried attempts, when there were any.
fn instance_notes(md: &mut String, records: &RunRecords) {
    let cold: Vec<f64> = records
        .instances
        .iter()
        .filter_map(|i| i.cold_start.then_some(i.init_ms))
        .collect();
    if !cold.is_empty() {
        let _ = writeln!(
            md,
            "Cold starts: {} (median init {:.0} ms, p90 {:.0} ms); warm invocations: {}.\n",
            cold.len(),
            quantile(&cold, 0.5).unwrap_or(0.0),
            quantile(&cold, 0.9).unwrap_or(0.0),
            records.instances.len() - cold.len()
        );
    }
    let retried = records.instances.iter().filter(|i| i.attempt > 0).count();
    if retried > 0 {
        let _ = writeln!(md, "Retried attempts: {retried}.\n");
    }
}

fn errors(md: &mut String, run: &MeasuredRun) {
    if run.errors.is_empty() {
        return;
    }
    md.push_str("## Errors\n\n");
    for e in &run.errors {
        let _ = writeln!(md, "- {e}");
    }
    md.push('\n');
}

/// What the run directory holds.
fn run_files(md: &mut String, baseline: bool) {
    md.push_str("## Files\n\n");
    md.push_str(
        "- `run.json`: plan, predictions, measurements, per-task and per-instance records\n",
    );
    md.push_str(
        "- `instances.csv`: one line per invocation `[start_s, end_s]` (launch-relative)\n",
    );
    md.push_str("- `timeline.svg`: instance start/end timeline\n");
    md.push_str("- `predicted-vs-measured.svg`: service times, predicted vs measured\n");
    if baseline {
        md.push_str("- `baseline-instances.csv`, `baseline-timeline.svg`: the k = 1 run\n");
    }
    md.push_str("- `definition.asl.json`: the state machine that ran\n");
    md.push_str("- `logs/`: each instance's stdout/stderr\n");
}

/// An evaluation's `report.md`: summary, cases the Oracle wins by > 5 %, per-platform
/// differences, the simulator's calibration and every row.
pub fn evaluation(
    report: &EvalReport,
    calibration: &[CalibrationSummary],
    elapsed_s: f64,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# ProPack evaluation on the simulator\n");
    let _ = writeln!(
        md,
        "{} rows evaluated in {elapsed_s:.1} s. Regret: how much worse ProPack's k does than the \
         Oracle's (best simulated k, exhaustive over feasible k) — % of service time for `time`, \
         % of expense for `cost`, percentage points of the weighted normalised excess for `both`.\n",
        report.rows.len()
    );
    platform_summary(&mut md, report);
    regret_per_workload(&mut md, &report.rows);
    oracle_wins(&mut md, &report.rows);
    platform_differences(&mut md, report);
    calibration_table(&mut md, calibration);
    every_row(&mut md, &report.rows);
    md
}

/// Regrets, agreement with the Oracle and mean improvements (vs k = 1 at the same memory and
/// right-sized), per platform.
fn platform_summary(md: &mut String, report: &EvalReport) {
    let _ = writeln!(md, "## Summary\n");
    table_head(
        md,
        "| platform | time regret mean % | cost regret mean % | worst regret % | k = ProPack | mean time improvement % | mean cost improvement % | vs right-sized k = 1: time % | cost % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for (p, s) in &report.summary {
        let rows: Vec<&EvalRow> = report.rows.iter().filter(|r| &r.platform == p).collect();
        let agree = rows.iter().filter(|r| r.k_propack == r.k_oracle).count();
        let _ = writeln!(
            md,
            "| {p} | {:.2} | {:.2} | {:.2} | {agree}/{} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.time_regret_mean_pct,
            s.cost_regret_mean_pct,
            s.worst_regret_pct,
            rows.len(),
            s.time_improvement_pct,
            s.cost_improvement_pct,
            s.time_improvement_vs_right_sized_pct,
            s.cost_improvement_vs_right_sized_pct,
        );
    }
    let _ = writeln!(
        md,
        "\nImprovements are means of the `time` rows (time) and the `cost` rows (cost); \
         \"right-sized\" is k = 1 at the memory the planner finds best for it under the same objective.",
    );
}

fn regret_per_workload(md: &mut String, rows: &[EvalRow]) {
    let _ = writeln!(md, "\n### Mean regret per workload\n");
    table_head(
        md,
        "| platform | workload | time % | cost % | both (points) |",
        "|---|---|---:|---:|---:|",
    );
    let mut keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.platform.as_str(), r.workload.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for (p, w) in keys {
        let regret = |obj: &str| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.platform == p && r.workload == w && r.objective == obj)
                .map(|r| r.regret_pct)
                .collect();
            mean(&v)
        };
        let _ = writeln!(
            md,
            "| {p} | {w} | {:.2} | {:.2} | {:.2} |",
            regret("time"),
            regret("cost"),
            regret("both")
        );
    }
}

/// The columns that name a case and both ks, shared by the tables of cases.
const CASE_HEAD: &str =
    "| platform | workload | C | objective | metric | k ProPack | k Oracle | regret % |";
const CASE_ALIGN: &str = "|---|---|---:|---|---|---:|---:|---:|";

/// A row's [`CASE_HEAD`] cells up to the regret (exclusive), ending in `|`.
fn case_cells(r: &EvalRow) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        r.platform, r.workload, r.tasks, r.objective, r.metric, r.k_propack, r.k_oracle
    )
}

fn oracle_wins(md: &mut String, rows: &[EvalRow]) {
    let _ = writeln!(md, "\n## Where the Oracle beats ProPack by more than 5 %\n");
    let bad: Vec<&EvalRow> = rows.iter().filter(|r| r.regret_pct > 5.0).collect();
    if bad.is_empty() {
        let _ = writeln!(md, "None.");
        return;
    }
    table_head(md, CASE_HEAD, CASE_ALIGN);
    for r in bad {
        let _ = writeln!(md, "{} {:.1} |", case_cells(r), r.regret_pct);
    }
}

/// How ProPack's k on the first platform compares with each other platform's.
fn platform_differences(md: &mut String, report: &EvalReport) {
    let platforms: Vec<&str> = report.summary.keys().map(String::as_str).collect();
    let Some((a, others)) = platforms.split_first() else {
        return;
    };
    if others.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## How the platforms differ\n");
    for b in others {
        k_agreement(md, &report.rows, a, b);
        for p in [a, b] {
            time_total_ks(md, &report.rows, p);
        }
    }
}

/// In how many cases ProPack's k differs between platforms `a` and `b`, and the mean k on each.
fn k_agreement(md: &mut String, rows: &[EvalRow], a: &str, b: &str) {
    let key = |r: &EvalRow| {
        (
            r.workload.clone(),
            r.tasks,
            r.objective.clone(),
            r.metric.clone(),
        )
    };
    let bk: BTreeMap<_, u64> = rows
        .iter()
        .filter(|r| r.platform == b)
        .map(|r| (key(r), r.k_propack))
        .collect();
    let pairs: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r.platform == a)
        .filter_map(|r| bk.get(&key(r)).map(|kb| (r.k_propack, *kb)))
        .collect();
    let differ = pairs.iter().filter(|(x, y)| x != y).count();
    let mean_k = |f: fn(&(u64, u64)) -> u64| {
        let v: Vec<f64> = pairs.iter().map(|p| f(p) as f64).collect();
        mean(&v)
    };
    let _ = writeln!(
        md,
        "ProPack's k differs between {a} and {b} in {differ} of {} cases (mean k {:.1} on {a}, {:.1} on {b}).",
        pairs.len(),
        mean_k(|p| p.0),
        mean_k(|p| p.1),
    );
}

/// Platform `p`'s k and service-time change for objective time, metric total, case by case.
fn time_total_ks(md: &mut String, rows: &[EvalRow], p: &str) {
    let line: Vec<String> = rows
        .iter()
        .filter(|r| r.platform == p && r.objective == "time" && r.metric == "total")
        .map(|r| {
            format!(
                "{} C={}: k={} ({:+.0}%)",
                r.workload, r.tasks, r.k_propack, -r.improvement_time_pct
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\n- {p}, time/total, k and service-time change vs k = 1: {}",
        line.join("; ")
    );
}

fn calibration_table(md: &mut String, calibration: &[CalibrationSummary]) {
    if calibration.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Simulator calibration (aws-2021 vs `propack_performance`)\n"
    );
    let _ = writeln!(
        md,
        "Median |error| of the artifact's measure of service time (instance issue time + its handler duration, at the launch-order position of the metric).\n"
    );
    table_head(
        md,
        "| app | slope factor (fitted on time runs) | k = 1 runs | median err % | packed runs | median err % | held-out packed median err % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    );
    for c in calibration {
        let _ = writeln!(
            md,
            "| {} | {:.2} ({} runs) | {} | {:.1} | {} | {:.1} | {:.1} |",
            c.app,
            c.calibration.slope_factor,
            c.calibration.fitted_runs,
            c.unpacked_n,
            c.unpacked_median_pct,
            c.packed_n,
            c.packed_median_pct,
            c.packed_heldout_median_pct
        );
    }
}

/// `evaluate --uneven-sigma`: balanced vs manifest-order batches, simulated and predicted.
pub fn uneven(rows: &[crate::evaluate::UnevenRow]) -> String {
    let mut md = String::new();
    let sigma = rows.first().map_or(0.0, |r| r.sigma);
    let _ = writeln!(
        md,
        "# Uneven tasks (log-normal weights, σ = {sigma}): balanced batches vs manifest order\n"
    );
    table_head(
        &mut md,
        "| workload | platform | C | memory MB | k | manifest order total s | balanced total s | reduction % | predicted manifest s | predicted balanced s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} |",
            r.workload,
            r.platform,
            r.tasks,
            r.memory_mb,
            r.k,
            r.manifest_order_total_s,
            r.balanced_total_s,
            r.reduction_pct,
            r.predicted_manifest_order_total_s,
            r.predicted_balanced_total_s
        );
    }
    md
}

fn every_row(md: &mut String, rows: &[EvalRow]) {
    let _ = writeln!(md, "\n## Every row\n");
    table_head(
        md,
        &format!(
            "{CASE_HEAD} memory MB | time impr. % | cost impr. % | right-sized MB | vs right-sized time % | cost % | PyWren s | ProPack vs PyWren time % |"
        ),
        &format!("{CASE_ALIGN}---:|---:|---:|---:|---:|---:|---:|---:|---:|"),
    );
    for r in rows {
        let rs = &r.right_sized_k1;
        let _ = writeln!(
            md,
            "{} {:.2} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            case_cells(r),
            r.regret_pct,
            r.memory_mb,
            r.improvement_time_pct,
            r.improvement_cost_pct,
            rs.memory_mb,
            rs.time_improvement_pct,
            rs.cost_improvement_pct,
            r.pywren.service_s,
            r.pywren.propack_time_improvement_pct
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{BaselineRow, Calibration, PywrenRow, summarise};
    use crate::report::tests::sample_report;

    /// A row of workload `w`, objective `obj`, metric total, at C = 100.
    fn row(platform: &str, obj: &str, (k_p, k_o): (u64, u64), regret: f64, impr: f64) -> EvalRow {
        EvalRow {
            workload: "w".into(),
            platform: platform.into(),
            tasks: 100,
            objective: obj.into(),
            metric: "total".into(),
            k_propack: k_p,
            k_oracle: k_o,
            regret_pct: regret,
            improvement_time_pct: impr,
            improvement_cost_pct: impr / 2.0,
            memory_mb: 10_240,
            right_sized_k1: BaselineRow {
                memory_mb: 1_769,
                service_s: 4.0,
                expense_usd: 0.0,
                time_improvement_pct: impr / 4.0,
                cost_improvement_pct: -impr,
            },
            pywren: PywrenRow {
                service_s: 3.0,
                expense_usd: 0.0,
                propack_time_improvement_pct: 40.0,
                propack_cost_improvement_pct: 0.0,
            },
        }
    }

    fn report(rows: Vec<EvalRow>) -> EvalReport {
        EvalReport {
            summary: summarise(&rows),
            rows,
        }
    }

    /// Asserts that each of `expected` is a whole line of `md`.
    fn assert_lines(md: &str, expected: &[&str]) {
        for line in expected {
            assert!(md.lines().any(|l| l == *line), "no line {line:?} in\n{md}");
        }
    }

    #[test]
    fn evaluation_markdown_pins_every_section() {
        let report = report(vec![
            row("a", "time", (4, 4), 0.0, 50.0),
            row("a", "cost", (2, 8), 12.5, 20.0),
            row("b", "time", (8, 8), 0.0, 60.0),
            row("b", "cost", (2, 2), 1.0, 10.0),
        ]);
        let calibration = [CalibrationSummary {
            app: "w".into(),
            calibration: Calibration {
                k1_median_s: 1.0,
                slope_factor: 1.25,
                fitted_runs: 3,
            },
            unpacked_n: 2,
            unpacked_median_pct: 4.0,
            packed_n: 5,
            packed_median_pct: 6.3,
            packed_heldout_median_pct: 7.0,
            points: vec![],
        }];
        let md = evaluation(&report, &calibration, 1.5);
        assert!(
            md.contains("\n\n4 rows evaluated in 1.5 s. Regret:"),
            "{md}"
        );
        assert_lines(
            &md,
            &[
                // Summary: mean time improvement of the time rows, mean cost improvement (impr / 2) of the cost rows.
                // vs right-sized: time impr / 4 of the time rows, −impr of the cost rows.
                "| a | 0.00 | 12.50 | 12.50 | 1/2 | 50.0 | 10.0 | 12.5 | -20.0 |",
                "| b | 0.00 | 1.00 | 1.00 | 2/2 | 60.0 | 5.0 | 15.0 | -10.0 |",
                // No `both` rows: their mean regret is 0, not −0.
                "| a | w | 0.00 | 12.50 | 0.00 |",
                // The one regret above 5 %.
                "| a | w | 100 | cost | total | 2 | 8 | 12.5 |",
                // (4, 8) differ, (2, 2) agree.
                "ProPack's k differs between a and b in 1 of 2 cases (mean k 3.0 on a, 5.0 on b).",
                "- a, time/total, k and service-time change vs k = 1: w C=100: k=4 (-50%)",
                "- b, time/total, k and service-time change vs k = 1: w C=100: k=8 (-60%)",
                "| w | 1.25 (3 runs) | 2 | 4.0 | 5 | 6.3 | 7.0 |",
                "| a | w | 100 | cost | total | 2 | 8 | 12.50 | 10240 | 20.0 | 10.0 | 1769 | 5.0 | -20.0 | 3.0 | 40.0 |",
            ],
        );
        assert!(!md.contains("| b | w | 100 | cost | total | 2 | 2 | 1.0 |"));
        let sections: Vec<&str> = md.lines().filter(|x| x.starts_with('#')).collect();
        assert_eq!(
            sections,
            [
                "# ProPack evaluation on the simulator",
                "## Summary",
                "### Mean regret per workload",
                "## Where the Oracle beats ProPack by more than 5 %",
                "## How the platforms differ",
                "## Simulator calibration (aws-2021 vs `propack_performance`)",
                "## Every row",
            ]
        );
    }

    #[test]
    fn one_platform_and_no_regret_leave_sections_out() {
        let md = evaluation(&report(vec![row("a", "time", (4, 4), 0.0, 50.0)]), &[], 0.0);
        assert!(md.contains("## Where the Oracle beats ProPack by more than 5 %\n\nNone.\n"));
        assert!(!md.contains("## How the platforms differ"));
        assert!(!md.contains("## Simulator calibration"));
    }

    #[test]
    fn run_markdown_pins_its_table_and_comparisons() {
        let md = run_report(&sample_report(std::path::Path::new("/tmp/r")));
        assert!(md.starts_with("# ProPack run r-k2\n\n"));
        assert!(
            md.contains(
                "| | scale (s) | median (s) | tail (s) | total (s) | expense (USD) |\n\
             |---|---:|---:|---:|---:|---:|\n\
             | predicted, k = 2 | 0.000 | 0.000 | 0.000 | 1.800 | 0.000000 |\n\
             | measured, k = 2 | 0.100 | 1.000 | 2.000 | 2.000 | 0.001000 |\n\
             | predicted, k = 1 | 0.000 | 0.000 | 0.000 | 3.600 | 0.000000 |\n\
             | measured, k = 1 | 0.100 | 2.000 | 4.000 | 4.000 | 0.001000 |\n\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| expense (USD) | compute | requests | orchestration | total |\n\
             |---|---:|---:|---:|---:|\n\
             | predicted, k = 2 | 0.000000 | 0.000000 | 0.000000 | 0.000000 |\n\
             | measured, k = 2 | 0.000700 | 0.000100 | 0.000200 | 0.001000 |\n"
            ),
            "{md}"
        );
        assert_lines(
            &md,
            &[
                "- packing: **k = 2** (--packing 2) → 2 invocations on 2 distinct instances",
                // 2 / 1.8 − 1 = +11.1 %; a predicted 0 counts as no error.
                "Prediction error (measured vs predicted, k = 2): total +11.1 %, tail +0.0 %, median +0.0 %, expense +0.0 %.",
                "Against k = 1: total service time 2.000 s vs 4.000 s (0.50×, 50.0 % faster); expense 0.001000 vs 0.001000 USD (0.0 % cheaper).",
                "- `baseline-instances.csv`, `baseline-timeline.svg`: the k = 1 run",
            ],
        );
        assert!(!md.contains("## Errors"));
    }
}
