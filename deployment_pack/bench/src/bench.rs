//! `propack-bench bench`: single-task time and peak memory, and the packing curve through the runtime executor.
//!
//! For each case (`sort`, `sort-terasort`, `statelesscost`, `video`) it
//! generates `max-k` deterministic inputs, then
//!
//! 1. runs one task as a subprocess of this binary and reads its wall time
//!    and CPU time from `wait4`, and its peak RSS from the `VmHWM` the child
//!    reports at exit;
//! 2. runs batches of k = 1..=max-k built-in tasks through
//!    `propack_runtime::executor::run_batch` (as `bootstrap` would, `file://`
//!    storage) and records each batch's makespan: the local packing delay.
//!
//! Every output is verified with `propack_workloads::verify`, outside the
//! timed region. The packing curve is also written in the model's
//! `PackingProfile` format (`--profile-out`).

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use propack_runtime::contract::{Batch, ParseOptions, TaskStatus};
use propack_runtime::executor::{ExecutorConfig, available_vcpus, run_batch};
use propack_runtime::storage::Storage;
use serde_json::{Map, Value, json};

use crate::file_uri;

/// The cases `bench` knows, with their default sizes.
const CASES: [&str; 4] = ["sort", "sort-terasort", "statelesscost", "video"];

/// Arguments of `propack-bench bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Cases to measure, comma-separated: sort, sort-terasort, statelesscost, video.
    #[arg(long, value_delimiter = ',', default_values_t = CASES.map(String::from))]
    workloads: Vec<String>,
    /// Largest packing degree k of the packing curve.
    #[arg(long, default_value_t = 8)]
    max_k: usize,
    /// Repeats of each packing measurement.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Override a case's input size, CASE=SIZE (as `gen --size`: sort=10MB,
    /// statelesscost=2000x2000, video=640x360x60); repeatable.
    #[arg(long = "size", value_name = "CASE=SIZE")]
    sizes: Vec<String>,
    /// Skip the single-task (subprocess) measurements.
    #[arg(long)]
    no_single: bool,
    /// Skip the packing curve.
    #[arg(long)]
    no_packing: bool,
    /// Executor workers for the packing runs (default: the vCPUs of this process).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Memory recorded in the packing profile, MB (default: this machine's total memory).
    #[arg(long)]
    memory_mb: Option<u32>,
    /// Write the packing curve as the model's PackingProfile JSON. `{app}` in
    /// the path is replaced by the case name; required when several cases run.
    #[arg(long, value_name = "FILE")]
    profile_out: Option<String>,
    /// Directory for generated inputs and outputs (default: a temporary directory, removed after).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// One case: a workload with fixed params.
pub struct Case {
    name: String,
    workload: &'static str,
    params: Map<String, Value>,
}

fn default_case(name: &str) -> Result<Case> {
    let (workload, params) = match name {
        "sort" => ("sort", json!({"format": "text", "bytes": 10_000_000})),
        "sort-terasort" => ("sort", json!({"format": "terasort", "bytes": 10_000_000})),
        "statelesscost" => ("statelesscost", json!({"width": 5000, "height": 5000})),
        "video" => ("video", json!({"width": 640, "height": 360, "frames": 60})),
        other => bail!("unknown bench case {other:?} (known: {})", CASES.join(", ")),
    };
    let Value::Object(params) = params else {
        bail!("internal: case params are not an object");
    };
    Ok(Case {
        name: name.to_owned(),
        workload,
        params,
    })
}

/// Single-task measurement.
struct Single {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kb: u64,
}

/// Checks the arguments and resolves the cases; errors here are usage errors.
pub fn cases(a: &BenchArgs) -> Result<Vec<Case>> {
    if a.max_k == 0 || a.repeats == 0 {
        bail!("--max-k and --repeats must be at least 1");
    }
    let mut cases = a
        .workloads
        .iter()
        .map(|n| default_case(n))
        .collect::<Result<Vec<_>>>()?;
    for s in &a.sizes {
        let (name, size) = s
            .split_once('=')
            .with_context(|| format!("--size {s:?}: expected CASE=SIZE"))?;
        let case = cases
            .iter_mut()
            .find(|c| c.name == name)
            .with_context(|| format!("--size {s:?}: case {name:?} is not being measured"))?;
        case.params.extend(propack_workloads::generator::parse_size(
            case.workload,
            size,
        )?);
    }
    if let Some(p) = &a.profile_out
        && cases.len() > 1
        && !p.contains("{app}")
    {
        bail!("--profile-out {p:?} must contain {{app}} when several cases are measured");
    }
    Ok(cases)
}

