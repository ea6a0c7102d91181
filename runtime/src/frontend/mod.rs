//! The runtime's front-ends as a library: build your own packed `bootstrap` with custom built-ins.
//!
//! [`Runtime`] is what the shipped `bootstrap` binary runs, and what a user's binary runs
//! to add Rust functions as built-ins — the way `lambda_runtime::run(service_fn(..))`
//! makes a Lambda function, except that each invocation is a packed batch of k tasks:
//!
//! ```no_run
//! use propack_runtime::Runtime;
//! use propack_runtime::executor::{BoxError, BuiltinTask};
//! use serde_json::{Value, json};
//!
//! /// `{"builtin": {"name": "thumbnail", "params": {"width": 64}}, "inputs": {"in.jpg": ..}, "outputs": {"out.jpg": ..}}`
//! fn thumbnail(task: &BuiltinTask<'_>) -> Result<Value, BoxError> {
//!     let width = task.params["width"].as_u64().ok_or("params.width: expected a number")?;
//!     let bytes = std::fs::read(task.input("in.jpg")?)?;
//!     std::fs::write(task.output("out.jpg")?, &bytes)?; // resize here
//!     Ok(json!({"width": width, "bytes": bytes.len()}))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Runtime::builder().builtin("thumbnail", thumbnail).run()
//! }
//! ```
//!
//! The binary is then a complete `bootstrap`: with `AWS_LAMBDA_RUNTIME_API` set (on Lambda,
//! or as an instance of the local platform) it is the custom runtime; with
//! `FUNCTIONS_CUSTOMHANDLER_PORT` set (started by the Azure Functions host) the custom
//! handler; `serve` serves `POST /` and `POST /invoke` (on `$PORT` under Cloud Run);
//! `run --batch FILE|-` runs one batch and prints the result. A
//! custom built-in runs on the batch's rayon pool like the shipped ones (`sort`, `spin`,
//! `noop`, `panic`, …, which stay available): a panic fails only its own task, a task past
//! its `timeout_ms` is `timed_out`, the return value is the task's `summary`, and its
//! `outputs` are uploaded when it succeeds. See [`crate::executor::custom`].

mod azure;
mod cli;
mod graceful;
mod lambda;
mod serve;
mod shim;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

use crate::executor::{BoxError, BuiltinTask, Builtins, ExecutorConfig};
use crate::handler::{InitError, Instance};
use crate::storage::Storage;

