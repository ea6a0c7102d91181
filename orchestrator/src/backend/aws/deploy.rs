//! Creating or updating the packed function (and publishing its layer), waiting until Lambda reports it ready.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, EphemeralStorage, FunctionCode, LastUpdateStatus,
    LayerVersionContentInput, Runtime, State,
};

use super::error::{AwsError, sdk_error};
use super::package::{LambdaArch, LambdaRuntime};

mod checks;

pub use checks::{
    DeployInputError, DeployInputs, EXEC_WRAPPER_VAR, EnvArg, EnvVar, MAX_LAYERS, check_inputs,
    handler_module_files, parse_handler, parse_layer_version_arn,
};

/// Where Lambda takes a zip from.
#[derive(Clone, PartialEq, Eq)]
pub enum Code {
    /// Inside the request (`ZipFile`, up to 50 MiB).
    Zip(Vec<u8>),
    /// An object uploaded to S3 beforehand.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zip(b) => write!(f, "Zip({} bytes)", b.len()),
            Self::S3 { bucket, key } => write!(f, "S3(s3://{bucket}/{key})"),
        }
    }
}

/// The function's environment. Values the user gave (`--env`) are secrets: `Debug` and
/// [`FunctionEnv::masked`] show them as `KEY=****`, so they reach no output or log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FunctionEnv(BTreeMap<String, (String, bool)>);

impl FunctionEnv {
    /// Sets a variable ProPack itself chose (shown in full).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), (value.into(), false));
    }

    /// Sets a variable whose value is never shown.
    pub fn set_secret(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), (value.into(), true));
    }

    /// A variable's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|(v, _)| v.as_str())
    }

    /// `KEY=value` for ProPack's own variables, `KEY=****` for the user's.
    pub fn masked(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, (v, secret))| {
                if *secret {
                    format!("{k}=****")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect()
    }

    fn variables(&self) -> std::collections::HashMap<String, String> {
        self.0
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

impl fmt::Debug for FunctionEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.masked()).finish()
    }
}

/// The function to deploy.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name.
    pub name: String,
    /// Execution role ARN.
    pub role_arn: String,
    /// The function zip.
    pub code: Code,
    /// Memory, MB (Lambda: 128–10,240; vCPUs scale with it).
    pub memory_mb: i32,
    /// Timeout, seconds (≤ 900).
    pub timeout_s: i32,
    /// /tmp size, MB (512–10,240).
    pub tmp_mb: i32,
    /// Architecture.
    pub arch: LambdaArch,
    /// Runtime.
    pub runtime: LambdaRuntime,
    /// Lambda's Handler field: `bootstrap` for ProPack's own runtime, else `module.function`
    /// (Lambda hands it to the runtime as `_HANDLER`).
    pub handler: String,
    /// Layer version ARNs, in the order Lambda extracts them into `/opt`.
    pub layers: Vec<String>,
    /// Environment variables.
    pub env: FunctionEnv,
}

/// The deployed function, as Lambda describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FunctionInfo {
    /// Its ARN.
    pub arn: String,
    /// Whether it was created (false: updated).
    pub created: bool,
    /// Base64 SHA-256 of the code.
    pub code_sha256: String,
}

/// Creates the function, or updates its code and configuration, and waits until it is
/// `Active` with its last update `Successful`.
pub async fn deploy_function(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    wait_limit: Duration,
) -> Result<FunctionInfo, AwsError> {
    let name = spec.name.as_str();
    let env = Environment::builder()
        .set_variables(Some(spec.env.variables()))
        .build();
    let runtime = Runtime::from(spec.runtime.as_str());
    let arch = Architecture::from(spec.arch.as_str());
    let exists = match lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => {
            return Err(sdk_error(
                &e,
                "lambda:GetFunctionConfiguration",
                name,
                "lambda:GetFunctionConfiguration",
            ));
        }
    };
    let tmp = EphemeralStorage::builder()
        .size(spec.tmp_mb)
        .build()
        .map_err(|e| AwsError::Invalid(e.to_string()))?;
    let created = !exists;
    if exists {
        wait_ready(lambda, name, wait_limit).await?;
        let update = lambda.update_function_code().function_name(name);
        let update = match &spec.code {
            Code::Zip(bytes) => update.zip_file(Blob::new(bytes.clone())),
            Code::S3 { bucket, key } => update.s3_bucket(bucket).s3_key(key),
        };
        update.architectures(arch).send().await.map_err(|e| {
            sdk_error(
                &e,
                "lambda:UpdateFunctionCode",
                name,
                "lambda:UpdateFunctionCode",
            )
        })?;
        // A configuration update is refused while the code update is in progress.
        wait_ready(lambda, name, wait_limit).await?;
        lambda
            .update_function_configuration()
            .function_name(name)
            .role(&spec.role_arn)
            .runtime(runtime)
            .handler(&spec.handler)
            .memory_size(spec.memory_mb)
            .timeout(spec.timeout_s)
            .ephemeral_storage(tmp.clone())
            .environment(env)
            // Always sent, so that layers dropped from the command line are detached too.
            .set_layers(Some(spec.layers.clone()))
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &e,
                    "lambda:UpdateFunctionConfiguration",
                    name,
                    "lambda:UpdateFunctionConfiguration",
                )
            })?;
    } else {
        lambda
            .create_function()
            .function_name(name)
            .role(&spec.role_arn)
            .runtime(runtime)
            .handler(&spec.handler)
            .architectures(arch)
            .memory_size(spec.memory_mb)
            .timeout(spec.timeout_s)
            .ephemeral_storage(tmp.clone())
            .environment(env)
            .set_layers(Some(spec.layers.clone()))
            .code(match &spec.code {
                Code::Zip(bytes) => FunctionCode::builder()
                    .zip_file(Blob::new(bytes.clone()))
                    .build(),
                Code::S3 { bucket, key } => FunctionCode::builder()
                    .s3_bucket(bucket)
                    .s3_key(key)
                    .build(),
            })
            .send()
            .await
            .map_err(|e| sdk_error(&e, "lambda:CreateFunction", name, "lambda:CreateFunction"))?;
    }
    let conf = wait_ready(lambda, name, wait_limit).await?;
    Ok(FunctionInfo {
        arn: conf.0,
        created,
        code_sha256: conf.1,
    })
}

