//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) over HTTP, so any Lambda client can use the emulator.
//!
//! Responses mirror Lambda's: 200 with the function's response, or 200 with
//! `X-Amz-Function-Error: Unhandled` and the error payload when the function
//! failed (`Function.ResponseSizeTooLarge` for a response over 6 MB); 404
//! `ResourceNotFoundException`; 413 `RequestEntityTooLargeException` for a request
//! over 6 MB; 429 `TooManyRequestsException` when the account concurrency limit is
//! reached (the SDKs retry it).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::lambda::{AtLimit, InvokeError, InvokeStatus, LambdaPlatform};

type HttpResponse = Response<Full<Bytes>>;

fn aws_error(
    status: StatusCode,
    error_type: &str,
    message: &str,
    request_id: &str,
) -> HttpResponse {
    let body = serde_json::json!({"Type": "User", "message": message, "Message": message, "__type": error_type});
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", error_type)
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static parts are valid")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Handles one Invoke API request.
pub async fn handle(platform: &LambdaPlatform, req: Request<Incoming>) -> HttpResponse {
    let request_id = format!("local-{:x}", super::lambda::epoch_ms());
    let path = req.uri().path().to_owned();
    let name = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|r| r.strip_suffix("/invocations"))
        .map(percent_decode);
    let Some(name) = name.filter(|_| req.method() == Method::POST) else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            &format!(
                "{} {path} is not an operation of the local Lambda (only Invoke)",
                req.method()
            ),
            &request_id,
        );
    };
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_owned();
    let Some(function) = platform.function(&name).cloned() else {
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            super::lambda::LOCAL_REGION,
            super::lambda::LOCAL_ACCOUNT
        );
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
            &request_id,
        );
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &e.to_string(),
                &request_id,
            );
        }
    };
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
            &request_id,
        );
    }
    let payload = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    match invocation_type.as_str() {
        "DryRun" => {
            return Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header("x-amzn-requestid", &request_id)
                .body(Full::new(Bytes::new()))
                .expect("valid");
        }
        "Event" => {
            let p = platform.clone();
            let f = function.name.clone();
            tokio::spawn(async move {
                let _ = p.invoke(&f, payload, AtLimit::Wait).await;
            });
            return Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("x-amzn-requestid", &request_id)
                .body(Full::new(Bytes::new()))
                .expect("valid");
        }
        "RequestResponse" => {}
        other => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("unknown X-Amz-Invocation-Type {other:?}"),
                &request_id,
            );
        }
    }
    match platform
        .invoke(&function.name, payload, AtLimit::Throttle)
        .await
    {
        Ok(inv) => {
            let mut b = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("x-amzn-requestid", &inv.request_id)
                .header("x-amz-executed-version", "$LATEST");
            let body = match inv.status {
                InvokeStatus::Ok(body) => body,
                InvokeStatus::FunctionError { body, .. } => {
                    b = b.header("x-amz-function-error", "Unhandled");
                    body
                }
            };
            b.body(Full::new(body)).expect("valid")
        }
        Err(InvokeError::Throttled(_)) => aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
            &request_id,
        ),
        Err(e @ InvokeError::RequestTooLarge { .. }) => aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            super::lambda::REQUEST_TOO_LARGE,
            &e.to_string(),
            &request_id,
        ),
        Err(InvokeError::NotFound(f)) => aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {f}"),
            &request_id,
        ),
        Err(e) => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            &e.to_string(),
            &request_id,
        ),
    }
}

/// Serves the Invoke API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, platform: LambdaPlatform) {
    let platform = Arc::new(platform);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let platform = platform.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let platform = platform.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&platform, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `addr` and serves the Invoke API in the background; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    platform: LambdaPlatform,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, platform))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_percent_decoded() {
        assert_eq!(percent_decode("arn%3Aaws%3Alambda"), "arn:aws:lambda");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
