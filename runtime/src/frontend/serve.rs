//! The plain-HTTP front-end (and Cloud Run's container contract): `POST /` or `POST /invoke` with a batch returns its result, `GET /health` answers ok.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::graceful::{self, Abort, Response, Signals};
use super::{Runtime, RuntimeError, init_tracing};
use crate::contract::{ErrorPayload, headers};
use crate::deadline::DeadlineResolver;
use crate::handler::Instance;

/// Lambda's synchronous request payload limit plus 64 KiB of slack, so that whatever
/// Lambda accepts, `serve` accepts too.
const DEFAULT_MAX_BODY_BYTES: usize = crate::limits::LAMBDA_REQUEST_LIMIT as usize + 64 * 1024;

/// `PROPACK_MAX_BODY_BYTES`, else [`DEFAULT_MAX_BODY_BYTES`].
pub(super) fn max_body_bytes() -> Result<usize, RuntimeError> {
    match std::env::var("PROPACK_MAX_BODY_BYTES") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or(RuntimeError::Setting {
                    name: "PROPACK_MAX_BODY_BYTES",
                    value: v,
                    expected: "expected a positive integer",
                })
        }
        _ => Ok(DEFAULT_MAX_BODY_BYTES),
    }
}

/// Where `serve` listens: `--addr`, else `0.0.0.0:$PORT` (Cloud Run's contract: the
/// container must listen on all interfaces at the port it is given), else 127.0.0.1:9000.
fn listen_addr(addr: Option<SocketAddr>) -> Result<SocketAddr, RuntimeError> {
    if let Some(a) = addr {
        return Ok(a);
    }
    match std::env::var("PORT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u16>()
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|_| RuntimeError::Setting {
                name: "PORT",
                value: v,
                expected: "expected a TCP port number",
            }),
        _ => Ok(SocketAddr::from(([127, 0, 0, 1], 9000))),
    }
}

/// The instance an HTTP front-end serves (its deadlines from the function's timeout, since
/// HTTP requests carry no deadline header) and the call that marks it ready once listening.
pub(super) fn http_instance(
    runtime: Runtime,
) -> Result<(Arc<Instance>, impl FnOnce() + Send + 'static), RuntimeError> {
    let instance = Arc::new(
        runtime
            .instance()?
            .with_resolver(DeadlineResolver::from_env().missing_header_expected()),
    );
    let ready = {
        let instance = Arc::clone(&instance);
        move || instance.mark_ready(runtime.started)
    };
    Ok((instance, ready))
}

pub(super) fn main(runtime: Runtime, addr: Option<SocketAddr>) -> Result<ExitCode, RuntimeError> {
    init_tracing("info");
    let addr = listen_addr(addr)?;
    let max_body = max_body_bytes()?;
    let (instance, ready) = http_instance(runtime)?;
    listen(addr, ready, move |req, abort| {
        serve_request(Arc::clone(&instance), req, max_body, abort)
    })
}

/// Binds `addr`, installs the signal handlers, prints `listening on http://ADDR` and serves
/// `service` until SIGTERM/SIGINT ([`graceful::serve`]).
pub(super) fn listen<S, F>(
    addr: SocketAddr,
    ready: impl FnOnce() + Send,
    service: S,
) -> Result<ExitCode, RuntimeError>
where
    S: Fn(http::Request<hyper::body::Incoming>, Abort) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let grace = graceful::grace()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RuntimeError::io("starting the tokio runtime"))?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(RuntimeError::io(format!("binding {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(RuntimeError::io("reading the bound address"))?;
        let signals = Signals::install()?;
        ready();
        println!("listening on http://{local}");
        std::io::stdout()
            .flush()
            .map_err(RuntimeError::io("writing to standard output"))?;
        graceful::serve(listener, signals, grace, service).await
    });
    // A batch abandoned at the end of the grace period still occupies a blocking thread:
    // do not wait for it (dropping the runtime would).
    rt.shutdown_background();
    served.map(|()| ExitCode::SUCCESS)
}

pub(super) fn json_response(
    status: http::StatusCode,
    body: Vec<u8>,
) -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn error_response(
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
    abort: Abort,
) -> Response {
    use http::{Method, StatusCode};
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec()),
        (&Method::POST, "/" | "/invoke") => invoke(instance, req, max_body, &abort).await,
        (_, "/" | "/invoke") => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "use POST / or POST /invoke with a batch JSON body".into(),
        ),
        (_, path) => error_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {path:?}: use POST / or POST /invoke"),
        ),
    }
}

/// Runs the batch in the request's body and answers its result: 200 with the result, 400
/// with Lambda's error payload for a bad batch, 413 past the body cap, 503 when SIGTERM's
/// grace period ends first.
pub(super) async fn invoke(
    instance: Arc<Instance>,
    req: http::Request<hyper::body::Incoming>,
    max_body: usize,
    abort: &Abort,
) -> Response {
    use http::StatusCode;
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
    let body = match read_body(req, max_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let joined = abort
        .run_blocking(move || instance.handle_bytes(&body, deadline.as_deref(), request_id))
        .await;
    match joined {
        None => graceful::shutting_down(),
        Some(Ok(Ok(result))) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&result).unwrap_or_default(),
        ),
        Some(Ok(Err(payload))) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::to_vec(&payload).unwrap_or_default(),
        ),
        Some(Err(e)) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.HandlerFailed",
            format!("batch handler did not complete: {e}"),
        ),
    }
}

/// The request's body, or the error answer: 413 past `max_body` (Lambda's answer to an
/// oversized synchronous payload), 400 when the connection fails mid-body.
pub(super) async fn read_body(
    req: http::Request<hyper::body::Incoming>,
    max_body: usize,
) -> Result<Bytes, Response> {
    use http::StatusCode;
    let (parts, body) = req.into_parts();
    match read_capped(&parts.headers, body, max_body).await {
        Ok(b) => Ok(b),
        Err(BodyError::TooLarge(seen)) => {
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
            Err(resp)
        }
        Err(BodyError::Read(e)) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("reading the request body: {e}"),
        )),
    }
}
