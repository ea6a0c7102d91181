//! The Azure Functions custom handler: the Functions host's HTTP requests to `bootstrap` on `FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! Microsoft's custom-handler protocol (learn.microsoft.com, "Azure Functions custom
//! handlers"): the host starts the executable `host.json` names and sends it one HTTP
//! request per invocation on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! - An HTTP-triggered function with no other bindings, in an app whose `host.json` sets
//!   `customHandler.enableForwardingHttpRequest`, gets the caller's request as is, at its
//!   original path (`/api/propack`): the body is the batch, the response body the result
//!   (200), or Lambda's error payload (400 bad batch, 413 too large, 503 shutting down).
//! - Every other function gets `POST /<function name>` with `{"Data": {<binding>: …},
//!   "Metadata": {…}}` and answers `{"Outputs": {…}, "Logs": [...], "ReturnValue": …}`. The
//!   queue function (`propack-queue`) finds its batch under the trigger binding `batch` — a
//!   queue message arrives as a string holding the batch JSON — and returns the result in
//!   the output binding `result`. An HTTP trigger without forwarding (binding `req`: `Url`,
//!   `Method`, `Headers`, `Body`, …) gets the result as the `res` HTTP output
//!   (`statusCode`, `body`, `headers`).
//!
//! A batch the runtime refuses (`InvalidBatch`) is answered 200 with the error payload as
//! its result: the host would otherwise retry the message up to `maxDequeueCount` times and
//! the same batch would be refused each time. A batch cut off by shutdown is answered 503,
//! so the host counts the invocation as failed and the queue delivers the message again.
//!
//! The function is named `propack` (and `propack-queue`) unless `PROPACK_AZURE_FUNCTION`
//! names it otherwise.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::graceful::{self, Abort, Response};
use super::serve::{self, error_response, json_response};
use super::{Runtime, RuntimeError, init_tracing, non_empty_env};
use crate::contract::azure::{
    DEFAULT_FUNCTION, FUNCTION_ENV, HTTP_OUT_BINDING, QUEUE_SUFFIX, RESULT_BINDING, TRIGGER_BINDING,
};
use crate::contract::{BatchResult, ErrorPayload, TaskStatus};

pub(super) use crate::contract::azure::PORT_ENV;
use crate::handler::Instance;

/// The functions this handler serves.
#[derive(Debug, Clone)]
struct Functions {
    http: String,
    queue: String,
}

impl Functions {
    fn from_env() -> Self {
        let http = non_empty_env(FUNCTION_ENV).unwrap_or_else(|| DEFAULT_FUNCTION.to_owned());
        Self {
            queue: format!("{http}{QUEUE_SUFFIX}"),
            http,
        }
    }
}

fn port(port: Option<u16>) -> Result<u16, RuntimeError> {
    if let Some(p) = port {
        return Ok(p);
    }
    let v = std::env::var(PORT_ENV).unwrap_or_default();
    v.trim().parse::<u16>().map_err(|_| RuntimeError::Setting {
        name: PORT_ENV,
        value: v,
        expected: "expected a TCP port number (the Functions host sets it)",
    })
}

pub(super) fn main(runtime: Runtime, port_arg: Option<u16>) -> Result<ExitCode, RuntimeError> {
    init_tracing("info");
    // The host calls 127.0.0.1; nothing else should reach the handler.
    let addr = SocketAddr::from(([127, 0, 0, 1], port(port_arg)?));
    let max_body = serve::max_body_bytes()?;
    let functions = Arc::new(Functions::from_env());
    let (instance, ready) = serve::http_instance(runtime)?;
    serve::listen(addr, ready, move |req, abort| {
        route(
            Arc::clone(&functions),
            Arc::clone(&instance),
            req,
            max_body,
            abort,
        )
    })
}

async fn route(
    functions: Arc<Functions>,
    instance: Arc<Instance>,
    req: http::Request<hyper::body::Incoming>,
    max_body: usize,
    abort: Abort,
) -> Response {
    use http::{Method, StatusCode};
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is = |name: &str| segments.as_slice() == [name];
    match *req.method() {
        Method::POST if is(&functions.http) || is(&functions.queue) => {
            invocation(instance, req, max_body, &abort).await
        }
        // Forwarded HTTP: the original route, `<routePrefix>/<function>` (default `api/propack`).
        Method::POST if segments.len() >= 2 && segments.last() == Some(&&*functions.http) => {
            serve::invoke(instance, req, max_body, &abort).await
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "no function at {} {path:?}: this custom handler serves POST /{f} and /{q} \
                 (the host's invocation requests) and POST /api/{f} (forwarded HTTP)",
                req.method(),
                f = functions.http,
                q = functions.queue
            ),
        ),
    }
}

