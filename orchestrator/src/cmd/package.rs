//! `orchestrator package`: build the Lambda zip (bootstrap + propack-bench, plus the user's files) or layer with cargo-lambda, or the Azure Functions app / Cloud Run build context.

use std::path::{Path, PathBuf};

#[cfg(feature = "aws")]
use propack_orchestrator::backend::aws::package::{self, Include, LambdaArch, LambdaRuntime};

/// Arguments of `orchestrator package`.
#[cfg(feature = "aws")]
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the package runs: a Lambda zip (default), an Azure Functions custom-handler app
    /// (`propack-azure/` + `.zip`: host.json, one function folder per trigger, the binaries),
    /// or a Cloud Run container build context (`propack-cloud-run/`: Dockerfile + binaries).
    #[arg(long, value_enum, default_value_t)]
    pub target: Target,
    /// Lambda runtime the package is for; decides the newest glibc the binaries may need
    /// (provided.al2: 2.26; provided.al2023, python3.13, nodejs22.x: 2.34).
    #[arg(long, value_enum, default_value_t)]
    pub runtime: LambdaRuntime,
    /// Function architecture (arm64 needs `rustup target add aarch64-unknown-linux-gnu`).
    #[arg(long, value_enum, default_value_t)]
    pub arch: LambdaArch,
    /// Where the zips go (relative paths are taken from the workspace root).
    #[arg(long, default_value = "deployment_pack/dist")]
    pub out_dir: PathBuf,
    /// Skip the build and package an already-built bootstrap: a FILE (the bootstrap itself)
    /// or a DIR holding `bootstrap` (and optionally `propack-bench`, `propack-exec-wrapper`).
    /// Checked exactly like a fresh build.
    #[arg(long, value_name = "DIR|FILE", conflicts_with = "bin")]
    pub prebuilt: Option<PathBuf>,
    /// Build this workspace binary as the function's `bootstrap` instead of propack-runtime's
    /// (e.g. an example crate with custom built-ins); propack-bench is then not packaged.
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// Add a file or directory (recursively, exec bits kept, symlinks refused) to the function
    /// zip under the task root /var/task. DEST is relative to it: default the file or directory
    /// name, `.` for a directory's contents at the root, `DIR/` for a file inside DIR. Repeatable.
    #[arg(long = "include", value_name = "PATH[=DEST]")]
    pub includes: Vec<Include>,
    /// Write a Lambda layer instead: the runtime under /opt (/opt/bootstrap,
    /// /opt/bin/propack-bench, /opt/propack-exec-wrapper when the tree has it); with
    /// --include, the included files go into a separate, small function zip.
    #[arg(long)]
    pub layer: bool,
    /// The cargo-lambda executable.
    #[arg(long, env = "CARGO_LAMBDA")]
    pub cargo_lambda: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The platform a package is for.
#[cfg(feature = "aws")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Target {
    /// AWS Lambda (zip or layer).
    #[default]
    Lambda,
    /// Azure Functions, custom handler (Flex Consumption or any Linux plan).
    Azure,
    /// Google Cloud Run (a container).
    CloudRun,
}

/// Arguments of `orchestrator package` (built without AWS support).
#[cfg(not(feature = "aws"))]
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The workspace root: the nearest ancestor of the current directory with a `[workspace]` Cargo.toml.
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    for dir in cwd.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
            return Ok(dir.to_path_buf());
        }
    }
    anyhow::bail!(
        "not inside the ProPack-rs workspace (no Cargo.toml with [workspace] above {})",
        cwd.display()
    )
}

fn find_cargo_lambda(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // pip --user puts it here, often not on PATH.
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("cargo-lambda"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("cargo-lambda not found on PATH or in ~/.local/bin"))
}

/// Runs `orchestrator package`.
#[cfg(feature = "aws")]
pub fn run(args: Args) -> anyhow::Result<()> {
    use super::usage;

    // Everything the command line names is checked before the (long) build starts.
    let root = workspace_root();
    let out_dir = if args.out_dir.is_absolute() {
        args.out_dir.clone()
    } else {
        let base = match (&root, &args.prebuilt) {
            (Ok(r), _) => r.clone(),
            (Err(_), Some(_)) => std::env::current_dir()?,
            (Err(e), None) => anyhow::bail!("{e}"),
        };
        base.join(&args.out_dir)
    };
    if args.target != Target::Lambda && args.layer {
        return Err(usage(anyhow::anyhow!(
            "--layer is a Lambda package; --target azure|cloud-run always write the binaries into the app"
        )));
    }
    let includes = package::collect_includes(&args.includes).map_err(usage)?;
    let prebuilt = args
        .prebuilt
        .as_deref()
        .map(package::prebuilt_outputs)
        .transpose()
        .map_err(usage)?;
    let (layer_extras, missing) = if args.layer {
        let prebuilt_dir = args.prebuilt.as_deref().filter(|p| p.is_dir());
        package::find_layer_extras(prebuilt_dir, root.as_deref().ok())
    } else {
        (Vec::new(), Vec::new())
    };
    let mut input = package::PackageInput {
        binaries: prebuilt
            .clone()
            .unwrap_or_else(|| package::lambda_outputs(Path::new("target"), args.bin.as_deref())),
        includes,
        layer_extras,
        layer: args.layer,
    };
    input.check_paths().map_err(usage)?;
    for m in &missing {
        if !args.json {
            eprintln!(
                "note: no {m} in this tree, so the layer cannot start a managed runtime (python3.13, nodejs22.x)"
            );
        }
    }

    input.binaries = match prebuilt {
        Some(files) => files,
        None => build(&args, root.as_deref().map_err(|e| anyhow::anyhow!("{e}"))?)?,
    };
    // Failure isolation of built-in tasks relies on unwinding; prove the build kept it.
    if args.arch == LambdaArch::X86_64 && cfg!(target_arch = "x86_64") {
        let bootstrap = input.binaries.iter().find(|(p, _)| p == package::BOOTSTRAP);
        package::check_unwinding(&bootstrap.expect("every package has a bootstrap").1)?;
    } else if !args.json {
        eprintln!(
            "note: cannot run {} binaries here, so the panic-isolation check is skipped",
            args.arch.as_str()
        );
    }
    if args.target != Target::Lambda {
        return package_cloud(&args, &input, &out_dir);
    }
    let opts = package::PackageOptions::new(out_dir, args.runtime, args.arch);
    let packaged = package::package(&input, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&packaged)?);
    } else {
        print_packaged(&packaged, args.runtime);
    }
    Ok(())
}

