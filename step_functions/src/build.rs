//! The definition builder: job shape + options → a validated packed-Map state machine.
//!
//! One Map state runs ⌈C/k⌉ batches of k tasks; each iteration invokes the
//! packed function once with exactly the payload the runtime parses
//! (`{"Items": [...], "BatchInput": {...}}`). Distributed mode reads the tasks
//! from an S3 manifest and lets `ItemBatcher` pack them; inline mode takes
//! batches the orchestrator packed itself from the execution input.

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::asl::{
    Catcher, ExecutionType, InputType, ItemBatcher, ItemProcessor, ItemReader, JitterStrategy,
    MapState, PassState, PayloadTemplate, ProcessorConfig, ProcessorMode, ReaderConfig,
    ResultWriter, Retrier, State, StateMachine, TaskState,
};
use crate::manifest::input_paths;

/// Largest Step Functions state input/output, execution input and `ItemBatcher` batch (256 KiB).
pub const MAX_PAYLOAD_BYTES: u64 = 262_144;
/// Most iterations an inline Map runs at once, whatever `MaxConcurrency` says.
pub const INLINE_MAX_CONCURRENCY: u32 = 40;
/// Largest `MaxConcurrency` of a Distributed Map.
pub const DISTRIBUTED_MAX_CONCURRENCY: u32 = 10_000;
/// Longest run of an EXPRESS child workflow, seconds.
pub const EXPRESS_MAX_SECONDS: f64 = 300.0;
/// EXPRESS children are chosen only when a batch is predicted to take at most this
/// fraction of [`EXPRESS_MAX_SECONDS`]: retries with backoff and a cold start must still fit.
pub const EXPRESS_SAFETY_FRACTION: f64 = 0.4;
/// Upper bound on `MaxAttempts` of the throttling retrier: retries beyond this only
/// hide a mis-sized concurrency limit while billing the wait.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Room reserved in every batch for the `BatchInput` object and the JSON framing.
pub const BATCH_INPUT_ALLOWANCE: u64 = 1_024;
/// A task result of the runtime without output tails is a few hundred bytes.
pub const RESULT_BYTES_PER_TASK: u64 = 512;
/// Worst case of one task result: both 4 KiB output tails full.
pub const RESULT_BYTES_PER_TASK_MAX: u64 = 512 + 2 * 4_096;

/// The lambda:invoke optimised integration.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// ItemReader resource for one S3 object.
pub const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";
/// ResultWriter resource.
pub const S3_PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

/// Name of the Map state (top level).
pub const MAP_STATE: &str = "RunPackedBatches";
/// Name of the Task state inside the Map.
pub const TASK_STATE: &str = "InvokePackedFunction";
/// Name of the Pass state that records a failed batch.
pub const FAILURE_STATE: &str = "RecordBatchFailure";
/// Where the Catch puts the error object `{Error, Cause}` in the batch's input.
pub const ERROR_RESULT_PATH: &str = "$.error";

/// Default function name (a name or an ARN both work for `FunctionName`).
pub const DEFAULT_FUNCTION: &str = "propack";

/// Lambda errors that mean "the platform could not run it now", always worth retrying.
pub const THROTTLING_ERRORS: [&str; 4] = [
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
];
/// Errors of an instance that died mid-batch (killed, out of memory): the batch is
/// re-run once or twice on a fresh instance; outputs are idempotent overwrites.
pub const CRASH_ERRORS: [&str; 2] = ["Runtime.ExitError", "Lambda.Unknown"];

