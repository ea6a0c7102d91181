//! `orchestrator deploy`: create or update the function (code, layers, environment) and the state machine, print the IAM policies.

#[cfg(feature = "aws")]
use std::path::PathBuf;

#[cfg(feature = "aws")]
use propack_orchestrator::backend::aws::deploy::{EnvArg, parse_handler, parse_layer_version_arn};
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
    /// Runtime: provided.* start ProPack's bootstrap (from the zip or a layer); python3.13 and
    /// nodejs22.x are managed runtimes whose --handler runs packed through the ProPack layer's
    /// exec wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/propack-exec-wrapper).
    #[arg(long, value_enum, default_value_t)]
    pub runtime: LambdaRuntime,
    /// The zip (default: deployment_pack/dist/propack-<runtime>-<arch>.zip from `orchestrator package`).
    #[arg(long, conflicts_with = "code")]
    pub zip: Option<PathBuf>,
    /// The function's code instead of --zip: a zip from `package --include` (with --layer, the
    /// function zip it printed) or a directory, zipped as it is (e.g. a handler's code).
    /// Required with a managed runtime.
    #[arg(long, value_name = "ZIP|DIR", required_if_eq_any = [("runtime", "python3.13"), ("runtime", "nodejs22.x")])]
    pub code: Option<PathBuf>,
    /// Publish this layer zip (from `package --layer`) as a new layer version and attach it,
    /// after any --layers (so its /opt/bootstrap wins).
    #[arg(long, value_name = "ZIP")]
    pub layer: Option<PathBuf>,
    /// Name of the layer --layer publishes.
    #[arg(long, default_value = "propack")]
    pub layer_name: String,
    /// Attach these existing layer versions (Lambda allows 5 layers in all).
    #[arg(long, value_name = "ARN", num_args = 1.., value_parser = parse_layer_version_arn)]
    pub layers: Vec<String>,
    /// Set environment variables of the function; values are never printed (KEY=****).
    #[arg(long = "env", value_name = "KEY=VALUE", num_args = 1..)]
    pub env: Vec<EnvArg>,
    /// The handler, module.function: Lambda's Handler field, which the runtime reads as
    /// _HANDLER (default: bootstrap). Required with a managed runtime.
    #[arg(long, value_parser = parse_handler, required_if_eq_any = [("runtime", "python3.13"), ("runtime", "nodejs22.x")])]
    pub handler: Option<String>,
    /// Bucket for code uploaded through S3 (default: --bucket).
    #[arg(long)]
    pub code_bucket: Option<String>,
    /// Zips larger than this many MiB go up through S3 instead of inside the request
    /// (Lambda's limit for a direct upload is 50 MiB).
    #[arg(long, value_name = "MIB", default_value_t = 50)]
    pub s3_above_mib: u64,
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
    /// Deploy the function (and layer) only; leave the state machine as it is
    /// (`launch --mode direct` needs none).
    #[arg(long)]
    pub no_state_machine: bool,
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
    tokio::runtime::Runtime::new()?.block_on(aws::deploy(args))
}

#[cfg(feature = "aws")]
mod aws {
    use std::path::Path;
    use std::time::Duration;

    use anyhow::Context;
    use propack_orchestrator::backend::aws::deploy::{
        self, Code, DeployInputs, EXEC_WRAPPER_VAR, FunctionEnv, FunctionInfo, LayerInfo,
    };
    use propack_orchestrator::backend::aws::package::{self, EXEC_WRAPPER_PATH, thousands};
    use propack_orchestrator::backend::aws::zip::{self, Listed};
    use propack_orchestrator::backend::aws::{AwsClients, policy, sfn};
    use propack_runtime::s3::S3Store;
    use propack_runtime::uri::S3Uri;
    use serde_json::{Value, json};

    use super::Args;
    use crate::cmd::usage;

    /// A zip this deploy sends: where it came from, its bytes and its listing.
    struct Zip {
        what: &'static str,
        from: String,
        bytes: Vec<u8>,
        files: Vec<Listed>,
        /// Where it goes up through S3, when it is too large for the request.
        s3: Option<(String, String)>,
    }

