//! Creating or updating the packed function, waiting until Lambda reports it ready.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, EphemeralStorage, FunctionCode, LastUpdateStatus, Runtime, State,
};

use super::error::{AwsError, sdk_error};
use super::package::{LambdaArch, LambdaRuntime};

/// The function to deploy.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name.
    pub name: String,
    /// Execution role ARN.
    pub role_arn: String,
    /// The deployment zip.
    pub zip: Vec<u8>,
    /// Memory, MB (Lambda: 128–10,240; vCPUs scale with it).
    pub memory_mb: i32,
    /// Timeout, seconds (≤ 900).
    pub timeout_s: i32,
    /// /tmp size, MB (512–10,240).
    pub tmp_mb: i32,
    /// Architecture.
    pub arch: LambdaArch,
    /// OS-only runtime.
    pub runtime: LambdaRuntime,
    /// Environment variables.
    pub env: HashMap<String, String>,
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
        .set_variables(Some(spec.env.clone()))
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
        lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(spec.zip.clone()))
            .architectures(arch)
            .send()
            .await
            .map_err(|e| {
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
            .handler("bootstrap")
            .memory_size(spec.memory_mb)
            .timeout(spec.timeout_s)
            .ephemeral_storage(tmp.clone())
            .environment(env)
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
            .handler("bootstrap")
            .architectures(arch)
            .memory_size(spec.memory_mb)
            .timeout(spec.timeout_s)
            .ephemeral_storage(tmp.clone())
            .environment(env)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(spec.zip.clone()))
                    .build(),
            )
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