/// What the builder refuses: each would be rejected by Step Functions or cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// k = 0.
    #[error("packing degree k must be at least 1 (got 0)")]
    ZeroPacking,
    /// C = 0.
    #[error("a job needs at least one task (got --tasks 0)")]
    ZeroTasks,
    /// k > C.
    #[error(
        "packing degree k = {packing} is larger than the number of tasks C = {tasks}; use k ≤ {tasks}"
    )]
    PackingAboveTasks {
        /// k.
        packing: u64,
        /// C.
        tasks: u64,
    },
    /// MaxConcurrency above the Distributed Map limit.
    #[error("MaxConcurrency {requested} is above the Step Functions limit of {limit}")]
    MaxConcurrencyTooHigh {
        /// What was asked for.
        requested: u32,
        /// [`DISTRIBUTED_MAX_CONCURRENCY`].
        limit: u32,
    },
    /// One batch of k tasks would not fit in a Step Functions payload.
    #[error(
        "a batch of k = {packing} tasks is estimated at {estimated_bytes} bytes, above the {limit}-byte (256 KB) \
         batch limit of Step Functions; use k ≤ {max_packing} or smaller task specs"
    )]
    BatchTooLarge {
        /// k.
        packing: u64,
        /// Estimated batch size.
        estimated_bytes: u64,
        /// [`MAX_PAYLOAD_BYTES`].
        limit: u64,
        /// Largest k that fits.
        max_packing: u64,
    },
    /// The inline Map's execution input (all tasks) would not fit.
    #[error(
        "the inline Map execution input is estimated at {estimated_bytes} bytes, above the {limit}-byte (256 KB) \
         execution input limit; use the distributed Map (S3 manifest) instead"
    )]
    InlineInputTooLarge {
        /// Estimated execution input size.
        estimated_bytes: u64,
        /// [`MAX_PAYLOAD_BYTES`].
        limit: u64,
    },
    /// EXPRESS children asked for a batch predicted to outlive them.
    #[error(
        "EXPRESS child workflows stop after {limit_s} s but a batch is predicted to take {predicted_s:.0} s; \
         use STANDARD or a smaller k"
    )]
    ExpressTooLong {
        /// Predicted batch time, seconds.
        predicted_s: f64,
        /// [`EXPRESS_MAX_SECONDS`].
        limit_s: f64,
    },
    /// Any other out-of-range option.
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why.
        message: String,
    },
}

/// Something the builder accepts but the user should know about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildWarning {
    /// An inline Map asked for (or defaulted to) more than 40 concurrent iterations.
    InlineConcurrencyCapped {
        /// Concurrent iterations asked for.
        requested: u32,
        /// Batches in the run.
        batches: u64,
    },
    /// Full output tails in every task could push a batch result past 256 KB.
    ResultMayExceedLimit {
        /// Worst-case result size of one batch.
        worst_case_bytes: u64,
    },
    /// No task duration was given, so STANDARD children were chosen to be safe.
    UnknownTaskDuration,
}

impl fmt::Display for BuildWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildWarning::InlineConcurrencyCapped { requested, batches } => write!(
                f,
                "an inline Map runs at most {INLINE_MAX_CONCURRENCY} iterations at a time: MaxConcurrency {requested} \
                 is effectively {INLINE_MAX_CONCURRENCY}, so {batches} batches run in {} waves; the distributed Map \
                 runs them all at once",
                batches.div_ceil(u64::from(INLINE_MAX_CONCURRENCY))
            ),
            BuildWarning::ResultMayExceedLimit { worst_case_bytes } => write!(
                f,
                "if every task fills its 4 KiB stdout and stderr tails a batch result reaches {worst_case_bytes} bytes, \
                 above the 256 KB Step Functions limit (that batch would fail with States.DataLimitExceeded)"
            ),
            BuildWarning::UnknownTaskDuration => write!(
                f,
                "no task duration given (--task-seconds or --benchmark): chose STANDARD child workflows; \
                 EXPRESS is cheaper when a batch reliably takes well under 5 minutes"
            ),
        }
    }
}

/// Inline vs distributed, as requested by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeRequest {
    /// Let [`choose_mode`] decide.
    #[default]
    Auto,
    /// Force an inline Map.
    Inline,
    /// Force a Distributed Map.
    Distributed,
}

