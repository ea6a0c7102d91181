//! Per-instance and per-task records of one run, and the service-time metrics measured from them.
//!
//! Every backend (local, AWS, simulator) produces [`RunRecords`]; reports,
//! plots and model validation all read them, so a simulated and a real run are
//! measured by the same code.

use serde::{Deserialize, Serialize};

use propack_runtime::TaskStatus;

use crate::billing::{Expense, OrchestrationUsage};
use crate::platform::PlatformProfile;

/// Default quantile of the `tail` metric.
pub const DEFAULT_TAIL_QUANTILE: f64 = 0.95;

/// One invocation handled by one instance (a retried batch has one record per attempt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Index of the batch in the run (0-based).
    pub batch: usize,
    /// Attempt number of this batch (0 = first).
    #[serde(default)]
    pub attempt: u32,
    /// The runtime's instance id (warm reuse shows as a repeated id).
    pub instance_id: String,
    /// Whether this invocation was the instance's first.
    pub cold_start: bool,
    /// Seconds from launch start until the invocation was issued.
    pub requested_s: f64,
    /// Seconds from launch start until the handler started.
    pub start_s: f64,
    /// Seconds from launch start until the handler returned.
    pub end_s: f64,
    /// Cold-start initialisation time, ms (0 when warm).
    #[serde(default)]
    pub init_ms: f64,
    /// Tasks in the batch.
    pub tasks: usize,
    /// Whether the invocation returned a batch result (false: crashed, killed, timed out).
    pub ok: bool,
}

/// One task of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// Batch that ran it (last attempt).
    pub batch: usize,
    /// Final status.
    pub status: TaskStatus,
    /// Seconds from launch start, if the task started.
    pub start_s: Option<f64>,
    /// Seconds from launch start, if the task ended.
    pub end_s: Option<f64>,
}

/// Everything measured about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunRecords {
    /// Unix epoch milliseconds at launch start (the zero of every `*_s` field).
    pub launch_epoch_ms: u64,
    /// Per-invocation records.
    pub instances: Vec<InstanceRecord>,
    /// Per-task records.
    pub tasks: Vec<TaskRecord>,
    /// What the orchestration (Step Functions) did, in billing units; zero for direct invokes.
    #[serde(default)]
    pub orchestration: OrchestrationUsage,
}

/// Measured (or predicted) times and expense of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    /// Seconds from launch until the last instance started.
    pub scale_s: f64,
    /// Seconds from launch until the last task finished.
    pub total_s: f64,
    /// Seconds from launch until the tail quantile of tasks finished.
    pub tail_s: f64,
    /// Seconds from launch until half of the tasks finished.
    pub median_s: f64,
    /// USD, as the platform would bill it: `expense`'s total.
    pub expense_usd: f64,
    /// The expense broken down into compute, requests and orchestration.
    #[serde(default)]
    pub expense: Expense,
}

/// The value at quantile `q` of `values` (nearest rank on sorted values; `None` when empty).
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.saturating_sub(1).min(v.len() - 1)])
}

impl RunRecords {
    /// Billed instance-seconds: the sum of handler durations, each rounded up to 1 ms.
    pub fn billed_instance_s(&self) -> f64 {
        self.instances
            .iter()
            .map(|i| ((i.end_s - i.start_s).max(0.0) * 1000.0).ceil() / 1000.0)
            .sum()
    }

    /// Measures the run: service times from task completions, expense from [`crate::billing::bill`].
    pub fn metrics(&self, tail_quantile: f64, platform: &PlatformProfile) -> Metrics {
        let ends: Vec<f64> = self.tasks.iter().filter_map(|t| t.end_s).collect();
        let scale_s = self
            .instances
            .iter()
            .map(|i| i.start_s)
            .fold(0.0_f64, f64::max);
        let expense = crate::billing::bill(self, platform);
        Metrics {
            scale_s,
            total_s: quantile(&ends, 1.0).unwrap_or(0.0),
            tail_s: quantile(&ends, tail_quantile).unwrap_or(0.0),
            median_s: quantile(&ends, 0.5).unwrap_or(0.0),
            expense_usd: expense.total_usd(),
            expense,
        }
    }

    /// The artifact's `instances` format: one `[start, end]` line per instance, launch-relative.
    pub fn instances_csv(&self) -> String {
        let mut out = String::from(
            "batch,attempt,instance_id,cold_start,requested_s,start_s,end_s,tasks,ok\n",
        );
        for i in &self.instances {
            out.push_str(&format!(
                "{},{},{},{},{:.3},{:.3},{:.3},{},{}\n",
                i.batch,
                i.attempt,
                i.instance_id,
                i.cold_start,
                i.requested_s,
                i.start_s,
                i.end_s,
                i.tasks,
                i.ok
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&v, 1.0), Some(20.0));
        assert_eq!(quantile(&v, 0.95), Some(19.0));
        assert_eq!(quantile(&v, 0.5), Some(10.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn metrics_from_hand_built_records() {
        let inst = |b: usize, s: f64, e: f64| InstanceRecord {
            batch: b,
            attempt: 0,
            instance_id: format!("i{b}"),
            cold_start: true,
            requested_s: 0.0,
            start_s: s,
            end_s: e,
            init_ms: 0.0,
            tasks: 1,
            ok: true,
        };
        let task = |b: usize, e: f64| TaskRecord {
            id: format!("t{b}"),
            batch: b,
            status: TaskStatus::Succeeded,
            start_s: Some(e - 1.0),
            end_s: Some(e),
        };
        let r = RunRecords {
            launch_epoch_ms: 0,
            instances: vec![inst(0, 0.0, 2.0), inst(1, 1.0, 4.0)],
            tasks: vec![task(0, 2.0), task(1, 4.0)],
            orchestration: OrchestrationUsage {
                standard_transitions: 1,
                ..Default::default()
            },
        };
        // 1 USD per 1 GB instance-second, 0.5 per request, 0.25 per transition.
        let mut p = PlatformProfile::aws_2021();
        p.memory_mb = 1024;
        p.prices.gb_second_x86_64 = 1.0;
        p.prices.request = 0.5;
        p.prices.state_transition = 0.25;
        let m = r.metrics(0.95, &p);
        assert_eq!(m.scale_s, 1.0);
        assert_eq!(m.total_s, 4.0);
        assert_eq!(m.median_s, 2.0);
        assert!((m.expense_usd - (5.0 + 1.0 + 0.25)).abs() < 1e-9);
        assert!((m.expense.compute_usd - 5.0).abs() < 1e-9);
        assert!((m.expense.requests_usd - 1.0).abs() < 1e-12);
        assert!((m.expense.orchestration_usd - 0.25).abs() < 1e-12);
    }
}