/// A front-end could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The instance could not be configured (environment, storage).
    #[error(transparent)]
    Init(#[from] InitError),
    /// An I/O step failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The result could not be written.
    #[error("writing the result: {0}")]
    Output(#[from] serde_json::Error),
    /// `lambda_runtime`'s loop ended with an error.
    #[error("Lambda runtime loop ended: {0}")]
    Loop(#[source] BoxError),
    /// A setting in the environment is malformed.
    #[error("environment variable {name}={value:?}: {expected}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

impl RuntimeError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// What to run, besides the Lambda custom runtime (no subcommand).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve the batch handler over plain HTTP: `POST /` or `POST /invoke` with a batch returns
    /// the result JSON; SIGTERM finishes in-flight batches within PROPACK_SHUTDOWN_GRACE_MS.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        /// Default: 0.0.0.0:$PORT when PORT is set (Cloud Run), else 127.0.0.1:9000.
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Serve the Azure Functions custom-handler protocol on FUNCTIONS_CUSTOMHANDLER_PORT
    /// (what the runtime does without arguments when the Functions host starts it).
    Azure {
        /// Port to listen on (default: FUNCTIONS_CUSTOMHANDLER_PORT).
        #[arg(long)]
        port: Option<u16>,
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
}

/// A packed runtime: ProPack's batch executor with the shipped built-ins plus any custom ones.
///
/// Without a subcommand and with AWS_LAMBDA_RUNTIME_API set, it is a Lambda custom runtime.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Command>,
}

/// Builds a [`Runtime`]; see the [module documentation](self).
#[derive(Debug)]
pub struct RuntimeBuilder {
    builtins: Builtins,
    started: Instant,
}

impl RuntimeBuilder {
    /// Registers `f` as the built-in `name` (tasks `{"builtin": {"name": NAME, "params": ..}}`).
    ///
    /// `f` gets the task's params, scratch directory, staged inputs, output paths and deadline
    /// ([`BuiltinTask`]) and returns any serialisable value (the task's `summary`) or any error
    /// (the task's `error`). A name registered twice keeps the later function; a shipped
    /// built-in of the same name is replaced.
    pub fn builtin<F, T, E>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&BuiltinTask<'_>) -> Result<T, E> + Send + Sync + 'static,
        T: Serialize,
        E: Into<BoxError>,
    {
        self.builtins.insert(name, f);
        self
    }

    /// The runtime.
    pub fn build(self) -> Runtime {
        Runtime {
            builtins: self.builtins,
            started: self.started,
        }
    }

    /// Builds the runtime and [runs](Runtime::run) it: the usual last line of `main`.
    pub fn run(self) -> ExitCode {
        self.build().run()
    }
}

/// ProPack's packed runtime with its custom built-ins; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Runtime {
    builtins: Builtins,
    /// When the process began, as near as the builder knows (the instance's `init_ms` counts from it).
    started: Instant,
}

impl Runtime {
    /// A builder; create it first thing in `main` (init time is measured from here).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            builtins: Builtins::new(),
            started: Instant::now(),
        }
    }

    /// The custom built-ins.
    pub fn builtins(&self) -> &Builtins {
        &self.builtins
    }

    /// Parses the process's arguments (none, `serve --addr A`, `run --batch FILE|-`) and runs
    /// that front-end; errors are printed, and the exit status is the process's.
    pub fn run(self) -> ExitCode {
        use clap::Parser as _;
        let cli = Cli::parse();
        self.run_command(cli.cmd)
    }

    /// Runs one front-end: `None` is the Lambda custom runtime (needs `AWS_LAMBDA_RUNTIME_API`;
    /// exit status 2 without it). Errors are printed with the program name.
    pub fn run_command(self, cmd: Option<Command>) -> ExitCode {
        let name = program_name();
        let result = match cmd {
            None => match (
                non_empty_env("AWS_LAMBDA_RUNTIME_API"),
                non_empty_env(azure::PORT_ENV),
            ) {
                (Some(api), _) => self.lambda(api),
                // The Azure Functions host starts its custom handler with this set.
                (None, Some(_)) => self.azure(None),
                (None, None) => {
                    eprintln!(
                        "{name}: neither AWS_LAMBDA_RUNTIME_API (Lambda) nor {} (Azure Functions) \
                         is set; use `{name} run --batch FILE` or `{name} serve` elsewhere (see --help)",
                        azure::PORT_ENV
                    );
                    return ExitCode::from(2);
                }
            },
            Some(Command::Serve { addr }) => self.serve(addr),
            Some(Command::Azure { port }) => self.azure(port),
            Some(Command::Run {
                batch,
                timeout_ms,
                compact,
            }) => self.run_batch(&batch, timeout_ms, compact),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!(
                    "{name}: error: {}",
                    crate::executor::custom::error_chain(&e)
                );
                ExitCode::FAILURE
            }
        }
    }

    /// The Lambda custom runtime against the Runtime API at `api` (`host:port`), forever.
    pub fn lambda(self, api: String) -> Result<ExitCode, RuntimeError> {
        lambda::main(self, api)
    }

    /// `POST /` and `POST /invoke` over plain HTTP on `addr` (default: `0.0.0.0:$PORT`, else
    /// 127.0.0.1:9000) until SIGTERM/SIGINT, which it handles gracefully.
    pub fn serve(self, addr: Option<SocketAddr>) -> Result<ExitCode, RuntimeError> {
        serve::main(self, addr)
    }

    /// The Azure Functions custom handler on `port` (default: `FUNCTIONS_CUSTOMHANDLER_PORT`)
    /// until SIGTERM/SIGINT.
    pub fn azure(self, port: Option<u16>) -> Result<ExitCode, RuntimeError> {
        azure::main(self, port)
    }

    /// Runs the batch in `batch` (a file, or `-` for standard input) and prints its result;
    /// exit status 0 only if every task succeeded.
    pub fn run_batch(
        self,
        batch: &str,
        timeout_ms: Option<u64>,
        compact: bool,
    ) -> Result<ExitCode, RuntimeError> {
        cli::main(self, batch, timeout_ms, compact)
    }

    /// An instance configured from the environment, with this runtime's built-ins.
    fn instance(&self) -> Result<Instance, InitError> {
        let mut cfg = ExecutorConfig::from_env()?;
        cfg.builtins = self.builtins.clone();
        Ok(Instance::new(
            cfg,
            Storage::from_env()?,
            crate::deadline::DeadlineResolver::from_env(),
        ))
    }
}

/// An environment variable's value unless unset or empty.
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The executable's file name, for messages.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "bootstrap".to_owned())
}

/// Logs to stderr at `default` unless `RUST_LOG` says otherwise.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_builder_registers_builtins_for_the_instance() {
        let rt = Runtime::builder()
            .builtin("a", |_: &BuiltinTask<'_>| -> Result<Value, BoxError> {
                Ok(json!(1))
            })
            .builtin("b", |_: &BuiltinTask<'_>| -> Result<u32, std::io::Error> {
                Ok(2)
            })
            .build();
        assert_eq!(rt.builtins().names().collect::<Vec<_>>(), ["a", "b"]);
        let inst = rt.instance().unwrap();
        let r = inst
            .handle_value(
                &json!({"tasks": [{"id": "x", "builtin": {"name": "b"}}, {"id": "y", "builtin": {"name": "noop"}}]}),
                None,
                None,
            )
            .unwrap();
        assert_eq!(r.tasks[0].summary, json!(2));
        assert_eq!(r.tasks[1].summary, Value::Null);
    }
}
