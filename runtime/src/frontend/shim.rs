//! A loopback pass-through in front of the Runtime API that repairs a missing deadline header.
//!
//! `lambda_runtime` 1.5 panics (`expect("missing lambda-runtime-deadline-ms header")`)
//! or ends its loop (a non-integer value) inside its own poll loop, before any handler
//! or tower layer runs, and it has no hook for the raw `/next` response. Emulators and
//! some platforms omit the header, so `bootstrap` points `lambda_runtime` at this shim,
//! which forwards every request and response unchanged (method, path, headers, status,
//! streamed bodies and trailers) except that a `GET …/runtime/invocation/next` response
//! without a usable deadline gets [`MISSING_DEADLINE_SENTINEL`]. The handler's
//! `DeadlineResolver` turns the sentinel into the configured fallback and warns once.

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::deadline::MISSING_DEADLINE_SENTINEL;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

const DEADLINE: &str = crate::contract::headers::DEADLINE_MS;

/// Headers that describe one connection, not the message, so each hop sets its own.
/// `transfer-encoding` is re-derived by hyper from the body it forwards; `trailer` is
/// kept because hyper needs it to forward chunked trailers (streaming error reports).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "host",
];

type ShimBody = Either<Incoming, Full<Bytes>>;

/// Binds the shim on 127.0.0.1 (an ephemeral port) without needing a tokio runtime,
/// so the caller can point `AWS_LAMBDA_RUNTIME_API` at it while still single-threaded.
pub fn bind() -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the shim on `listener` forever, forwarding to `upstream` (`host:port`).
/// Must run inside a tokio runtime.
pub fn spawn(listener: std::net::TcpListener, upstream: String) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    let mut connector = HttpConnector::new();
    // Each hop is a small request/response pair; Nagle would add delayed-ACK stalls.
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!("deadline shim: accept failed: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    forward(client.clone(), upstream.clone(), req)
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!("deadline shim: connection ended: {e}");
                }
            });
        }
    });
    Ok(local)
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    req: http::Request<Incoming>,
) -> Result<http::Response<ShimBody>, Infallible> {
    let is_next =
        req.method() == http::Method::GET && req.uri().path().ends_with("/runtime/invocation/next");
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = match format!("http://{upstream}{path}").parse() {
        Ok(u) => u,
        Err(e) => return Ok(bad_gateway(format!("bad upstream URI for {path}: {e}"))),
    };
    strip_hop_by_hop(&mut parts.headers);
    let resp = match client.request(http::Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return Ok(bad_gateway(format!("Runtime API {upstream}{path}: {e}"))),
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if is_next
        && parts.status.is_success()
        && let Some(original) = repair_deadline(&mut parts.headers)
    {
        tracing::debug!("deadline shim: replaced Lambda-Runtime-Deadline-Ms {original:?}");
    }
    Ok(http::Response::from_parts(parts, Either::Left(body)))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Puts the sentinel in place of a deadline header `lambda_runtime` cannot parse
/// (absent, or not a `u64`). Returns what was there (`"<absent>"` if nothing), or
/// `None` when the header was left alone; plausibility is the resolver's job.
pub fn repair_deadline(headers: &mut HeaderMap) -> Option<String> {
    let original = match headers.get(DEADLINE) {
        None => "<absent>".to_owned(),
        Some(v) => match v.to_str().ok().map(str::parse::<u64>) {
            Some(Ok(_)) => return None,
            _ => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        },
    };
    headers.insert(DEADLINE, HeaderValue::from(MISSING_DEADLINE_SENTINEL));
    Some(original)
}

fn bad_gateway(message: String) -> http::Response<ShimBody> {
    tracing::warn!("deadline shim: {message}");
    let mut resp = http::Response::new(Either::Right(Full::new(Bytes::from(message))));
    *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_unparsable_deadline_gets_the_sentinel() {
        let sentinel = MISSING_DEADLINE_SENTINEL.to_string();
        let mut h = HeaderMap::new();
        assert_eq!(repair_deadline(&mut h).as_deref(), Some("<absent>"));
        assert_eq!(h[DEADLINE], sentinel.as_str());

        for bad in ["", "abc", "-5", "1.5e12"] {
            let mut h = HeaderMap::new();
            h.insert(DEADLINE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(repair_deadline(&mut h).as_deref(), Some(bad));
            assert_eq!(h[DEADLINE], sentinel.as_str());
        }

        // Integers pass through, even implausible ones: the resolver judges and names them.
        for ok in ["5000", "1764000003000"] {
            let mut h = HeaderMap::new();
            h.insert(DEADLINE, HeaderValue::from_static(ok));
            assert_eq!(repair_deadline(&mut h), None);
            assert_eq!(h[DEADLINE], ok);
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_end_to_end_kept() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:1"));
        h.insert(
            "trailer",
            HeaderValue::from_static(crate::contract::headers::FUNCTION_ERROR_TYPE),
        );
        h.insert(
            crate::contract::headers::REQUEST_ID,
            HeaderValue::from_static("r1"),
        );
        h.insert("content-length", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "content-length",
                crate::contract::headers::REQUEST_ID,
                "trailer"
            ]
        );
    }
}
