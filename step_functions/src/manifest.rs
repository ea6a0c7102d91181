//! Execution inputs and the S3 task manifest: the data side of a packed run.
//!
//! The definition reads everything run-specific from the execution input
//! (paths in [`input_paths`]), so one state machine serves every run.

use propack_runtime::{BatchInput, Task};
use serde::{Deserialize, Serialize};

use crate::build::{BuildError, MAX_PAYLOAD_BYTES};

/// JSONPaths into the execution input that the generated definitions read.
pub mod input_paths {
    /// The run id, copied into every batch's `BatchInput.run_id`.
    pub const RUN_ID: &str = "$.run_id";
    /// Output URI prefix, copied into every batch's `BatchInput.output_prefix`.
    pub const OUTPUT_PREFIX: &str = "$.output_prefix";
    /// Distributed: S3 bucket of the manifest and results (unless fixed in the definition).
    pub const BUCKET: &str = "$.bucket";
    /// Distributed: S3 key of the task manifest (a JSON array of tasks).
    pub const MANIFEST_KEY: &str = "$.manifest_key";
    /// Distributed: S3 prefix under which ResultWriter writes the Map Run results.
    pub const RESULTS_PREFIX: &str = "$.results_prefix";
    /// Inline: the pre-packed batches.
    pub const BATCHES: &str = "$.batches";
}

/// Where full task logs go, relative to the run's `output_prefix` (which ends with `/`):
/// `<output_prefix>logs`, so they stay under the run prefix and the same place every
/// way a run starts (the definitions derive it from the input's `output_prefix`,
/// a field every input has: see [`crate::build::logs_prefix_path`]).
pub const LOGS_UNDER_OUTPUT: &str = "logs";

/// The `BatchInput.logs_prefix` of a run whose `output_prefix` is `output_prefix`.
pub fn logs_prefix(output_prefix: &str) -> String {
    format!("{output_prefix}{LOGS_UNDER_OUTPUT}")
}

/// One batch exactly as the runtime receives it from an `ItemBatcher`:
/// `{"Items": [...], "BatchInput": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedBatch {
    /// The k tasks.
    #[serde(rename = "Items")]
    pub items: Vec<Task>,
    /// Run-wide fields plus this batch's id.
    #[serde(rename = "BatchInput")]
    pub batch_input: BatchInput,
}

/// The JSON to start an execution with (what to paste in the Step Functions console).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInput {
    /// The run id.
    pub run_id: String,
    /// Where task outputs go when a task does not name them (`s3://bucket/prefix/`).
    pub output_prefix: String,
    /// Distributed: the bucket of the manifest and results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Distributed: the manifest's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// Distributed: the ResultWriter prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_prefix: Option<String>,
    /// Inline: the pre-packed batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<PackedBatch>>,
}

/// Conventional S3 layout of a run: everything under `propack/runs/<run_id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    /// `propack/runs/<run_id>`.
    pub prefix: String,
}

impl RunLayout {
    /// The layout of `run_id`.
    pub fn new(run_id: &str) -> Self {
        Self {
            prefix: format!("propack/runs/{run_id}"),
        }
    }
    /// Key of the task manifest.
    pub fn manifest_key(&self) -> String {
        format!("{}/manifest.json", self.prefix)
    }
    /// ResultWriter prefix.
    pub fn results_prefix(&self) -> String {
        format!("{}/results", self.prefix)
    }
    /// Task output prefix in `bucket`.
    pub fn output_prefix(&self, bucket: &str) -> String {
        format!("s3://{bucket}/{}/out/", self.prefix)
    }
}

/// The S3 manifest a Distributed Map's `ItemReader` (InputType JSON) reads: a JSON array of tasks.
pub fn write_manifest(tasks: &[Task]) -> Vec<u8> {
    let mut out = serde_json::to_vec(tasks).expect("tasks always serialise");
    out.push(b'\n');
    out
}

/// The execution input of a distributed run in the conventional layout of `bucket`.
pub fn distributed_input(run_id: &str, bucket: &str) -> ExecutionInput {
    let layout = RunLayout::new(run_id);
    ExecutionInput {
        run_id: run_id.to_owned(),
        output_prefix: layout.output_prefix(bucket),
        bucket: Some(bucket.to_owned()),
        manifest_key: Some(layout.manifest_key()),
        results_prefix: Some(layout.results_prefix()),
        batches: None,
    }
}