/// The size and cost of the job, which decide the mode, the child type and the limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobShape {
    /// Number of tasks, C.
    pub tasks: u64,
    /// Packing degree, k (tasks per batch = per function instance).
    pub packing: u64,
    /// Serialised size of one task spec in bytes (an estimate; the largest task counts).
    pub task_bytes: u64,
    /// Predicted run time of one task on one vCPU, seconds, if known.
    pub task_seconds: Option<f64>,
    /// vCPUs of one function instance (Lambda: 6 at 10,240 MB).
    pub vcpus: u32,
}

impl JobShape {
    /// ⌈C/k⌉: batches, i.e. function invocations.
    pub fn batches(&self) -> u64 {
        self.tasks.div_ceil(self.packing.max(1))
    }

    /// Estimated bytes of one `{"Items": [k tasks], "BatchInput": {...}}` batch.
    pub fn batch_bytes(&self) -> u64 {
        self.packing * (self.task_bytes + 1) + BATCH_INPUT_ALLOWANCE
    }

    /// Estimated bytes of an inline execution input holding all C tasks in ⌈C/k⌉ batches.
    pub fn inline_input_bytes(&self) -> u64 {
        self.tasks * (self.task_bytes + 1)
            + self.batches() * BATCH_INPUT_ALLOWANCE
            + BATCH_INPUT_ALLOWANCE
    }

    /// Estimated bytes of the inline Map's output (every batch result), typical tails.
    pub fn inline_output_bytes(&self) -> u64 {
        self.tasks * RESULT_BYTES_PER_TASK + self.batches() * 256
    }

    /// Predicted time of one batch: k tasks over the instance's vCPUs, seconds.
    pub fn batch_seconds(&self) -> Option<f64> {
        let waves = self.packing.div_ceil(u64::from(self.vcpus.max(1)));
        self.task_seconds.map(|t| t * waves as f64)
    }

    /// Largest k whose batch still fits in [`MAX_PAYLOAD_BYTES`].
    pub fn max_packing(&self) -> u64 {
        (MAX_PAYLOAD_BYTES - BATCH_INPUT_ALLOWANCE) / (self.task_bytes + 1)
    }
}

/// Retry policy of the inner Task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// First delay after a throttle or service error, seconds.
    pub interval_seconds: u32,
    /// Retries of throttled or failed invokes (bounded by [`MAX_RETRY_ATTEMPTS`]).
    pub max_attempts: u32,
    /// Delay multiplier per retry.
    pub backoff_rate: f64,
    /// Cap on one delay, seconds.
    pub max_delay_seconds: u32,
    /// Re-runs of a batch whose instance died (0 disables the crash retrier).
    pub crash_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            interval_seconds: 1,
            max_attempts: 6,
            backoff_rate: 2.0,
            max_delay_seconds: 30,
            crash_retries: 2,
        }
    }
}

/// Everything the builder needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefinitionOptions {
    /// The job.
    pub shape: JobShape,
    /// Inline, distributed or automatic.
    pub mode: ModeRequest,
    /// Packed function name or ARN.
    pub function: String,
    /// Fix the S3 bucket in the definition; `None` reads it from the execution input (`$.bucket`).
    pub bucket: Option<String>,
    /// Concurrent batches; default: all ⌈C/k⌉ (capped at the mode's limit).
    pub max_concurrency: Option<u32>,
    /// Distributed only: percentage of failed batches tolerated before the Map Run fails.
    pub tolerated_failure_percentage: u32,
    /// Worker count per batch passed in `BatchInput.parallelism`; default: the runtime decides.
    pub parallelism: Option<usize>,
    /// Override the child workflow type (distributed only).
    pub execution_type: Option<ExecutionType>,
    /// Retry policy of the inner Task.
    pub retry: RetryPolicy,
    /// Top-level comment; default describes the job.
    pub comment: Option<String>,
}

impl DefinitionOptions {
    /// Defaults for C tasks packed k per instance (1 KB tasks, duration unknown, 6 vCPUs).
    pub fn new(tasks: u64, packing: u64) -> Self {
        Self {
            shape: JobShape {
                tasks,
                packing,
                task_bytes: 1_024,
                task_seconds: None,
                vcpus: 6,
            },
            mode: ModeRequest::Auto,
            function: DEFAULT_FUNCTION.to_owned(),
            bucket: None,
            max_concurrency: None,
            tolerated_failure_percentage: 5,
            parallelism: None,
            execution_type: None,
            retry: RetryPolicy::default(),
            comment: None,
        }
    }
}

