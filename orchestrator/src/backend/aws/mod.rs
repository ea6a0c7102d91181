//! AWS backend: S3, Lambda and Step Functions through the official SDKs.
