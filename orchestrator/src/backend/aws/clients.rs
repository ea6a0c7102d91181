//! SDK clients built from the standard credential chain, with settings S3-compatible servers accept.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_types::retry::RetryConfig;

/// The three service clients the backend uses.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3, with checksums only where the API requires them.
    pub s3: aws_sdk_s3::Client,
    /// Lambda for control-plane calls (SDK retries on).
    pub lambda: aws_sdk_lambda::Client,
    /// Lambda for `Invoke` fan-out: SDK retries off, because the fan-out backs off itself
    /// and records when each attempt was really sent.
    pub lambda_invoke: aws_sdk_lambda::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
}

/// Whether an endpoint override is configured for S3 (then S3 is an emulator or an
/// S3-compatible store, which rarely resolves virtual-hosted bucket names).
fn s3_endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

impl AwsClients {
    /// Loads the standard chain: env vars, profiles (`AWS_PROFILE`), SSO, IMDS; regions;
    /// and the `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides.
    pub async fn from_env(region: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        let conf = loader.load().await;
        Self::from_conf(&conf, s3_endpoint_overridden())
    }

    /// Builds the clients from an already-loaded configuration.
    pub fn from_conf(conf: &SdkConfig, s3_path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(conf)
            // Since early 2025 the SDK adds CRC checksums to every upload by default;
            // moto, MinIO and other S3-compatible servers reject or mangle those.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(s3_path_style)
            .build();
        let lambda_invoke = aws_sdk_lambda::config::Builder::from(conf)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            lambda: aws_sdk_lambda::Client::new(conf),
            lambda_invoke: aws_sdk_lambda::Client::from_conf(lambda_invoke),
            sfn: aws_sdk_sfn::Client::new(conf),
        }
    }
}

/// A configuration pointing every service at one endpoint with static credentials
/// (moto's server in tests, or any local emulator).
pub fn static_conf(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("test", "test", None, None, "propack-static"),
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .build()
}
