//! The pipeline's one error type: which stage failed, with the error it wraps as its source.

use crate::backend::BackendError;
use crate::model::ModelError;
use crate::platform::PlatformError;

/// Why a pipeline stage failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request cannot be run as asked (exit status 2): bad sizes, duplicate ids, no tasks.
    #[error("{0}")]
    Usage(String),
    /// The platform profile.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Profiling, modelling, planning or the plan store.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The Step Functions definition for the job.
    #[error("building the state machine definition: {0}")]
    Definition(#[from] propack_step_functions::BuildError),
    /// A backend could not run a job.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file of the run directory.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A profiling run did not produce what a profile needs.
    #[error("profiling: {0}")]
    Profile(String),
}

#[cfg(feature = "aws")]
impl From<crate::backend::aws::AwsError> for PipelineError {
    fn from(e: crate::backend::aws::AwsError) -> Self {
        Self::Backend(e.into())
    }
}

impl PipelineError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| PipelineError::Io { context, source }
    }

    /// Whether this is the user's mistake (exit status 2) rather than a failure (1).
    pub fn is_usage(&self) -> bool {
        matches!(self, PipelineError::Usage(_))
    }
}

impl From<propack_runtime::uri::UriError> for PipelineError {
    fn from(e: propack_runtime::uri::UriError) -> Self {
        PipelineError::Usage(e.to_string())
    }
}
