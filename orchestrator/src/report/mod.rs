//! Reports: a launch's run directory and `--json` summary, and the rendering of runs and evaluations.
//!
//! The summary's keys are a scripting contract (see [`Summary`]); `run.json`
//! carries everything measured so a run can be re-analysed without re-running.
//! Rendering lives in the submodules: [`markdown`] (a run's and an evaluation's
//! `report.md`), [`plots`] (every SVG figure) over one SVG writer, [`svg`].

pub mod markdown;
pub mod platforms;
pub mod plots;
pub mod svg;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platform::PlatformProfile;
use crate::records::{Metrics, RunRecords};

/// Version of `run.json`.
pub const RUN_SCHEMA_VERSION: u32 = 1;

/// Reads one number out of [`Metrics`].
pub(crate) type Pick = fn(&Metrics) -> f64;

/// The service times of [`Metrics`] in the order reports show them (report.md's columns, the bar groups).
pub(crate) const SERVICE_TIMES: [(&str, Pick); 4] = [
    ("scale", |m| m.scale_s),
    ("median", |m| m.median_s),
    ("tail", |m| m.tail_s),
    ("total", |m| m.total_s),
];

/// One measured run (the packed run, or its k = 1 baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRun {
    /// Run id (the Step Functions execution name).
    pub run_id: String,
    /// Packing degree.
    pub k: usize,
    /// Invocations that ran a batch (⌈C/k⌉ plus retries).
    pub instances: usize,
    /// Distinct function instances (processes) used.
    pub distinct_instances: usize,
    /// Measured times and expense.
    pub measured: Metrics,
    /// Predicted times and expense for this k, if a model was available.
    pub predicted: Option<Metrics>,
    /// State transitions billed.
    pub state_transitions: u64,
    /// Whether every task succeeded and passed its benchmark's check.
    pub verified: bool,
    /// Tasks that did not succeed.
    pub failed_tasks: usize,
    /// The first few verification or task errors, for humans.
    pub errors: Vec<String>,
    /// Per-invocation and per-task records.
    pub records: RunRecords,
}

/// Everything `run.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`RUN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `local` or `aws`.
    pub backend: String,
    /// The platform profile the run used.
    pub platform: PlatformProfile,
    /// Benchmark name, or `tasks-file`.
    pub workload: String,
    /// Per-task input size, if set.
    pub size: Option<String>,
    /// Number of tasks C.
    pub tasks: usize,
    /// Objective and metric planned for.
    pub objective: String,
    /// `total`, `tail` or `median`.
    pub metric: String,
    /// The plan (the planner's full output), when k was planned.
    pub plan: Option<Value>,
    /// How k was chosen, for humans.
    pub k_source: String,
    /// The packed run.
    pub run: MeasuredRun,
    /// The k = 1 baseline, with `--baseline`.
    pub baseline: Option<MeasuredRun>,
    /// Every attempt once the run was resumed (`orchestrator resume`); empty before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<crate::journal::AttemptSummary>,
    /// Where the files are.
    pub run_dir: PathBuf,
}

/// The four times and expense under the summary's key names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SummaryMetrics {
    /// Seconds until the last instance started.
    pub scale_s: f64,
    /// Seconds until the last task finished.
    pub total_s: f64,
    /// Seconds until the tail quantile of tasks finished.
    pub tail_s: f64,
    /// Seconds until half the tasks finished.
    pub median_s: f64,
    /// USD as the platform would bill it (`expense`'s total).
    pub expense_usd: f64,
    /// The expense broken down: compute, requests, orchestration.
    pub expense: crate::billing::Expense,
}

impl From<Metrics> for SummaryMetrics {
    fn from(m: Metrics) -> Self {
        Self {
            scale_s: m.scale_s,
            total_s: m.total_s,
            tail_s: m.tail_s,
            median_s: m.median_s,
            expense_usd: m.expense_usd,
            expense: m.expense,
        }
    }
}

/// The baseline part of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryBaseline {
    /// Always 1.
    pub k: usize,
    /// What k = 1 measured.
    pub measured: SummaryMetrics,
    /// What the model predicted for k = 1 (null when no model was available).
    #[serde(default)]
    pub predicted: Option<SummaryMetrics>,
}

