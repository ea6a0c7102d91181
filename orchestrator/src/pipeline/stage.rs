//! Stage: turn what the user asked to run into the C contract tasks of a job, with their inputs in place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use propack_runtime::Task;
use propack_runtime::uri::ObjectUri;
use propack_step_functions::Preset;
use propack_workloads::Workload;

use super::Ui;
use super::error::PipelineError;

/// What to run.
#[derive(Debug, Clone)]
pub enum JobSource {
    /// C tasks of a benchmark workload, inputs generated into the run directory.
    Benchmark {
        /// The workload.
        workload: Workload,
        /// Per-task size (`--size`); default the workload table's local default.
        size: Option<String>,
        /// C.
        tasks: usize,
    },
    /// The user's own task specs (`--tasks-file`, or built by [`super::map::tasks`]), run as they are.
    Tasks {
        /// Name in reports and run ids: `tasks-file` or `map`.
        name: String,
        /// The tasks (already validated).
        tasks: Vec<Task>,
        /// Where they came from, e.g. `tasks-file:/abs/tasks.json` (the plan store's key).
        origin: String,
    },
}

/// A job whose tasks are ready to run.
#[derive(Debug, Clone)]
pub struct StagedJob {
    /// Name in reports: the workload's, `tasks-file` or `map`.
    pub workload: String,
    /// Per-task size of a benchmark.
    pub size: Option<String>,
    /// What the plan store keys this job's plans by (workload and size, or the task source).
    pub key: String,
    /// The C tasks.
    pub tasks: Vec<Task>,
    /// Planning estimate of one task on one vCPU, seconds (chooses the Step Functions child type).
    pub task_seconds: Option<f64>,
}

/// Where S3 lives for a local run: `<run_dir>/storage`.
pub fn storage_dir(run_dir: &Path) -> PathBuf {
    crate::backend::local::storage_dir(run_dir)
}

/// The local file behind a `file://` URI (None for other URIs).
pub fn local_path(uri: &str) -> Option<PathBuf> {
    ObjectUri::parse(uri).ok()?.into_file_path()
}

/// Builds (and for benchmarks, generates the inputs of) the tasks of `source`; inputs
/// are seeded `seed + index`, so a run is reproducible.
pub fn stage(
    source: &JobSource,
    run_dir: &Path,
    seed: u64,
    ui: Ui,
) -> Result<StagedJob, PipelineError> {
    let staged = match source {
        JobSource::Benchmark {
            workload,
            size,
            tasks,
        } => stage_benchmark(*workload, size.as_deref(), *tasks, run_dir, seed, ui)?,
        JobSource::Tasks {
            name,
            tasks,
            origin,
        } => StagedJob {
            workload: name.clone(),
            size: None,
            key: origin.clone(),
            tasks: tasks.clone(),
            task_seconds: None,
        },
    };
    if staged.tasks.is_empty() {
        return Err(PipelineError::Usage("a job needs at least one task".into()));
    }
    let mut ids = BTreeSet::new();
    if let Some(t) = staged.tasks.iter().find(|t| !ids.insert(t.id.as_str())) {
        return Err(PipelineError::Usage(format!(
            "task id {:?} appears twice: ids must be unique within a run",
            t.id
        )));
    }
    Ok(staged)
}

fn stage_benchmark(
    w: Workload,
    size: Option<&str>,
    count: usize,
    run_dir: &Path,
    seed: u64,
    ui: Ui,
) -> Result<StagedJob, PipelineError> {
    let size_text = size.unwrap_or(w.default_size()).to_owned();
    let size = w
        .parse_size(&size_text)
        .map_err(|e| PipelineError::Usage(e.to_string()))?;
    let base = ObjectUri::from_path(storage_dir(run_dir))
        .map_err(|e| PipelineError::Usage(e.to_string()))?;
    let tasks: Vec<Task> = (0..count)
        .map(|i| w.task_at(i, &size, &base.to_string()))
        .collect();
    let bar = ui.bar(tasks.len() as u64, "staging inputs {bar:30} {pos}/{len}");
    for (i, t) in tasks.iter().enumerate() {
        if let Some(path) = t.inputs.get("input").and_then(|u| local_path(u)) {
            let bytes = w
                .generate_input(seed.wrapping_add(i as u64), &size)
                .map_err(|e| PipelineError::Usage(e.to_string()))?
                .expect("a workload with an input file generates one");
            write_file(&path, &bytes)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    clear_outputs(&tasks)?;
    Ok(StagedJob {
        workload: w.name().into(),
        key: format!("{}@{size_text}", w.name()),
        size: Some(size_text),
        tasks,
        task_seconds: Some(w.task_seconds()),
    })
}

/// Removes the local outputs of `tasks`, so an output left by an earlier run (or by the
/// packed run before its baseline) can never pass verification.
pub fn clear_outputs(tasks: &[Task]) -> Result<(), PipelineError> {
    for t in tasks {
        for path in t.outputs.values().filter_map(|u| local_path(u)) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(PipelineError::io(format!("removing {}", path.display()))(e));
                }
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
    }
    std::fs::write(path, bytes).map_err(PipelineError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_are_staged_with_their_inputs_in_the_run_storage() {
        let dir = tempfile::tempdir().unwrap();
        let src = JobSource::Benchmark {
            workload: Workload::Sort,
            size: Some("2kB".into()),
            tasks: 3,
        };
        let s = stage(&src, dir.path(), 7, Ui::QUIET).unwrap();
        assert_eq!(s.key, "sort@2kB");
        assert_eq!(s.tasks.len(), 3);
        let input = local_path(&s.tasks[2].inputs["input"]).unwrap();
        assert_eq!(
            input,
            dir.path().join("storage/in/sort-000002.txt"),
            "inputs live in the run's storage"
        );
        // Seed 7 + index 2.
        let want = Workload::Sort
            .generate_input(9, &Workload::Sort.parse_size("2kB").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&input).unwrap(), want);
        assert_eq!(s.task_seconds, Some(3.0));
    }

    #[test]
    fn duplicate_ids_and_bad_sizes_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let t: Task =
            serde_json::from_value(serde_json::json!({"id": "a", "builtin": {"name": "noop"}}))
                .unwrap();
        let src = JobSource::Tasks {
            name: "tasks-file".into(),
            tasks: vec![t.clone(), t],
            origin: "x".into(),
        };
        let e = stage(&src, dir.path(), 0, Ui::QUIET).unwrap_err();
        assert!(
            matches!(&e, PipelineError::Usage(m) if m.contains("\"a\" appears twice")),
            "{e}"
        );
        let src = JobSource::Benchmark {
            workload: Workload::Video,
            size: Some("12".into()),
            tasks: 1,
        };
        assert!(matches!(
            stage(&src, dir.path(), 0, Ui::QUIET),
            Err(PipelineError::Usage(_))
        ));
    }
}
