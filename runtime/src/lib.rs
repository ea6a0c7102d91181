//! ProPack's packed serverless runtime.
//!
//! One function instance receives one *batch* of k tasks and runs them in
//! parallel across the vCPUs it may use. This crate owns:
//!
//! - [`contract`]: the JSON wire contract (batch payload, task spec, per-task
//!   result, error payload) shared with the orchestrator. It needs only `serde`;
//!   depend on this crate with `default-features = false` to get just that.
//! - [`budget`]: fitting a batch result into a byte budget (`max_result_bytes`) by
//!   shortening output tails and larger fields evenly, never dropping a task record.
//! - [`deadline`]: invocation deadline parsing that tolerates emulators.
//! - [`limits`]: Lambda's synchronous request and response payload limits.
//! - [`uri`]: the object URIs tasks name (`s3://bucket/key`, `file:///path`),
//!   parsed in one place; std only, like the contract.
//! - `s3` (feature `s3`): the async S3 core — client settings for S3 and
//!   S3-compatible servers, get/put/list/head, multipart uploads, errors naming
//!   the missing IAM permission. The orchestrator's AWS backend uses it too.
//! - `storage` (feature `executor`; `s3://` with feature `s3`): blocking
//!   fetch/upload of task inputs and outputs over `file://` and the S3 core.
//! - `executor` (feature `executor`): [`executor::run_batch`], bounded
//!   parallel execution of a batch with failure isolation and deadline awareness;
//!   Python and Node Lambda handlers (`event` tasks) run on warm worker processes
//!   (`executor::handler_pool`); `executor::policy` refuses tasks the function's
//!   owner does not allow (`PROPACK_ALLOWED_PROGRAMS`, `PROPACK_BUILTINS_ONLY`).
//! - `handler` (feature `executor`): the invocation handler shared by the
//!   `bootstrap` front-ends (Lambda Runtime API, plain HTTP, command line); its
//!   `Instance` keeps the handler workers warm across invocations.
//! - `frontend` (feature `lambda`): those front-ends as a library, `Runtime`: the
//!   shipped `bootstrap` is `Runtime::builder().build()`, and a Rust user's own packed
//!   `bootstrap` adds custom built-ins (below).
//!
//! # Your own built-ins
//!
//! A binary whose `main` is
//!
//! ```no_run
//! # #[cfg(feature = "lambda")]
//! # fn main() -> std::process::ExitCode {
//! use propack_runtime::Runtime;
//! use propack_runtime::executor::{BoxError, BuiltinTask};
//!
//! fn wordcount(task: &BuiltinTask<'_>) -> Result<usize, BoxError> {
//!     let text = std::fs::read_to_string(task.input("input")?)?;
//!     Ok(text.split_whitespace().count())
//! }
//!
//! Runtime::builder().builtin("wordcount", wordcount).run()
//! # }
//! # #[cfg(not(feature = "lambda"))]
//! # fn main() {}
//! ```
//!
//! is a complete packed `bootstrap` that also runs tasks
//! `{"id": "t1", "builtin": {"name": "wordcount"}, "inputs": {"input": "s3://b/doc.txt"}}`:
//! k of them per invocation on the instance's vCPUs, each isolated (a panic fails only its
//! task), with the same deadlines and result records as the shipped built-ins. Package it
//! with `orchestrator package --bin NAME` and launch it locally with
//! `orchestrator launch --bootstrap target/debug/NAME --tasks-file tasks.json`.
//!
//! `runtime/wrapper/propack-exec-wrapper` is the exec wrapper that starts
//! `bootstrap` on Lambda's managed Python and Node runtimes.

pub mod budget;
pub mod contract;
pub mod deadline;
#[cfg(feature = "executor")]
pub mod executor;
#[cfg(feature = "lambda")]
pub mod frontend;
#[cfg(feature = "executor")]
pub mod handler;
pub mod limits;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "executor")]
pub mod storage;
pub mod uri;

pub use contract::{
    Batch, BatchInput, BatchResult, BuiltinSpec, ContractError, ErrorPayload, ExecSpec, HandlerRef,
    HandlerRuntime, HandlerTask, ParseOptions, Task, TaskAction, TaskResult, TaskStatus,
};
#[cfg(feature = "executor")]
pub use executor::{ExecutorConfig, WorkerPools, run_batch, run_batch_in};
#[cfg(feature = "lambda")]
pub use frontend::{Runtime, RuntimeBuilder, RuntimeError};
#[cfg(feature = "executor")]
pub use storage::{Storage, StorageError};
pub use uri::{ObjectUri, S3Uri, UriError};

/// The exec wrapper that ProPack's layer carries for Lambda's managed runtimes
/// (`runtime/wrapper/propack-exec-wrapper`): run as `AWS_LAMBDA_EXEC_WRAPPER` with the language
/// runtime's start command as its arguments, it starts `bootstrap` instead (see the script).
pub const EXEC_WRAPPER_SCRIPT: &str = include_str!("../wrapper/propack-exec-wrapper");
