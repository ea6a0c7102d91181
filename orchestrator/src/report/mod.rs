//! Reports: a launch's run directory and `--json` summary, and the rendering of runs and evaluations.
//!
//! The summary's keys are a scripting contract (see [`Summary`]); `run.json`
//! carries everything measured so a run can be re-analysed without re-running.
//! Rendering lives in the submodules: [`plots`] (every SVG figure) over one SVG writer, [`svg`].

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
    /// USD as Lambda would bill it.
    pub expense_usd: f64,
}

impl From<Metrics> for SummaryMetrics {
    fn from(m: Metrics) -> Self {
        Self {
            scale_s: m.scale_s,
            total_s: m.total_s,
            tail_s: m.tail_s,
            median_s: m.median_s,
            expense_usd: m.expense_usd,
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
    /// C.
    pub tasks: usize,
    /// k.
    pub k: usize,
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
            tasks: self.tasks,
            k: self.run.k,
            instances: self.run.instances,
            verified: self.run.verified,
            failed_tasks: self.run.failed_tasks,
            measured: self.run.measured.into(),
            predicted: self.run.predicted.map(Into::into),
            baseline: self.baseline.as_ref().map(|b| SummaryBaseline {
                k: b.k,
                measured: b.measured.into(),
            }),
            run_dir: self.run_dir.clone(),
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
        let mut s = String::new();
        let r = &self.run;
        s.push_str(&format!("# ProPack run {}\n\n", r.run_id));
        s.push_str(&format!(
            "- workload: **{}**{} — {} tasks\n- backend: {} on platform **{}** ({})\n- packing: **k = {}** ({}) → {} invocations on {} distinct instances\n- objective: {} / metric: {}\n- verified: **{}** ({} failed tasks)\n\n",
            self.workload,
            self.size.as_ref().map(|x| format!(" (size {x})")).unwrap_or_default(),
            self.tasks,
            self.backend,
            self.platform.name,
            self.platform.description,
            r.k,
            self.k_source,
            r.instances,
            r.distinct_instances,
            self.objective,
            self.metric,
            r.verified,
            r.failed_tasks
        ));
        s.push_str("| | scale (s) | median (s) | tail (s) | total (s) | expense (USD) |\n|---|---:|---:|---:|---:|---:|\n");
        let row = |s: &mut String, name: &str, m: &Metrics| {
            s.push_str(&format!(
                "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.6} |\n",
                m.scale_s, m.median_s, m.tail_s, m.total_s, m.expense_usd
            ));
        };
        if let Some(p) = &r.predicted {
            row(&mut s, &format!("predicted, k = {}", r.k), p);
        }
        row(&mut s, &format!("measured, k = {}", r.k), &r.measured);
        if let Some(b) = &self.baseline {
            if let Some(p) = &b.predicted {
                row(&mut s, "predicted, k = 1", p);
            }
            row(&mut s, "measured, k = 1", &b.measured);
        }
        s.push('\n');
        if let Some(p) = &r.predicted {
            s.push_str(&format!(
                "Prediction error (measured vs predicted, k = {}): total {:+.1} %, tail {:+.1} %, median {:+.1} %, expense {:+.1} %.\n\n",
                r.k,
                pct_error(r.measured.total_s, p.total_s),
                pct_error(r.measured.tail_s, p.tail_s),
                pct_error(r.measured.median_s, p.median_s),
                pct_error(r.measured.expense_usd, p.expense_usd),
            ));
        }
        if let Some(b) = &self.baseline
            && b.measured.total_s > 0.0
        {
            s.push_str(&format!(
                "Against k = 1: total service time {:.3} s vs {:.3} s ({:.2}×, {:.1} % faster); expense {:.6} vs {:.6} USD ({:.1} % cheaper).\n\n",
                r.measured.total_s,
                b.measured.total_s,
                r.measured.total_s / b.measured.total_s,
                (1.0 - r.measured.total_s / b.measured.total_s) * 100.0,
                r.measured.expense_usd,
                b.measured.expense_usd,
                if b.measured.expense_usd > 0.0 { (1.0 - r.measured.expense_usd / b.measured.expense_usd) * 100.0 } else { 0.0 },
            ));
        }
        let cold: Vec<f64> = r
            .records
            .instances
            .iter()
            .filter(|i| i.cold_start)
            .map(|i| i.init_ms)
            .collect();
        if !cold.is_empty() {
            s.push_str(&format!(
                "Cold starts: {} (median init {:.0} ms, p90 {:.0} ms); warm invocations: {}.\n\n",
                cold.len(),
                crate::records::quantile(&cold, 0.5).unwrap_or(0.0),
                crate::records::quantile(&cold, 0.9).unwrap_or(0.0),
                r.records.instances.len() - cold.len()
            ));
        }
        let retried = r.records.instances.iter().filter(|i| i.attempt > 0).count();
        if retried > 0 {
            s.push_str(&format!("Retried attempts: {retried}.\n\n"));
        }
        if !r.errors.is_empty() {
            s.push_str("## Errors\n\n");
            for e in &r.errors {
                s.push_str(&format!("- {e}\n"));
            }
            s.push('\n');
        }
        s.push_str("## Files\n\n- `run.json`: plan, predictions, measurements, per-task and per-instance records\n- `instances.csv`: one line per invocation `[start_s, end_s]` (launch-relative)\n- `timeline.svg`: instance start/end timeline\n- `predicted-vs-measured.svg`: service times, predicted vs measured\n");
        if self.baseline.is_some() {
            s.push_str("- `baseline-instances.csv`, `baseline-timeline.svg`: the k = 1 run\n");
        }
        s.push_str("- `definition.asl.json`: the state machine that ran\n- `logs/`: each instance's stdout/stderr\n");
        s
    }
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
            "tasks",
            "k",
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
        assert_eq!(v["baseline"]["k"], 1);
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
