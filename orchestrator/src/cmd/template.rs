//! `orchestrator template`: the deployment `deploy` makes, as an AWS SAM or CloudFormation template.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use propack_orchestrator::backend::aws::deploy::{EnvArg, parse_handler, parse_layer_version_arn};
use propack_orchestrator::backend::aws::package::{LambdaArch, LambdaRuntime, zip_name};
use propack_orchestrator::backend::aws::template::{
    self, FUNCTION_ARN_VAR, TemplateFormat, TemplateSpec,
};
use propack_step_functions::{DefinitionOptions, Preset as _, build_definition};
use propack_workloads::Workload;

use super::UsageError;

/// Template dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// AWS SAM (`sam deploy --guided`).
    Sam,
    /// Plain CloudFormation (the zip in S3, given as parameters).
    Cloudformation,
}

/// Arguments of `orchestrator template`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SAM or plain CloudFormation.
    #[arg(long, value_enum, default_value_t = FormatArg::Sam)]
    pub format: FormatArg,
    /// Write the template here (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
    /// Runtime: provided.* run ProPack's bootstrap; python3.13 / nodejs22.x run --handler
    /// through the ProPack layer (give its ARN with --layers).
    #[arg(long, value_enum, default_value_t)]
    pub runtime: LambdaRuntime,
    /// The handler of a managed runtime (module.function).
    #[arg(long, value_parser = parse_handler, required_if_eq_any = [("runtime", "python3.13"), ("runtime", "nodejs22.x")])]
    pub handler: Option<String>,
    /// The zip `orchestrator package` wrote (SAM CodeUri; default deployment_pack/dist/propack-<runtime>-<arch>.zip).
    #[arg(long)]
    pub code: Option<PathBuf>,
    /// Architecture of the zip (the default of the Architecture parameter).
    #[arg(long, value_enum, default_value_t)]
    pub arch: LambdaArch,
    /// Default of the MemorySize parameter, MB.
    #[arg(long, default_value_t = 10240, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory: u32,
    /// Ephemeral storage (/tmp), MB.
    #[arg(long, default_value_t = 10240, value_parser = clap::value_parser!(u32).range(512..=10240))]
    pub tmp: u32,
    /// Layer versions to attach (the ProPack layer for a managed runtime).
    #[arg(long, value_name = "ARN", num_args = 1.., value_parser = parse_layer_version_arn)]
    pub layers: Vec<String>,
    /// Environment variables of the function (written into the template as they are).
    #[arg(long = "env", value_name = "KEY=VALUE", num_args = 1..)]
    pub env: Vec<EnvArg>,
    /// Days the function's logs are kept.
    #[arg(long, default_value_t = 14)]
    pub log_retention_days: u32,
    /// The job the state machine is built for: number of tasks C.
    #[arg(long)]
    pub tasks: u64,
    /// Packing degree k.
    #[arg(long)]
    pub packing: u64,
    /// Size task specs and durations from a built-in benchmark.
    #[arg(long, value_parser = super::args::workload_parser())]
    pub benchmark: Option<Workload>,
}

/// The state machine's definition for the job, with the function as `${PackedFunctionArn}`.
pub fn definition(benchmark: Option<Workload>, tasks: u64, packing: u64) -> anyhow::Result<String> {
    let mut o = match benchmark {
        Some(w) => w.options(tasks, packing),
        None => DefinitionOptions::new(tasks, packing),
    };
    o.function = format!("${{{FUNCTION_ARN_VAR}}}");
    let built = build_definition(&o).context("cannot build this definition")?;
    Ok(built.definition.to_json_pretty())
}

/// Runs `orchestrator template`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.runtime.is_managed() && a.layers.is_empty() {
        return Err(UsageError(format!(
            "--runtime {} needs the ProPack layer: --layers ARN (publish it with `orchestrator deploy --layer`)",
            a.runtime.as_str()
        ))
        .into());
    }
    let mut env = BTreeMap::new();
    for e in &a.env {
        let v = e.check().map_err(UsageError)?;
        env.insert(v.key, v.value);
    }
    let code = a
        .code
        .clone()
        .unwrap_or_else(|| PathBuf::from("deployment_pack/dist").join(zip_name(a.runtime, a.arch)));
    let spec = TemplateSpec {
        format: match a.format {
            FormatArg::Sam => TemplateFormat::Sam,
            FormatArg::Cloudformation => TemplateFormat::CloudFormation,
        },
        runtime: a.runtime.as_str().into(),
        handler: a.handler.clone().unwrap_or_else(|| "bootstrap".into()),
        code_uri: code.display().to_string(),
        memory_mb: a.memory,
        ephemeral_mb: a.tmp,
        layers: a.layers.clone(),
        env,
        log_retention_days: a.log_retention_days,
        definition: definition(a.benchmark, a.tasks, a.packing)?,
    };
    let mut t = template::template(&spec);
    t["Parameters"]["Architecture"]["Default"] = serde_json::json!(a.arch.as_str());
    let text = if a.json {
        serde_json::to_string_pretty(&t)? + "\n"
    } else {
        template::to_yaml(&t)
    };
    match &a.out {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
