//! The Lambda custom runtime: `lambda_runtime`'s loop behind the deadline shim, one batch per invocation.

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::{Runtime, RuntimeError, init_tracing, shim};
use crate::contract::{BatchResult, ErrorPayload, headers};
use crate::executor::BoxError;
use crate::handler::{Instance, InvocationMeta};

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

pub(super) fn main(runtime: Runtime, api: String) -> Result<ExitCode, RuntimeError> {
    // lambda_runtime panics when these are absent, and emulators often omit them.
    // Remember whether the memory size was real before filling in placeholders.
    let memory_known = std::env::var_os("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").is_some();
    for (var, default) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "propack"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0"),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: no other thread of ours exists yet (the tokio runtime is built below).
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
                .map_err(RuntimeError::io("reading the deadline shim's address"))?;
            // SAFETY: no other thread of ours exists yet (the tokio runtime is built below).
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
        .map_err(RuntimeError::io("starting the tokio runtime"))?;
    rt.block_on(async move {
        if let Some(l) = shim_listener {
            shim::spawn(l, api.clone())
                .map_err(RuntimeError::io("starting the Runtime API deadline shim"))?;
        }
        let instance = match runtime.instance() {
            // A result over Lambda's response limit is lost whole: budget it to fit.
            Ok(i) => Arc::new(i.with_result_limit(crate::limits::LAMBDA_RESPONSE_LIMIT)),
            Err(e) => {
                let payload = ErrorPayload::new("Runtime.InitError", e.to_string());
                eprintln!("{}: init failed: {e}", super::program_name());
                if let Err(post) = post_init_error(&api, &payload).await {
                    eprintln!(
                        "{}: could not report the init error to the Runtime API: {post}",
                        super::program_name()
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        instance.mark_ready(runtime.started);
        let handler =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
                let instance = Arc::clone(&instance);
                async move { handle_event(instance, event, memory_known).await }
            });
        lambda_runtime::run(handler)
            .await
            .map_err(RuntimeError::Loop)?;
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
async fn post_init_error(api: &str, payload: &ErrorPayload) -> Result<(), BoxError> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header(headers::FUNCTION_ERROR_TYPE, payload.error_type.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(payload)?)))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("POST /runtime/init/error: {e}"))?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if !status.is_success() {
        return Err(format!("Runtime API answered {status}").into());
    }
    Ok(())
}
