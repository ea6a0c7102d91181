//! `orchestrator package`: build the Lambda zip (bootstrap + propack-bench) with cargo-lambda.

use std::path::{Path, PathBuf};

#[cfg(feature = "aws")]
use propack_orchestrator::backend::aws::package::{self, LambdaArch, LambdaRuntime};

/// Arguments of `orchestrator package`.
#[cfg(feature = "aws")]
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lambda OS-only runtime; decides the newest glibc the binaries may need (al2: 2.26, al2023: 2.34).
    #[arg(long, value_enum, default_value_t)]
    pub runtime: LambdaRuntime,
    /// Function architecture (arm64 needs `rustup target add aarch64-unknown-linux-gnu`).
    #[arg(long, value_enum, default_value_t)]
    pub arch: LambdaArch,
    /// Where the zip goes (relative paths are taken from the workspace root).
    #[arg(long, default_value = "deployment_pack/dist")]
    pub out_dir: PathBuf,
    /// Skip the build and package the `bootstrap` and `propack-bench` binaries found in this
    /// directory (they are checked exactly like freshly built ones).
    #[arg(long)]
    pub prebuilt: Option<PathBuf>,
    /// The cargo-lambda executable.
    #[arg(long, env = "CARGO_LAMBDA")]
    pub cargo_lambda: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
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
    use anyhow::Context;

    let root = workspace_root()?;
    let out_dir = if args.out_dir.is_absolute() {
        args.out_dir.clone()
    } else {
        root.join(&args.out_dir)
    };
    let files = match &args.prebuilt {
        Some(dir) => package::dir_outputs(dir),
        None => {
            package::check_target_installed(args.arch)?;
            let cargo_lambda = find_cargo_lambda(args.cargo_lambda.as_deref())
                .map_err(|e| package::PackageError::NoCargoLambda(e.to_string()))?;
            let mut cmd = package::build_command(&cargo_lambda, &root, args.runtime, args.arch);
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
            package::lambda_outputs(&target_dir)
        }
    };
    // Failure isolation of built-in tasks relies on unwinding; prove the build kept it.
    if args.arch == LambdaArch::X86_64 && cfg!(target_arch = "x86_64") {
        package::check_unwinding(&files[0].1)?;
    } else if !args.json {
        eprintln!(
            "note: cannot run {} binaries here, so the panic-isolation check is skipped",
            args.arch.as_str()
        );
    }
    let packaged = package::package_files(&files, &out_dir, args.runtime, args.arch)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&packaged)?);
    } else {
        println!(
            "{} ({} bytes): {} for {} {}, newest glibc needed {} (limit {})",
            packaged.zip.display(),
            packaged.bytes,
            packaged.entries.join(" + "),
            packaged.runtime,
            packaged.arch,
            packaged.max_glibc.as_deref().unwrap_or("none (static)"),
            args.runtime.max_glibc()
        );
    }
    Ok(())
}

/// Runs `orchestrator package` (built without AWS support).
#[cfg(not(feature = "aws"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    let _ = (workspace_root, find_cargo_lambda);
    anyhow::bail!("this orchestrator was built without the `aws` feature")
}
