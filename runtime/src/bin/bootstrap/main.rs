//! `bootstrap`: ProPack's packed custom Lambda runtime.
//!
//! - no arguments, `AWS_LAMBDA_RUNTIME_API` set: the Lambda custom runtime
//!   (provided.al2023 / provided.al2), one batch per invocation;
//! - `serve --addr 127.0.0.1:PORT`: the same handler over plain HTTP (`POST /invoke`,
//!   bodies capped at `PROPACK_MAX_BODY_BYTES`, 413 past it);
//! - `run --batch FILE|-`: run one batch and print the result JSON;
//! - `bench`: the executor's packing-efficiency, subprocess-overhead, start-up and
//!   warm-handler-worker measurements.

mod bench;
mod shim;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use propack_runtime::contract::{BatchResult, ErrorPayload, TaskStatus, headers};
use propack_runtime::deadline::DeadlineResolver;
use propack_runtime::handler::{Instance, InvocationMeta};
use serde_json::Value;

/// ProPack's packed runtime: runs a batch of k tasks in parallel inside one function instance.
///
/// Without a subcommand and with AWS_LAMBDA_RUNTIME_API set, it is a Lambda custom runtime.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the batch handler over plain HTTP: `POST /invoke` with a batch returns the result JSON.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:9000")]
        addr: std::net::SocketAddr,
    },
    /// Run one batch and print its result JSON; exit status 0 only if every task succeeded.
    Run {
        /// Batch JSON file, or `-` for standard input.
        #[arg(long)]
        batch: String,
        /// Invocation deadline, in milliseconds from now (default: AWS_LAMBDA_FUNCTION_TIMEOUT, else none).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Print the result on one line instead of pretty-printed.
        #[arg(long)]
        compact: bool,
    },
    /// Measure packing efficiency, subprocess overhead against xargs, start-up latency and warm handler workers.
    Bench(bench::BenchArgs),
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