/// `orchestrator launch --json`: the keys scripts rely on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run id.
    pub run_id: String,
    /// `local` or `aws`.
    pub backend: String,
    /// Platform profile name.
    pub platform: String,
    /// The benchmark's name, `tasks-file` or `map`.
    pub workload: String,
    /// C.
    pub tasks: usize,
    /// k.
    pub k: usize,
    /// Where k came from: the plan store, `--packing K` or a local profile.
    pub k_source: String,
    /// Invocations of the packed run.
    pub instances: usize,
    /// Every task succeeded and passed its check.
    pub verified: bool,
    /// Tasks that did not succeed.
    pub failed_tasks: usize,
    /// Measured.
    pub measured: SummaryMetrics,
    /// Predicted (null when no model was available).
    pub predicted: Option<SummaryMetrics>,
    /// The k = 1 run, with `--baseline`.
    pub baseline: Option<SummaryBaseline>,
    /// Function memory of the runs, MB.
    #[serde(default)]
    pub memory_mb: u32,
    /// k = 1 at the memory best for it (predicted, from the plan), when k was planned.
    #[serde(default)]
    pub right_sized_k1: Option<crate::model::planner::Baseline>,
    /// The run directory.
    pub run_dir: PathBuf,
}

impl RunReport {
    /// The `--json` summary.
    pub fn summary(&self) -> Summary {
        Summary {
            run_id: self.run.run_id.clone(),
            backend: self.backend.clone(),
            platform: self.platform.name.clone(),
            workload: self.workload.clone(),
            tasks: self.tasks,
            k: self.run.k,
            k_source: self.k_source.clone(),
            instances: self.run.instances,
            verified: self.run.verified,
            failed_tasks: self.run.failed_tasks,
            measured: self.run.measured.into(),
            predicted: self.run.predicted.map(Into::into),
            baseline: self.baseline.as_ref().map(|b| SummaryBaseline {
                k: b.k,
                measured: b.measured.into(),
                predicted: b.predicted.map(Into::into),
            }),
            memory_mb: self.platform.memory_mb,
            right_sized_k1: self.right_sized_k1(),
            run_dir: self.run_dir.clone(),
        }
    }

    /// The plan's right-sized k = 1 baseline (predicted), when k was planned.
    pub fn right_sized_k1(&self) -> Option<crate::model::planner::Baseline> {
        let b = self
            .plan
            .as_ref()?
            .get("baselines")?
            .get("right_sized_k1")?;
        serde_json::from_value(b.clone()).ok()
    }

    /// The metric the plan minimised.
    pub fn metric_kind(&self) -> crate::model::Metric {
        match self.metric.as_str() {
            "tail" => crate::model::Metric::Tail,
            "median" => crate::model::Metric::Median,
            _ => crate::model::Metric::Total,
        }
    }

    /// Every metrics row the report shows, in order: (`predicted` or `measured`, k, metrics) of
    /// the packed run, then of the baseline.
    pub fn metric_rows(&self) -> Vec<(&'static str, usize, Metrics)> {
        let mut rows = Vec::new();
        for r in std::iter::once(&self.run).chain(&self.baseline) {
            if let Some(p) = r.predicted {
                rows.push(("predicted", r.k, p));
            }
            rows.push(("measured", r.k, r.measured));
        }
        rows
    }

    /// The title of a run's timeline.
    fn timeline_title(&self, k: usize) -> String {
        format!(
            "{}: {} tasks, k = {k} on {}",
            self.workload, self.tasks, self.platform.name
        )
    }

    /// Writes `run.json`, `instances.csv` (and `baseline-instances.csv`), `report.md`,
    /// `timeline.svg` (and `baseline-timeline.svg`) and `predicted-vs-measured.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let mut put = |name: &str, data: &[u8]| -> std::io::Result<()> {
            let p = dir.join(name);
            std::fs::write(&p, data)?;
            files.push(p);
            Ok(())
        };
        put(
            "run.json",
            &serde_json::to_vec_pretty(self).expect("reports serialise"),
        )?;
        put("instances.csv", self.run.records.instances_csv().as_bytes())?;
        let timeline =
            |r: &MeasuredRun| plots::timeline_svg(&self.timeline_title(r.k), &r.records.instances);
        put("timeline.svg", timeline(&self.run).as_bytes())?;
        if let Some(b) = &self.baseline {
            put(
                "baseline-instances.csv",
                b.records.instances_csv().as_bytes(),
            )?;
            put("baseline-timeline.svg", timeline(b).as_bytes())?;
        }
        let series: Vec<(String, Metrics)> = self
            .metric_rows()
            .into_iter()
            .map(|(what, k, m)| (format!("{what} k={k}"), m))
            .collect();
        let refs: Vec<(&str, Metrics)> = series.iter().map(|(l, m)| (l.as_str(), *m)).collect();
        put(
            "predicted-vs-measured.svg",
            plots::metrics_bars_svg("Service time: predicted vs measured", &refs).as_bytes(),
        )?;
        put("report.md", self.markdown().as_bytes())?;
        Ok(files)
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        markdown::run_report(self)
    }
}

