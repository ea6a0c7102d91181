//! `propack-bench`: the benchmark workloads as a standalone executable.
//!
//! Packaged next to `bootstrap` in the Lambda zip (`bin/propack-bench`), so a
//! packed batch can run the workloads as subprocesses (`exec` tasks) exactly
//! as `bootstrap` runs them in-process (`builtin` tasks): same names, same
//! params, same code ([`propack_workloads`]).
//!
//! - `propack-bench sort|statelesscost|video --input URI --output URI [--params JSON]`
//! - `propack-bench gen <workload> --output URI --seed N [--size SIZE] [--params JSON]`
//! - `propack-bench verify <workload> [--input URI] --output URI [--params JSON]`
//! - `propack-bench bench [--json] [--profile-out FILE] ...` (see [`bench`])
//!
//! Exit codes: 0 success, 1 the task failed (bad input, failed transfer,
//! failed verification), 2 usage (bad flags, unparseable `--params`).

mod bench;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use propack_runtime::storage::Storage;
use serde_json::{Map, Value};

/// The ProPack benchmark workloads (sort, statelesscost, video) as a standalone program.
#[derive(Debug, Parser)]
#[command(name = "propack-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sort one shard (text floats, or TeraSort records with {"format": "terasort"}).
    Sort(TaskArgs),
    /// Random image → JPEG → decode → crop → 300×300 (params seed, width, height).
    Statelesscost(TaskArgs),
    /// Per-frame analysis of a YUV4MPEG2 4:2:0 chunk, one JSON line per frame.
    Video(TaskArgs),
    /// Write a deterministic input for one task of a workload.
    Gen(GenArgs),
    /// Check a task's output (sort: sorted permutation; statelesscost: 300×300; video: one line per frame).
    Verify(VerifyArgs),
    /// Measure single-task time and peak memory, and the packing curve k = 1..max-k.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct TaskArgs {
    /// Input object (file:///abs/path, s3://bucket/key, or a plain local path); optional for statelesscost only.
    #[arg(long)]
    input: Option<String>,
    /// Where to write the output object.
    #[arg(long)]
    output: String,
    /// Workload params as a JSON object.
    #[arg(long, default_value = "{}")]
    params: String,
}

#[derive(Debug, clap::Args)]
struct GenArgs {
    /// sort, statelesscost or video.
    workload: String,
    /// Where to write the generated input.
    #[arg(long)]
    output: String,
    /// Seed; the same seed and size always give the same bytes.
    #[arg(long)]
    seed: u64,
    /// sort: bytes (10MB, 512KiB, 1000000); statelesscost: WxH; video: WxH or WxHxFRAMES.
    #[arg(long)]
    size: Option<String>,
    /// sort only: text or terasort (same as params {"format": ...}).
    #[arg(long)]
    format: Option<String>,
    /// Workload params as a JSON object (size fields; --size and --format win).
    #[arg(long, default_value = "{}")]
    params: String,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// sort, statelesscost or video.
    workload: String,
    /// The task's input (required for sort and video).
    #[arg(long)]
    input: Option<String>,
    /// The task's output.
    #[arg(long)]
    output: String,
    /// Workload params as a JSON object.
    #[arg(long, default_value = "{}")]
    params: String,
}

/// A failure with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn usage(error: anyhow::Error) -> Failure {
    Failure { code: 2, error }
}