    pub(super) async fn deploy(args: Args) -> anyhow::Result<()> {
        let env = environment(&args)?;
        let (function, layer) = if args.policy_only && !names_code(&args) {
            (None, None)
        } else {
            let (f, l) = load_code(&args, &env)?;
            (Some(f), l)
        };
        let clients = AwsClients::from_env(args.region.as_deref()).await;
        let policies = policies(&args, &clients, [&function, &layer]);
        if args.policy_only {
            println!("{}", serde_json::to_string_pretty(&policies)?);
            return Ok(());
        }
        let (function, layer) = (function.expect("loaded unless --policy-only"), layer);
        check_size(&args, &clients, &function, layer.as_ref()).await?;
        for z in std::iter::once(&function).chain(&layer) {
            upload(&args, &clients, z).await?;
        }
        let published = match &layer {
            Some(z) => Some(publish(&args, &clients, z).await?),
            None => None,
        };
        let mut layers = args.layers.clone();
        layers.extend(published.iter().map(|l| l.arn.clone()));
        let info = deploy_function(&args, &clients, &function, layers.clone(), env.clone()).await?;
        let state_machine_arn = if args.no_state_machine {
            None
        } else {
            Some(state_machine(&args, &clients, &info.arn).await?)
        };
        let deployed = Deployed {
            function: info,
            layer: published,
            layers,
            environment: env.masked(),
            code_via_s3: std::iter::once(&function)
                .chain(&layer)
                .filter_map(|z| z.s3.as_ref().map(|(b, k)| format!("s3://{b}/{k}")))
                .collect(),
            state_machine_arn,
        };
        report(&args, &deployed, policies)
    }

    /// What one deploy did (the environment masked).
    #[derive(serde::Serialize)]
    struct Deployed {
        function: FunctionInfo,
        layer: Option<LayerInfo>,
        layers: Vec<String>,
        environment: Vec<String>,
        code_via_s3: Vec<String>,
        state_machine_arn: Option<String>,
    }

    fn names_code(args: &Args) -> bool {
        args.code.is_some() || args.zip.is_some() || args.layer.is_some()
    }

    /// `RUST_LOG=info`, the exec wrapper for a managed runtime, then the user's `--env`
    /// (which may replace RUST_LOG; replacing the exec wrapper is refused in `load_code`).
    fn environment(args: &Args) -> anyhow::Result<FunctionEnv> {
        let mut env = FunctionEnv::default();
        env.set("RUST_LOG", "info");
        for arg in &args.env {
            let v = arg
                .check()
                .map_err(|e| usage(anyhow::anyhow!("--env: {e}")))?;
            env.set_secret(v.key, v.value);
        }
        if args.runtime.is_managed() && env.get(EXEC_WRAPPER_VAR).is_none() {
            env.set(EXEC_WRAPPER_VAR, EXEC_WRAPPER_PATH);
        }
        Ok(env)
    }

    fn read(path: &Path, hint: &str) -> anyhow::Result<Vec<u8>> {
        std::fs::read(path).with_context(|| format!("reading {}{hint}", path.display()))
    }

