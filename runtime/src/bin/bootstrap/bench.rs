//! `bootstrap bench`: packing efficiency of CPU-bound built-ins, subprocess overhead against `xargs -P`, start-up latency.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use propack_runtime::contract::{Batch, ParseOptions, TaskStatus};
use propack_runtime::executor::{available_vcpus, builtin};
use propack_runtime::{ExecutorConfig, Storage, run_batch};
use serde_json::{Value, json};

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workers v (default: the vCPUs this process may use).
    #[arg(long)]
    workers: Option<usize>,
    /// Length t1 of one CPU-bound `spin` task, in milliseconds of CPU time.
    #[arg(long, default_value_t = 200)]
    spin_ms: u64,
    /// Batch sizes k for the packing-efficiency measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,2,6,12,24")]
    ks: Vec<usize>,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Number of `/bin/true` tasks for the subprocess-overhead measurement.
    #[arg(long, default_value_t = 400)]
    exec_tasks: usize,
    /// Start-up measurements (spawn to first GET /next).
    #[arg(long, default_value_t = 20)]
    startup_reps: usize,
    /// Only these parts (spin, exec, startup); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the measurements as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return f64::NAN;
    }
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn batch(tasks: Vec<Value>, parallelism: usize) -> anyhow::Result<Batch> {
    let opts = ParseOptions {
        max_tasks: tasks.len().max(1),
    };
    Ok(Batch::from_value(
        &json!({"run_id": "bench", "parallelism": parallelism, "tasks": tasks}),
        &opts,
    )?)
}

fn timed_batch(b: &Batch, cfg: &ExecutorConfig, storage: &Storage) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let r = run_batch(b, cfg, storage);
    let elapsed = ms(t0.elapsed());
    let ok = r.count(TaskStatus::Succeeded);
    anyhow::ensure!(
        ok == r.tasks.len(),
        "{} of {} benchmark tasks failed: {:?}",
        r.tasks.len() - ok,
        r.tasks.len(),
        r.tasks.iter().find(|t| t.status != TaskStatus::Succeeded)
    );
    Ok(elapsed)
}

