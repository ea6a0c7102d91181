//! SDK clients built from the standard credential chain; S3's settings come from the runtime's S3 core.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use propack_runtime::s3::S3Options;

/// The three service clients the backend uses.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3, configured by [`propack_runtime::s3::client`] (path style under endpoint
    /// overrides, checksums only where the API requires them).
    pub s3: aws_sdk_s3::Client,
    /// Lambda for control-plane calls (SDK retries on).
    pub lambda: aws_sdk_lambda::Client,
    /// Lambda for `Invoke` fan-out: SDK retries off, because the fan-out backs off itself
    /// and records when each attempt was really sent.
    pub lambda_invoke: aws_sdk_lambda::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
}

impl AwsClients {
    /// Loads the standard chain: env vars, profiles (`AWS_PROFILE`), SSO, IMDS; regions;
    /// the `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides and `PROPACK_S3_PATH_STYLE`.
    pub async fn from_env(region: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        let conf = loader.load().await;
        Self::with_s3_options(&conf, &S3Options::from_env())
    }

    /// Builds the clients from an already-loaded configuration; `s3_path_style` forces
    /// path-style S3 addressing (implied anyway when `conf` overrides the endpoint).
    pub fn from_conf(conf: &SdkConfig, s3_path_style: bool) -> Self {
        let s3 = S3Options {
            force_path_style: s3_path_style,
            ..S3Options::default()
        };
        Self::with_s3_options(conf, &s3)
    }

    /// Builds the clients from an already-loaded configuration and S3 options.
    pub fn with_s3_options(conf: &SdkConfig, s3: &S3Options) -> Self {
        let lambda_invoke = aws_sdk_lambda::config::Builder::from(conf)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            s3: propack_runtime::s3::client(conf, s3),
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
