//! S3 errors that name the object, the operation and a missing IAM permission; SDK error classes.

use std::path::PathBuf;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStreamError;

use crate::uri::S3Uri;

/// An SDK error with its concrete operation type erased (it stays the `source`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to do about a failed AWS call.
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

/// Classifies an error of any AWS SDK client (S3, Lambda, Step Functions: they share the
/// smithy runtime's error type) from its kind, HTTP status and error code.
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

/// A readable one-line description of an SDK error: its code and message, else the
/// cause chain (the SDK's own Display is a terse "service error").
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => match err.raw_response().map(|r| r.status().as_u16()) {
            Some(s) => format!("{code} (HTTP {s})"),
            None => code.to_owned(),
        },
        _ => DisplayErrorContext(err).to_string(),
    }
}

/// The S3 API calls the store makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    /// `GetObject`.
    GetObject,
    /// `HeadObject`.
    HeadObject,
    /// `PutObject`.
    PutObject,
    /// `CreateMultipartUpload`.
    CreateMultipartUpload,
    /// `UploadPart`.
    UploadPart,
    /// `CompleteMultipartUpload`.
    CompleteMultipartUpload,
    /// `ListObjectsV2`.
    ListObjectsV2,
    /// `CreateBucket`.
    CreateBucket,
}

impl S3Op {
    /// The API name, e.g. `PutObject`.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetObject => "GetObject",
            Self::HeadObject => "HeadObject",
            Self::PutObject => "PutObject",
            Self::CreateMultipartUpload => "CreateMultipartUpload",
            Self::UploadPart => "UploadPart",
            Self::CompleteMultipartUpload => "CompleteMultipartUpload",
            Self::ListObjectsV2 => "ListObjectsV2",
            Self::CreateBucket => "CreateBucket",
        }
    }

    /// The IAM action the call needs: every part of a multipart upload is
    /// authorised by `s3:PutObject`, listing by `s3:ListBucket`.
    pub fn permission(self) -> &'static str {
        match self {
            Self::GetObject | Self::HeadObject => "s3:GetObject",
            Self::PutObject
            | Self::CreateMultipartUpload
            | Self::UploadPart
            | Self::CompleteMultipartUpload => "s3:PutObject",
            Self::ListObjectsV2 => "s3:ListBucket",
            Self::CreateBucket => "s3:CreateBucket",
        }
    }
}

impl std::fmt::Display for S3Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An S3 operation failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The caller's credentials lack a permission; retrying cannot help.
    #[error(
        "S3 {op} on {uri}: access denied: the credentials lack permission `{permission}` \
         (add it to the caller's IAM policy; `orchestrator deploy` prints one). AWS said: {message}"
    )]
    AccessDenied {
        /// The object, prefix or bucket.
        uri: S3Uri,
        /// The call that was refused.
        op: S3Op,
        /// The IAM action that is missing.
        permission: &'static str,
        /// The service's error code and message.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// Any other failed call (not found, throttled after the SDK's retries, unreachable, …).
    #[error("S3 {op} on {uri}: {message}")]
    Service {
        /// The object, prefix or bucket.
        uri: S3Uri,
        /// The call that failed.
        op: S3Op,
        /// How the failure classifies.
        class: ErrorClass,
        /// The service's error code and message, or the cause chain.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The object's bytes could not be streamed (a local file to read, a body to receive).
    #[error("S3 {op} on {uri}: streaming the object failed: {source}")]
    Stream {
        /// The object.
        uri: S3Uri,
        /// The call.
        op: S3Op,
        /// The byte-stream error.
        #[source]
        source: ByteStreamError,
    },
    /// A local file operation around a transfer failed.
    #[error("S3 {op} on {uri}: {what} {}: {source}", path.display())]
    Io {
        /// The object.
        uri: S3Uri,
        /// The call.
        op: S3Op,
        /// What was being done to `path`, e.g. `writing`.
        what: &'static str,
        /// The local file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The service accepted a multipart upload but returned no upload id.
    #[error("S3 CreateMultipartUpload on {uri}: the reply has no upload id")]
    NoUploadId {
        /// The object.
        uri: S3Uri,
    },
}

impl S3Error {
    /// Maps an SDK error of `op` on `uri`, naming the permission when access was denied.
    pub fn from_sdk<E>(op: S3Op, uri: &S3Uri) -> impl FnOnce(SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let uri = uri.clone();
        move |err| {
            let message = describe(&err);
            let class = classify(&err);
            let source = Box::new(err);
            if class == ErrorClass::Denied {
                Self::AccessDenied {
                    uri,
                    op,
                    permission: op.permission(),
                    message,
                    source,
                }
            } else {
                Self::Service {
                    uri,
                    op,
                    class,
                    message,
                    source,
                }
            }
        }
    }

    /// How the failure classifies (local and streaming failures are permanent).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::AccessDenied { .. } => ErrorClass::Denied,
            Self::Service { class, .. } => *class,
            Self::Stream { .. } | Self::Io { .. } | Self::NoUploadId { .. } => {
                ErrorClass::Permanent
            }
        }
    }

    pub(crate) fn stream(op: S3Op, uri: &S3Uri) -> impl FnOnce(ByteStreamError) -> Self {
        let uri = uri.clone();
        move |source| Self::Stream { uri, op, source }
    }

    pub(crate) fn io(
        op: S3Op,
        uri: &S3Uri,
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let (uri, path) = (uri.clone(), path.to_path_buf());
        move |source| Self::Io {
            uri,
            op,
            what,
            path,
            source,
        }
    }
}
