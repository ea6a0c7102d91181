//! `bootstrap bench`: packing efficiency of CPU-bound built-ins, subprocess overhead against `xargs -P`, start-up latency, warm Python handler workers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use propack_runtime::contract::{Batch, HandlerRuntime, ParseOptions, TaskStatus};
use propack_runtime::executor::{HandlerSettings, WorkerPools, available_vcpus, builtin};
use propack_runtime::{ExecutorConfig, Storage, run_batch, run_batch_in};
use serde_json::{Value, json};
use std::sync::Arc;

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
    /// Events for the Python handler measurement.
    #[arg(long, default_value_t = 48)]
    handler_events: usize,
    /// Events per batch (k) for the handler measurement; batches run one after another on one instance.
    #[arg(long, default_value_t = 8)]
    handler_k: usize,
    /// CPU milliseconds the benchmark handler's import burns.
    #[arg(long, default_value_t = 300)]
    handler_import_ms: u64,
    /// CPU milliseconds one call of the benchmark handler burns.
    #[arg(long, default_value_t = 50)]
    handler_call_ms: u64,
    /// Only these parts (spin, exec, startup, handlers); default all.
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
        }
        + if want("handlers") { 4 * reps } else { 0 };
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
    if want("handlers") {
        pb.set_message("handlers");
        match handlers_bench(args, reps, &pb) {
            Ok(v) => {
                report.insert("handlers", v);
            }
            // Part of "all" on a machine without Python: say so instead of failing the rest.
            Err(e) if args.only.is_empty() => {
                report.insert("handlers", json!({"skipped": format!("{e:#}")}));
            }
            Err(e) => return Err(e),
        }
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
    if let Some(h) = report.get("handlers") {
        print_handlers(h);
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark handler: an import and a call that burn the given CPU time
/// (thread CPU, so the threads baseline's calls each burn their own share).
fn bench_module(import_ms: u64, call_ms: u64) -> String {
    format!(
        r#"import os, time

def _burn(ms):
    end = time.thread_time() + ms / 1000.0
    x = 0
    while time.thread_time() < end:
        x += 1
    return x

_burn({import_ms})
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "inits.log"), "a") as f:
    f.write("%d\n" % os.getpid())

def handler(event, context):
    _burn({call_ms})
    return {{"i": event["i"]}}
"#
    )
}

/// The paper's way: one Python process imports the handler once and runs each batch's k
/// events on k threads (sharing the GIL), batch after batch.
/// Prints the wall milliseconds of each batch after the first, one per line.
const THREADS_BASELINE: &str = r#"import sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
import bench_app
events, k = int(sys.argv[2]), int(sys.argv[3])
spans = []
with ThreadPoolExecutor(k) as pool:
    for start in range(0, events, k):
        t0 = time.perf_counter()
        list(pool.map(lambda i: bench_app.handler({"i": i}, None), range(start, min(start + k, events))))
        spans.append((time.perf_counter() - t0) * 1000)
for s in spans[1:]:
    print(s)
"#;

/// A fresh interpreter per event: import, call, exit.
const FRESH_PER_TASK: &str = r#"import sys
sys.path.insert(0, sys.argv[1])
import bench_app
bench_app.handler({"i": int(sys.argv[2])}, None)
"#;

fn count_inits(root: &Path) -> usize {
    std::fs::read_to_string(root.join("inits.log")).map_or(0, |s| s.lines().count())
}

/// One measured way of running the events: wall ms of all batches, handler imports, workers.
struct HandlerRun {
    total_ms: f64,
    first_batch_ms: f64,
    later_batch_ms: f64,
    inits: usize,
}

