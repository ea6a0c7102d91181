//! The HTTP accept loop shared by `serve` (Cloud Run) and the Azure custom handler, with SIGTERM handling.
//!
//! Cloud Run sends SIGTERM and, after a grace period (10 s), SIGKILL; the Azure Functions
//! host stops its worker the same way. On SIGTERM (or SIGINT) the loop stops accepting
//! connections, tells every open connection to finish the request it is serving and close,
//! and waits up to the grace period (`PROPACK_SHUTDOWN_GRACE_MS`, default 8000 — two of
//! Cloud Run's ten seconds are left for answering). A batch still running then is answered
//! `503 {"errorType": "Runtime.ShuttingDown", …}`: the client gets a complete result or
//! an error, never a silent partial success.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::{mpsc, watch};

use super::RuntimeError;

/// Default grace period after SIGTERM, ms.
const DEFAULT_GRACE_MS: u64 = 8_000;

/// How long answers to aborted batches may take to be written once the grace is over.
const ABORT_FLUSH: Duration = Duration::from_secs(1);

/// A response of the servers.
pub(super) type Response = http::Response<Full<Bytes>>;

/// `PROPACK_SHUTDOWN_GRACE_MS`, else [`DEFAULT_GRACE_MS`].
pub(super) fn grace() -> Result<Duration, RuntimeError> {
    match std::env::var("PROPACK_SHUTDOWN_GRACE_MS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| RuntimeError::Setting {
                name: "PROPACK_SHUTDOWN_GRACE_MS",
                value: v,
                expected: "expected milliseconds (a non-negative integer)",
            }),
        _ => Ok(Duration::from_millis(DEFAULT_GRACE_MS)),
    }
}

/// Tells running batches that the grace period is over.
#[derive(Debug, Clone)]
pub(super) struct Abort(watch::Receiver<bool>);

impl Abort {
    /// Resolves once the grace period after SIGTERM has passed (never, if no SIGTERM comes).
    async fn expired(mut self) {
        let gone = self.0.wait_for(|&a| a).await.is_err();
        if gone {
            // The server is gone; nobody will answer anyway.
            std::future::pending::<()>().await;
        }
    }

    /// Runs `f` on the blocking pool; `None` when the grace period ran out first (the batch
    /// is abandoned: the process is about to exit).
    pub(super) async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<Result<T, tokio::task::JoinError>> {
        let job = tokio::task::spawn_blocking(f);
        tokio::select! {
            joined = job => Some(joined),
            () = self.clone().expired() => None,
        }
    }
}

/// The answer to a batch abandoned at shutdown.
pub(super) fn shutting_down() -> Response {
    super::serve::error_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "Runtime.ShuttingDown",
        "the instance received SIGTERM and its grace period (PROPACK_SHUTDOWN_GRACE_MS) ended \
         before the batch finished; no task result of this batch is reported"
            .into(),
    )
}

/// SIGTERM and SIGINT, handled from the moment [`Signals::install`] returns (install them
/// before announcing the address, so an early SIGTERM is never the default "terminate now").
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; must run inside the tokio runtime.
    pub(super) fn install() -> Result<Self, RuntimeError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(RuntimeError::io("handling SIGTERM"))?,
            int: signal(SignalKind::interrupt()).map_err(RuntimeError::io("handling SIGINT"))?,
        })
    }

    /// Resolves on SIGTERM or SIGINT, naming it.
    async fn received(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Serves `service` on `listener` until SIGTERM/SIGINT, then shuts down gracefully (module docs).
pub(super) async fn serve<S, F>(
    listener: tokio::net::TcpListener,
    signals: Signals,
    grace: Duration,
    service: S,
) -> Result<(), RuntimeError>
where
    S: Fn(http::Request<hyper::body::Incoming>, Abort) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let (abort_tx, abort_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` yields None once all of them are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let signal = signals.received();
    tokio::pin!(signal);
    let which = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. EMFILE: keep serving the connections that exist.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                spawn_connection(stream, peer, service.clone(), Abort(abort_rx.clone()), stop_rx.clone(), open_tx.clone());
            }
            which = &mut signal => break which,
        }
    };
    drop(listener);
    tracing::info!(
        "{which}: not accepting connections; finishing in-flight batches (grace {} ms)",
        grace.as_millis()
    );
    let _ = stop_tx.send(true);
    drop(open_tx);
    if tokio::time::timeout(grace, open_rx.recv()).await.is_err() {
        tracing::warn!("grace period over: answering the batches still running with 503");
        let _ = abort_tx.send(true);
        let _ = tokio::time::timeout(ABORT_FLUSH, open_rx.recv()).await;
    }
    Ok(())
}

fn spawn_connection<S, F>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S,
    abort: Abort,
    mut stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) where
    S: Fn(http::Request<hyper::body::Incoming>, Abort) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let service = Arc::new(service);
    tokio::spawn(async move {
        let _open = open;
        let svc = hyper::service::service_fn(move |req| {
            let fut = service(req, abort.clone());
            async move { Ok::<_, std::convert::Infallible>(fut.await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        tokio::pin!(conn);
        let stopping = async move {
            // The watch guard must not live across the await below.
            let _ = stop.wait_for(|&s| s).await.map(|_| ());
        };
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            () = stopping => {
                // Finish the request in progress (if any), answer it, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!("connection from {peer} ended: {e}");
        }
    });
}