/// Writes an evaluation into `dir`: `evaluate.json`, `calibration.json`, `report.md` (from
/// `markdown`), a `heatmap-PLATFORM-APP.svg` per pair and an `improvement-PLATFORM.svg` per platform.
pub fn write_evaluation(
    dir: &Path,
    eval: &crate::evaluate::Evaluation,
    markdown: &str,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut put = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, data)?;
        files.push(p);
        Ok(())
    };
    let rows = &eval.report.rows;
    put(
        "evaluate.json",
        &serde_json::to_vec_pretty(&eval.report).expect("reports serialise"),
    )?;
    put(
        "calibration.json",
        &serde_json::to_vec_pretty(&eval.calibration).expect("reports serialise"),
    )?;
    put("report.md", markdown.as_bytes())?;
    for platform in eval.report.summary.keys() {
        let mut apps: Vec<&str> = rows
            .iter()
            .filter(|r| &r.platform == platform)
            .map(|r| r.workload.as_str())
            .collect();
        apps.dedup();
        for app in apps {
            let svg = plots::heatmap_svg(rows, app, platform);
            put(&format!("heatmap-{platform}-{app}.svg"), svg.as_bytes())?;
        }
        let svg = plots::improvement_svg(rows, platform);
        put(&format!("improvement-{platform}.svg"), svg.as_bytes())?;
    }
    Ok(files)
}

/// Signed error of `measured` relative to `predicted`, percent.
pub fn pct_error(measured: f64, predicted: f64) -> f64 {
    if predicted.abs() < 1e-12 {
        0.0
    } else {
        (measured - predicted) / predicted * 100.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn run(k: usize, total: f64) -> MeasuredRun {
        MeasuredRun {
            run_id: format!("r-k{k}"),
            k,
            instances: 2,
            distinct_instances: 2,
            measured: Metrics {
                scale_s: 0.1,
                total_s: total,
                tail_s: total,
                median_s: total / 2.0,
                expense_usd: 0.001,
                expense: crate::billing::Expense {
                    compute_usd: 0.0007,
                    requests_usd: 0.0001,
                    orchestration_usd: 0.0002,
                },
            },
            predicted: Some(Metrics {
                total_s: total * 0.9,
                ..Metrics::default()
            }),
            state_transitions: 4,
            verified: true,
            failed_tasks: 0,
            errors: vec![],
            records: RunRecords::default(),
        }
    }

    /// A k = 2 run of 4 tasks with its k = 1 baseline, its run directory `dir`.
    pub(crate) fn sample_report(dir: &Path) -> RunReport {
        RunReport {
            schema_version: RUN_SCHEMA_VERSION,
            backend: "local".into(),
            platform: PlatformProfile::unlimited(),
            workload: "sort".into(),
            size: None,
            tasks: 4,
            objective: "time".into(),
            metric: "total".into(),
            plan: None,
            k_source: "--packing 2".into(),
            run: run(2, 2.0),
            baseline: Some(run(1, 4.0)),
            attempts: Vec::new(),
            run_dir: dir.to_owned(),
        }
    }

    #[test]
    fn summary_has_the_scripted_keys_and_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample_report(dir.path());
        let v = serde_json::to_value(report.summary()).unwrap();
        for key in [
            "run_id",
            "backend",
            "platform",
            "workload",
            "tasks",
            "k",
            "k_source",
            "instances",
            "verified",
            "failed_tasks",
            "measured",
            "predicted",
            "baseline",
            "run_dir",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["scale_s", "total_s", "tail_s", "median_s", "expense_usd"] {
            assert!(
                v["measured"].get(key).is_some() && v["predicted"].get(key).is_some(),
                "{key}"
            );
        }
        for key in ["compute_usd", "requests_usd", "orchestration_usd"] {
            assert!(
                v["measured"]["expense"].get(key).is_some()
                    && v["predicted"]["expense"].get(key).is_some(),
                "expense.{key}"
            );
        }
        assert_eq!(v["baseline"]["k"], 1);
        assert_eq!(v["k_source"], "--packing 2");
        assert_eq!(v["baseline"]["measured"]["total_s"], 4.0);
        let files = report.write(dir.path()).unwrap();
        assert_eq!(files.len(), 7);
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("(0.50×, 50.0 % faster)"), "{md}");
        assert!(md.contains("total +11.1 %"), "{md}");
        let back: RunReport =
            serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
        assert_eq!(back, report);
    }
}