fn handlers_bench(a: &BenchArgs, reps: usize, pb: &ProgressBar) -> anyhow::Result<Value> {
    let n = a.handler_events.max(1);
    let k = a.handler_k.max(1);
    // One interpreter for all three ways, resolved past launcher shims (pyenv and the like).
    let found = HandlerSettings::default()
        .interpreter(HandlerRuntime::Python3)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = Command::new(&found)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .with_context(|| format!("running {}", found.display()))?;
    anyhow::ensure!(out.status.success(), "{} does not run", found.display());
    let python = std::path::PathBuf::from(String::from_utf8(out.stdout)?.trim());

    let dir = std::env::temp_dir().join(format!("propack-bench-handlers-{}", std::process::id()));
    let root = dir.join("task");
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&scratch)?;
    std::fs::write(
        root.join("bench_app.py"),
        bench_module(a.handler_import_ms, a.handler_call_ms),
    )?;
    let storage = Storage::from_env()?;
    let reset = || std::fs::write(root.join("inits.log"), "");
    let chunks = |tasks: Vec<Value>, v: usize| -> anyhow::Result<Vec<Batch>> {
        tasks
            .chunks(k)
            .map(|c| {
                let opts = ParseOptions { max_tasks: k };
                Ok(Batch::from_value(
                    &json!({"parallelism": v, "handler": {"runtime": "python3", "name": "bench_app.handler"}, "tasks": c}),
                    &opts,
                )?)
            })
            .collect()
    };
    let mut cfg = ExecutorConfig {
        task_root: root.clone(),
        scratch_root: scratch.clone(),
        ..ExecutorConfig::default()
    };
    cfg.handlers.python = Some(python.clone());
    let timed_batches =
        |batches: &[Batch], pools: Option<&Arc<WorkerPools>>| -> anyhow::Result<Vec<f64>> {
            batches
                .iter()
                .map(|b| {
                    let t0 = Instant::now();
                    let r = match pools {
                        Some(p) => run_batch_in(b, &cfg, &storage, p),
                        None => run_batch(b, &cfg, &storage),
                    };
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
                })
                .collect()
        };
    let summarise = |spans: Vec<f64>, inits: usize| HandlerRun {
        total_ms: spans.iter().sum(),
        first_batch_ms: spans[0],
        later_batch_ms: if spans.len() > 1 {
            spans[1..].iter().sum::<f64>() / (spans.len() - 1) as f64
        } else {
            f64::NAN
        },
        inits,
    };
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("e{i}"), "event": {"i": i}}))
        .collect();

    let mut rows: BTreeMap<&str, Vec<HandlerRun>> = BTreeMap::new();
    let mut workers_started = Vec::new();
    let vcpus = available_vcpus();
    let load_before = load_average();
    for _ in 0..reps {
        // Warm workers, v = k: one fresh instance's pools serve every batch.
        reset()?;
        let pools = Arc::new(WorkerPools::new());
        let spans = timed_batches(&chunks(events.clone(), k)?, Some(&pools))?;
        workers_started.push(pools.stats().iter().map(|s| s.workers_started).sum::<u64>());
        rows.entry("workers_v_k")
            .or_default()
            .push(summarise(spans, count_inits(&root)));
        drop(pools);
        pb.inc(1);

        // Warm workers, v = the vCPUs: fewer imports, same CPUs.
        reset()?;
        let pools = Arc::new(WorkerPools::new());
        let spans = timed_batches(&chunks(events.clone(), vcpus)?, Some(&pools))?;
        rows.entry("workers_v_vcpus")
            .or_default()
            .push(summarise(spans, count_inits(&root)));
        drop(pools);
        pb.inc(1);

        // A fresh interpreter per event, k at a time.
        reset()?;
        let fresh: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("f{i}"), "exec": {"program": python, "args": ["-c", FRESH_PER_TASK, root, i.to_string()]}}))
            .collect();
        let fresh: Vec<Batch> = fresh
            .chunks(k)
            .map(|c| {
                Batch::from_value(
                    &json!({"parallelism": k, "tasks": c}),
                    &ParseOptions { max_tasks: k },
                )
            })
            .collect::<Result<_, _>>()?;
        let spans = timed_batches(&fresh, None)?;
        rows.entry("fresh_interpreter")
            .or_default()
            .push(summarise(spans, count_inits(&root)));
        pb.inc(1);

        // One process, k threads per batch, one GIL.
        reset()?;
        let t0 = Instant::now();
        let out = Command::new(&python)
            .args(["-c", THREADS_BASELINE])
            .arg(&root)
            .args([n.to_string(), k.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .context("running the threads baseline")?;
        let total_ms = ms(t0.elapsed());
        anyhow::ensure!(
            out.status.success(),
            "the threads baseline failed: {}",
            out.status
        );
        let later: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        rows.entry("threads_one_process")
            .or_default()
            .push(HandlerRun {
                total_ms,
                // Start-up, import and the first batch: everything before the later batches.
                first_batch_ms: total_ms - later.iter().sum::<f64>(),
                later_batch_ms: if later.is_empty() {
                    f64::NAN
                } else {
                    later.iter().sum::<f64>() / later.len() as f64
                },
                inits: count_inits(&root),
            });
        pb.inc(1);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let med = |runs: &[HandlerRun], f: fn(&HandlerRun) -> f64| median(runs.iter().map(f).collect());
    let (import, call) = (a.handler_import_ms as f64, a.handler_call_ms as f64);
    // CPU-bound lower bound: every import and call spread over the lanes that can run at
    // once (processes: min(v, vCPUs); threads: one, the GIL). Measured / ideal shows how
    // much of a gap is the machine (other load) rather than the method.
    let row = |name: &str, v: usize, lanes: usize| {
        let runs = &rows[name];
        let inits = runs.iter().map(|r| r.inits).max().unwrap_or(0);
        let ideal = (inits as f64 * import + n as f64 * call) / lanes.max(1) as f64;
        json!({
            "workers": v,
            "makespan_ms": med(runs, |r| r.total_ms),
            "ideal_ms": ideal,
            "first_batch_ms": med(runs, |r| r.first_batch_ms),
            "later_batch_ms": med(runs, |r| r.later_batch_ms),
            "handler_inits": inits,
        })
    };
    let workers_k = workers_started.iter().copied().max().unwrap_or(0);
    Ok(json!({
        "python": python,
        "events": n,
        "k": k,
        "batches": n.div_ceil(k),
        "import_cpu_ms": a.handler_import_ms,
        "call_cpu_ms": a.handler_call_ms,
        "vcpus": vcpus,
        "reps": reps,
        "workers_started_v_k": workers_k,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "rows": {
            "workers_v_k": row("workers_v_k", k, k.min(vcpus)),
            "workers_v_vcpus": row("workers_v_vcpus", vcpus, vcpus),
            "fresh_interpreter": row("fresh_interpreter", k, k.min(vcpus)),
            "threads_one_process": row("threads_one_process", k, 1),
        },
    }))
}

fn print_handlers(h: &Value) {
    if let Some(why) = h.get("skipped") {
        println!(
            "
Python handlers: skipped ({})",
            why.as_str().unwrap_or("")
        );
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "\nPython handler (import {} ms CPU, call {} ms CPU), {} events in {} batches of k = {} on one instance ({} vCPUs; median of {}; {})",
        h["import_cpu_ms"],
        h["call_cpu_ms"],
        h["events"],
        h["batches"],
        h["k"],
        h["vcpus"],
        h["reps"],
        h["python"].as_str().unwrap_or("?")
    );
    println!(
        "load average {} before, {} after (other processes share these vCPUs)",
        h["load_average_before"], h["load_average_after"]
    );
    println!(
        "{:<40} {:>8} {:>12} {:>9} {:>13} {:>14} {:>7}",
        "", "workers", "makespan ms", "ideal ms", "1st batch ms", "later batch ms", "inits"
    );
    let rows = &h["rows"];
    for (key, label) in [
        ("workers_v_k", "ProPack warm workers (v = k)"),
        ("workers_v_vcpus", "ProPack warm workers (v = vCPUs)"),
        ("fresh_interpreter", "fresh interpreter per event"),
        ("threads_one_process", "threads in one process (GIL, paper)"),
    ] {
        let r = &rows[key];
        println!(
            "{:<40} {:>8} {:>12.0} {:>9.0} {:>13.0} {:>14.0} {:>7}",
            label,
            r["workers"],
            f(&r["makespan_ms"]),
            f(&r["ideal_ms"]),
            f(&r["first_batch_ms"]),
            f(&r["later_batch_ms"]),
            r["handler_inits"]
        );
    }
    println!(
        "handler initialisations with warm workers: {} = workers started, not the {} events",
        rows["workers_v_k"]["handler_inits"], h["events"]
    );
}

/// The 1-minute load average, if the OS says.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