/// A layer to publish (`PublishLayerVersion`): every publish makes a new version.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// Layer name.
    pub name: String,
    /// The layer zip.
    pub code: Code,
    /// The runtime it is meant for.
    pub runtime: LambdaRuntime,
    /// The architecture of its binaries.
    pub arch: LambdaArch,
}

/// A published or looked-up layer version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    /// The layer version ARN (what a function attaches).
    pub arn: String,
    /// Its zipped size, bytes.
    pub code_size: u64,
}

/// Publishes a new version of the layer.
pub async fn publish_layer(
    lambda: &aws_sdk_lambda::Client,
    spec: &LayerSpec,
) -> Result<LayerInfo, AwsError> {
    let content = match &spec.code {
        Code::Zip(bytes) => LayerVersionContentInput::builder().zip_file(Blob::new(bytes.clone())),
        Code::S3 { bucket, key } => LayerVersionContentInput::builder()
            .s3_bucket(bucket)
            .s3_key(key),
    }
    .build();
    let out = lambda
        .publish_layer_version()
        .layer_name(&spec.name)
        .description("ProPack runtime: /opt/bootstrap, /opt/bin, exec wrapper")
        .content(content)
        .compatible_runtimes(Runtime::from(spec.runtime.as_str()))
        .compatible_architectures(Architecture::from(spec.arch.as_str()))
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                &e,
                "lambda:PublishLayerVersion",
                &spec.name,
                "lambda:PublishLayerVersion",
            )
        })?;
    Ok(LayerInfo {
        arn: out.layer_version_arn().unwrap_or_default().to_owned(),
        code_size: out
            .content()
            .map_or(0, |c| u64::try_from(c.code_size()).unwrap_or(0)),
    })
}

/// Looks up an existing layer version (it must exist, and the caller must be allowed to
/// attach it); its zipped size is a lower bound of what it adds unzipped.
pub async fn get_layer(lambda: &aws_sdk_lambda::Client, arn: &str) -> Result<LayerInfo, AwsError> {
    // GetLayerVersion by (layer ARN, number) rather than GetLayerVersionByArn: the same IAM
    // action, and the call emulators implement.
    let (layer, version) = arn
        .rsplit_once(':')
        .and_then(|(l, v)| Some((l, v.parse::<i64>().ok()?)))
        .ok_or_else(|| AwsError::Invalid(format!("{arn} is not a layer version ARN")))?;
    let out = lambda
        .get_layer_version()
        .layer_name(layer)
        .version_number(version)
        .send()
        .await
        .map_err(|e| sdk_error(&e, "lambda:GetLayerVersion", arn, "lambda:GetLayerVersion"))?;
    Ok(LayerInfo {
        arn: out.layer_version_arn().unwrap_or(arn).to_owned(),
        code_size: out
            .content()
            .map_or(0, |c| u64::try_from(c.code_size()).unwrap_or(0)),
    })
}

/// Polls until the function is `Active` and not mid-update; returns (ARN, code SHA-256).
pub async fn wait_ready(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    limit: Duration,
) -> Result<(String, String), AwsError> {
    let start = Instant::now();
    loop {
        let c = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &e,
                    "lambda:GetFunctionConfiguration",
                    name,
                    "lambda:GetFunctionConfiguration",
                )
            })?;
        let state = c.state().cloned();
        let update = c.last_update_status().cloned();
        match (&state, &update) {
            (Some(State::Failed), _) => {
                return Err(AwsError::Invalid(format!(
                    "function {name} failed to become active: {}",
                    c.state_reason().unwrap_or("no reason given")
                )));
            }
            (_, Some(LastUpdateStatus::Failed)) => {
                return Err(AwsError::Invalid(format!(
                    "update of function {name} failed: {}",
                    c.last_update_status_reason().unwrap_or("no reason given")
                )));
            }
            // moto and older APIs may omit the fields: treat absent as ready.
            (None | Some(State::Active), None | Some(LastUpdateStatus::Successful)) => {
                return Ok((
                    c.function_arn().unwrap_or(name).to_owned(),
                    c.code_sha256().unwrap_or_default().to_owned(),
                ));
            }
            _ => {}
        }
        if start.elapsed() > limit {
            return Err(AwsError::Invalid(format!(
                "function {name} still not ready after {:?} (state {state:?}, last update {update:?})",
                limit
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_never_shows_secret_values() {
        let mut env = FunctionEnv::default();
        env.set("RUST_LOG", "info");
        env.set_secret("DB_PASSWORD", "hunter2");
        env.set_secret("RUST_LOG", "debug");
        assert_eq!(env.masked(), ["DB_PASSWORD=****", "RUST_LOG=****"]);
        assert_eq!(
            format!("{env:?}"),
            r#"["DB_PASSWORD=****", "RUST_LOG=****"]"#
        );
        assert_eq!(env.get("RUST_LOG"), Some("debug"));
        assert_eq!(env.variables()["DB_PASSWORD"], "hunter2");
        let code = Code::Zip(vec![0; 1234]);
        assert_eq!(format!("{code:?}"), "Zip(1234 bytes)");
    }
}
