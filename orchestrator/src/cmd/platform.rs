//! `orchestrator platform`: run the local Lambda platform standalone, or measure its throughput.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use propack_orchestrator::backend::local::lambda::write_layer;
use propack_orchestrator::backend::local::lambda::{
    AtLimit, FunctionConfig, InvokeStatus, LambdaPlatform,
};
use propack_orchestrator::backend::local::{find_bootstrap, invoke_api};
use propack_orchestrator::function::{LambdaRuntime, parse_handler};
use propack_orchestrator::platform::PlatformProfile;

/// Subcommands of `orchestrator platform`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the Lambda Invoke API (POST /2015-03-31/functions/NAME/invocations) backed by real bootstrap instances.
    Serve(ServeArgs),
    /// Measure warm-invocation throughput of the emulator with no-op tasks.
    Bench(BenchArgs),
}

/// Arguments of `orchestrator platform serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the Invoke API.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: SocketAddr,
    /// A function: NAME=PATH_TO_BOOTSTRAP (repeatable).
    #[arg(long = "function", required = true, value_parser = parse_function)]
    pub functions: Vec<(String, PathBuf)>,
    /// Platform profile: aws-2021, aws-today, unlimited, or a profile JSON file.
    #[arg(long, default_value = "aws-today")]
    pub platform: String,
    /// Directory for each instance's stdout/stderr (`<instance>.log`); discarded if unset.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Function timeout in seconds (default: the profile's).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// The functions' code directory, as /var/task on Lambda: instances get it as
    /// LAMBDA_TASK_ROOT and working directory, and relative exec programs are found in it.
    #[arg(long, value_name = "DIR")]
    pub function_dir: Option<PathBuf>,
    /// The functions' Lambda runtime: on python3.13 or nodejs22.x instances start through
    /// ProPack's exec wrapper (as `deploy --runtime` sets them up) and run --handler.
    #[arg(long, value_enum, requires = "handler")]
    pub runtime: Option<LambdaRuntime>,
    /// The functions' Handler (module.function) on a managed --runtime.
    #[arg(long, value_parser = parse_handler, requires = "runtime")]
    pub handler: Option<String>,
}