pub fn main(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let want = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);
    let v = args.workers.unwrap_or_else(available_vcpus).max(1);
    let reps = args.reps.max(1);
    let storage = Storage::from_env()?;
    let cfg = ExecutorConfig::default();
    let mut report = BTreeMap::<&str, Value>::new();
    report.insert("workers", json!(v));
    report.insert("vcpus", json!(available_vcpus()));

    let steps = (if want("spin") {
        (2 + args.ks.len()) * reps
    } else {
        0
    }) + if want("exec") { 2 * reps } else { 0 }
        + if want("startup") {
            args.startup_reps
        } else {
            0
        };
    let pb = ProgressBar::new(steps as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    if want("spin") {
        pb.set_message("spin");
        // Calibrate outside the timed region; t1 is the task's own wall time
        // run directly on this thread, so the ratio charges every executor cost.
        builtin::spin_iterations_per_ms();
        let params = json!({"ms": args.spin_ms});
        let none = BTreeMap::new();
        let mut t1s = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            builtin::run("spin", &params, Path::new("/"), &none, &none)?;
            t1s.push(ms(t0.elapsed()));
            pb.inc(1);
        }
        let t1 = median(t1s);
        // Control: v bare threads spinning t1 at once, no executor. On a shared
        // machine this shows how much of a ratio above 1 is contention for cores.
        let mut raw = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..v {
                    s.spawn(|| builtin::run("spin", &params, Path::new("/"), &none, &none));
                }
            });
            raw.push(ms(t0.elapsed()) / t1);
            pb.inc(1);
        }
        let raw_ratio = median(raw);
        let mut rows = Vec::new();
        for &k in &args.ks {
            let tasks = (0..k)
                .map(|i| json!({"id": format!("spin{i}"), "builtin": {"name": "spin", "params": params}}))
                .collect();
            let b = batch(tasks, v)?;
            let mut spans = Vec::new();
            for _ in 0..reps {
                spans.push(timed_batch(&b, &cfg, &storage)?);
                pb.inc(1);
            }
            let makespan = median(spans);
            let ideal = k.div_ceil(v) as f64 * t1;
            rows.push(json!({"k": k, "makespan_ms": makespan, "ideal_ms": ideal, "ratio": makespan / ideal}));
        }
        report.insert(
            "spin",
            json!({"t1_ms": t1, "spin_ms": args.spin_ms, "bare_threads_ratio": raw_ratio, "rows": rows}),
        );
    }

    if want("exec") {
        pb.set_message("exec");
        let n = args.exec_tasks.max(1);
        let tasks = (0..n)
            .map(|i| json!({"id": format!("true{i}"), "exec": {"program": "/bin/true", "args": [i.to_string()]}}))
            .collect();
        let b = batch(tasks, v)?;
        let mut ours = Vec::new();
        let mut xargs = Vec::new();
        for _ in 0..reps {
            ours.push(timed_batch(&b, &cfg, &storage)?);
            pb.inc(1);
            xargs.push(run_xargs(n, v)?);
            pb.inc(1);
        }
        let (ours, xargs) = (median(ours), median(xargs));
        report.insert(
            "exec",
            json!({
                "tasks": n,
                "propack_ms_per_task": ours / n as f64,
                "xargs_ms_per_task": xargs / n as f64,
                "ratio": ours / xargs,
            }),
        );
    }

    if want("startup") {
        pb.set_message("startup");
        let mut lat = Vec::new();
        for _ in 0..args.startup_reps.max(1) {
            lat.push(startup_latency()?);
            pb.inc(1);
        }
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        report.insert(
            "startup",
            json!({
                "reps": lat.len(),
                "median_ms": median(lat),
                "min_ms": sorted.first(),
                "max_ms": sorted.last(),
            }),
        );
    }
    pb.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("workers v = {v} (vCPUs available: {})", available_vcpus());
    if let Some(s) = report.get("spin") {
        println!(
            "\nCPU-bound spin tasks, t1 = {:.1} ms (nominal {} ms CPU); makespan / (ceil(k/v) * t1), goal <= 1.10",
            s["t1_ms"].as_f64().unwrap_or(f64::NAN),
            args.spin_ms
        );
        println!(
            "control: {v} bare threads spinning t1 at once take {:.3} x t1 (1.0 on an idle machine)",
            s["bare_threads_ratio"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "{:>5} {:>12} {:>12} {:>7}",
            "k", "makespan ms", "ideal ms", "ratio"
        );
        for r in s["rows"].as_array().into_iter().flatten() {
            println!(
                "{:>5} {:>12.1} {:>12.1} {:>7.3}",
                r["k"],
                r["makespan_ms"].as_f64().unwrap_or(f64::NAN),
                r["ideal_ms"].as_f64().unwrap_or(f64::NAN),
                r["ratio"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    if let Some(e) = report.get("exec") {
        println!(
            "\n/bin/true subprocess tasks (n = {}): propack {:.3} ms/task, xargs -P {v} {:.3} ms/task, ratio {:.3} (goal <= 1.2)",
            e["tasks"],
            e["propack_ms_per_task"].as_f64().unwrap_or(f64::NAN),
            e["xargs_ms_per_task"].as_f64().unwrap_or(f64::NAN),
            e["ratio"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(s) = report.get("startup") {
        println!(
            "\nstart-up, spawn to first GET /next ({} runs): median {:.2} ms, min {:.2} ms, max {:.2} ms (goal <= 20 ms)",
            s["reps"],
            s["median_ms"].as_f64().unwrap_or(f64::NAN),
            s["min_ms"].as_f64().unwrap_or(f64::NAN),
            s["max_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `xargs -P v -n 1 /bin/true` over the same n arguments; wall milliseconds.
fn run_xargs(n: usize, v: usize) -> anyhow::Result<f64> {
    let input: String = (0..n).map(|i| format!("{i}\n")).collect();
    let t0 = Instant::now();
    let mut child = Command::new("xargs")
        .args(["-P", &v.to_string(), "-n", "1", "/bin/true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running xargs")?;
    child
        .stdin
        .take()
        .context("xargs stdin")?
        .write_all(input.as_bytes())?;
    let status = child.wait()?;
    let elapsed = ms(t0.elapsed());
    anyhow::ensure!(status.success(), "xargs failed: {status}");
    Ok(elapsed)
}

/// Spawns this binary as a Lambda runtime against a mock Runtime API and
/// returns the milliseconds from spawn to its first `GET .../invocation/next`.
fn startup_latency() -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    let mut child = Command::new(exe)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning bootstrap")?;
    let measured = (|| -> anyhow::Result<f64> {
        let (stream, _) = listener.accept()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        let elapsed = ms(t0.elapsed());
        anyhow::ensure!(
            line.starts_with("GET ") && line.contains("/runtime/invocation/next"),
            "unexpected first request {line:?}"
        );
        Ok(elapsed)
    })();
    let _ = child.kill();
    let _ = child.wait();
    measured
}
