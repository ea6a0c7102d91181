//! ProPack's packed serverless runtime.
//!
//! One function instance receives one *batch* of k tasks and runs them in
//! parallel across the vCPUs it may use. This crate owns:
//!
//! - [`contract`]: the JSON wire contract (batch payload, task spec, per-task
//!   result, error payload) shared with the orchestrator. It needs only `serde`;
//!   depend on this crate with `default-features = false` to get just that.
//! - the executor, storage layer and front-ends (feature `executor`, `s3`,
//!   `lambda`), used by the `bootstrap` binary.

pub mod contract;

pub use contract::{
    Batch, BatchInput, BatchResult, BuiltinSpec, ContractError, ErrorPayload, ExecSpec,
    ParseOptions, Task, TaskAction, TaskResult, TaskStatus,
};
