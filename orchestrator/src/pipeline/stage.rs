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
        /// Each task's relative work (`"weight"` in a tasks file); empty: the default
        /// (see [`StagedJob::weights`]).
        weights: Vec<f64>,
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
    /// Each task's relative work: given, else its input bytes where every task's are known
    /// (local files), else 1 (see [`crate::batching`]).
    pub weights: Vec<f64>,
}

impl StagedJob {
    /// The tasks in the order that makes ItemBatcher's consecutive batches of `k` the
    /// balanced ones ([`crate::batching::balanced_order`]); as staged when weights are equal.
    pub fn batch_order(&self, k: usize) -> Vec<Task> {
        let equal = self.weights.windows(2).all(|w| w[0] == w[1]);
        if equal || self.weights.len() != self.tasks.len() {
            return self.tasks.clone();
        }
        crate::batching::balanced_order(&self.weights, k)
            .into_iter()
            .map(|i| self.tasks[i].clone())
            .collect()
    }

    /// The weights in [`StagedJob::batch_order`]'s order.
    pub fn batch_order_weights(&self, k: usize) -> Vec<f64> {
        if self.weights.len() != self.tasks.len() {
            return vec![1.0; self.tasks.len()];
        }
        crate::batching::balanced_order(&self.weights, k)
            .into_iter()
            .map(|i| self.weights[i])
            .collect()
    }
}

/// Input bytes of each task where every task's inputs are local files, else 1 each.
fn input_bytes(tasks: &[Task]) -> Vec<f64> {
    let bytes: Option<Vec<f64>> = tasks
        .iter()
        .map(|t| {
            t.inputs.values().try_fold(0u64, |sum, uri| {
                let len = std::fs::metadata(local_path(uri)?).ok()?.len();
                Some(sum + len)
            })
        })
        .map(|b| b.filter(|&b| b > 0).map(|b| b as f64))
        .collect();
    bytes.unwrap_or_else(|| vec![1.0; tasks.len()])
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
            weights,
        } => StagedJob {
            workload: name.clone(),
            size: None,
            key: origin.clone(),
            weights: if weights.len() == tasks.len() {
                weights.clone()
            } else {
                input_bytes(tasks)
            },
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
        weights: input_bytes(&tasks),
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
            weights: Vec::new(),
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

    /// The ItemBatcher settings of a definition (the first Map that has one).
    fn item_batcher(v: &serde_json::Value) -> Option<(usize, usize)> {
        if let Some(b) = v.get("ItemBatcher") {
            let n = |key: &str| b[key].as_u64().map_or(usize::MAX, |x| x as usize);
            return Some((n("MaxItemsPerBatch"), n("MaxInputBytesPerBatch")));
        }
        match v {
            serde_json::Value::Object(m) => m.values().find_map(item_batcher),
            serde_json::Value::Array(a) => a.iter().find_map(item_batcher),
            _ => None,
        }
    }

    #[test]
    fn manifest_order_makes_itembatchers_batches_the_balanced_ones() {
        // 203 uneven tasks packed 4 per instance: 51 batches (a Distributed Map), the last of 3.
        let (c, k) = (203usize, 4usize);
        let tasks: Vec<Task> = (0..c)
            .map(|i| {
                serde_json::from_value(
                    serde_json::json!({"id": format!("t{i}"), "builtin": {"name": "noop"}}),
                )
                .unwrap()
            })
            .collect();
        let weights: Vec<f64> = (0..c)
            .map(|i| f64::from((i * 37 % 101) as u32 + 1))
            .collect();
        let staged = StagedJob {
            workload: "w".into(),
            size: None,
            key: "w".into(),
            tasks,
            task_seconds: Some(1.0),
            weights: weights.clone(),
        };
        let ordered = staged.batch_order(k);
        let platform = crate::platform::PlatformProfile::aws_2021();
        let built =
            super::super::definition_for(&ordered, k, &platform, Some(1.0), "propack").unwrap();
        let def: serde_json::Value =
            serde_json::from_str(&built.definition.to_json_pretty()).unwrap();
        let (max_items, max_bytes) = item_batcher(&def).expect("a batched Map");
        assert_eq!(max_items, k);
        // What Step Functions reads: the manifest, batched consecutively.
        let manifest: Vec<serde_json::Value> =
            serde_json::from_slice(&propack_step_functions::manifest::write_manifest(&ordered))
                .unwrap();
        let batches = crate::backend::local::sfn::item_batches(manifest, max_items, max_bytes);
        let ids: Vec<Vec<String>> = batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|t| t["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect();
        // The balanced batches, formed directly.
        let order = crate::batching::balanced_order(&weights, k);
        let want: Vec<Vec<String>> = order
            .chunks(k)
            .map(|b| b.iter().map(|i| format!("t{i}")).collect())
            .collect();
        assert_eq!(ids, want);
        assert_eq!(ids.len(), 51);
        assert_eq!(ids[50].len(), 3);
        // And they are balanced: the heaviest batch is lighter than in staged order.
        let load = |b: &[usize]| b.iter().map(|&i| weights[i]).sum::<f64>();
        let staged_max = (0..c)
            .collect::<Vec<_>>()
            .chunks(k)
            .map(load)
            .fold(0.0, f64::max);
        let balanced_max = order.chunks(k).map(load).fold(0.0, f64::max);
        assert!(balanced_max < staged_max, "{balanced_max} vs {staged_max}");
        let full: Vec<f64> = order.chunks(k).take(50).map(load).collect();
        let spread = full.iter().copied().fold(0.0, f64::max)
            - full.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            spread <= 101.0,
            "full batches within one task's weight: {spread}"
        );
    }
}
