//! How many `Invoke` calls per second the AWS backend's direct fan-out issues from one client,
//! measured against the local platform's Invoke API (warm no-op instances).
//!
//! `cargo bench -p propack-orchestrator --bench aws_fanout [-- INVOCATIONS IN_FLIGHT]`
//! (needs the `bootstrap` binary: PROPACK_BOOTSTRAP, or it is built on first use).

use std::time::Instant;

use propack_orchestrator::backend::NoProgress;
use propack_orchestrator::backend::aws::invoke::{FanoutOptions, InvocationOutcome, fan_out};
use propack_orchestrator::backend::local::find_bootstrap;
use propack_orchestrator::backend::local::invoke_api;
use propack_orchestrator::backend::local::lambda::{FunctionConfig, LambdaPlatform};
use propack_orchestrator::platform::PlatformProfile;

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"run_id":"bench","batch_id":"{i}","tasks":[{{"id":"t{i}","builtin":{{"name":"noop"}}}}]}}"#).into_bytes()
}

fn main() {
    // `cargo bench` passes `--bench`; positional numbers override the defaults. Without
    // `--bench` (`cargo test --all-targets`) this is a small smoke run, not a measurement.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let invocations = nums
        .first()
        .copied()
        .unwrap_or(if measuring { 10_000 } else { 40 });
    let in_flight = nums
        .get(1)
        .copied()
        .unwrap_or(if measuring { 32 } else { 4 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `--stub`: an in-process endpoint that answers every Invoke at once, to separate the
    // client's own ceiling from the platform's.
    let stub = args.iter().any(|a| a == "--stub");
    rt.block_on(async {
        let bootstrap = find_bootstrap().expect("the bootstrap binary");
        let profile = PlatformProfile::unlimited();
        let f = FunctionConfig::new("propack", &bootstrap, &profile);
        let platform = LambdaPlatform::new(profile, vec![f], 1);
        let (addr, server) = if stub {
            stub_server().await
        } else {
            invoke_api::spawn("127.0.0.1:0".parse().unwrap(), platform.clone()).await.unwrap()
        };
        let conf = propack_orchestrator::backend::aws::clients::static_conf(&format!("http://{addr}"), "us-east-1");
        let clients = propack_orchestrator::backend::aws::AwsClients::from_conf(&conf, true);
        let opts = FanoutOptions {
            max_in_flight: in_flight,
            ..Default::default()
        };
        // Warm-up: bring up `in_flight` instances so the timed run measures the client, not cold starts.
        let warm: Vec<Vec<u8>> = (0..in_flight * 4).map(payload).collect();
        let sizes = vec![1; warm.len()];
        fan_out(&clients.lambda_invoke, "propack", warm, &sizes, &opts, Instant::now(), &NoProgress)
            .await
            .unwrap();

        let payloads: Vec<Vec<u8>> = (0..invocations).map(payload).collect();
        let sizes = vec![1; invocations];
        let t0 = Instant::now();
        let records = fan_out(&clients.lambda_invoke, "propack", payloads, &sizes, &opts, t0, &NoProgress)
            .await
            .unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let last_send = records.iter().filter_map(|r| r.sent_s.last().copied()).fold(0.0, f64::max);
        let ok = records.iter().filter(|r| matches!(r.outcome, InvocationOutcome::Result(_))).count();
        let retries: usize = records.iter().map(|r| r.retries()).sum();
        assert_eq!(ok, invocations, "every invocation must return a batch result");
        println!(
            "aws_fanout ({}): {invocations} Invoke calls, {in_flight} in flight, {ok} ok, {retries} retries: \
             issued in {last_send:.2} s = {:.0} invocations/s issued; all returned in {wall:.2} s = {:.0}/s",
            if stub { "stub endpoint" } else { "local platform Invoke API" },
            invocations as f64 / last_send,
            invocations as f64 / wall
        );
        server.abort();
        platform.shutdown();
    });
}

/// A minimal Invoke endpoint: every POST gets the same successful batch result.
async fn stub_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = bytes::Bytes::from_static(
        br#"{"schema_version":1,"instance_id":"stub","cold_start":false,"init_ms":0,"received_at":0,"started_at":0,"ended_at":0,"vcpus":1,"parallelism":1,"tasks":[]}"#,
    );
    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, handle)
}
