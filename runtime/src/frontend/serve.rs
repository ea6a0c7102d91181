//! The plain-HTTP front-end: `POST /invoke` with a batch returns its result, `GET /health` answers ok.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::{Runtime, RuntimeError, init_tracing};
use crate::contract::{ErrorPayload, headers};
use crate::deadline::DeadlineResolver;
use crate::handler::Instance;

pub(super) fn main(runtime: Runtime, addr: SocketAddr) -> Result<ExitCode, RuntimeError> {
    init_tracing("info");
    let instance = Arc::new(
        runtime
            .instance()?
            .with_resolver(DeadlineResolver::from_env().missing_header_expected()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RuntimeError::io("starting the tokio runtime"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(RuntimeError::io(format!("binding {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(RuntimeError::io("reading the bound address"))?;
        instance.mark_ready(runtime.started);
        println!("listening on http://{local}");
        std::io::stdout()
            .flush()
            .map_err(RuntimeError::io("writing to standard output"))?;
        loop {
            let (stream, _) = listener
                .accept()
                .await
                .map_err(RuntimeError::io("accepting a connection"))?;
            let instance = Arc::clone(&instance);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    serve_request(Arc::clone(&instance), req)
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

async fn serve_request(
    instance: Arc<Instance>,
    req: http::Request<hyper::body::Incoming>,
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
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
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
