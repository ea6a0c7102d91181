//! Verify: every task has exactly one successful result, and a benchmark's output passes its own check.

use std::collections::BTreeMap;

use propack_runtime::{Task, TaskStatus};
use propack_workloads::Workload;

use super::stage::local_path;
use crate::backend::RunOutcome;

/// At most this many errors are kept for the report; the count covers all of them.
const MAX_ERRORS: usize = 10;

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Every task succeeded once and passed its check.
    pub verified: bool,
    /// Tasks that did not succeed or failed their check.
    pub failed_tasks: usize,
    /// The first few problems, for humans.
    pub errors: Vec<String>,
}

/// Checks `outcome` against the job's `tasks`.
pub fn verify(tasks: &[Task], outcome: &RunOutcome) -> Verification {
    let mut status: BTreeMap<&str, TaskStatus> = BTreeMap::new();
    let mut error_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut successes: BTreeMap<&str, usize> = BTreeMap::new();
    for t in outcome.results.iter().flat_map(|r| &r.tasks) {
        status.insert(t.id.as_str(), t.status);
        if t.status == TaskStatus::Succeeded {
            *successes.entry(t.id.as_str()).or_default() += 1;
        }
        if let Some(e) = &t.error {
            error_of.insert(t.id.as_str(), e.as_str());
        }
    }
    let mut v = Verification::default();
    let fail = |v: &mut Verification, message: String| {
        v.failed_tasks += 1;
        if v.errors.len() < MAX_ERRORS {
            v.errors.push(message);
        }
    };
    for t in tasks {
        match status.get(t.id.as_str()) {
            Some(TaskStatus::Succeeded) => {
                if let Err(e) = check_output(t) {
                    fail(&mut v, format!("task {}: {e}", t.id));
                }
            }
            Some(s) => fail(
                &mut v,
                format!(
                    "task {}: {s:?}: {}",
                    t.id,
                    error_of.get(t.id.as_str()).copied().unwrap_or("")
                ),
            ),
            None => fail(
                &mut v,
                format!("task {}: no result (its batch failed)", t.id),
            ),
        }
    }
    let duplicated = successes.values().filter(|&&n| n > 1).count();
    if duplicated > 0 {
        v.errors.push(format!(
            "{duplicated} tasks were reported by more than one successful batch"
        ));
    }
    v.verified = v.failed_tasks == 0 && duplicated == 0;
    v
}

/// A benchmark task's local output passes the workload's own check (other tasks: nothing to check).
pub(crate) fn check_output(t: &Task) -> Result<(), String> {
    let Some(b) = t.builtin() else {
        return Ok(());
    };
    if Workload::from_name(&b.name).is_err() {
        return Ok(());
    }
    let Some(output) = t.outputs.values().next().and_then(|u| local_path(u)) else {
        return Ok(());
    };
    let input = t.inputs.get("input").and_then(|u| local_path(u));
    propack_workloads::verify_files(&b.name, &b.params, input.as_deref(), &output)
        .map_err(|e| format!("output fails the {} check: {e}", b.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use propack_runtime::{BatchResult, TaskResult};

    fn task(id: &str) -> Task {
        serde_json::from_value(serde_json::json!({"id": id, "builtin": {"name": "noop"}})).unwrap()
    }

    fn result(ids: &[(&str, TaskStatus)]) -> BatchResult {
        BatchResult {
            schema_version: 1,
            run_id: None,
            batch_id: None,
            instance_id: "i".into(),
            cold_start: true,
            init_ms: 0,
            received_at: 0,
            started_at: 0,
            ended_at: 0,
            vcpus: 1,
            parallelism: 1,
            memory_mb: None,
            request_id: None,
            truncated: false,
            tasks: ids
                .iter()
                .map(|(id, s)| {
                    let mut r = TaskResult::not_run(*id, "x");
                    r.status = *s;
                    r
                })
                .collect(),
        }
    }

    #[test]
    fn missing_failed_and_duplicated_tasks_fail_verification() {
        let tasks: Vec<Task> = ["a", "b", "c"].into_iter().map(task).collect();
        let ok = RunOutcome {
            results: vec![result(&[
                ("a", TaskStatus::Succeeded),
                ("b", TaskStatus::Succeeded),
                ("c", TaskStatus::Succeeded),
            ])],
            ..RunOutcome::default()
        };
        assert_eq!(
            verify(&tasks, &ok),
            Verification {
                verified: true,
                failed_tasks: 0,
                errors: vec![]
            }
        );
        let bad = RunOutcome {
            results: vec![
                result(&[("a", TaskStatus::Succeeded), ("b", TaskStatus::TimedOut)]),
                result(&[("a", TaskStatus::Succeeded)]),
            ],
            ..RunOutcome::default()
        };
        let v = verify(&tasks, &bad);
        assert!(!v.verified);
        assert_eq!(v.failed_tasks, 2);
        assert_eq!(
            v.errors,
            vec![
                "task b: TimedOut: x".to_owned(),
                "task c: no result (its batch failed)".to_owned(),
                "1 tasks were reported by more than one successful batch".to_owned(),
            ]
        );
    }
}