/// Runs `propack-bench bench` on the cases from [`cases`].
pub fn run(a: &BenchArgs, cases: &[Case]) -> Result<()> {
    let tmp;
    let work = match &a.work_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("propack-bench-work-")
                .tempdir()
                .context("creating a work directory")?;
            tmp.path().to_path_buf()
        }
    };
    let work = std::path::absolute(&work).context("resolving --work-dir")?;
    let storage = Storage::from_env().context("configuring storage")?;
    let vcpus = available_vcpus();
    let memory_mb = a.memory_mb.unwrap_or_else(total_memory_mb);

    let mut report = Vec::new();
    for case in cases {
        let dir = work.join(&case.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let inputs = generate_inputs(case, &dir, a.max_k)?;
        let single = if a.no_single {
            None
        } else {
            Some(single_task(case, &inputs[0], &dir)?)
        };
        let curve = if a.no_packing {
            Vec::new()
        } else {
            packing_curve(case, &inputs, &dir, a, &storage)?
        };
        if let Some(p) = &a.profile_out
            && !curve.is_empty()
        {
            let path = p.replace("{app}", &case.name);
            let profile = json!({
                "schema_version": 1,
                "app": case.name,
                "memory_mb": memory_mb,
                "vcpus": vcpus,
                "samples": curve.iter().enumerate()
                    .map(|(i, s)| json!({"k": i + 1, "seconds": s}))
                    .collect::<Vec<_>>(),
            });
            write_json(Path::new(&path), &profile)?;
            eprintln!("{}: packing profile written to {path}", case.name);
        }
        report.push(json!({
            "case": case.name,
            "workload": case.workload,
            "params": case.params,
            "single": single.as_ref().map(|s| json!({
                "wall_s": s.wall_s, "cpu_s": s.cpu_s, "max_rss_kb": s.max_rss_kb,
            })),
            "packing": curve.iter().enumerate()
                .map(|(i, s)| json!({"k": i + 1, "seconds": s}))
                .collect::<Vec<_>>(),
        }));
    }
    let report = json!({"vcpus": vcpus, "memory_mb": memory_mb, "max_k": a.max_k,
                        "repeats": a.repeats, "cases": report});
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn total_memory_mb() -> u32 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| (kb / 1024) as u32)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn bar(len: u64, msg: String) -> ProgressBar {
    let pb = ProgressBar::new(len).with_message(msg);
    if let Ok(style) = ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Writes the inputs of seeds 0..n; returns their paths.
fn generate_inputs(case: &Case, dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    let pb = bar(n as u64, format!("{}: inputs", case.name));
    let params = Value::Object(case.params.clone());
    let mut paths = Vec::with_capacity(n);
    for seed in 0..n {
        let path = dir.join(format!("input-{seed}"));
        let bytes = propack_workloads::generator::generate(case.workload, seed as u64, &params)?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(paths)
}

/// Params of a run: the case's params minus generator-only sizes for
/// statelesscost (its params file carries them).
fn run_params(case: &Case) -> Value {
    if case.workload == "statelesscost" {
        Value::Object(Map::new())
    } else {
        Value::Object(case.params.clone())
    }
}

fn verify_output(case: &Case, input: &Path, output: &Path) -> Result<()> {
    propack_workloads::verify_files(case.workload, &run_params(case), Some(input), output)
        .with_context(|| {
            format!(
                "{}: output {} failed verification",
                case.name,
                output.display()
            )
        })
}

fn single_task(case: &Case, input: &Path, dir: &Path) -> Result<Single> {
    let pb = bar(1, format!("{}: single task", case.name));
    pb.enable_steady_tick(Duration::from_millis(200));
    let exe = std::env::current_exe().context("locating propack-bench")?;
    let output = dir.join("single-output");
    let log = dir.join("single-stderr.log");
    let peak_file = dir.join("single-peak-rss-kb");
    let _ = std::fs::remove_file(&peak_file);
    let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let start = Instant::now();
    let child = Command::new(exe)
        .arg(case.workload)
        .args(["--input", &file_uri(input), "--output", &file_uri(&output)])
        .args(["--params", &run_params(case).to_string()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .env(crate::PEAK_RSS_ENV, &peak_file)
        .spawn()
        .context("starting the single-task subprocess")?;
    let (status, rusage) = wait4(child.id())?;
    let wall_s = start.elapsed().as_secs_f64();
    pb.finish_and_clear();
    if !status.success() {
        let msg = std::fs::read_to_string(&log).unwrap_or_default();
        bail!(
            "{}: single task failed ({status}): {}",
            case.name,
            msg.trim()
        );
    }
    verify_output(case, input, &output)?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Single {
        wall_s,
        cpu_s: secs(rusage.ru_utime) + secs(rusage.ru_stime),
        // The child's own VmHWM; ru_maxrss (kB on Linux) only as a fallback,
        // since it includes the parent's size at spawn time.
        max_rss_kb: std::fs::read_to_string(&peak_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(rusage.ru_maxrss as u64),
    })
}

/// Waits for `pid` and returns its exit status and its own resource usage.
fn wait4(pid: u32) -> Result<(std::process::ExitStatus, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, valid when zeroed.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child (std's Child never waited on it),
        // and both out-pointers point to live locals.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut rusage) };
        if r == pid as libc::pid_t {
            return Ok((std::process::ExitStatus::from_raw(status), rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the single-task subprocess");
        }
    }
}

/// Makespans of k = 1..=max-k packed tasks, `repeats` each.
fn packing_curve(
    case: &Case,
    inputs: &[PathBuf],
    dir: &Path,
    a: &BenchArgs,
    storage: &Storage,
) -> Result<Vec<Vec<f64>>> {
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let cfg = ExecutorConfig {
        parallelism: a.parallelism,
        scratch_root: scratch,
        ..ExecutorConfig::default()
    };
    let pb = bar(
        (a.max_k * a.repeats) as u64,
        format!("{}: packing", case.name),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    let mut curve = Vec::with_capacity(a.max_k);
    for k in 1..=a.max_k {
        let outputs: Vec<PathBuf> = (0..k).map(|i| dir.join(format!("out-k{k}-{i}"))).collect();
        let tasks: Vec<Value> = (0..k)
            .map(|i| {
                json!({
                    "id": format!("{}-k{k}-{i}", case.name),
                    "builtin": {"name": case.workload, "params": run_params(case)},
                    "inputs": {"input": file_uri(&inputs[i])},
                    "outputs": {"output": file_uri(&outputs[i])},
                })
            })
            .collect();
        let batch = Batch::from_value(
            &json!({"run_id": format!("bench-{}", case.name), "batch_id": format!("k{k}"), "tasks": tasks}),
            &ParseOptions::default(),
        )
        .context("building the benchmark batch")?;
        let mut samples = Vec::with_capacity(a.repeats);
        for r in 0..a.repeats {
            let start = Instant::now();
            let result = run_batch(&batch, &cfg, storage);
            let secs = start.elapsed().as_secs_f64();
            if let Some(t) = result
                .tasks
                .iter()
                .find(|t| t.status != TaskStatus::Succeeded)
            {
                bail!(
                    "{}: k = {k}: task {} {:?}: {}",
                    case.name,
                    t.id,
                    t.status,
                    t.error.as_deref().unwrap_or("no error message")
                );
            }
            if r == 0 {
                for (input, output) in inputs.iter().zip(&outputs) {
                    verify_output(case, input, output)?;
                }
            }
            samples.push(secs);
            pb.inc(1);
        }
        for o in &outputs {
            let _ = std::fs::remove_file(o);
        }
        curve.push(samples);
    }
    pb.finish_and_clear();
    Ok(curve)
}

fn print_table(report: &Value) {
    println!(
        "machine: {} vCPUs, {} MB",
        report["vcpus"], report["memory_mb"]
    );
    let cases = report["cases"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if cases.iter().any(|c| c["single"].is_object()) {
        println!("\nsingle task (subprocess):");
        println!(
            "{:<16} {:>9} {:>9} {:>12}",
            "case", "wall s", "cpu s", "peak RSS MB"
        );
        for c in cases {
            if let Some(s) = c["single"].as_object() {
                println!(
                    "{:<16} {:>9.3} {:>9.3} {:>12.1}",
                    c["case"].as_str().unwrap_or(""),
                    s["wall_s"].as_f64().unwrap_or(f64::NAN),
                    s["cpu_s"].as_f64().unwrap_or(f64::NAN),
                    s["max_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0
                );
            }
        }
    }
    if cases
        .iter()
        .any(|c| c["packing"].as_array().is_some_and(|p| !p.is_empty()))
    {
        println!("\npacking curve (makespan s of k tasks, median of repeats):");
    }
    for c in cases {
        let Some(points) = c["packing"].as_array().filter(|p| !p.is_empty()) else {
            continue;
        };
        let row: Vec<String> = points
            .iter()
            .map(|p| {
                let mut s: Vec<f64> = p["seconds"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default();
                s.sort_by(f64::total_cmp);
                let m = s.get(s.len() / 2).copied().unwrap_or(f64::NAN);
                format!("k={}:{m:.2}", p["k"])
            })
            .collect();
        println!(
            "{:<16} {}",
            c["case"].as_str().unwrap_or(""),
            row.join("  ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        T::parse_from(std::iter::once("bench").chain(extra.iter().copied())).a
    }

    #[test]
    fn cases_default_and_override_sizes() {
        let all = cases(&args(&[])).unwrap();
        assert_eq!(
            all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            CASES
        );
        assert_eq!(all[1].params["format"], "terasort");
        let c = cases(&args(&["--workloads", "video", "--size", "video=64x48x5"])).unwrap();
        assert_eq!(c[0].params["frames"], 5);
        assert_eq!(c[0].params["width"], 64);
        assert_eq!(run_params(&c[0])["frames"], 5);
        let s = cases(&args(&["--workloads", "statelesscost"])).unwrap();
        assert_eq!(run_params(&s[0]), json!({}));
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = |a: &[&str]| {
            cases(&args(a))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&["--workloads", "audio"]).contains("unknown bench case \"audio\""));
        assert!(
            err(&["--workloads", "sort", "--size", "video=1x1"]).contains("not being measured")
        );
        assert!(err(&["--size", "sort"]).contains("expected CASE=SIZE"));
        assert!(err(&["--max-k", "0"]).contains("at least 1"));
        assert!(err(&["--profile-out", "p.json"]).contains("must contain {app}"));
        assert!(err(&["--workloads", "sort", "--profile-out", "p.json"]).is_empty());
    }

    #[test]
    fn meminfo_is_read() {
        // Linux-only machine: MemTotal is always present.
        assert!(total_memory_mb() > 0);
    }
}
