//! Backends that run a packed job: the embedded local platform, AWS, and the simulator.
//!
//! All three take the same [`Job`] (the C tasks, the packing degree k and the
//! typed Step Functions definition built for them, with its mode and child type)
//! and return the same [`RunOutcome`], so reports, plots, metrics and billing
//! never know which one ran.

use std::path::PathBuf;

use propack_runtime::{BatchResult, Task};
use propack_step_functions::Built;

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
    /// The definition `propack-step-functions` built for this job, with the facts it
    /// decided (inline or distributed, EXPRESS or STANDARD children). Backends read those
    /// facts here; the AWS backend serialises the state machine only at the SDK call.
    pub definition: Built,
    /// Where the run's files go.
    pub run_dir: PathBuf,
    /// The platform the job runs on (or is simulated on).
    pub platform: PlatformProfile,
    /// Set by the first Ctrl-C: start no more invocations, finish those in flight.
    pub stop: Stop,
}

/// A request to stop starting invocations (the first Ctrl-C), readable by every backend.
///
/// A signal is process-wide, so the flag is a `'static` the binary owns; `Stop::NEVER`
/// (the default) is never set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stop(Option<&'static std::sync::atomic::AtomicBool>);

impl Stop {
    /// A stop that is never requested.
    pub const NEVER: Stop = Stop(None);

    /// A stop requested when `flag` is set.
    pub const fn new(flag: &'static std::sync::atomic::AtomicBool) -> Self {
        Stop(Some(flag))
    }

    /// Whether the stop was requested.
    pub fn requested(self) -> bool {
        self.0
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// What a backend measured.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Per-instance and per-task records.
    pub records: RunRecords,
    /// Every batch result returned by an instance (successful attempts).
    pub results: Vec<BatchResult>,
}

/// Live progress of a run, reported by backends as batches finish.
pub trait Progress: Send + Sync {
    /// A batch finished (successfully or not) with `tasks` tasks of which `failed` failed.
    fn batch_done(&self, tasks: usize, failed: usize);

    /// A batch returned `result` (the pipeline journals it). Called before
    /// [`Progress::batch_done`] for the same batch; backends that only learn results at
    /// the end (Step Functions' ResultWriter) call it then.
    fn batch_result(&self, _result: &BatchResult) {}

    /// A batch ended without a result (its invocation or child execution failed).
    fn batch_lost(&self, _task_ids: &[String], _error: &str) {}

    /// A Step Functions execution started (the pipeline journals it at once, so that
    /// `resume` can re-attach to it if this process dies before it ends).
    fn execution_started(&self, _execution: &crate::journal::ExecutionRecord) {}

    /// The wait for execution `arn` ended on an interrupt: it keeps running, or was asked
    /// to stop (`stopped`).
    fn execution_left(&self, _arn: &str, _stopped: bool) {}

    /// Something the user should know now (e.g. which execution is being waited for).
    fn note(&self, _text: &str) {}
}

/// Progress that goes nowhere (tests, `--json`).
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn batch_done(&self, _tasks: usize, _failed: usize) {}
}

/// Why a backend could not run a job. Every variant keeps the error it wraps as its source.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The definition uses something this backend cannot execute.
    #[error("not supported locally: {0}")]
    Unsupported(String),
    /// The job itself is malformed (e.g. k = 0).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// The definition or its execution input could not be built.
    #[error("building the Step Functions input: {0}")]
    Build(#[from] propack_step_functions::BuildError),
    /// The local platform's `bootstrap` is missing or could not be built.
    #[error(transparent)]
    Bootstrap(#[from] local::BootstrapError),
    /// The local platform could not run an invocation at all.
    #[error(transparent)]
    Invoke(#[from] local::lambda::InvokeError),
    /// AWS refused or failed.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] aws::AwsError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| BackendError::Io { context, source }
    }
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

/// Which backend runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The embedded local Lambda + Step Functions platform.
    Local,
    /// AWS Lambda + Step Functions.
    Aws,
    /// The discrete-event simulator.
    Sim,
}

impl BackendKind {
    /// `local`, `aws` or `sim`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Aws => "aws",
            BackendKind::Sim => "sim",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every backend behind one type, so a command holds one value whatever runs its jobs.
#[derive(Debug)]
pub enum AnyBackend {
    /// The embedded platform.
    Local(local::LocalBackend),
    /// AWS.
    #[cfg(feature = "aws")]
    Aws(Box<aws::AwsBackend>),
    /// The simulator.
    Sim(sim::SimBackend),
}

impl AnyBackend {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            AnyBackend::Local(_) => BackendKind::Local,
            #[cfg(feature = "aws")]
            AnyBackend::Aws(_) => BackendKind::Aws,
            AnyBackend::Sim(_) => BackendKind::Sim,
        }
    }
}

impl Backend for AnyBackend {
    fn name(&self) -> &str {
        self.kind().name()
    }

    async fn run(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> Result<RunOutcome, BackendError> {
        match self {
            AnyBackend::Local(b) => b.run(job, progress).await,
            #[cfg(feature = "aws")]
            AnyBackend::Aws(b) => b.run(job, progress).await,
            AnyBackend::Sim(b) => b.run(job, progress).await,
        }
    }
}
