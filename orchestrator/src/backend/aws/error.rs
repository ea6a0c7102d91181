//! Errors of the AWS backend, and how SDK failures are classified (retry, stop, report).

use std::path::PathBuf;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

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
    /// A malformed `s3://` URI.
    #[error("invalid S3 URI {0:?}: expected s3://BUCKET/KEY")]
    BadUri(String),
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

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttled (429, `TooManyRequestsException`, `SlowDown`, …): back off and retry.
    Throttled,
    /// A 5xx, a timeout or a dropped connection: back off and retry.
    Transient,
    /// 403 / `AccessDenied*`: stop and name the permission.
    Denied,
    /// Anything else (bad request, not found): stop and report.
    Permanent,
}

const THROTTLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "SlowDown",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "EC2ThrottledException",
];

const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Classifies an SDK error from its HTTP status, error code and kind.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return ErrorClass::Transient;
        }
        SdkError::ConstructionFailure(_) => return ErrorClass::Permanent,
        _ => {}
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default();
    if status == Some(429) || THROTTLE_CODES.contains(&code) {
        ErrorClass::Throttled
    } else if status == Some(403) || DENIED_CODES.contains(&code) {
        ErrorClass::Denied
    } else if status.is_some_and(|s| s >= 500) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

/// A readable one-line description of an SDK error (code, message and cause chain).
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            match status {
                Some(s) => format!("{code} (HTTP {s})"),
                None => code.to_owned(),
            }
        }
        _ => DisplayErrorContext(err).to_string(),
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