fn parse_function(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=PATH_TO_BOOTSTRAP"))?;
    if name.is_empty() || name.contains(['/', ':']) {
        return Err(format!("{name:?} is not a function name"));
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

/// Arguments of `orchestrator platform bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Invocations to time (after warming every instance).
    #[arg(long, default_value_t = 5000)]
    pub invocations: usize,
    /// Concurrent callers (= warm instances).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Also time the same load through the HTTP Invoke API.
    #[arg(long)]
    pub http: bool,
    /// The bootstrap executable (default: found or built automatically).
    #[arg(long, env = "PROPACK_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator platform`.
pub fn run(command: Command) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        Command::Serve(a) => rt.block_on(serve(a)),
        Command::Bench(a) => rt.block_on(bench(a)),
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let profile = PlatformProfile::load(&a.platform)?;
    if let Some(dir) = &a.function_dir
        && !dir.is_dir()
    {
        return Err(super::UsageError(format!(
            "--function-dir {} is not a directory",
            dir.display()
        ))
        .into());
    }
    // The emulated /opt of managed-runtime functions, one per function (its bootstrap).
    let layers = std::env::temp_dir().join(format!("propack-layers-{}", std::process::id()));
    let mut functions = Vec::new();
    for (name, path) in &a.functions {
        if !path.is_file() {
            bail!(
                "function {name}: bootstrap {} does not exist",
                path.display()
            );
        }
        let mut f = FunctionConfig::new(name, path, &profile);
        if let Some(t) = a.timeout {
            f.timeout_s = t;
        }
        f.log_dir = a.log_dir.clone();
        f.task_root = a.function_dir.clone();
        if let (Some(rt), Some(handler)) = (a.runtime.filter(|r| r.is_managed()), &a.handler) {
            let layer = layers.join(name);
            write_layer(&layer, path)
                .with_context(|| format!("writing the layer {}", layer.display()))?;
            f = f.with_managed_runtime(rt, handler, layer);
        }
        functions.push(f);
    }
    let platform = LambdaPlatform::new(profile.clone(), functions, 1);
    let (addr, server) = invoke_api::spawn(a.addr, platform.clone())
        .await
        .with_context(|| format!("binding {}", a.addr))?;
    eprintln!(
        "local Lambda ({}) listening on http://{addr} — functions: {}",
        profile.name,
        platform.function_names().join(", ")
    );
    eprintln!(
        "  aws lambda invoke --endpoint-url http://{addr} --function-name {} --payload '{{\"tasks\":[{{\"id\":\"t\",\"builtin\":{{\"name\":\"noop\"}}}}]}}' --cli-binary-format raw-in-base64-out out.json",
        platform.function_names()[0]
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = server => {}
    }
    platform.shutdown();
    let _ = std::fs::remove_dir_all(&layers);
    Ok(())
}

/// `conc` concurrent invocations, so `conc` instances exist before the timing starts.
async fn warm_up(platform: &LambdaPlatform, conc: usize) -> anyhow::Result<()> {
    let warm = futures::future::join_all(
        (0..conc).map(|i| platform.invoke("noop", noop_payload(i), AtLimit::Wait)),
    )
    .await;
    for w in warm {
        if let InvokeStatus::FunctionError { body, .. } = w?.status {
            bail!(
                "the noop function failed: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok(())
}

/// `conc` callers each invoking `per` times in a row in-process; returns the cold starts seen.
async fn time_direct(platform: &LambdaPlatform, conc: usize, per: usize) -> anyhow::Result<usize> {
    let workers = (0..conc).map(|w| {
        let p = platform.clone();
        tokio::spawn(async move {
            let mut cold = 0usize;
            for i in 0..per {
                let r = p
                    .invoke("noop", noop_payload(w * per + i), AtLimit::Wait)
                    .await?;
                cold += usize::from(r.cold_start);
                if let InvokeStatus::FunctionError { body, .. } = r.status {
                    anyhow::bail!("invocation failed: {}", String::from_utf8_lossy(&body));
                }
            }
            Ok(cold)
        })
    });
    let mut cold = 0;
    for r in futures::future::join_all(workers).await {
        cold += r??;
    }
    Ok(cold)
}

/// The same load through the HTTP Invoke API; returns the seconds it took.
async fn time_http(platform: &LambdaPlatform, conc: usize, per: usize) -> anyhow::Result<f64> {
    let (addr, server) = invoke_api::spawn("127.0.0.1:0".parse()?, platform.clone()).await?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let t0 = Instant::now();
    let workers = (0..conc).map(|w| {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..per {
                let req = http::Request::post(format!(
                    "http://{addr}/2015-03-31/functions/noop/invocations"
                ))
                .body(http_body_util::Full::new(noop_payload(w * per + i)))?;
                let resp = client.request(req).await?;
                if resp.status() != http::StatusCode::OK
                    || resp.headers().contains_key("x-amz-function-error")
                {
                    anyhow::bail!("HTTP invoke failed: {}", resp.status());
                }
                http_body_util::BodyExt::collect(resp.into_body()).await?;
            }
            Ok(())
        })
    });
    let result = futures::future::join_all(workers).await;
    server.abort();
    for r in result {
        r??;
    }
    Ok(t0.elapsed().as_secs_f64())
}

fn noop_payload(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"run_id":"bench","tasks":[{{"id":"t{i}","builtin":{{"name":"noop"}}}}]}}"#
    ))
}

async fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let bootstrap = match a.bootstrap {
        Some(p) => p,
        None => find_bootstrap()?,
    };
    let profile = PlatformProfile::unlimited();
    let f = FunctionConfig::new("noop", &bootstrap, &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let conc = a.concurrency.max(1);
    warm_up(&platform, conc).await?;
    let per = a.invocations.div_ceil(conc);
    let t0 = Instant::now();
    let cold = time_direct(&platform, conc, per).await?;
    let secs = t0.elapsed().as_secs_f64();
    let total = per * conc;
    let mut result = serde_json::json!({
        "invocations": total,
        "concurrency": conc,
        "seconds": secs,
        "invocations_per_s": total as f64 / secs,
        "cold_starts_during_timing": cold,
    });
    if a.http {
        let secs = time_http(&platform, conc, per).await?;
        result["http_seconds"] = serde_json::json!(secs);
        result["http_invocations_per_s"] = serde_json::json!(total as f64 / secs);
    }
    platform.shutdown();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "{total} warm no-op invocations over {conc} instances in {secs:.2} s: {:.0} invocations/s",
            total as f64 / secs
        );
        if let Some(h) = result.get("http_invocations_per_s") {
            println!(
                "through the HTTP Invoke API: {:.0} invocations/s",
                h.as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