fn failed(error: anyhow::Error) -> Failure {
    Failure { code: 1, error }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Sort(a) => run_task("sort", a),
        Command::Statelesscost(a) => run_task("statelesscost", a),
        Command::Video(a) => run_task("video", a),
        Command::Gen(a) => generate(a),
        Command::Verify(a) => verify(a),
        Command::Bench(a) => match bench::cases(&a) {
            Ok(cases) => bench::run(&a, &cases).map_err(failed),
            Err(e) => Err(usage(e)),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("propack-bench: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// Parses `--params`: malformed JSON is a usage error.
fn parse_params(text: &str) -> Result<Value, Failure> {
    parse_params_map(text).map(Value::Object)
}

fn parse_params_map(text: &str) -> Result<Map<String, Value>, Failure> {
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("--params is not valid JSON: {text:?}"))
        .map_err(usage)?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(usage(anyhow::anyhow!(
            "--params must be a JSON object, got {other}"
        ))),
    }
}

fn storage() -> Result<Storage, Failure> {
    Storage::from_env()
        .context("configuring storage")
        .map_err(failed)
}

fn run_task(workload: &str, a: TaskArgs) -> Result<(), Failure> {
    let params = parse_params(&a.params)?;
    if a.input.is_none() && workload != "statelesscost" {
        return Err(usage(anyhow::anyhow!("{workload} needs --input URI")));
    }
    let storage = storage()?;
    let scratch = tempfile::Builder::new()
        .prefix("propack-bench-")
        .tempdir()
        .context("creating a scratch directory")
        .map_err(failed)?;
    let mut inputs = BTreeMap::new();
    if let Some(uri) = a.input.as_deref().map(resolve).transpose()? {
        let path = scratch.path().join("input");
        storage
            .fetch(&uri, &path)
            .with_context(|| format!("fetching input {uri}"))
            .map_err(failed)?;
        inputs.insert("input".to_owned(), path);
    }
    let out_path = scratch.path().join("output");
    let outputs = BTreeMap::from([("output".to_owned(), out_path.clone())]);
    let summary =
        propack_workloads::run_builtin(workload, &params, scratch.path(), &inputs, &outputs)
            .map_err(|e| failed(e.into()))?;
    let output = resolve(&a.output)?;
    storage
        .upload(&out_path, &output)
        .with_context(|| format!("uploading output to {output}"))
        .map_err(failed)?;
    println!("{summary}");
    report_peak_rss();
    Ok(())
}

fn generate(a: GenArgs) -> Result<(), Failure> {
    let workload =
        propack_workloads::Workload::from_name(&a.workload).map_err(|e| usage(e.into()))?;
    let mut params = parse_params_map(&a.params)?;
    if let Some(size) = &a.size {
        let fields: Map<String, Value> = workload.parse_size(size).map_err(|e| usage(e.into()))?;
        params.extend(fields);
    }
    if let Some(f) = &a.format {
        params.insert("format".to_owned(), Value::String(f.clone()));
    }
    let bytes =
        propack_workloads::generator::generate(workload.name(), a.seed, &Value::Object(params))
            .map_err(|e| usage(e.into()))?;
    let output = resolve(&a.output)?;
    storage()?
        .put_bytes(&output, &bytes)
        .with_context(|| format!("writing {output}"))
        .map_err(failed)?;
    eprintln!("wrote {} bytes to {output}", bytes.len());
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<(), Failure> {
    let params = parse_params(&a.params)?;
    let storage = storage()?;
    let get = |uri: &str| {
        let uri = resolve(uri)?;
        storage
            .get_bytes(&uri)
            .with_context(|| format!("reading {uri}"))
            .map_err(failed)
    };
    let input = a.input.as_deref().map(get).transpose()?;
    let output = get(&a.output)?;
    propack_workloads::verify(&a.workload, &params, input.as_deref(), &output)
        .map_err(|e| failed(e.into()))?;
    eprintln!("{}: output {} verified", a.workload, a.output);
    Ok(())
}

/// Environment variable naming a file where a task writes its peak RSS (kB);
/// set by `bench` for its single-task subprocess.
pub(crate) const PEAK_RSS_ENV: &str = "PROPACK_BENCH_PEAK_RSS_OUT";

/// Writes this process's `VmHWM` to the file named by [`PEAK_RSS_ENV`], if set.
///
/// `ru_maxrss` cannot be used for this: Linux carries the pre-exec address
/// space's high-water mark (the parent's, when spawned with vfork) into the
/// child's, whereas `VmHWM` belongs to the post-exec address space alone.
fn report_peak_rss() {
    let Some(path) = std::env::var_os(PEAK_RSS_ENV) else {
        return;
    };
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
        });
    if let Some(kb) = hwm {
        // Best effort: the bench falls back to ru_maxrss without it.
        let _ = std::fs::write(path, kb);
    }
}

/// `file://` URI of a local path (absolute paths only, as storage requires).
pub(crate) fn file_uri(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

/// A URI as given, or a plain path (no `scheme://`) made into a `file://` URI
/// relative to the working directory. This lets an `exec` task name the files
/// the runtime staged in its scratch directory (its working directory):
/// `--input input --output output`.
fn resolve(uri: &str) -> Result<String, Failure> {
    if uri.contains("://") {
        return Ok(uri.to_owned());
    }
    std::path::absolute(uri)
        .map(|p| file_uri(&p))
        .with_context(|| format!("resolving path {uri:?}"))
        .map_err(usage)
}