/// Packs tasks k per batch in order, the way an `ItemBatcher` with `MaxItemsPerBatch = k` does.
pub fn pack(
    tasks: &[Task],
    packing: usize,
    run_id: &str,
    output_prefix: &str,
    parallelism: Option<usize>,
) -> Result<Vec<PackedBatch>, BuildError> {
    if packing == 0 {
        return Err(BuildError::ZeroPacking);
    }
    Ok(tasks
        .chunks(packing)
        .enumerate()
        .map(|(i, chunk)| PackedBatch {
            items: chunk.to_vec(),
            batch_input: BatchInput {
                run_id: Some(run_id.to_owned()),
                batch_id: Some(format!("{i:06}")),
                output_prefix: Some(output_prefix.to_owned()),
                parallelism,
                handler: None,
                max_result_bytes: None,
                logs_prefix: Some(logs_prefix(output_prefix)),
            },
        })
        .collect())
}

/// The execution input of an inline run: ⌈C/k⌉ batches in the runtime's contract shape.
/// Refuses an input above 256 KB, which Step Functions would reject at start.
pub fn inline_input(
    run_id: &str,
    output_prefix: &str,
    tasks: &[Task],
    packing: usize,
    parallelism: Option<usize>,
) -> Result<ExecutionInput, BuildError> {
    if tasks.is_empty() {
        return Err(BuildError::ZeroTasks);
    }
    if packing > tasks.len() {
        return Err(BuildError::PackingAboveTasks {
            packing: packing as u64,
            tasks: tasks.len() as u64,
        });
    }
    let input = ExecutionInput {
        run_id: run_id.to_owned(),
        output_prefix: output_prefix.to_owned(),
        bucket: None,
        manifest_key: None,
        results_prefix: None,
        batches: Some(pack(tasks, packing, run_id, output_prefix, parallelism)?),
    };
    let bytes = serde_json::to_vec(&input)
        .expect("inputs always serialise")
        .len() as u64;
    if bytes > MAX_PAYLOAD_BYTES {
        return Err(BuildError::InlineInputTooLarge {
            estimated_bytes: bytes,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(input)
}

/// Serialised size of the largest task, the `task_bytes` the builder should assume.
pub fn max_task_bytes(tasks: &[Task]) -> u64 {
    tasks
        .iter()
        .map(|t| serde_json::to_vec(t).expect("tasks always serialise").len() as u64)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use propack_runtime::{Batch, ExecSpec, ParseOptions, TaskAction};

    fn task(i: usize) -> Task {
        Task {
            id: format!("t{i}"),
            action: TaskAction::Exec(ExecSpec {
                program: "/bin/true".into(),
                args: vec![],
                env: Default::default(),
            }),
            timeout_ms: None,
            inputs: Default::default(),
            outputs: Default::default(),
        }
    }

    #[test]
    fn inline_batches_parse_as_runtime_batches() {
        let tasks: Vec<Task> = (0..7).map(task).collect();
        let input = inline_input("r1", "file:///tmp/o/", &tasks, 3, Some(2)).unwrap();
        let batches = input.batches.unwrap();
        assert_eq!(
            batches.iter().map(|b| b.items.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let b = Batch::from_value(
            &serde_json::to_value(&batches[2]).unwrap(),
            &ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r1"));
        assert_eq!(b.batch_id.as_deref(), Some("000002"));
        assert_eq!(b.parallelism, Some(2));
        assert_eq!(b.tasks[0].id, "t6");
    }

    #[test]
    fn inline_input_refuses_oversize_and_bad_k() {
        let mut big = task(0);
        if let TaskAction::Exec(e) = &mut big.action {
            e.args = vec!["x".repeat(300_000)];
        }
        assert!(matches!(
            inline_input("r", "file:///o/", &[big], 1, None),
            Err(BuildError::InlineInputTooLarge { .. })
        ));
        let tasks: Vec<Task> = (0..2).map(task).collect();
        assert!(matches!(
            inline_input("r", "file:///o/", &tasks, 3, None),
            Err(BuildError::PackingAboveTasks { .. })
        ));
        assert_eq!(
            pack(&tasks, 0, "r", "p", None).unwrap_err(),
            BuildError::ZeroPacking
        );
    }

    #[test]
    fn manifest_is_a_json_array_of_tasks() {
        let tasks: Vec<Task> = (0..3).map(task).collect();
        let v: Vec<Task> = serde_json::from_slice(&write_manifest(&tasks)).unwrap();
        assert_eq!(v, tasks);
        let input = distributed_input("r9", "bkt");
        assert_eq!(
            input.manifest_key.as_deref(),
            Some("propack/runs/r9/manifest.json")
        );
        assert_eq!(input.output_prefix, "s3://bkt/propack/runs/r9/out/");
    }
}