fn main() -> ExitCode {
    let process_start = Instant::now();
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => match std::env::var("AWS_LAMBDA_RUNTIME_API") {
            Ok(api) if !api.is_empty() => lambda_main(process_start, api),
            _ => {
                eprintln!(
                    "bootstrap: AWS_LAMBDA_RUNTIME_API is not set; use `bootstrap run --batch FILE`, \
                     `bootstrap serve` or `bootstrap bench` outside Lambda (see --help)"
                );
                return ExitCode::from(2);
            }
        },
        Some(Cmd::Serve { addr }) => serve_main(process_start, addr),
        Some(Cmd::Run {
            batch,
            timeout_ms,
            compact,
        }) => run_main(process_start, &batch, timeout_ms, compact),
        Some(Cmd::Bench(args)) => bench::main(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootstrap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/* ----------------------------------- Lambda custom runtime ----------------------------------- */

/// A batch-level failure as the Lambda runtime reports it.
#[derive(Debug)]
struct LambdaError(ErrorPayload);

impl From<LambdaError> for lambda_runtime::Diagnostic {
    fn from(e: LambdaError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.0.error_type,
            error_message: e.0.error_message,
        }
    }
}

fn lambda_main(process_start: Instant, api: String) -> anyhow::Result<ExitCode> {
    // lambda_runtime panics when these are absent, and emulators often omit them.
    // Remember whether the memory size was real before filling in placeholders.
    let memory_known = std::env::var_os("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").is_some();
    for (var, default) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "propack"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0"),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: no other thread exists yet (the tokio runtime is built below).
            unsafe { std::env::set_var(var, default) };
        }
    }
    init_tracing("info");
    // lambda_runtime reads the API address from the environment when its loop is built,
    // so the deadline shim's address must be in place before any thread exists.
    let shim_listener = match shim::bind() {
        Ok(l) => {
            let addr = l
                .local_addr()
                .context("reading the deadline shim's address")?;
            // SAFETY: no other thread exists yet (the tokio runtime is built below).
            unsafe { std::env::set_var("AWS_LAMBDA_RUNTIME_API", addr.to_string()) };
            Some(l)
        }
        Err(e) => {
            tracing::warn!(
                "could not start the Runtime API deadline shim ({e}); polling {api} directly, \
                 so an invocation without a deadline header will crash lambda_runtime"
            );
            None
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        if let Some(l) = shim_listener {
            shim::spawn(l, api.clone()).context("starting the Runtime API deadline shim")?;
        }
        let instance = match Instance::from_env() {
            Ok(i) => i,
            Err(e) => {
                let payload = ErrorPayload::new("Runtime.InitError", e.to_string());
                eprintln!("bootstrap: init failed: {e}");
                if let Err(post) = post_init_error(&api, &payload).await {
                    eprintln!(
                        "bootstrap: could not report the init error to the Runtime API: {post:#}"
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        let instance = instance.with_result_limit(propack_runtime::budget::LAMBDA_RESPONSE_LIMIT);
        instance.mark_ready(process_start);
        let instance = Arc::new(instance);
        let handler =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
                let instance = Arc::clone(&instance);
                async move { handle_event(instance, event, memory_known).await }
            });
        lambda_runtime::run(handler)
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime loop ended: {e}"))?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn handle_event(
    instance: Arc<Instance>,
    event: lambda_runtime::LambdaEvent<Value>,
    memory_known: bool,
) -> Result<BatchResult, LambdaError> {
    let (payload, ctx) = event.into_parts();
    let meta = InvocationMeta {
        deadline_header: Some(ctx.deadline.to_string()),
        request_id: Some(ctx.request_id),
        invoked_function_arn: Some(ctx.invoked_function_arn).filter(|a| !a.is_empty()),
    };
    let joined =
        tokio::task::spawn_blocking(move || instance.handle_invocation(&payload, meta)).await;
    match joined {
        Ok(Ok(mut r)) => {
            if !memory_known {
                r.memory_mb = None;
            }
            Ok(r)
        }
        Ok(Err(payload)) => Err(LambdaError(payload)),
        Err(e) => Err(LambdaError(ErrorPayload::new(
            "Runtime.HandlerFailed",
            format!("batch handler did not complete: {e}"),
        ))),
    }
}

/// `lambda_runtime` only reports init errors for SnapStart hooks, so the
/// runtime's own init failures are posted here, per the Runtime API.
async fn post_init_error(api: &str, payload: &ErrorPayload) -> anyhow::Result<()> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header(headers::FUNCTION_ERROR_TYPE, payload.error_type.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(payload)?)))?;
    let resp = client
        .request(req)
        .await
        .context("POST /runtime/init/error")?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    anyhow::ensure!(status.is_success(), "Runtime API answered {status}");
    Ok(())
}

/* ------------------------------------- plain HTTP front-end ------------------------------------ */

/// Lambda's synchronous request payload limit (6 MiB) plus 64 KiB of slack, so that
/// whatever Lambda accepts, `serve` accepts too.
const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024 + 64 * 1024;

/// `PROPACK_MAX_BODY_BYTES`, else [`DEFAULT_MAX_BODY_BYTES`].
fn max_body_bytes() -> anyhow::Result<usize> {
    match std::env::var("PROPACK_MAX_BODY_BYTES") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| {
                format!(
                    "environment variable PROPACK_MAX_BODY_BYTES={v:?}: expected a positive integer"
                )
            }),
        _ => Ok(DEFAULT_MAX_BODY_BYTES),
    }
}

fn serve_main(process_start: Instant, addr: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    init_tracing("info");
    let max_body = max_body_bytes()?;
    let instance = Arc::new(
        Instance::from_env()?.with_resolver(DeadlineResolver::from_env().missing_header_expected()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        instance.mark_ready(process_start);
        println!("listening on http://{local}");
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            let instance = Arc::clone(&instance);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    serve_request(Arc::clone(&instance), req, max_body)
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!("connection ended: {e}");
                }
            });
        }
    })
}

fn json_response(status: http::StatusCode, body: Vec<u8>) -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(
    status: http::StatusCode,
    error_type: &str,
    message: String,
) -> http::Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ErrorPayload::new(error_type, message)).unwrap_or_default();
    json_response(status, body)
}

