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
/// Longest run of an EXPRESS child workflow, seconds: past it the child ends TIMED_OUT,
/// which no Catch sees.
pub const EXPRESS_MAX_SECONDS: f64 = 300.0;
/// Longest Lambda init phase, seconds: every attempt of a batch may start cold.
pub const INIT_MAX_SECONDS: f64 = 10.0;
/// Upper bound on `MaxAttempts` of the throttling retrier: retries beyond this only
/// hide a mis-sized concurrency limit while billing the wait.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Room reserved in every pre-packed inline batch for its `BatchInput` and JSON framing.
pub const BATCH_INPUT_ALLOWANCE: u64 = 1_024;
/// Room for what surrounds a batch's items on the way into the function: the `BatchInput`
/// object (longest run id, output and logs prefixes, the result budget), the
/// `{"Items": ..., "BatchInput": ...}` framing and the lambda:invoke request
/// `{"FunctionName": <ARN>, "Payload": ...}`. Measured by `wrapper_allowance_covers_the_worst_case`.
pub const BATCH_WRAPPER_ALLOWANCE: u64 = 4_096;
/// `MaxInputBytesPerBatch`: Step Functions splits a batch before its items, once wrapped,
/// could pass the 256 KiB input limit of the child (`States.DataLimitExceeded`, uncatchable).
pub const MAX_INPUT_BYTES_PER_BATCH: u64 = MAX_PAYLOAD_BYTES - BATCH_WRAPPER_ALLOWANCE;
/// Room for the lambda:invoke result envelope around the function's payload (`StatusCode`,
/// `ExecutedVersion`, `SdkHttpMetadata` with the response headers, `SdkResponseMetadata`),
/// which counts toward the 256 KiB task result. Measured by `result_envelope_allowance_covers_aws`.
pub const RESULT_ENVELOPE_ALLOWANCE: u64 = 4_096;
/// Room in an inline Map's output for the array framing and the failure records' extra fields.
pub const INLINE_OUTPUT_ALLOWANCE: u64 = 4_096;
/// Fixed part of one batch result (instance, timings, ids) besides its tasks.
pub const RESULT_BYTES_PER_BATCH: u64 = 1_024;
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
/// The function's result inside the lambda:invoke response (always present on success).
pub const LAMBDA_PAYLOAD_PATH: &str = "$.Payload";
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
/// Errors of an instance that died mid-batch (its process exited or was killed): the batch
/// is re-run once or twice on a fresh instance; outputs are idempotent overwrites.
///
/// Timeouts are not retried: `Sandbox.Timedout` (and `States.Timeout`) mean the batch ran
/// out of time, and re-running a hung 900 s batch only bills it twice more. `Lambda.Unknown`
/// is not retried either: older runtimes report timeouts and out-of-memory kills under that
/// name, so it cannot be told apart from a timeout; such a batch is recorded as failed.
pub const CRASH_ERRORS: [&str; 1] = ["Runtime.ExitError"];

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
    /// EXPRESS children asked for a batch whose worst case (retries included) outlives them.
    #[error(
        "EXPRESS child workflows stop after {limit_s} s but a batch may take {predicted_s:.0} s \
         with its retries and their backoff; use STANDARD, a smaller k or fewer crash retries"
    )]
    ExpressTooLong {
        /// Worst-case child time, seconds (all attempts, cold starts and retry delays).
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
    /// Full output tails in every task would push a batch result past its budget.
    ResultMayExceedLimit {
        /// Worst-case result size of one batch.
        worst_case_bytes: u64,
        /// The batch's result budget (`max_result_bytes`).
        budget_bytes: u64,
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
            BuildWarning::ResultMayExceedLimit {
                worst_case_bytes,
                budget_bytes,
            } => write!(
                f,
                "if every task fills its 4 KiB stdout and stderr tails a batch result reaches {worst_case_bytes} bytes, \
                 above its {budget_bytes}-byte budget (max_result_bytes): the runtime must trim it to fit, \
                 since a result over 256 KiB fails with States.DataLimitExceeded, which no Catch handles"
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

    /// Estimated bytes of one batch as the function receives it (k tasks, wrapped).
    pub fn batch_bytes(&self) -> u64 {
        self.packing * (self.task_bytes + 1) + BATCH_WRAPPER_ALLOWANCE
    }

    /// Estimated bytes of an inline execution input holding all C tasks in ⌈C/k⌉ batches.
    pub fn inline_input_bytes(&self) -> u64 {
        self.tasks * (self.task_bytes + 1)
            + self.batches() * BATCH_INPUT_ALLOWANCE
            + BATCH_INPUT_ALLOWANCE
    }

    /// Estimated bytes of one batch result with typical (short) output tails.
    pub fn typical_result_bytes(&self) -> u64 {
        self.packing * RESULT_BYTES_PER_TASK + RESULT_BYTES_PER_BATCH
    }

    /// Bytes of one batch result when every task fills both output tails.
    pub fn worst_result_bytes(&self) -> u64 {
        self.packing * RESULT_BYTES_PER_TASK_MAX + RESULT_BYTES_PER_BATCH
    }

    /// An inline batch's share of the 256 KiB Map output (the execution output): the result
    /// budget that keeps the whole output under the limit whatever the tasks print.
    pub fn inline_result_budget(&self) -> u64 {
        (MAX_PAYLOAD_BYTES - INLINE_OUTPUT_ALLOWANCE) / self.batches().max(1)
    }

    /// Predicted time of one batch: k tasks over the instance's vCPUs, seconds.
    pub fn batch_seconds(&self) -> Option<f64> {
        let waves = self.packing.div_ceil(u64::from(self.vcpus.max(1)));
        self.task_seconds.map(|t| t * waves as f64)
    }

    /// Largest k whose batch still fits in [`MAX_INPUT_BYTES_PER_BATCH`].
    pub fn max_packing(&self) -> u64 {
        MAX_INPUT_BYTES_PER_BATCH / (self.task_bytes + 1)
    }
}

/// Distributed: the result budget of every batch, its whole 256 KiB task result but the envelope.
pub const DISTRIBUTED_RESULT_BUDGET: u64 = MAX_PAYLOAD_BYTES - RESULT_ENVELOPE_ALLOWANCE;

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

impl RetryPolicy {
    /// Sum of the first `retries` delays of a retrier, before jitter (FULL jitter only shortens them).
    fn backoff_seconds(&self, retries: u32) -> f64 {
        let mut d = f64::from(self.interval_seconds);
        let mut total = 0.0;
        for _ in 0..retries {
            total += d.min(f64::from(self.max_delay_seconds));
            d *= self.backoff_rate;
        }
        total
    }

    /// Longest a child workflow running one batch of `batch_seconds` can take: every crash
    /// retry re-runs the batch (each attempt may start cold), and both retriers may wait
    /// out their whole backoff.
    pub fn worst_case_seconds(&self, batch_seconds: f64) -> f64 {
        let attempts = f64::from(1 + self.crash_retries);
        attempts * (batch_seconds + INIT_MAX_SECONDS)
            + self.backoff_seconds(self.crash_retries)
            + self.backoff_seconds(self.max_attempts)
    }
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
    /// Why that child type (distributed only).
    pub execution_type_reason: Option<String>,
    /// The result budget every batch gets (`max_result_bytes`), bytes.
    pub max_result_bytes: u64,
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
    let budget = shape.inline_result_budget();
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
        ModeRequest::Auto if budget < shape.typical_result_bytes() => (
            ProcessorMode::Distributed,
            format!(
                "the results of {} tasks would not fit in a 256 KB execution output: each batch's share \
                 is {budget} bytes, below the ~{} bytes of a typical result of {} tasks; \
                 a distributed Map writes them to S3",
                shape.tasks,
                shape.typical_result_bytes(),
                shape.packing
            ),
        ),
        ModeRequest::Auto => (
            ProcessorMode::Inline,
            format!(
                "{batches} batches and a ~{} KB input fit one execution, and each batch's result is \
                 budgeted to {budget} bytes so the whole output fits 256 KB: an inline Map needs no S3 \
                 manifest and no child executions",
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
    let task = TaskState {
        comment: Some(
            "Run one packed batch of k tasks on one function instance. The output is the function's \
             whole result: a ResultSelector naming a field the result lacks would be States.Runtime, \
             which no Catch handles."
                .into(),
        ),
        resource: LAMBDA_INVOKE.into(),
        parameters: Some(template(json!({
            "FunctionName": opts.function,
            "Payload.$": "$",
        }))),
        output_path: Some(Some(LAMBDA_PAYLOAD_PATH.into())),
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

/// The intrinsic that makes every batch's `logs_prefix` ([`crate::manifest::logs_prefix`])
/// from `$.output_prefix`: a field every execution input has, so no console input can make
/// it fail (a path to an absent field is `States.Runtime`, which no Catch handles).
pub fn logs_prefix_path() -> String {
    format!(
        "States.Format('{{}}{}', {})",
        crate::manifest::LOGS_UNDER_OUTPUT,
        input_paths::OUTPUT_PREFIX
    )
}

fn bucket_field(opts: &DefinitionOptions, m: &mut PayloadTemplate) {
    match &opts.bucket {
        Some(b) => m.insert("Bucket".into(), Value::String(b.clone())),
        None => m.insert("Bucket.$".into(), Value::String(input_paths::BUCKET.into())),
    };
}

/// The child workflow type for a batch predicted to take `batch_seconds` under `retry`, and
/// why. EXPRESS only when the worst case (every crash retry, cold starts, both retriers'
/// whole backoff) fits its 5 minutes: past them a child ends TIMED_OUT instead of reaching
/// the Catch that records the failed batch. Unknown duration chooses STANDARD to be safe.
pub fn execution_type_for(
    batch_seconds: Option<f64>,
    retry: &RetryPolicy,
) -> (ExecutionType, String) {
    let Some(b) = batch_seconds else {
        return (
            ExecutionType::Standard,
            "STANDARD children: the batch duration is unknown".into(),
        );
    };
    let worst = retry.worst_case_seconds(b);
    let how = format!(
        "a ~{b:.0} s batch with {} crash retries, cold starts and retry backoff takes at most {worst:.0} s",
        retry.crash_retries
    );
    if worst <= EXPRESS_MAX_SECONDS {
        (
            ExecutionType::Express,
            format!("EXPRESS children: {how}, within the 300 s EXPRESS limit"),
        )
    } else {
        (
            ExecutionType::Standard,
            format!(
                "STANDARD children: {how}, past the 300 s EXPRESS limit (an EXPRESS child would end TIMED_OUT)"
            ),
        )
    }
}

/// The child workflow type the builder chooses for a batch of `batch_seconds` under the
/// default retry policy. The model prices the same choice.
pub fn default_execution_type(batch_seconds: Option<f64>) -> ExecutionType {
    execution_type_for(batch_seconds, &RetryPolicy::default()).0
}

fn choose_execution_type(
    opts: &DefinitionOptions,
    warnings: &mut Vec<BuildWarning>,
) -> Result<(ExecutionType, String), BuildError> {
    let predicted = opts.shape.batch_seconds();
    match (opts.execution_type, predicted) {
        (Some(ExecutionType::Express), Some(p)) => {
            let worst = opts.retry.worst_case_seconds(p);
            if worst > EXPRESS_MAX_SECONDS {
                return Err(BuildError::ExpressTooLong {
                    predicted_s: worst,
                    limit_s: EXPRESS_MAX_SECONDS,
                });
            }
            Ok((
                ExecutionType::Express,
                format!("EXPRESS children requested; worst case {worst:.0} s"),
            ))
        }
        (Some(t), _) => Ok((
            t,
            format!(
                "{} children requested",
                match t {
                    ExecutionType::Express => "EXPRESS",
                    ExecutionType::Standard => "STANDARD",
                }
            ),
        )),
        (None, p) => {
            if p.is_none() {
                warnings.push(BuildWarning::UnknownTaskDuration);
            }
            Ok(execution_type_for(p, &opts.retry))
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
    let max_result_bytes = match choice.mode {
        ProcessorMode::Inline => shape.inline_result_budget().min(DISTRIBUTED_RESULT_BUDGET),
        ProcessorMode::Distributed => DISTRIBUTED_RESULT_BUDGET,
    };
    if shape.worst_result_bytes() > max_result_bytes {
        warnings.push(BuildWarning::ResultMayExceedLimit {
            worst_case_bytes: shape.worst_result_bytes(),
            budget_bytes: max_result_bytes,
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
                // Each batch's share of the 256 KiB Map output and where its full logs go,
                // next to its Items and BatchInput (the runtime reads top-level BatchInput
                // fields too; the batch's own win).
                item_selector: Some(template(json!({
                    "Items.$": "$$.Map.Item.Value.Items",
                    "BatchInput.$": "$$.Map.Item.Value.BatchInput",
                    "max_result_bytes": max_result_bytes,
                    "logs_prefix.$": logs_prefix_path(),
                }))),
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
            let (et, et_reason) = choose_execution_type(opts, &mut warnings)?;
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
            batch_input.insert("max_result_bytes".into(), json!(max_result_bytes));
            batch_input.insert("logs_prefix.$".into(), Value::String(logs_prefix_path()));
            let map = MapState {
                comment: Some(format!(
                    "Distributed Map: the task manifest in S3 is packed {} tasks per batch into {batches} batches. \
                     {et_reason}.",
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
                    max_input_bytes_per_batch: Some(MAX_INPUT_BYTES_PER_BATCH),
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
            (map, mc, Some((et, et_reason)), None)
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
        execution_type: execution_type.as_ref().map(|(t, _)| *t),
        execution_type_reason: execution_type.map(|(_, r)| r),
        max_result_bytes,
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
                    max_packing: 257,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("k ≤ 257"), "{e}");
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
        let b = build_definition(&o).unwrap();
        assert!(
            !b.warnings
                .iter()
                .any(|w| matches!(w, BuildWarning::InlineConcurrencyCapped { .. })),
            "{:?}",
            b.warnings
        );
    }

    /// Defect 4 of issue 18: EXPRESS only when the worst case with retries fits 5 minutes.
    #[test]
    fn execution_type_follows_the_worst_case_with_retries() {
        // k = 12 over 6 vCPUs: two waves, a batch takes 2 × task_seconds.
        let mut o = opts(1000, 12);
        o.shape.task_seconds = Some(10.0);
        let b = build_definition(&o).unwrap();
        assert_eq!(b.execution_type, Some(ExecutionType::Express));
        // 3 attempts × (20 s + 10 s cold start) + crash backoff 1 + 2 + throttle backoff 61.
        let reason = b.execution_type_reason.unwrap();
        assert!(reason.contains("at most 154 s"), "{reason}");
        // An 80 s batch: the old rule (≤ 120 s) chose EXPRESS, its worst case is 334 s.
        o.shape.task_seconds = Some(40.0);
        let b = build_definition(&o).unwrap();
        assert_eq!(b.execution_type, Some(ExecutionType::Standard));
        let reason = b.execution_type_reason.unwrap();
        assert!(reason.contains("334 s"), "{reason}");
        let json = b.definition.to_json_pretty();
        assert!(json.contains(&reason), "the definition says why");
        o.execution_type = Some(ExecutionType::Express);
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::ExpressTooLong { predicted_s, .. } if predicted_s == 334.0
        ));
        o.execution_type = None;
        o.retry.crash_retries = 0;
        assert_eq!(
            build_definition(&o).unwrap().execution_type,
            Some(ExecutionType::Express),
            "90 s + 61 s of throttle backoff fits"
        );
        o.retry.crash_retries = 2;
        o.shape.task_seconds = None;
        let b = build_definition(&o).unwrap();
        assert_eq!(b.execution_type, Some(ExecutionType::Standard));
        assert!(b.warnings.contains(&BuildWarning::UnknownTaskDuration));
        assert_eq!(default_execution_type(Some(70.0)), ExecutionType::Standard);
        assert_eq!(default_execution_type(Some(60.0)), ExecutionType::Express);
    }

    fn map_of(b: &Built) -> &MapState {
        match &b.definition.states[MAP_STATE] {
            State::Map(m) => m,
            _ => unreachable!(),
        }
    }

    fn task_of(b: &Built) -> &TaskState {
        match &map_of(b).item_processor.states[TASK_STATE] {
            State::Task(t) => t,
            _ => unreachable!(),
        }
    }

    /// Defect 3 of issue 18: measured room for what wraps a batch's items on the way in.
    #[test]
    fn wrapper_allowance_covers_the_worst_case() {
        let prefix = format!("s3://{}/{}/", "b".repeat(63), "k".repeat(1_022));
        let batch_input = json!({
            "run_id": "r".repeat(80),
            "batch_id": "999999",
            "output_prefix": prefix,
            "logs_prefix": crate::manifest::logs_prefix(&prefix),
            "parallelism": 1_024,
            "max_result_bytes": MAX_PAYLOAD_BYTES,
        });
        let function = format!(
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:{}:{}",
            "f".repeat(64),
            "q".repeat(128)
        );
        let request =
            json!({"FunctionName": function, "Payload": {"Items": [], "BatchInput": batch_input}});
        let measured = serde_json::to_vec(&request).unwrap().len() as u64;
        assert_eq!(measured, 2_689);
        assert!(measured < BATCH_WRAPPER_ALLOWANCE);
        let b = build_definition(&opts(1000, 10)).unwrap();
        let batcher = map_of(&b).item_batcher.as_ref().unwrap();
        assert_eq!(batcher.max_input_bytes_per_batch, Some(258_048));
        assert_eq!(
            batcher.batch_input.as_ref().unwrap()["max_result_bytes"],
            json!(258_048)
        );
        assert_eq!(b.max_result_bytes, 258_048);
    }

    #[test]
    fn both_maps_give_every_batch_a_logs_prefix_from_the_output_prefix() {
        assert_eq!(
            logs_prefix_path(),
            "States.Format('{}logs', $.output_prefix)"
        );
        let b = build_definition(&opts(1000, 10)).unwrap();
        let batcher = map_of(&b).item_batcher.as_ref().unwrap();
        assert_eq!(
            batcher.batch_input.as_ref().unwrap()["logs_prefix.$"],
            json!(logs_prefix_path())
        );
        let mut o = opts(60, 10);
        o.mode = ModeRequest::Inline;
        let b = build_definition(&o).unwrap();
        let sel = map_of(&b).item_selector.as_ref().unwrap();
        assert_eq!(sel["logs_prefix.$"], json!(logs_prefix_path()));
        // What `launch` packs says the same.
        assert_eq!(
            crate::manifest::logs_prefix("s3://b/propack/runs/r/out/"),
            "s3://b/propack/runs/r/out/logs"
        );
    }

    /// Defect 1 of issue 18: the lambda:invoke envelope around a result, as AWS documents it.
    #[test]
    fn result_envelope_allowance_covers_aws() {
        let headers = json!({
            "Connection": "keep-alive",
            "Content-Length": "262144",
            "Content-Type": "application/json",
            "Date": "Wed, 02 Dec 2026 06:00:00 GMT",
            "X-Amz-Executed-Version": "$LATEST",
            "x-amz-function-error": "Unhandled",
            "x-amzn-Remapped-Content-Length": "0",
            "x-amzn-RequestId": "0f3e6b1a-8c1d-4b5e-9f2a-7d6c5b4a3f21",
            "X-Amzn-Trace-Id": "root=1-5f7e8d9c-0a1b2c3d4e5f6a7b8c9d0e1f;sampled=0;lineage=abcdef01:0",
        });
        let envelope = json!({
            "ExecutedVersion": "$LATEST",
            "Payload": {},
            "SdkHttpMetadata": {"AllHttpHeaders": headers, "HttpHeaders": headers, "HttpStatusCode": 200},
            "SdkResponseMetadata": {"RequestId": "0f3e6b1a-8c1d-4b5e-9f2a-7d6c5b4a3f21"},
            "StatusCode": 200,
        });
        let measured = serde_json::to_vec(&envelope).unwrap().len() as u64;
        assert_eq!(measured, 970);
        assert!(measured < RESULT_ENVELOPE_ALLOWANCE);
    }

    /// Defects 1 and 5 of issue 18: no ResultSelector (a missing field would be the uncatchable
    /// States.Runtime, and it dropped run_id, batch_id, memory_mb, request_id): the output is
    /// the whole payload.
    #[test]
    fn task_output_is_the_whole_function_result() {
        let b = build_definition(&opts(1000, 10)).unwrap();
        let t = task_of(&b);
        assert_eq!(t.result_selector, None);
        assert_eq!(t.output_path, Some(Some("$.Payload".to_owned())));
    }

    /// Defect 6 of issue 18: crashes are retried, timeouts (and the ambiguous Lambda.Unknown) not.
    #[test]
    fn crash_retrier_skips_timeouts() {
        let b = build_definition(&opts(1000, 10)).unwrap();
        let retry = &task_of(&b).retry;
        assert_eq!(retry[1].error_equals, ["Runtime.ExitError"]);
        for e in ["Sandbox.Timedout", "Lambda.Unknown", "States.Timeout"] {
            assert!(!retry.iter().any(|r| r.matches(e)), "{e} is retried");
        }
        assert!(retry.iter().any(|r| r.matches("Runtime.ExitError")));
    }

    /// Defect 2 of issue 18: inline only when each batch's share of the 256 KiB output holds
    /// a typical result, and that share is passed to every batch.
    #[test]
    fn inline_budgets_each_batch_to_its_share_of_the_output() {
        let b = build_definition(&opts(60, 10)).unwrap();
        assert_eq!(b.mode, ProcessorMode::Inline, "{}", b.reason);
        assert_eq!(b.max_result_bytes, 43_008);
        assert!(b.batches * b.max_result_bytes + INLINE_OUTPUT_ALLOWANCE <= MAX_PAYLOAD_BYTES);
        let sel = map_of(&b).item_selector.as_ref().unwrap();
        assert_eq!(sel["max_result_bytes"], json!(43_008));
        assert!(b.warnings.iter().any(|w| matches!(
            w,
            BuildWarning::ResultMayExceedLimit {
                worst_case_bytes: 88_064,
                budget_bytes: 43_008
            }
        )));
        // 40 batches of 40 small tasks: a 6,451-byte share cannot hold ~21 KB of results.
        let mut o = opts(1600, 40);
        o.shape.task_bytes = 10;
        let c = choose_mode(&o.shape, ModeRequest::Auto);
        assert_eq!(c.mode, ProcessorMode::Distributed);
        assert!(c.reason.contains("share is 6451 bytes"), "{}", c.reason);
    }

    /// The retriers are pinned by name here, not only by the committed definitions (which a
    /// regeneration would silently follow): throttles and service errors up to 6 times with
    /// backoff, a crashed instance's batch twice, everything else caught and recorded.
    #[test]
    fn retriers_name_the_errors_they_retry() {
        let b = build_definition(&opts(1000, 10)).unwrap();
        let t = task_of(&b);
        assert_eq!(t.retry.len(), 2);
        assert_eq!(
            t.retry[0].error_equals,
            [
                "Lambda.TooManyRequestsException",
                "Lambda.ServiceException",
                "Lambda.AWSLambdaException",
                "Lambda.SdkClientException",
            ]
        );
        let r = &t.retry[0];
        assert_eq!(
            (
                r.interval_seconds,
                r.max_attempts,
                r.backoff_rate,
                r.max_delay_seconds,
                r.jitter_strategy
            ),
            (
                Some(1),
                Some(6),
                Some(2.0),
                Some(30),
                Some(JitterStrategy::Full)
            )
        );
        assert_eq!(t.retry[1].error_equals, ["Runtime.ExitError"]);
        assert_eq!(t.retry[1].max_attempts, Some(2));
        assert_eq!(t.catch.len(), 1);
        assert_eq!(t.catch[0].error_equals, ["States.ALL"]);
        assert_eq!(t.catch[0].next, FAILURE_STATE);
        assert_eq!(t.catch[0].result_path, Some(Some("$.error".to_owned())));
        // crash_retries = 0 drops the crash retrier, not the throttle one.
        let mut o = opts(1000, 10);
        o.retry.crash_retries = 0;
        let b = build_definition(&o).unwrap();
        let t = task_of(&b);
        assert_eq!(t.retry.len(), 1);
        assert_eq!(t.retry[0].error_equals.len(), 4);
    }

    /// The result budget of a distributed batch is 256 KiB less the envelope (258,048 bytes);
    /// the warning starts at the k whose *worst-case* result (k full tails of 8,704 bytes plus
    /// 1,024) passes it: k = 29 is 253,440 bytes (none), k = 30 is 262,144 (warned).
    #[test]
    fn result_budget_warning_starts_at_the_worst_case_k() {
        let at = |k: u64| {
            let mut o = opts(3000, k);
            o.mode = ModeRequest::Distributed;
            build_definition(&o).unwrap()
        };
        let b = at(29);
        assert_eq!(b.max_result_bytes, 258_048);
        assert!(
            !b.warnings
                .iter()
                .any(|w| matches!(w, BuildWarning::ResultMayExceedLimit { .. })),
            "{:?}",
            b.warnings
        );
        let b = at(30);
        assert_eq!(b.max_result_bytes, 258_048);
        assert!(b.warnings.contains(&BuildWarning::ResultMayExceedLimit {
            worst_case_bytes: 262_144,
            budget_bytes: 258_048
        }));
        assert_eq!(
            map_of(&b)
                .item_batcher
                .as_ref()
                .unwrap()
                .batch_input
                .as_ref()
                .unwrap()["max_result_bytes"],
            json!(258_048)
        );
    }

    /// The size estimates by hand: C = 100, k = 8, 200-byte tasks, 3 s tasks on 6 vCPUs.
    #[test]
    fn job_shape_estimates_by_hand() {
        let s = JobShape {
            tasks: 100,
            packing: 8,
            task_bytes: 200,
            task_seconds: Some(3.0),
            vcpus: 6,
        };
        assert_eq!(s.batches(), 13);
        assert_eq!(s.batch_bytes(), 8 * 201 + 4_096);
        assert_eq!(s.inline_input_bytes(), 100 * 201 + 13 * 1_024 + 1_024);
        assert_eq!(s.typical_result_bytes(), 8 * 512 + 1_024);
        assert_eq!(s.worst_result_bytes(), 8 * 8_704 + 1_024);
        assert_eq!(s.inline_result_budget(), (262_144 - 4_096) / 13);
        // 8 tasks over 6 vCPUs: two waves of 3 s.
        assert_eq!(s.batch_seconds(), Some(6.0));
        assert_eq!(s.max_packing(), 258_048 / 201);
    }

    /// Each bound of the automatic mode choice, on both sides.
    #[test]
    fn chooser_bounds_on_both_sides() {
        let shape = |c: u64, k: u64, task_bytes: u64| {
            let mut s = opts(c, k).shape;
            s.task_bytes = task_bytes;
            s
        };
        let mode = |s: &JobShape| choose_mode(s, ModeRequest::Auto).mode;
        // 40 batches may run inline, 41 may not.
        assert_eq!(mode(&shape(40, 1, 10)), ProcessorMode::Inline);
        assert_eq!(mode(&shape(41, 1, 10)), ProcessorMode::Distributed);
        // An input of 261,704 bytes is under 256 KiB but above 90 % of it (235,929).
        let s = shape(200, 10, 1_200);
        assert_eq!(s.inline_input_bytes(), 261_704);
        assert_eq!(mode(&s), ProcessorMode::Distributed);
        // Exactly 90 % (235,929 bytes: one 233,880-byte task) is still inline; a byte more is not.
        let s = shape(1, 1, 233_880);
        assert_eq!(s.inline_input_bytes(), MAX_PAYLOAD_BYTES * 9 / 10);
        assert_eq!(mode(&s), ProcessorMode::Inline);
        assert_eq!(mode(&shape(1, 1, 233_881)), ProcessorMode::Distributed);
        // 8 batches of 61 tasks: each batch's share (32,256 bytes) equals a typical result
        // (61 × 512 + 1,024), which fits; a ninth batch shrinks the share below it.
        let s = shape(488, 61, 10);
        assert_eq!(s.inline_result_budget(), s.typical_result_bytes());
        assert_eq!(mode(&s), ProcessorMode::Inline);
        assert_eq!(mode(&shape(489, 61, 10)), ProcessorMode::Distributed);
    }

    /// Each option check of the builder, at its bound and one past it.
    #[test]
    fn option_checks_at_their_bounds() {
        let err = |o: &DefinitionOptions| build_definition(o).err();
        assert_eq!(err(&opts(5, 5)), None);
        // A batch of exactly 256 KiB (one 258,047-byte task + 1 + the 4,096 wrapper) passes.
        let mut o = opts(1, 1);
        o.shape.task_bytes = 258_047;
        o.mode = ModeRequest::Distributed;
        assert_eq!(err(&o), None);
        o.shape.task_bytes = 258_048;
        assert!(matches!(err(&o), Some(BuildError::BatchTooLarge { .. })));
        let mut o = opts(10, 1);
        o.tolerated_failure_percentage = 100;
        assert_eq!(err(&o), None);
        o.tolerated_failure_percentage = 101;
        assert!(matches!(
            err(&o),
            Some(BuildError::InvalidOption {
                option: "tolerated_failure_percentage",
                ..
            })
        ));
        for (bucket, ok) in [
            ("my-bucket", true),
            ("", false),
            ("a/b", false),
            ("s3:b", false),
        ] {
            let mut o = opts(10, 1);
            o.bucket = Some(bucket.into());
            assert_eq!(err(&o).is_none(), ok, "bucket {bucket:?}");
        }
        for (t, ok) in [
            (0.0, true),
            (-1.0, false),
            (f64::INFINITY, false),
            (f64::NAN, false),
        ] {
            let mut o = opts(10, 1);
            o.shape.task_seconds = Some(t);
            assert_eq!(err(&o).is_none(), ok, "task_seconds {t}");
        }
        let retry = |max_attempts: u32, crash_retries: u32, backoff_rate: f64| {
            let mut o = opts(10, 1);
            o.retry = RetryPolicy {
                max_attempts,
                crash_retries,
                backoff_rate,
                ..RetryPolicy::default()
            };
            err(&o).is_none()
        };
        assert!(retry(10, 10, 1.0));
        assert!(!retry(11, 0, 2.0));
        assert!(!retry(0, 11, 2.0));
        assert!(!retry(6, 2, 0.5));
        assert!(!retry(6, 2, f64::INFINITY));
    }

    /// Bounds inside the build: an EXPRESS child whose worst case is exactly 300 s, an inline
    /// input of exactly 256 KiB, a worst-case result exactly at its share.
    #[test]
    fn build_bounds_are_inclusive() {
        // One 229 s batch without crash retries: 229 + 10 s cold start + 61 s of backoff = 300 s.
        let mut o = opts(6, 6);
        o.shape.task_seconds = Some(229.0);
        o.retry.crash_retries = 0;
        o.execution_type = Some(ExecutionType::Express);
        o.mode = ModeRequest::Distributed;
        assert_eq!(
            build_definition(&o).unwrap().execution_type,
            Some(ExecutionType::Express)
        );
        o.shape.task_seconds = Some(229.5);
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::ExpressTooLong { .. }
        ));
        // Two tasks of 129,535 bytes, one per batch: 2 × 129,536 + 3 × 1,024 = 262,144.
        let mut o = opts(2, 1);
        o.mode = ModeRequest::Inline;
        o.shape.task_bytes = 129_535;
        assert_eq!(o.shape.inline_input_bytes(), MAX_PAYLOAD_BYTES);
        assert!(build_definition(&o).is_ok());
        o.shape.task_bytes = 129_536;
        assert!(matches!(
            build_definition(&o).unwrap_err(),
            BuildError::InlineInputTooLarge { .. }
        ));
        // 14 inline batches of 2: each batch's share is 18,432 bytes, the worst case of 2 tasks.
        let mut o = opts(28, 2);
        o.mode = ModeRequest::Inline;
        o.shape.task_bytes = 10;
        let b = build_definition(&o).unwrap();
        assert_eq!(b.max_result_bytes, 18_432);
        assert!(
            !b.warnings
                .iter()
                .any(|w| matches!(w, BuildWarning::ResultMayExceedLimit { .. })),
            "{:?}",
            b.warnings
        );
    }

    /// The states' own fields, not only through the committed definitions.
    #[test]
    fn batch_workflow_states_by_field() {
        let b = build_definition(&opts(1000, 10)).unwrap();
        let t = task_of(&b);
        assert_eq!(t.resource, LAMBDA_INVOKE);
        assert_eq!(
            Value::Object(t.parameters.clone().unwrap()),
            json!({"FunctionName": "propack", "Payload.$": "$"})
        );
        assert_eq!(t.end, Some(true));
        assert!(t.comment.as_deref().unwrap().contains("ResultSelector"));
        let State::Pass(p) = &map_of(&b).item_processor.states[FAILURE_STATE] else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(p.parameters.clone().unwrap()),
            json!({"failed": true, "task_ids.$": "$.Items[*].id",
                   "batch_input.$": "$.BatchInput", "error.$": "$.error"})
        );
        assert_eq!(p.end, Some(true));
        assert!(p.comment.is_some());
        // The bucket: from the execution input by default, or fixed by the options.
        let m = map_of(&b);
        let reader = m.item_reader.as_ref().unwrap().parameters.as_ref().unwrap();
        assert_eq!(reader["Bucket.$"], "$.bucket");
        assert_eq!(reader["Key.$"], "$.manifest_key");
        let writer = m
            .result_writer
            .as_ref()
            .unwrap()
            .parameters
            .as_ref()
            .unwrap();
        assert_eq!(writer["Bucket.$"], "$.bucket");
        let mut o = opts(1000, 10);
        o.bucket = Some("fixed".into());
        let b = build_definition(&o).unwrap();
        let m = map_of(&b);
        let reader = m.item_reader.as_ref().unwrap().parameters.as_ref().unwrap();
        assert_eq!(reader["Bucket"], "fixed");
        assert!(!reader.contains_key("Bucket.$"));
        let writer = m
            .result_writer
            .as_ref()
            .unwrap()
            .parameters
            .as_ref()
            .unwrap();
        assert_eq!(writer["Bucket"], "fixed");
    }

    /// Both Map states by field: the inline one reads `$.batches` with a concurrency of all
    /// its batches; the distributed one reads the manifest, writes results and tolerates
    /// the requested share of failed items.
    #[test]
    fn map_states_by_field() {
        let b = build_definition(&opts(60, 10)).unwrap();
        assert_eq!(b.mode, ProcessorMode::Inline);
        let m = map_of(&b);
        assert_eq!(m.items_path.as_deref(), Some("$.batches"));
        assert_eq!(m.max_concurrency, Some(6));
        assert_eq!(m.end, Some(true));
        assert!(
            m.comment
                .as_deref()
                .unwrap()
                .contains("6 pre-packed batches")
        );
        assert_eq!(m.item_processor.start_at, TASK_STATE);
        assert!(m.item_reader.is_none() && m.result_writer.is_none());

        let mut o = opts(1000, 10);
        o.tolerated_failure_percentage = 7;
        let b = build_definition(&o).unwrap();
        let m = map_of(&b);
        assert_eq!(m.max_concurrency, Some(100));
        assert_eq!(m.tolerated_failure_percentage, Some(7));
        assert_eq!(m.end, Some(true));
        assert_eq!(m.item_reader.as_ref().unwrap().resource, S3_GET_OBJECT);
        assert_eq!(m.result_writer.as_ref().unwrap().resource, S3_PUT_OBJECT);
        assert_eq!(m.item_processor.start_at, TASK_STATE);
    }

    /// MaxConcurrency 0 means "all at once": an inline Map of more than 40 batches warns
    /// with the batch count as the request; of 40 or fewer it does not.
    #[test]
    fn inline_unbounded_concurrency_warns_only_above_forty() {
        let mut o = opts(50, 1);
        o.mode = ModeRequest::Inline;
        o.shape.task_bytes = 10;
        o.max_concurrency = Some(0);
        let b = build_definition(&o).unwrap();
        assert!(b.warnings.contains(&BuildWarning::InlineConcurrencyCapped {
            requested: 50,
            batches: 50
        }));
        let mut o = opts(40, 1);
        o.mode = ModeRequest::Inline;
        o.shape.task_bytes = 10;
        o.max_concurrency = Some(0);
        let b = build_definition(&o).unwrap();
        assert!(
            !b.warnings
                .iter()
                .any(|w| matches!(w, BuildWarning::InlineConcurrencyCapped { .. })),
            "{:?}",
            b.warnings
        );
    }
}
