//! ProPack's benchmark workloads: sort, statelesscost and video.
//!
//! Each workload is a pure function of files in a task's scratch directory, so
//! the same code runs in-process as a `bootstrap` built-in and as the
//! standalone `propack-bench` executable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A workload failed: bad params, bad input, or an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No workload of that name.
    #[error("unknown built-in workload {0:?} (known: sort, statelesscost, video)")]
    Unknown(String),
}

/// Runs built-in workload `name` with `params` inside `scratch`.
///
/// `inputs` and `outputs` map the task's file names (keys of the task's
/// `inputs`/`outputs`) to their paths in the scratch directory; inputs have
/// already been fetched, outputs are uploaded by the caller after success.
/// Returns a small JSON summary for the task result.
pub fn run_builtin(
    name: &str,
    params: &Value,
    scratch: &Path,
    inputs: &BTreeMap<String, PathBuf>,
    outputs: &BTreeMap<String, PathBuf>,
) -> Result<Value, WorkloadError> {
    let _ = (params, scratch, inputs, outputs);
    Err(WorkloadError::Unknown(name.to_owned()))
}
