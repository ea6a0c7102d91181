//! Errors of the AWS backend; SDK failures are classified (retry, stop, report) by the runtime's `classify`.

use std::path::PathBuf;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use propack_runtime::s3::S3Error;
use propack_runtime::uri::UriError;

// One classifier for every SDK client; the runtime's S3 core owns it.
pub use propack_runtime::s3::{ErrorClass, classify, describe};

/// Why an AWS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The caller's credentials lack a permission; retrying cannot help.
    #[error(
        "{operation} on {resource}: access denied: the credentials lack permission `{permission}` \
         (add it to the caller's IAM policy; `orchestrator deploy` prints one). AWS said: {message}"
    )]
    AccessDenied {
        /// The API call, e.g. `lambda:Invoke`.
        operation: String,
        /// The ARN or name the call was about.
        resource: String,
        /// The IAM action that is missing.
        permission: String,
        /// The service's message.
        message: String,
    },
    /// The service kept throttling or failing after every retry.
    #[error("{operation} on {resource}: gave up after {attempts} attempts: {message}")]
    RetriesExhausted {
        /// The API call.
        operation: String,
        /// The ARN or name the call was about.
        resource: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// Any other service error.
    #[error("{operation} on {resource}: {message}")]
    Service {
        /// The API call.
        operation: String,
        /// The ARN or name the call was about.
        resource: String,
        /// The service's error code and message.
        message: String,
    },
    /// An S3 call of the object store failed (it names the missing permission when denied).
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A malformed object URI.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// Invalid arguments or an unexpected reply.
    #[error("{0}")]
    Invalid(String),
    /// Local file I/O.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl AwsError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Turns an SDK error into an [`AwsError`], naming `permission` when access was denied.
pub fn sdk_error<E>(
    err: &SdkError<E, HttpResponse>,
    operation: &str,
    resource: &str,
    permission: &str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = describe(err);
    if classify(err) == ErrorClass::Denied {
        AwsError::AccessDenied {
            operation: operation.to_owned(),
            resource: resource.to_owned(),
            permission: permission.to_owned(),
            message,
        }
    } else {
        AwsError::Service {
            operation: operation.to_owned(),
            resource: resource.to_owned(),
            message,
        }
    }
}
