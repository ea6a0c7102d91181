//! `orchestrator deploy`: create or update the function and the state machine, print the IAM policies.

#[cfg(feature = "aws")]
use std::path::PathBuf;

#[cfg(feature = "aws")]
use propack_orchestrator::backend::aws::package::{LambdaArch, LambdaRuntime};

/// Arguments of `orchestrator deploy`.
#[cfg(feature = "aws")]
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Execution role of the function (and of the state machine unless --sfn-role-arn).
    #[arg(long)]
    pub role_arn: String,
    /// Role of the state machine, if different.
    #[arg(long)]
    pub sfn_role_arn: Option<String>,
    /// Function name.
    #[arg(long, default_value = "propack")]
    pub function: String,
    /// State machine name.
    #[arg(long, default_value = "propack")]
    pub state_machine: String,
    /// Memory, MB (vCPUs scale with it: 6 at 10,240).
    #[arg(long, default_value_t = 10240)]
    pub memory: i32,
    /// Timeout, seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: i32,
    /// Ephemeral storage (/tmp), MB.
    #[arg(long, default_value_t = 10240)]
    pub tmp: i32,
    /// Architecture of the zip.
    #[arg(long, value_enum, default_value_t)]
    pub arch: LambdaArch,
    /// Runtime of the zip.
    #[arg(long, value_enum, default_value_t)]
    pub runtime: LambdaRuntime,
    /// The zip (default: deployment_pack/dist/propack-<runtime>-<arch>.zip from `orchestrator package`).
    #[arg(long)]
    pub zip: Option<PathBuf>,
    /// Run bucket, to scope the printed IAM policies (default: a BUCKET placeholder).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Region override (else AWS_REGION / the profile decides).
    #[arg(long)]
    pub region: Option<String>,
    /// Tasks of the initial definition (each launch updates the definition for its job).
    #[arg(long, default_value_t = 1000)]
    pub tasks: u64,
    /// Packing degree of the initial definition.
    #[arg(long, default_value_t = 1)]
    pub packing: u64,
    /// Only print the IAM policies; change nothing.
    #[arg(long)]
    pub policy_only: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `orchestrator deploy` (built without AWS support).
#[cfg(not(feature = "aws"))]
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator deploy` (built without AWS support).
#[cfg(not(feature = "aws"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this orchestrator was built without the `aws` feature")
}

/// Runs `orchestrator deploy`.
#[cfg(feature = "aws")]
pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(deploy(args))
}

#[cfg(feature = "aws")]
async fn deploy(args: Args) -> anyhow::Result<()> {
    use std::time::Duration;

    use anyhow::Context;
    use propack_orchestrator::backend::aws::{AwsClients, deploy, package, policy, sfn};
    use serde_json::json;

    let clients = AwsClients::from_env(args.region.as_deref()).await;
    let region = clients
        .lambda
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "*".into());
    let account = policy::account_of(&args.role_arn).unwrap_or("*").to_owned();
    let sfn_role = args
        .sfn_role_arn
        .clone()
        .unwrap_or_else(|| args.role_arn.clone());
    let scope = policy::PolicyScope {
        region,
        account,
        bucket: args.bucket.clone().unwrap_or_else(|| "BUCKET".into()),
        prefix: "propack/runs".into(),
        function: args.function.clone(),
        state_machine: args.state_machine.clone(),
    };
    let policies = json!({
        "trust_policy": policy::PolicyScope::trust_policy(),
        "function_role_policy": scope.function_policy(),
        "state_machine_role_policy": scope.state_machine_policy(),
        "operator_policy": scope.operator_policy(&[args.role_arn.clone(), sfn_role.clone()]),
    });
    if args.policy_only {
        println!("{}", serde_json::to_string_pretty(&policies)?);
        return Ok(());
    }

    let zip_path = match &args.zip {
        Some(p) => p.clone(),
        None => super::package::workspace_root()?
            .join("deployment_pack/dist")
            .join(package::zip_name(args.runtime, args.arch)),
    };
    let zip = std::fs::read(&zip_path).with_context(|| {
        format!(
            "reading {} (run `orchestrator package` first)",
            zip_path.display()
        )
    })?;
    // The same check `package` made: never upload a zip that cannot start.
    package::verify_zip(&zip, args.runtime, args.arch)?;

    let spec = deploy::FunctionSpec {
        name: args.function.clone(),
        role_arn: args.role_arn.clone(),
        zip,
        memory_mb: args.memory,
        timeout_s: args.timeout,
        tmp_mb: args.tmp,
        arch: args.arch,
        runtime: args.runtime,
        env: [("RUST_LOG".to_owned(), "info".to_owned())].into(),
    };
    if !args.json {
        eprintln!(
            "==> deploying function {} from {}",
            args.function,
            zip_path.display()
        );
    }
    let info = deploy::deploy_function(&clients.lambda, &spec, Duration::from_secs(600)).await?;

    let mut opts = propack_step_functions::DefinitionOptions::new(args.tasks, args.packing);
    opts.function = info.arn.clone();
    opts.mode = propack_step_functions::ModeRequest::Distributed;
    let built = propack_step_functions::build_definition(&opts)?;
    let definition = serde_json::to_string(&built.definition)?;
    if !args.json {
        eprintln!(
            "==> creating or updating state machine {}",
            args.state_machine
        );
    }
    let sm = sfn::ensure_state_machine(
        &clients.sfn,
        &args.state_machine,
        &definition,
        Some(&sfn_role),
    )
    .await?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"function": info, "state_machine_arn": sm, "policies": policies})
            )?
        );
    } else {
        println!(
            "function {} {} (code sha256 {})",
            info.arn,
            if info.created { "created" } else { "updated" },
            info.code_sha256
        );
        println!("state machine {sm}");
        println!("\nIAM policies the roles need (least privilege):");
        println!("{}", serde_json::to_string_pretty(&policies)?);
    }
    Ok(())
}
