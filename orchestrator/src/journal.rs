//! The run journal: each batch's end appended to `journal.jsonl` as it arrives, so a killed orchestrator loses nothing that had returned.
//!
//! One JSON object per line, written with a single `write` and flushed before the next
//! batch is looked at: after a SIGKILL the file holds every record the backend had
//! received, and at worst a torn last line, which [`read`] skips. Each attempt of a run
//! (the launch, then every `orchestrator resume`) starts with an [`Entry::Attempt`] line;
//! the state of the run ([`RunState`]) is derived from the whole file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use propack_runtime::{BatchResult, TaskStatus};
use serde::{Deserialize, Serialize};

/// The journal's file name in a run directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// An attempt started: the launch (1) or a resume (2, 3, ...).
    Attempt {
        /// 1 for the launch.
        attempt: u32,
        /// The attempt's run id (the launch's, or `<run id>-rN`).
        run_id: String,
        /// Its packing degree.
        k: usize,
        /// The ids of the tasks it runs.
        tasks: Vec<String>,
    },
    /// A batch returned a result (its tasks may still have failed).
    Result {
        /// The attempt it belongs to.
        attempt: u32,
        /// What the instance returned.
        result: Box<BatchResult>,
    },
    /// A batch ended without a result: its tasks did not run, or ran and were lost.
    Failed {
        /// The attempt it belongs to.
        attempt: u32,
        /// The batch's task ids.
        task_ids: Vec<String>,
        /// Why, as the backend saw it.
        error: String,
    },
    /// The attempt started a Step Functions execution, whose results arrive only when it
    /// ends: written as soon as StartExecution returns, so that `resume` can re-attach to it.
    Execution {
        /// The attempt it belongs to.
        attempt: u32,
        /// Where the execution is and what to collect when it ends.
        execution: ExecutionRecord,
    },
}

/// A Step Functions execution an attempt started, as `resume` needs it to re-attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's ARN.
    pub execution_arn: String,
    /// `s3://bucket/propack/runs/<run id>/results/`: where its ResultWriter writes.
    pub results_prefix: String,
    /// Outputs the tasks named as local files, to download once their task succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downloads: Vec<Download>,
}

/// An output staged to S3 that belongs at a local path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    /// Where the task writes it (`s3://...`).
    pub uri: String,
    /// Where it goes locally.
    pub path: PathBuf,
    /// The task that writes it.
    pub task: String,
}

/// An execution of an attempt that may hold results the journal lacks, and the tasks of
/// that attempt no line has ended yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingExecution {
    /// The attempt.
    pub attempt: u32,
    /// Its packing degree.
    pub k: usize,
    /// The execution.
    pub execution: ExecutionRecord,
    /// Tasks of the attempt with neither a result nor a failure line.
    pub pending: BTreeSet<String>,
}

/// The executions whose attempts still have tasks without an end: the orchestrator stopped
/// waiting for them (killed, or interrupted) before their results were journalled.
pub fn pending_executions(entries: &[Entry]) -> Vec<PendingExecution> {
    let mut tasks: BTreeMap<u32, (usize, BTreeSet<String>)> = BTreeMap::new();
    let mut executions: Vec<(u32, &ExecutionRecord)> = Vec::new();
    for e in entries {
        match e {
            Entry::Attempt {
                attempt,
                k,
                tasks: ids,
                ..
            } => {
                tasks.insert(*attempt, (*k, ids.iter().cloned().collect()));
            }
            Entry::Result { attempt, result } => {
                if let Some((_, ids)) = tasks.get_mut(attempt) {
                    for t in &result.tasks {
                        ids.remove(&t.id);
                    }
                }
            }
            Entry::Failed {
                attempt, task_ids, ..
            } => {
                if let Some((_, ids)) = tasks.get_mut(attempt) {
                    for id in task_ids {
                        ids.remove(id);
                    }
                }
            }
            Entry::Execution { attempt, execution } => executions.push((*attempt, execution)),
        }
    }
    executions
        .into_iter()
        .filter_map(|(attempt, execution)| {
            let (k, pending) = tasks.get(&attempt)?;
            (!pending.is_empty()).then(|| PendingExecution {
                attempt,
                k: *k,
                execution: execution.clone(),
                pending: pending.clone(),
            })
        })
        .collect()
}