/// Which Map to build, and why (for humans).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeChoice {
    /// Inline or distributed.
    pub mode: ProcessorMode,
    /// One sentence on why.
    pub reason: String,
}

/// A built definition and what the builder decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Built {
    /// The state machine.
    pub definition: StateMachine,
    /// Inline or distributed.
    pub mode: ProcessorMode,
    /// Why that mode.
    pub reason: String,
    /// Things the user should know.
    pub warnings: Vec<BuildWarning>,
    /// ⌈C/k⌉.
    pub batches: u64,
    /// `MaxConcurrency` written to the Map.
    pub max_concurrency: u32,
    /// Child workflow type (distributed only).
    pub execution_type: Option<ExecutionType>,
    /// Estimated size of one batch, bytes.
    pub estimated_batch_bytes: u64,
    /// Estimated inline execution input, bytes (inline only).
    pub estimated_inline_input_bytes: Option<u64>,
}

/// Chooses inline vs distributed from C, k and the payload size, with a reason.
///
/// Inline is only worth it when everything fits in one execution: the input
/// (all C tasks) and output under 256 KB, and at most 40 batches, since an
/// inline Map never runs more than 40 iterations at once and packing only
/// pays off when all ⌈C/k⌉ instances start together.
pub fn choose_mode(shape: &JobShape, request: ModeRequest) -> ModeChoice {
    let batches = shape.batches();
    let input = shape.inline_input_bytes();
    let output = shape.inline_output_bytes();
    let (mode, reason) = match request {
        ModeRequest::Inline => (ProcessorMode::Inline, "inline Map requested".to_owned()),
        ModeRequest::Distributed => (
            ProcessorMode::Distributed,
            "distributed Map requested".to_owned(),
        ),
        ModeRequest::Auto if batches > u64::from(INLINE_MAX_CONCURRENCY) => (
            ProcessorMode::Distributed,
            format!(
                "{batches} batches exceed the {INLINE_MAX_CONCURRENCY} concurrent iterations of an inline Map; \
                 a distributed Map starts all of them at once"
            ),
        ),
        ModeRequest::Auto if input > MAX_PAYLOAD_BYTES * 9 / 10 => (
            ProcessorMode::Distributed,
            format!(
                "the {} tasks would make a ~{} KB execution input, too close to the 256 KB limit; \
                 a distributed Map reads them from an S3 manifest",
                shape.tasks,
                input / 1024
            ),
        ),
        ModeRequest::Auto if output > MAX_PAYLOAD_BYTES * 9 / 10 => (
            ProcessorMode::Distributed,
            format!(
                "the results of {} tasks (~{} KB) would not fit in a 256 KB execution output; \
                 a distributed Map writes them to S3",
                shape.tasks,
                output / 1024
            ),
        ),
        ModeRequest::Auto => (
            ProcessorMode::Inline,
            format!(
                "{batches} batches and a ~{} KB input fit one execution: an inline Map needs no S3 manifest \
                 and no child executions",
                input.div_ceil(1024)
            ),
        ),
    };
    ModeChoice { mode, reason }
}