/// Where the batch came from, which decides the shape of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A trigger binding holding the batch (a queue message): the result goes to `result`.
    Binding,
    /// An HTTP trigger's request data (`Data.req`): the result goes to the `res` HTTP output.
    HttpRequest,
}

/// The batch in an invocation request's `Data`, as bytes of JSON.
fn batch_of(data: &serde_json::Map<String, Value>) -> Result<(Source, Vec<u8>), String> {
    let (name, value) = match data.get(TRIGGER_BINDING) {
        Some(v) => (TRIGGER_BINDING, v),
        None if data.len() == 1 => data.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap(),
        None => {
            return Err(format!(
                "Data has no binding {TRIGGER_BINDING:?} and {} others ({}): name the trigger \
                 binding {TRIGGER_BINDING:?} in function.json",
                data.len(),
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let bytes = |v: &Value| match v {
        // A queue message (or an HTTP body) arrives as text.
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    };
    match value {
        Value::Object(req) if req.contains_key("Method") && req.contains_key("Body") => {
            Ok((Source::HttpRequest, bytes(&req["Body"])))
        }
        Value::Null => Err(format!("Data.{name} is null: the message carried no batch")),
        v => Ok((Source::Binding, bytes(v))),
    }
}

/// A one-line account of a result for the invocation log.
fn summary(result: &BatchResult) -> String {
    let n = result.tasks.len();
    let ok = result.count(TaskStatus::Succeeded);
    format!(
        "propack: {n} tasks: {ok} succeeded, {} failed, {} timed out, {} not run",
        result.count(TaskStatus::Failed),
        result.count(TaskStatus::TimedOut),
        result.count(TaskStatus::NotRun)
    )
}

/// The answer to `POST /<function>` with `{"Data", "Metadata"}`.
async fn invocation(
    instance: Arc<Instance>,
    req: http::Request<hyper::body::Incoming>,
    max_body: usize,
    abort: &Abort,
) -> Response {
    use http::StatusCode;
    let body: Bytes = match serve::read_body(req, max_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                format!("invocation request is not JSON: {e}"),
            );
        }
    };
    let Some(data) = request.get("Data").and_then(Value::as_object) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "invocation request has no \"Data\" object (expected {\"Data\": {...}, \"Metadata\": {...}})"
                .into(),
        );
    };
    let (source, batch) = match batch_of(data) {
        Ok(b) => b,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "InvalidRequest", message),
    };
    let metadata = request.get("Metadata").cloned().unwrap_or(Value::Null);
    // The queue message id, else the host's per-invocation GUID.
    let request_id = metadata
        .get("Id")
        .or_else(|| metadata.pointer("/sys/RandGuid"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let joined = abort
        .run_blocking(move || instance.handle_bytes(&batch, None, request_id))
        .await;
    let (status, result, log) = match joined {
        None => return graceful::shutting_down(),
        Some(Err(e)) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Runtime.HandlerFailed",
                format!("batch handler did not complete: {e}"),
            );
        }
        Some(Ok(Ok(result))) => (200u16, json!(result), summary(&result)),
        Some(Ok(Err(payload))) => {
            let ErrorPayload {
                error_type,
                error_message,
            } = &payload;
            let log = format!("propack: batch refused: {error_type}: {error_message}");
            (400, json!(payload), log)
        }
    };
    let outputs = match source {
        Source::Binding => json!({ RESULT_BINDING: result }),
        Source::HttpRequest => json!({ HTTP_OUT_BINDING: {
            "statusCode": status,
            "body": result.to_string(),
            "headers": {"Content-Type": "application/json"},
        }}),
    };
    let response = json!({"Outputs": outputs, "Logs": [log], "ReturnValue": null});
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&response).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_batch_is_found_in_the_trigger_binding() {
        let (s, b) = batch_of(&data(json!({"batch": "{\"tasks\": []}"}))).unwrap();
        assert_eq!(
            (s, b.as_slice()),
            (Source::Binding, &b"{\"tasks\": []}"[..])
        );
        // A single binding of another name, holding the batch as an object.
        let (s, b) = batch_of(&data(json!({"msg": {"tasks": []}}))).unwrap();
        assert_eq!((s, b.as_slice()), (Source::Binding, &b"{\"tasks\":[]}"[..]));
        let (s, b) = batch_of(&data(
            json!({"req": {"Url": "u", "Method": "POST", "Body": "{\"tasks\": []}"}}),
        ))
        .unwrap();
        assert_eq!(
            (s, b.as_slice()),
            (Source::HttpRequest, &b"{\"tasks\": []}"[..])
        );
        let e = batch_of(&data(json!({"a": 1, "b": 2}))).unwrap_err();
        assert!(
            e.contains("no binding \"batch\"") && e.contains("a, b"),
            "{e}"
        );
        assert!(batch_of(&data(json!({"batch": null}))).is_err());
    }
}