/// Runs cargo-lambda and returns the built binaries as (path in the zip, file).
#[cfg(feature = "aws")]
fn build(args: &Args, root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    use anyhow::Context;

    package::check_target_installed(args.arch)?;
    let cargo_lambda = find_cargo_lambda(args.cargo_lambda.as_deref())
        .map_err(|e| package::PackageError::NoCargoLambda(e.to_string()))?;
    // Azure's and Cloud Run's glibc are at least provided.al2's / provided.al2023's.
    let pin = match args.target {
        Target::Lambda => args.runtime,
        Target::Azure => LambdaRuntime::ProvidedAl2,
        Target::CloudRun => LambdaRuntime::ProvidedAl2023,
    };
    let mut cmd = package::build_command(&cargo_lambda, root, pin, args.arch, args.bin.as_deref());
    if !args.json {
        eprintln!("==> {cmd:?}");
    }
    // cargo-zigbuild runs `python-zig` or `zig`; pip installs it beside cargo-lambda.
    if let Some(dir) = cargo_lambda.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        dirs.push(dir.to_path_buf());
        cmd.env("PATH", std::env::join_paths(dirs)?);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", cargo_lambda.display()))?;
    if !status.success() {
        return Err(package::PackageError::BuildFailed {
            command: format!("{cmd:?}"),
            status: status.to_string(),
        }
        .into());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(package::lambda_outputs(&target_dir, args.bin.as_deref()))
}

/// Writes the Azure app or the Cloud Run build context from the checked binaries.
#[cfg(feature = "aws")]
fn package_cloud(args: &Args, input: &package::PackageInput, out_dir: &Path) -> anyhow::Result<()> {
    use package::cloud;
    let runtime: Vec<package::ZipSource> = input
        .binaries
        .iter()
        .map(|(zip_path, path)| {
            let size = std::fs::metadata(path).map(|m| m.len())?;
            Ok(package::ZipSource {
                zip_path: zip_path.clone(),
                source: path.clone(),
                mode: 0o755,
                size,
            })
        })
        .collect::<std::io::Result<_>>()?;
    std::fs::create_dir_all(out_dir)?;
    let packaged = match args.target {
        Target::Azure => cloud::package_azure(
            &runtime,
            &input.includes,
            out_dir,
            args.arch,
            &cloud::AzureNames::default(),
        )?,
        Target::CloudRun => {
            cloud::package_cloud_run(&runtime, &input.includes, out_dir, args.arch)?
        }
        Target::Lambda => unreachable!("Lambda packages are zips"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&packaged)?);
    } else {
        println!(
            "{} package: {} ({} files{}), newest glibc needed {}",
            packaged.target,
            packaged.dir.display(),
            packaged.files.len(),
            packaged
                .zip
                .as_ref()
                .map(|z| format!(", zip {}", z.display()))
                .unwrap_or_default(),
            packaged.max_glibc.as_deref().unwrap_or("none (static)")
        );
        for line in &packaged.next {
            println!("next: {line}");
        }
    }
    Ok(())
}

#[cfg(feature = "aws")]
fn print_packaged(p: &package::Packaged, runtime: LambdaRuntime) {
    use package::{WrittenZip, thousands};

    let line = |what: &str, z: &WrittenZip| {
        const SHOWN: usize = 6;
        let mut names = z.entries[..z.entries.len().min(SHOWN)].join(", ");
        if z.entries.len() > SHOWN {
            names.push_str(&format!(" and {} more", z.entries.len() - SHOWN));
        }
        println!(
            "{what}: {} ({} bytes, {} unzipped): {names}",
            z.zip.display(),
            thousands(z.bytes),
            thousands(z.unzipped_bytes)
        );
    };
    line(&format!("{} zip", p.kind), &p.main);
    if let Some(code) = &p.code {
        line("function zip", code);
    }
    println!(
        "for {} {}, newest glibc needed {} (limit {})",
        p.runtime,
        p.arch,
        p.max_glibc.as_deref().unwrap_or("none (static)"),
        runtime.max_glibc()
    );
}

/// Runs `orchestrator package` (built without AWS support).
#[cfg(not(feature = "aws"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    let _ = (workspace_root, find_cargo_lambda);
    anyhow::bail!("this orchestrator was built without the `aws` feature")
}