/// An open journal, appending one attempt's records.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    attempt: u32,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Opens (creating) `dir/journal.jsonl` for appending and writes the attempt's first line.
    pub fn open(
        dir: &Path,
        attempt: u32,
        run_id: &str,
        k: usize,
        tasks: Vec<String>,
    ) -> std::io::Result<Self> {
        let j = Self::reopen(dir, attempt)?;
        j.append(&Entry::Attempt {
            attempt,
            run_id: run_id.to_owned(),
            k,
            tasks,
        })?;
        Ok(j)
    }

    /// Opens `dir/journal.jsonl` to append more lines to an attempt that already began
    /// (the results of an execution `resume` re-attached to).
    pub fn reopen(dir: &Path, attempt: u32) -> std::io::Result<Self> {
        let path = dir.join(JOURNAL_FILE);
        drop_torn_tail(&path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            path,
            attempt,
            file: Mutex::new(file),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This attempt's number.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Appends one line in one write, then flushes it to the OS (which keeps it through a
    /// SIGKILL of this process).
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
        line.push(b'\n');
        let mut f = self.file.lock().expect("no panics hold the journal");
        f.write_all(&line)?;
        f.flush()
    }

    /// Records a batch result.
    pub fn result(&self, result: &BatchResult) -> std::io::Result<()> {
        self.append(&Entry::Result {
            attempt: self.attempt,
            result: Box::new(result.clone()),
        })
    }

    /// Records the execution this attempt started.
    pub fn execution(&self, execution: &ExecutionRecord) -> std::io::Result<()> {
        self.append(&Entry::Execution {
            attempt: self.attempt,
            execution: execution.clone(),
        })
    }

    /// Records a batch that ended without a result.
    pub fn failed(&self, task_ids: &[String], error: &str) -> std::io::Result<()> {
        self.append(&Entry::Failed {
            attempt: self.attempt,
            task_ids: task_ids.to_vec(),
            error: error.to_owned(),
        })
    }
}

/// Cuts a last line that a killed writer left without its newline, so that appending after
/// it cannot turn it into a malformed line in the middle of the journal.
fn drop_torn_tail(path: &Path) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(());
    }
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}