fn check(opts: &DefinitionOptions) -> Result<(), BuildError> {
    let s = &opts.shape;
    if s.packing == 0 {
        return Err(BuildError::ZeroPacking);
    }
    if s.tasks == 0 {
        return Err(BuildError::ZeroTasks);
    }
    if s.packing > s.tasks {
        return Err(BuildError::PackingAboveTasks {
            packing: s.packing,
            tasks: s.tasks,
        });
    }
    if let Some(mc) = opts.max_concurrency
        && mc > DISTRIBUTED_MAX_CONCURRENCY
    {
        return Err(BuildError::MaxConcurrencyTooHigh {
            requested: mc,
            limit: DISTRIBUTED_MAX_CONCURRENCY,
        });
    }
    if s.batch_bytes() > MAX_PAYLOAD_BYTES {
        return Err(BuildError::BatchTooLarge {
            packing: s.packing,
            estimated_bytes: s.batch_bytes(),
            limit: MAX_PAYLOAD_BYTES,
            max_packing: s.max_packing(),
        });
    }
    let invalid = |option, message: String| Err(BuildError::InvalidOption { option, message });
    if opts.function.trim().is_empty() {
        return invalid(
            "function",
            "the packed function's name or ARN must not be empty".into(),
        );
    }
    if opts.tolerated_failure_percentage > 100 {
        return invalid(
            "tolerated_failure_percentage",
            format!(
                "{} is not a percentage (0-100)",
                opts.tolerated_failure_percentage
            ),
        );
    }
    if let Some(b) = &opts.bucket
        && (b.is_empty() || b.contains('/') || b.starts_with("s3:"))
    {
        return invalid(
            "bucket",
            format!("{b:?} is not a bucket name (no s3:// and no slashes)"),
        );
    }
    if opts.parallelism == Some(0) {
        return invalid("parallelism", "must be at least 1".into());
    }
    if s.vcpus == 0 {
        return invalid("vcpus", "must be at least 1".into());
    }
    if let Some(t) = s.task_seconds
        && !(t.is_finite() && t >= 0.0)
    {
        return invalid("task_seconds", format!("{t} is not a duration"));
    }
    let r = &opts.retry;
    if r.max_attempts > MAX_RETRY_ATTEMPTS || r.crash_retries > MAX_RETRY_ATTEMPTS {
        return invalid(
            "retry",
            format!("at most {MAX_RETRY_ATTEMPTS} attempts: retries must be bounded"),
        );
    }
    if !(r.backoff_rate.is_finite() && r.backoff_rate >= 1.0) {
        return invalid(
            "retry.backoff_rate",
            format!("{} must be ≥ 1.0", r.backoff_rate),
        );
    }
    Ok(())
}

fn template(v: Value) -> PayloadTemplate {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("templates are written as JSON objects"),
    }
}

/// The per-batch workflow, identical in both modes: invoke, retry, or record the failure.
fn item_processor(opts: &DefinitionOptions, config: ProcessorConfig) -> ItemProcessor {
    let r = &opts.retry;
    let mut retry = vec![Retrier {
        error_equals: THROTTLING_ERRORS.iter().map(|s| s.to_string()).collect(),
        interval_seconds: Some(r.interval_seconds),
        max_attempts: Some(r.max_attempts),
        backoff_rate: Some(r.backoff_rate),
        max_delay_seconds: Some(r.max_delay_seconds),
        jitter_strategy: Some(JitterStrategy::Full),
    }];
    if r.crash_retries > 0 {
        retry.push(Retrier {
            error_equals: CRASH_ERRORS.iter().map(|s| s.to_string()).collect(),
            interval_seconds: Some(r.interval_seconds),
            max_attempts: Some(r.crash_retries),
            backoff_rate: Some(r.backoff_rate),
            max_delay_seconds: Some(r.max_delay_seconds),
            jitter_strategy: Some(JitterStrategy::Full),
        });
    }
    // Only fields every BatchResult carries: a JSONPath to a missing field is a
    // States.Runtime error, which no Catch can handle. Dropped: the Lambda
    // envelope (StatusCode, headers, ExecutedVersion) and optional fields.
    let selector = template(json!({
        "schema_version.$": "$.Payload.schema_version",
        "instance_id.$": "$.Payload.instance_id",
        "cold_start.$": "$.Payload.cold_start",
        "init_ms.$": "$.Payload.init_ms",
        "received_at.$": "$.Payload.received_at",
        "started_at.$": "$.Payload.started_at",
        "ended_at.$": "$.Payload.ended_at",
        "vcpus.$": "$.Payload.vcpus",
        "parallelism.$": "$.Payload.parallelism",
        "tasks.$": "$.Payload.tasks",
    }));
    let task = TaskState {
        comment: Some("Run one packed batch of k tasks on one function instance.".into()),
        resource: LAMBDA_INVOKE.into(),
        parameters: Some(template(json!({
            "FunctionName": opts.function,
            "Payload.$": "$",
        }))),
        result_selector: Some(selector),
        retry,
        catch: vec![Catcher {
            error_equals: vec!["States.ALL".into()],
            result_path: Some(Some(ERROR_RESULT_PATH.into())),
            next: FAILURE_STATE.into(),
        }],
        end: Some(true),
        ..TaskState::default()
    };
    let failure = PassState {
        comment: Some(
            "Record a batch that failed after its retries, so one bad batch does not fail the run."
                .into(),
        ),
        parameters: Some(template(json!({
            "failed": true,
            "task_ids.$": "$.Items[*].id",
            "batch_input.$": "$.BatchInput",
            "error.$": ERROR_RESULT_PATH,
        }))),
        end: Some(true),
        ..PassState::default()
    };
    ItemProcessor {
        processor_config: Some(config),
        start_at: TASK_STATE.into(),
        states: [
            (TASK_STATE.to_owned(), State::Task(task)),
            (FAILURE_STATE.to_owned(), State::Pass(failure)),
        ]
        .into_iter()
        .collect(),
    }
}

