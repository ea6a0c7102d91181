//! Backends that run a packed job: the embedded local platform, AWS, and the simulator.
//!
//! All three take the same [`Job`] (the C tasks, the packing degree k and the
//! Step Functions definition built for them) and return the same
//! [`RunOutcome`], so reports, plots and metrics never know which one ran.

use std::path::PathBuf;

use propack_runtime::{BatchResult, Task};
use serde_json::Value;

use crate::platform::PlatformProfile;
use crate::records::RunRecords;

#[cfg(feature = "aws")]
pub mod aws;
pub mod local;
pub mod sim;

/// A packed job ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unique run id (also the Step Functions execution name).
    pub run_id: String,
    /// The C tasks.
    pub tasks: Vec<Task>,
    /// Packing degree.
    pub k: usize,
    /// The ASL definition built by `propack-step-functions` for this job.
    pub definition: Value,
    /// Where the run's files go.
    pub run_dir: PathBuf,
    /// The platform the job runs on (or is simulated on).
    pub platform: PlatformProfile,
}

/// What a backend measured.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Per-instance and per-task records.
    pub records: RunRecords,
    /// Every batch result returned by an instance (successful attempts).
    pub results: Vec<BatchResult>,
    /// State transitions billed by the orchestration (0 for direct invokes).
    pub state_transitions: u64,
}

/// Live progress of a run, reported by backends as batches finish.
pub trait Progress: Send + Sync {
    /// A batch finished (successfully or not) with `tasks` tasks of which `failed` failed.
    fn batch_done(&self, tasks: usize, failed: usize);
}

/// Progress that goes nowhere (tests, `--json`).
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn batch_done(&self, _tasks: usize, _failed: usize) {}
}

/// Why a backend could not run a job.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The definition uses something this backend cannot execute.
    #[error("not supported locally: {0}")]
    Unsupported(String),
    /// Any other failure, with context.
    #[error("{0}")]
    Other(String),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A place to run packed jobs.
pub trait Backend {
    /// Short name for reports (`local`, `aws`, `sim`).
    fn name(&self) -> &str;
    /// Runs the job to completion.
    fn run(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> impl std::future::Future<Output = Result<RunOutcome, BackendError>>;
}