    /// Reads (or, for a directory, zips) the function code and the layer, and checks them:
    /// inputs that do not fit together exit with status 2; a zip that could not start, 1.
    fn load_code(args: &Args, env: &FunctionEnv) -> anyhow::Result<(Zip, Option<Zip>)> {
        let (from, bytes) = match (&args.code, &args.zip) {
            (Some(dir), _) if dir.is_dir() => {
                let files = package::collect_includes(&[package::Include {
                    source: dir.clone(),
                    dest: String::new(),
                }])
                .map_err(usage)?;
                (dir.display().to_string(), package::zip_files(&files)?)
            }
            (Some(p), _) | (None, Some(p)) => {
                (p.display().to_string(), read(p, "").map_err(usage)?)
            }
            (None, None) => {
                let p = super::super::package::workspace_root()?
                    .join("deployment_pack/dist")
                    .join(package::zip_name(args.runtime, args.arch));
                let bytes = read(&p, " (run `orchestrator package` first)")?;
                (p.display().to_string(), bytes)
            }
        };
        let key = format!("propack/code/{}/function.zip", args.function);
        let function = Zip::new("function zip", from, bytes, args, key)?;
        let layer = match &args.layer {
            Some(p) => {
                let bytes = read(p, "").map_err(usage)?;
                let key = format!("propack/code/{}/layer.zip", args.layer_name);
                Some(Zip::new(
                    "layer zip",
                    p.display().to_string(),
                    bytes,
                    args,
                    key,
                )?)
            }
            None => None,
        };
        deploy::check_inputs(&DeployInputs {
            runtime: args.runtime,
            handler: args.handler.as_deref(),
            handler_language: env.get("PROPACK_HANDLER_RUNTIME"),
            function: &function.files,
            layer: layer.as_ref().map(|l| l.files.as_slice()),
            other_layers: args.layers.len(),
            env_sets_wrapper: env.get(EXEC_WRAPPER_VAR) != Some(EXEC_WRAPPER_PATH)
                && env.get(EXEC_WRAPPER_VAR).is_some(),
        })
        .map_err(usage)?;
        // The checks `package` made: never upload a zip that cannot start.
        if function.files.iter().any(|f| f.name == package::BOOTSTRAP) {
            package::verify_zip(&function.bytes, args.runtime, args.arch)?;
        } else {
            package::check_zip_binaries(&function.bytes, args.runtime, args.arch)?;
        }
        if let Some(l) = &layer {
            package::verify_zip(&l.bytes, args.runtime, args.arch)?;
        }
        Ok((function, layer))
    }

    impl Zip {
        /// `key`: where it goes in the code bucket if it has to go through S3.
        fn new(
            what: &'static str,
            from: String,
            bytes: Vec<u8>,
            args: &Args,
            key: String,
        ) -> anyhow::Result<Self> {
            let files = zip::list_zip(&bytes).with_context(|| format!("reading {from}"))?;
            let s3 = if bytes.len() as u64 > args.s3_above_mib * 1024 * 1024 {
                let bucket = args
                    .code_bucket
                    .clone()
                    .or_else(|| args.bucket.clone())
                    .ok_or_else(|| {
                        usage(anyhow::anyhow!(
                            "the {what} {from} is {} bytes, above the {} MiB direct upload limit: \
                         give --code-bucket (or --bucket) to upload it through S3",
                            thousands(bytes.len() as u64),
                            args.s3_above_mib
                        ))
                    })?;
                Some((bucket, key))
            } else {
                None
            };
            Ok(Self {
                what,
                from,
                bytes,
                files,
                s3,
            })
        }

        fn unzipped(&self) -> u64 {
            self.files.iter().map(|f| f.size).sum()
        }

        fn code(&self) -> Code {
            match &self.s3 {
                Some((bucket, key)) => Code::S3 {
                    bucket: bucket.clone(),
                    key: key.clone(),
                },
                None => Code::Zip(self.bytes.clone()),
            }
        }
    }

