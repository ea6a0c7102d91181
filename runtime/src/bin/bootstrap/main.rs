//! `bootstrap`: ProPack's packed custom Lambda runtime.
//!
//! - no arguments, `AWS_LAMBDA_RUNTIME_API` set: the Lambda custom runtime
//!   (provided.al2023 / provided.al2), one batch per invocation;
//! - no arguments, `FUNCTIONS_CUSTOMHANDLER_PORT` set (or `azure --port N`): the Azure
//!   Functions custom handler (forwarded HTTP and `{"Data", "Metadata"}` invocations);
//! - `serve [--addr 127.0.0.1:PORT]`: the same handler over plain HTTP (`POST /` or
//!   `POST /invoke`, bodies capped at `PROPACK_MAX_BODY_BYTES`, 413 past it; on `0.0.0.0:$PORT`
//!   without `--addr` when `PORT` is set, as Cloud Run runs it; SIGTERM finishes in-flight
//!   batches within `PROPACK_SHUTDOWN_GRACE_MS`, else answers them 503);
//! - `run --batch FILE|-`: run one batch and print the result JSON;
//! - `bench`: the executor's packing-efficiency, subprocess-overhead, start-up and
//!   warm-handler-worker measurements.
//!
//! The front-ends are [`propack_runtime::Runtime`]'s, with no custom built-ins; a user's own
//! `bootstrap` is the same call with `.builtin(name, f)` added.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use propack_runtime::Runtime;

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
    #[command(flatten)]
    Runtime(propack_runtime::frontend::Command),
    /// Measure packing efficiency, subprocess overhead against xargs, start-up latency and warm handler workers.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // First, so the instance's init time counts from process start.
    let runtime = Runtime::builder().build();
    match Cli::parse().cmd {
        None => runtime.run_command(None),
        Some(Cmd::Runtime(cmd)) => runtime.run_command(Some(cmd)),
        Some(Cmd::Bench(args)) => match bench::main(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("bootstrap: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