fn bucket_field(opts: &DefinitionOptions, m: &mut PayloadTemplate) {
    match &opts.bucket {
        Some(b) => m.insert("Bucket".into(), Value::String(b.clone())),
        None => m.insert("Bucket.$".into(), Value::String(input_paths::BUCKET.into())),
    };
}

/// The child workflow type chosen for a batch predicted to take `batch_seconds`
/// (None: unknown, which chooses STANDARD to be safe). The model prices the same choice.
pub fn default_execution_type(batch_seconds: Option<f64>) -> ExecutionType {
    match batch_seconds {
        Some(p) if p <= EXPRESS_MAX_SECONDS * EXPRESS_SAFETY_FRACTION => ExecutionType::Express,
        _ => ExecutionType::Standard,
    }
}

fn choose_execution_type(
    opts: &DefinitionOptions,
    warnings: &mut Vec<BuildWarning>,
) -> Result<ExecutionType, BuildError> {
    let predicted = opts.shape.batch_seconds();
    match (opts.execution_type, predicted) {
        (Some(ExecutionType::Express), Some(p)) if p > EXPRESS_MAX_SECONDS => {
            Err(BuildError::ExpressTooLong {
                predicted_s: p,
                limit_s: EXPRESS_MAX_SECONDS,
            })
        }
        (Some(t), _) => Ok(t),
        (None, Some(p)) => Ok(default_execution_type(Some(p))),
        (None, None) => {
            warnings.push(BuildWarning::UnknownTaskDuration);
            Ok(ExecutionType::Standard)
        }
    }
}