    fn policies(args: &Args, clients: &AwsClients, zips: [&Option<Zip>; 2]) -> Value {
        let region = clients
            .lambda
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "*".into());
        let sfn_role = args
            .sfn_role_arn
            .clone()
            .unwrap_or_else(|| args.role_arn.clone());
        let scope = policy::PolicyScope {
            region,
            account: policy::account_of(&args.role_arn).unwrap_or("*").to_owned(),
            bucket: args.bucket.clone().unwrap_or_else(|| "BUCKET".into()),
            prefix: "propack/runs".into(),
            function: args.function.clone(),
            state_machine: args.state_machine.clone(),
            layer_name: args.layer.as_ref().map(|_| args.layer_name.clone()),
            layer_arns: args.layers.clone(),
            code_objects: zips
                .into_iter()
                .flatten()
                .filter_map(|z| z.s3.clone())
                .collect(),
        };
        json!({
            "trust_policy": policy::PolicyScope::trust_policy(),
            "function_role_policy": scope.function_policy(),
            "state_machine_role_policy": scope.state_machine_policy(),
            "operator_policy": scope.operator_policy(&[args.role_arn.clone(), sfn_role]),
        })
    }

    /// Lambda's 250 MiB for function plus layers: the --layers count with their zipped size,
    /// a lower bound (Lambda does not report their unzipped size).
    async fn check_size(
        args: &Args,
        clients: &AwsClients,
        function: &Zip,
        layer: Option<&Zip>,
    ) -> anyhow::Result<()> {
        let mut parts = vec![(function.what.to_owned(), function.unzipped())];
        parts.extend(layer.map(|l| (l.what.to_owned(), l.unzipped())));
        for arn in &args.layers {
            let info = deploy::get_layer(&clients.lambda, arn).await?;
            parts.push((format!("layer {arn} (zipped, at least)"), info.code_size));
        }
        package::check_unzipped_limit(&parts, package::UNZIPPED_LIMIT)?;
        Ok(())
    }

    /// The one place code goes up through S3.
    async fn upload(args: &Args, clients: &AwsClients, z: &Zip) -> anyhow::Result<()> {
        let Some((bucket, key)) = &z.s3 else {
            return Ok(());
        };
        // Said even with --json (on stderr): it is where the code went.
        eprintln!(
            "==> the {} is {} bytes, above {} MiB: uploading it through s3://{bucket}/{key}",
            z.what,
            thousands(z.bytes.len() as u64),
            args.s3_above_mib
        );
        S3Store::new(clients.s3.clone())
            .put_bytes(&S3Uri::new(bucket.clone(), key.clone()), z.bytes.clone())
            .await?;
        Ok(())
    }

    async fn publish(args: &Args, clients: &AwsClients, z: &Zip) -> anyhow::Result<LayerInfo> {
        if !args.json {
            eprintln!("==> publishing layer {} from {}", args.layer_name, z.from);
        }
        let spec = deploy::LayerSpec {
            name: args.layer_name.clone(),
            code: z.code(),
            runtime: args.runtime,
            arch: args.arch,
        };
        Ok(deploy::publish_layer(&clients.lambda, &spec).await?)
    }

    async fn deploy_function(
        args: &Args,
        clients: &AwsClients,
        z: &Zip,
        layers: Vec<String>,
        env: FunctionEnv,
    ) -> anyhow::Result<FunctionInfo> {
        let spec = deploy::FunctionSpec {
            name: args.function.clone(),
            role_arn: args.role_arn.clone(),
            code: z.code(),
            memory_mb: args.memory,
            timeout_s: args.timeout,
            tmp_mb: args.tmp,
            arch: args.arch,
            runtime: args.runtime,
            handler: args
                .handler
                .clone()
                .unwrap_or_else(|| package::BOOTSTRAP.into()),
            layers,
            env,
        };
        if !args.json {
            eprintln!("==> deploying function {} from {}", args.function, z.from);
        }
        Ok(deploy::deploy_function(&clients.lambda, &spec, Duration::from_secs(600)).await?)
    }

    async fn state_machine(
        args: &Args,
        clients: &AwsClients,
        function_arn: &str,
    ) -> anyhow::Result<String> {
        let mut opts = propack_step_functions::DefinitionOptions::new(args.tasks, args.packing);
        opts.function = function_arn.to_owned();
        opts.mode = propack_step_functions::ModeRequest::Distributed;
        let built = propack_step_functions::build_definition(&opts)?;
        let definition = serde_json::to_string(&built.definition)?;
        if !args.json {
            eprintln!(
                "==> creating or updating state machine {}",
                args.state_machine
            );
        }
        let sfn_role = args.sfn_role_arn.as_deref().unwrap_or(&args.role_arn);
        Ok(sfn::ensure_state_machine(
            &clients.sfn,
            &args.state_machine,
            &definition,
            Some(sfn_role),
        )
        .await?)
    }

    fn report(args: &Args, d: &Deployed, policies: Value) -> anyhow::Result<()> {
        if args.json {
            let mut out = serde_json::to_value(d)?;
            out["policies"] = policies;
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        let verb = if d.function.created {
            "created"
        } else {
            "updated"
        };
        println!(
            "function {} {verb} (code sha256 {})",
            d.function.arn, d.function.code_sha256
        );
        if let Some(l) = &d.layer {
            println!("layer {} published", l.arn);
        }
        if !d.layers.is_empty() {
            println!("layers: {}", d.layers.join(", "));
        }
        println!("environment: {}", d.environment.join(", "));
        if let Some(sm) = &d.state_machine_arn {
            println!("state machine {sm}");
        }
        println!("\nIAM policies the roles need (least privilege):");
        println!("{}", serde_json::to_string_pretty(&policies)?);
        Ok(())
    }
}
