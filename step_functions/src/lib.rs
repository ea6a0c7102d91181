//! Typed Amazon States Language (ASL) for ProPack's packed Map runs.
//!
//! ProPack runs C tasks as ⌈C/k⌉ batches of k, one batch per function
//! instance. On AWS the fan-out is a Step Functions Map state; this crate
//! builds that state machine and the data it runs on:
//!
//! - [`asl`]: a typed, serde-faithful model of the ASL subset used (Task, Map,
//!   Pass, Succeed, Fail; ItemReader, ItemBatcher, ResultWriter, Retry, Catch).
//!   Unknown fields are refused, so an interpreter never half-understands a definition;
//! - [`build`]: [`build_definition`] turns a job shape (C, k, task size and
//!   duration) into a Distributed Map (S3 manifest + `ItemBatcher`, the default
//!   for large jobs) or an inline Map (pre-packed batches in the input), with
//!   typed errors for what Step Functions would refuse and warnings for what
//!   would run badly; [`choose_mode`] explains the inline/distributed choice;
//! - [`manifest`]: the S3 task manifest and the execution input to start a run;
//! - [`presets`]: the benchmark workloads as jobs ([`Preset`] on `propack_workloads::Workload`)
//!   and the committed `definitions/*.asl.json`.
//!
//! Every iteration invokes the packed function with exactly the runtime's
//! contract, `{"Items": [tasks], "BatchInput": {"run_id", "output_prefix", ...}}`,
//! which `propack_runtime::Batch::from_value` parses.
//!
//! ```
//! use propack_step_functions::{Preset, ProcessorMode, Workload, build_definition};
//!
//! // 1000 sort tasks, 10 per instance: 100 batches, too many for an inline Map.
//! let built = build_definition(&Workload::Sort.options(1000, 10)).unwrap();
//! assert_eq!(built.mode, ProcessorMode::Distributed);
//! assert_eq!(built.batches, 100);
//! println!("{}\n{}", built.reason, built.definition.to_json_pretty());
//!
//! // k = 0 is refused with a typed error.
//! assert!(build_definition(&Workload::Sort.options(1000, 0)).is_err());
//! ```

pub mod asl;
pub mod build;
pub mod manifest;
pub mod presets;

pub use asl::{
    Catcher, ExecutionType, FailState, InputType, ItemBatcher, ItemProcessor, ItemReader,
    JitterStrategy, MapState, PassState, PayloadTemplate, ProcessorConfig, ProcessorMode,
    ReaderConfig, ResultWriter, Retrier, State, StateMachine, SucceedState, TaskState,
};
pub use build::{
    BuildError, BuildWarning, Built, DefinitionOptions, JobShape, ModeChoice, ModeRequest,
    RetryPolicy, build_definition, choose_mode, default_execution_type,
};
pub use manifest::{ExecutionInput, PackedBatch, inline_input, write_manifest};
pub use presets::{Preset, Workload};