/// Why a request body was not read whole.
enum BodyError {
    /// Over the cap (declared by `Content-Length` or seen while reading): bytes known so far.
    TooLarge(u64),
    /// The connection failed mid-body.
    Read(hyper::Error),
}

/// Reads a body frame by frame, giving up as soon as it passes `cap`, so an oversized
/// request costs at most `cap` bytes of memory however large it is.
async fn read_capped(
    headers: &http::HeaderMap,
    mut body: hyper::body::Incoming,
    cap: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > cap as u64
    {
        return Err(BodyError::TooLarge(n));
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(BodyError::TooLarge((buf.len() + data.len()) as u64));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

async fn serve_request(
    instance: Arc<Instance>,
    req: http::Request<hyper::body::Incoming>,
    max_body: usize,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    use http::{Method, StatusCode};
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => Ok(json_response(
            StatusCode::OK,
            b"{\"status\":\"ok\"}".to_vec(),
        )),
        (&Method::POST, "/invoke") => {
            let deadline = req
                .headers()
                .get(headers::DEADLINE_MS)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let request_id = req
                .headers()
                .get(headers::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (parts, body) = req.into_parts();
            let body = match read_capped(&parts.headers, body, max_body).await {
                Ok(b) => b,
                Err(BodyError::TooLarge(seen)) => {
                    // Lambda's answer to an oversized synchronous payload.
                    let mut resp = error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLargeException",
                        format!(
                            "request body of at least {seen} bytes is over the limit of \
                             {max_body} bytes (PROPACK_MAX_BODY_BYTES)"
                        ),
                    );
                    // The rest of the body is never read, so this connection cannot carry another request.
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    return Ok(resp);
                }
                Err(BodyError::Read(e)) => {
                    return Ok(error_response(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequest",
                        format!("reading the request body: {e}"),
                    ));
                }
            };
            let joined = tokio::task::spawn_blocking(move || {
                instance.handle_bytes(&body, deadline.as_deref(), request_id)
            })
            .await;
            Ok(match joined {
                Ok(Ok(result)) => json_response(
                    StatusCode::OK,
                    serde_json::to_vec(&result).unwrap_or_default(),
                ),
                Ok(Err(payload)) => json_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::to_vec(&payload).unwrap_or_default(),
                ),
                Err(e) => error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Runtime.HandlerFailed",
                    format!("batch handler did not complete: {e}"),
                ),
            })
        }
        (_, "/invoke") => Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "use POST /invoke with a batch JSON body".into(),
        )),
        (_, path) => Ok(error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {path:?}: use POST /invoke"),
        )),
    }
}

/* ----------------------------------------- command line ---------------------------------------- */

fn run_main(
    process_start: Instant,
    batch: &str,
    timeout_ms: Option<u64>,
    compact: bool,
) -> anyhow::Result<ExitCode> {
    init_tracing("warn");
    let payload = if batch == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the batch from standard input")?;
        buf
    } else {
        std::fs::read(batch).with_context(|| format!("reading batch file {batch}"))?
    };
    let instance =
        Instance::from_env()?.with_resolver(DeadlineResolver::from_env().missing_header_expected());
    instance.mark_ready(process_start);
    let header = timeout_ms.map(|ms| (propack_runtime::deadline::epoch_ms() + ms).to_string());
    let out = std::io::stdout();
    let mut out = out.lock();
    match instance.handle_bytes(&payload, header.as_deref(), None) {
        Ok(result) => {
            if compact {
                serde_json::to_writer(&mut out, &result)?;
            } else {
                serde_json::to_writer_pretty(&mut out, &result)?;
            }
            writeln!(out)?;
            let ok = result.count(TaskStatus::Succeeded);
            if ok == result.tasks.len() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "bootstrap: {} of {} tasks did not succeed",
                    result.tasks.len() - ok,
                    result.tasks.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Err(payload) => {
            serde_json::to_writer(&mut out, &payload)?;
            writeln!(out)?;
            eprintln!(
                "bootstrap: {}: {}",
                payload.error_type, payload.error_message
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