/// Every complete entry of a journal file; a torn last line (a write cut short) is skipped,
/// a malformed line elsewhere is an error naming its line number.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(source) => {
                return Err(JournalError::Parse {
                    path: path.to_owned(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The journal.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not a journal entry.
    #[error("{}:{line}: not a journal entry: {source}", path.display())]
    Parse {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptSummary {
    /// 1 for the launch.
    pub attempt: u32,
    /// Its run id.
    pub run_id: String,
    /// Its k.
    pub k: usize,
    /// Tasks it was asked to run.
    pub tasks: usize,
    /// Of those, how many succeeded.
    pub succeeded: usize,
    /// How many failed or timed out, or were in a batch that failed.
    pub failed: usize,
    /// How many never returned (the orchestrator stopped first).
    pub missing: usize,
}

/// Where a run stands, from its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Every attempt, in order.
    pub attempts: Vec<AttemptSummary>,
    /// Task ids that succeeded in some attempt.
    pub succeeded: BTreeSet<String>,
    /// The last status seen of every task that has not succeeded (`failed`, `timed_out`,
    /// `batch_failed`); tasks absent here and from `succeeded` never returned.
    pub unsuccessful: BTreeMap<String, String>,
}

impl RunState {
    /// Folds a journal's entries into the run's state.
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut attempts: Vec<(AttemptSummary, BTreeSet<String>)> = Vec::new();
        let mut succeeded = BTreeSet::new();
        let mut unsuccessful = BTreeMap::new();
        let mut ended: BTreeMap<u32, BTreeMap<String, bool>> = BTreeMap::new();
        for e in entries {
            match e {
                Entry::Attempt {
                    attempt,
                    run_id,
                    k,
                    tasks,
                } => attempts.push((
                    AttemptSummary {
                        attempt: *attempt,
                        run_id: run_id.clone(),
                        k: *k,
                        tasks: tasks.len(),
                        succeeded: 0,
                        failed: 0,
                        missing: 0,
                    },
                    tasks.iter().cloned().collect(),
                )),
                Entry::Result { attempt, result } => {
                    let seen = ended.entry(*attempt).or_default();
                    for t in &result.tasks {
                        let ok = t.status == TaskStatus::Succeeded;
                        // A task retried inside an attempt counts once, as its best outcome.
                        let slot = seen.entry(t.id.clone()).or_insert(ok);
                        *slot |= ok;
                        if ok {
                            succeeded.insert(t.id.clone());
                            unsuccessful.remove(&t.id);
                        } else if !succeeded.contains(&t.id) {
                            let status = serde_json::to_value(t.status)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_else(|| "failed".into());
                            unsuccessful.insert(t.id.clone(), status);
                        }
                    }
                }
                Entry::Failed {
                    attempt, task_ids, ..
                } => {
                    let seen = ended.entry(*attempt).or_default();
                    for id in task_ids {
                        seen.entry(id.clone()).or_insert(false);
                        if !succeeded.contains(id) {
                            unsuccessful.insert(id.clone(), "batch_failed".into());
                        }
                    }
                }
                Entry::Execution { .. } => {}
            }
        }
        let attempts = attempts
            .into_iter()
            .map(|(mut a, tasks)| {
                let seen = ended.get(&a.attempt);
                for id in &tasks {
                    match seen.and_then(|s| s.get(id)) {
                        Some(true) => a.succeeded += 1,
                        Some(false) => a.failed += 1,
                        None => a.missing += 1,
                    }
                }
                a
            })
            .collect();
        Self {
            attempts,
            succeeded,
            unsuccessful,
        }
    }

    /// The next attempt's number.
    pub fn next_attempt(&self) -> u32 {
        self.attempts.iter().map(|a| a.attempt).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tasks: &[(&str, &str)]) -> BatchResult {
        let tasks: Vec<_> = tasks
            .iter()
            .map(|(id, status)| {
                serde_json::json!({
                    "id": id, "status": status, "started_at": 1, "ended_at": 2,
                    "duration_ms": 1, "exit_code": null, "stdout_tail": "", "stderr_tail": ""
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schema_version": propack_runtime::contract::SCHEMA_VERSION,
            "instance_id": "i", "cold_start": true, "init_ms": 0, "received_at": 0,
            "started_at": 0, "ended_at": 1, "vcpus": 1, "parallelism": 1, "tasks": tasks
        }))
        .expect("a valid batch result")
    }

    #[test]
    fn attempts_fold_into_succeeded_failed_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let j = Journal::open(dir.path(), 1, "r", 2, ids(&["a", "b", "c", "d", "e"])).unwrap();
        j.result(&result(&[("a", "succeeded"), ("b", "failed")]))
            .unwrap();
        j.failed(&ids(&["c", "d"]), "Lambda.Unknown").unwrap();
        drop(j);
        let state = RunState::from_entries(&read(&dir.path().join(JOURNAL_FILE)).unwrap());
        assert_eq!(state.attempts[0].succeeded, 1);
        assert_eq!(state.attempts[0].failed, 3);
        assert_eq!(state.attempts[0].missing, 1, "e never returned");
        assert_eq!(state.next_attempt(), 2);
        assert_eq!(state.unsuccessful["b"], "failed");
        assert_eq!(state.unsuccessful["c"], "batch_failed");

        let j = Journal::open(dir.path(), 2, "r-r2", 4, ids(&["b", "c", "d", "e"])).unwrap();
        j.result(&result(&[
            ("b", "succeeded"),
            ("c", "succeeded"),
            ("d", "timed_out"),
        ]))
        .unwrap();
        drop(j);
        let state = RunState::from_entries(&read(&dir.path().join(JOURNAL_FILE)).unwrap());
        assert_eq!(
            state
                .succeeded
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(state.unsuccessful.len(), 1);
        assert_eq!(state.unsuccessful["d"], "timed_out");
        let second = &state.attempts[1];
        assert_eq!(
            (second.k, second.succeeded, second.failed, second.missing),
            (4, 2, 1, 1)
        );
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 1, "r", 1, vec!["a".into()]).unwrap();
        j.result(&result(&[("a", "succeeded")])).unwrap();
        let path = j.path().to_owned();
        drop(j);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"kind\":\"result\",\"attem");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        std::fs::write(&path, format!("garbage\n{text}\n")).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.to_string().contains(":1: not a journal entry"), "{e}");
    }

    #[test]
    fn the_next_attempt_cuts_a_torn_tail_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 1, "r", 1, vec!["a".into()]).unwrap();
        let path = j.path().to_owned();
        drop(j);
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{whole}{{\"kind\":\"res")).unwrap();
        let j = Journal::open(dir.path(), 2, "r", 1, vec!["a".into()]).unwrap();
        j.result(&result(&[("a", "succeeded")])).unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 3, "attempt 1, attempt 2, its result");
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&whole));
    }

    #[test]
    fn an_execution_is_pending_while_its_attempt_has_tasks_without_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let exec = |n: &str| ExecutionRecord {
            execution_arn: format!("arn:aws:states:r:1:execution:sm:{n}"),
            results_prefix: format!("s3://b/propack/runs/{n}/results/"),
            downloads: vec![Download {
                uri: "s3://b/o".into(),
                path: "/tmp/o".into(),
                task: "a".into(),
            }],
        };
        let j = Journal::open(dir.path(), 1, "r", 2, ids(&["a", "b", "c", "d"])).unwrap();
        j.execution(&exec("r")).unwrap();
        let path = j.path().to_owned();
        let pending = || pending_executions(&read(&path).unwrap());
        let p = pending();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].attempt, p[0].k), (1, 2));
        assert_eq!(p[0].execution, exec("r"), "the record round-trips");
        assert_eq!(
            p[0].pending,
            ids(&["a", "b", "c", "d"]).into_iter().collect()
        );
        j.result(&result(&[("a", "succeeded"), ("b", "failed")]))
            .unwrap();
        j.failed(&ids(&["c"]), "Lambda.Unknown").unwrap();
        assert_eq!(pending()[0].pending, ids(&["d"]).into_iter().collect());
        j.failed(&ids(&["d"]), "the execution ended ABORTED")
            .unwrap();
        assert!(pending().is_empty(), "every task of attempt 1 has an end");
        // The execution line does not change what the run's state counts.
        let state = RunState::from_entries(&read(&path).unwrap());
        assert_eq!(
            (state.attempts[0].succeeded, state.attempts[0].failed),
            (1, 3)
        );
        drop(j);
        let j = Journal::open(dir.path(), 2, "r-r2", 1, ids(&["b", "c", "d"])).unwrap();
        j.execution(&exec("r-r2")).unwrap();
        let p = pending();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].attempt, 2);
        assert_eq!(p[0].pending.len(), 3);
    }
}