/// Builds the packed-Map definition, refusing what Step Functions would refuse.
pub fn build_definition(opts: &DefinitionOptions) -> Result<Built, BuildError> {
    check(opts)?;
    let shape = &opts.shape;
    let choice = choose_mode(shape, opts.mode);
    let batches = shape.batches();
    let mut warnings = Vec::new();
    let worst = shape.packing * RESULT_BYTES_PER_TASK_MAX + 1_024;
    if worst > MAX_PAYLOAD_BYTES {
        warnings.push(BuildWarning::ResultMayExceedLimit {
            worst_case_bytes: worst,
        });
    }
    let batches_u32 = u32::try_from(batches).unwrap_or(u32::MAX);

    let (map, max_concurrency, execution_type, inline_bytes) = match choice.mode {
        ProcessorMode::Inline => {
            let inline_bytes = shape.inline_input_bytes();
            if inline_bytes > MAX_PAYLOAD_BYTES {
                return Err(BuildError::InlineInputTooLarge {
                    estimated_bytes: inline_bytes,
                    limit: MAX_PAYLOAD_BYTES,
                });
            }
            let mc = opts.max_concurrency.unwrap_or(batches_u32);
            if mc > INLINE_MAX_CONCURRENCY || (mc == 0 && batches_u32 > INLINE_MAX_CONCURRENCY) {
                warnings.push(BuildWarning::InlineConcurrencyCapped {
                    requested: if mc == 0 { batches_u32 } else { mc },
                    batches,
                });
            }
            let map = MapState {
                comment: Some(format!(
                    "Inline Map over {batches} pre-packed batches of up to {} tasks ($.batches).",
                    shape.packing
                )),
                item_processor: item_processor(
                    opts,
                    ProcessorConfig {
                        mode: ProcessorMode::Inline,
                        execution_type: None,
                    },
                ),
                items_path: Some(input_paths::BATCHES.into()),
                max_concurrency: Some(mc),
                end: Some(true),
                ..MapState::default()
            };
            (map, mc, None, Some(inline_bytes))
        }
        ProcessorMode::Distributed => {
            let mc = opts
                .max_concurrency
                .unwrap_or(batches_u32.min(DISTRIBUTED_MAX_CONCURRENCY));
            let et = choose_execution_type(opts, &mut warnings)?;
            let mut reader_params = PayloadTemplate::new();
            bucket_field(opts, &mut reader_params);
            reader_params.insert(
                "Key.$".into(),
                Value::String(input_paths::MANIFEST_KEY.into()),
            );
            let mut writer_params = PayloadTemplate::new();
            bucket_field(opts, &mut writer_params);
            writer_params.insert(
                "Prefix.$".into(),
                Value::String(input_paths::RESULTS_PREFIX.into()),
            );
            let mut batch_input = PayloadTemplate::new();
            batch_input.insert("run_id.$".into(), Value::String(input_paths::RUN_ID.into()));
            batch_input.insert(
                "output_prefix.$".into(),
                Value::String(input_paths::OUTPUT_PREFIX.into()),
            );
            if let Some(p) = opts.parallelism {
                batch_input.insert("parallelism".into(), json!(p));
            }
            let map = MapState {
                comment: Some(format!(
                    "Distributed Map: the task manifest in S3 is packed {} tasks per batch into {batches} batches.",
                    shape.packing
                )),
                item_processor: item_processor(
                    opts,
                    ProcessorConfig {
                        mode: ProcessorMode::Distributed,
                        execution_type: Some(et),
                    },
                ),
                item_reader: Some(ItemReader {
                    resource: S3_GET_OBJECT.into(),
                    reader_config: Some(ReaderConfig {
                        input_type: InputType::Json,
                        max_items: None,
                    }),
                    parameters: Some(reader_params),
                }),
                item_batcher: Some(ItemBatcher {
                    max_items_per_batch: Some(shape.packing),
                    max_input_bytes_per_batch: Some(MAX_PAYLOAD_BYTES),
                    batch_input: Some(batch_input),
                }),
                max_concurrency: Some(mc),
                tolerated_failure_percentage: Some(opts.tolerated_failure_percentage),
                result_writer: Some(ResultWriter {
                    resource: S3_PUT_OBJECT.into(),
                    parameters: Some(writer_params),
                }),
                end: Some(true),
                ..MapState::default()
            };
            (map, mc, Some(et), None)
        }
    };

    let comment = opts.comment.clone().unwrap_or_else(|| {
        format!(
            "ProPack: {} tasks packed {} per function instance into {batches} batches ({} Map).",
            shape.tasks,
            shape.packing,
            match choice.mode {
                ProcessorMode::Inline => "inline",
                ProcessorMode::Distributed => "distributed",
            }
        )
    });
    let definition = StateMachine {
        comment: Some(comment),
        start_at: MAP_STATE.into(),
        states: [(MAP_STATE.to_owned(), State::Map(Box::new(map)))]
            .into_iter()
            .collect(),
        timeout_seconds: None,
    };
    Ok(Built {
        definition,
        mode: choice.mode,
        reason: choice.reason,
        warnings,
        batches,
        max_concurrency,
        execution_type,
        estimated_batch_bytes: shape.batch_bytes(),
        estimated_inline_input_bytes: inline_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(c: u64, k: u64) -> DefinitionOptions {
        DefinitionOptions::new(c, k)
    }

    #[test]
    fn refuses_impossible_jobs_with_typed_errors() {
        assert_eq!(
            build_definition(&opts(10, 0)).unwrap_err(),
            BuildError::ZeroPacking
        );
        assert_eq!(
            build_definition(&opts(0, 1)).unwrap_err(),
            BuildError::ZeroTasks
        );
        assert!(matches!(
            build_definition(&opts(5, 6)).unwrap_err(),
            BuildError::PackingAboveTasks {
                packing: 6,
                tasks: 5
            }
        ));
        let mut o = opts(100_000, 1);
        o.max_concurrency = Some(10_001);
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::MaxConcurrencyTooHigh {
                requested: 10_001,
                ..
            }
        ));
        o.max_concurrency = Some(10_000);
        assert!(build_definition(&o).is_ok());
        let mut o = opts(1000, 300);
        o.shape.task_bytes = 1_000;
        let e = build_definition(&o).unwrap_err();
        assert!(
            matches!(
                e,
                BuildError::BatchTooLarge {
                    max_packing: 260,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("k ≤ 260"), "{e}");
        let mut o = opts(1000, 100);
        o.mode = ModeRequest::Inline;
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::InlineInputTooLarge { .. }
        ));
    }

    #[test]
    fn chooser_prefers_inline_only_for_small_jobs() {
        let small = opts(60, 10).shape;
        let c = choose_mode(&small, ModeRequest::Auto);
        assert_eq!(c.mode, ProcessorMode::Inline, "{}", c.reason);
        let many = opts(1000, 10).shape;
        let c = choose_mode(&many, ModeRequest::Auto);
        assert_eq!(c.mode, ProcessorMode::Distributed);
        assert!(c.reason.contains("100 batches"), "{}", c.reason);
        let mut big = opts(200, 10).shape;
        big.task_bytes = 2_000;
        let c = choose_mode(&big, ModeRequest::Auto);
        assert_eq!(c.mode, ProcessorMode::Distributed);
        assert!(c.reason.contains("execution input"), "{}", c.reason);
    }

    #[test]
    fn inline_above_forty_warns() {
        let mut o = opts(100, 2);
        o.mode = ModeRequest::Inline;
        o.shape.task_bytes = 200;
        let b = build_definition(&o).unwrap();
        assert_eq!(b.mode, ProcessorMode::Inline);
        assert!(b.warnings.iter().any(|w| matches!(
            w,
            BuildWarning::InlineConcurrencyCapped {
                requested: 50,
                batches: 50
            }
        )));
        o.max_concurrency = Some(40);
        assert!(build_definition(&o).unwrap().warnings.is_empty());
    }

    #[test]
    fn execution_type_follows_predicted_batch_time() {
        let mut o = opts(1000, 12);
        o.shape.task_seconds = Some(10.0);
        assert_eq!(
            build_definition(&o).unwrap().execution_type,
            Some(ExecutionType::Express)
        );
        o.shape.task_seconds = Some(100.0);
        assert_eq!(
            build_definition(&o).unwrap().execution_type,
            Some(ExecutionType::Standard)
        );
        o.execution_type = Some(ExecutionType::Express);
        assert_eq!(
            build_definition(&o).unwrap().execution_type,
            Some(ExecutionType::Express)
        );
        o.shape.task_seconds = Some(200.0);
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::ExpressTooLong { .. }
        ));
        o.shape.task_seconds = None;
        o.execution_type = None;
        let b = build_definition(&o).unwrap();
        assert_eq!(b.execution_type, Some(ExecutionType::Standard));
        assert!(b.warnings.contains(&BuildWarning::UnknownTaskDuration));
    }
}
