//! The wire contract between the orchestrator, Step Functions and the packed runtime.
//!
//! Everything here depends on `serde` only, so the orchestrator (and any script
//! author reading the JSON) can rely on it without pulling in the executor.
//!
//! A batch arrives in one of three shapes, because that is what real callers send:
//!
//! 1. Step Functions Distributed Map with `ItemBatcher`: `{"Items": [...], "BatchInput": {...}}`;
//! 2. the same with the `BatchInput` fields merged at the top level next to `Items`;
//! 3. a direct invoke: `{"run_id": ..., "tasks": [...], ...}`.
//!
//! [`Batch::from_value`] normalises all three; [`Batch`] serialises as shape 3.
//!
//! A task runs one of three actions: a subprocess (`exec`), an in-process
//! built-in (`builtin`), or a packed Python/Node Lambda handler called on an
//! `event` ([`HandlerTask`]; the handler comes from the task, else the batch's
//! `handler`, else the function's `_HANDLER`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of [`BatchResult`]; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Default upper bound on the number of tasks in one batch (the packing degree k).
pub const DEFAULT_MAX_TASKS: usize = 1024;

/// Bound on the captured tail of each task's stdout and stderr.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// The Lambda Runtime API's header names (lower case, as HTTP/1 header maps store them):
/// the runtime reads them, the local platform writes them, tests check them.
/// Names shared by the Azure Functions custom handler (`bootstrap`) and the app that
/// `orchestrator package --target azure` writes (its `function.json` bindings).
pub mod azure {
    /// The port the Functions host gives its custom handler.
    pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    /// Overrides [`DEFAULT_FUNCTION`] in the handler.
    pub const FUNCTION_ENV: &str = "PROPACK_AZURE_FUNCTION";
    /// The HTTP-triggered function's name (its folder), by default.
    pub const DEFAULT_FUNCTION: &str = "propack";
    /// Suffix of the queue-triggered function's name.
    pub const QUEUE_SUFFIX: &str = "-queue";
    /// The trigger binding whose `Data` entry carries the batch.
    pub const TRIGGER_BINDING: &str = "batch";
    /// The queue function's output binding that receives the result.
    pub const RESULT_BINDING: &str = "result";
    /// The HTTP output binding of an HTTP trigger.
    pub const HTTP_OUT_BINDING: &str = "res";
}

pub mod headers {
    /// Request id of the invocation (`GET …/invocation/next` response).
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    /// Deadline of the invocation, Unix epoch milliseconds.
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    /// ARN the function was invoked by.
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    /// Error type of a posted error (`…/error`, `…/init/error`).
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// A malformed batch: always names the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContractError {
    /// The payload is not a JSON object.
    #[error("batch payload must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Neither `Items` nor `tasks` is present.
    #[error(
        "batch has no task list: expected field `Items` (Step Functions) or `tasks` (direct invoke)"
    )]
    MissingTasks,
    /// The task list is present but empty.
    #[error("field `{0}` is empty: a batch needs at least one task")]
    EmptyTasks(&'static str),
    /// Two tasks share an id.
    #[error("field `{field}[{index}].id`: duplicate task id {id:?}")]
    DuplicateId {
        /// `Items` or `tasks`.
        field: &'static str,
        /// Position of the second occurrence.
        index: usize,
        /// The repeated id.
        id: String,
    },
    /// More tasks than the configured maximum.
    #[error(
        "field `{field}` has {count} tasks, above the configured maximum of {max} (PROPACK_MAX_TASKS)"
    )]
    TooManyTasks {
        /// `Items` or `tasks`.
        field: &'static str,
        /// Tasks in the batch.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A field has the wrong type or an invalid value.
    #[error("field `{field}`: {message}")]
    InvalidField {
        /// JSON path of the field, e.g. `tasks[3].exec.args`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// How to parse a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Largest accepted packing degree.
    pub max_tasks: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_tasks: DEFAULT_MAX_TASKS,
        }
    }
}

/// One packed batch of k tasks, as executed by one function instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The run this batch belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Position or name of this batch within the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Where outputs of this run go (URI prefix), for tasks that do not name their outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    /// Worker count override for this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// Handler for the batch's `event` tasks that name none themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerRef>,
    /// Upper bound on the serialised (compact JSON) [`BatchResult`], in bytes: the runtime
    /// shortens output tails (then larger fields) to fit, see [`crate::budget`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    /// URI prefix (`s3://` or `file://`) under which each task's full stdout and stderr are
    /// written, as `<prefix>/<run_id>/<task_id>.stdout|.stderr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_prefix: Option<String>,
    /// The k tasks.
    pub tasks: Vec<Task>,
}

/// Fields the orchestrator passes to every batch of a run (Step Functions `BatchInput`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchInput {
    /// The run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Batch name, if the caller assigns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Output URI prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    /// Worker count override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// Default handler for `event` tasks that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerRef>,
    /// Byte budget of the batch result ([`Batch::max_result_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    /// Where full task logs go ([`Batch::logs_prefix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_prefix: Option<String>,
}

/// One task: an id, what to run, and the objects it reads and writes.
///
/// On the wire the action is one of the keys `exec`, `builtin` or `event` next to `id`
/// (`{"id": "t1", "exec": {...}}`); in Rust it is the [`TaskAction`] enum, so
/// "exactly one action" holds by construction instead of being checked at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskWire", into = "TaskWire")]
pub struct Task {
    /// Unique within the batch (and, by the orchestrator's convention, within the run).
    pub id: String,
    /// What the task runs.
    pub action: TaskAction,
    /// Per-task timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// File name in the task's scratch directory → URI fetched before the task starts.
    pub inputs: BTreeMap<String, String>,
    /// File name in the task's scratch directory → URI uploaded after the task succeeds.
    pub outputs: BTreeMap<String, String>,
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    /// A subprocess (`"exec": {...}`).
    Exec(ExecSpec),
    /// An in-process built-in (`"builtin": {...}`).
    Builtin(BuiltinSpec),
    /// A Python or Node handler called on an event (`"event": ..., "handler": {...}`).
    Handler(HandlerTask),
}

/// A handler task: call a Lambda-style handler with `event` (and a Lambda-like `context`).
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerTask {
    /// The event, any JSON value (`null` included).
    pub event: Value,
    /// The handler; None = the batch's, else the function's `_HANDLER`.
    pub handler: Option<HandlerRef>,
}

/// The language of a packed handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerRuntime {
    /// CPython 3 (`"python3"`).
    Python3,
    /// Node.js (`"node"`).
    Node,
}

impl HandlerRuntime {
    /// The wire name: `python3` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerRuntime::Python3 => "python3",
            HandlerRuntime::Node => "node",
        }
    }

    /// The exact wire name (`python3`, `node`).
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "python3" => Some(HandlerRuntime::Python3),
            "node" => Some(HandlerRuntime::Node),
            _ => None,
        }
    }

    /// The language of a Lambda runtime identifier, as found in `PROPACK_HANDLER_RUNTIME`
    /// or `AWS_EXECUTION_ENV`: `python3`, `python3.13`, `AWS_Lambda_python3.13` → Python;
    /// `node`, `nodejs22.x`, `AWS_Lambda_nodejs22.x` → Node; anything else → None.
    pub fn from_runtime_id(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("AWS_Lambda_").unwrap_or(s);
        if s == "python" || s.starts_with("python3") {
            Some(HandlerRuntime::Python3)
        } else if s == "node" || s.starts_with("nodejs") {
            Some(HandlerRuntime::Node)
        } else {
            None
        }
    }
}

impl std::fmt::Display for HandlerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which handler to call: `{"runtime": "python3" | "node", "name": "module.function"}`.
///
/// `name` is Lambda's Handler setting: the module path relative to the task root
/// (`app`, `src/app`, `pkg.mod` for Python) and the exported function, joined by a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "HandlerRefWire", into = "HandlerRefWire")]
pub struct HandlerRef {
    /// The language.
    pub runtime: HandlerRuntime,
    /// `module.function`.
    pub name: String,
}

/// The JSON shape of a [`HandlerRef`], checked by [`HandlerRef::from_wire`] so errors name the field.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HandlerRefWire {
    runtime: String,
    name: String,
}

impl HandlerRef {
    /// A handler reference, with the name checked.
    pub fn new(runtime: HandlerRuntime, name: impl Into<String>) -> Result<Self, ContractError> {
        let name = name.into();
        check_handler_name(&name).map_err(|m| invalid_at("", "handler.name", &m))?;
        Ok(Self { runtime, name })
    }

    /// Checks a wire handler; `path` names the handler object in errors (e.g. `tasks[2].handler`).
    fn from_wire(w: HandlerRefWire, path: &str) -> Result<Self, ContractError> {
        let runtime = HandlerRuntime::from_wire(&w.runtime).ok_or_else(|| {
            invalid_at(
                path,
                "runtime",
                &format!(
                    "unknown runtime {:?}: expected \"python3\" or \"node\"",
                    w.runtime
                ),
            )
        })?;
        check_handler_name(&w.name).map_err(|m| invalid_at(path, "name", &m))?;
        Ok(Self {
            runtime,
            name: w.name,
        })
    }

    /// Parses a JSON handler object; `path` names it in errors.
    fn from_value_at(v: &Value, path: &str) -> Result<Self, ContractError> {
        let obj = expect_object(v, path)?;
        for key in ["runtime", "name"] {
            if let Some(x) = obj.get(key) {
                expect_string(x, &format!("{path}.{key}"))?;
            }
        }
        let w: HandlerRefWire =
            serde_json::from_value(v.clone()).map_err(|e| field_error(path.to_owned(), e))?;
        Self::from_wire(w, path)
    }
}

/// Checks a Lambda Handler setting: `module.function`, both parts non-empty, no whitespace.
pub fn check_handler_name(name: &str) -> Result<(), String> {
    let ok = name.rsplit_once('.').is_some_and(|(module, func)| {
        !module.is_empty() && !func.is_empty() && !module.ends_with('/') && !module.starts_with('.')
    }) && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected module.function (e.g. \"app.handler\"), got {name:?}"
        ))
    }
}

impl TryFrom<HandlerRefWire> for HandlerRef {
    type Error = ContractError;
    fn try_from(w: HandlerRefWire) -> Result<Self, Self::Error> {
        Self::from_wire(w, "handler")
    }
}

impl From<HandlerRef> for HandlerRefWire {
    fn from(h: HandlerRef) -> Self {
        HandlerRefWire {
            runtime: h.runtime.as_str().to_owned(),
            name: h.name,
        }
    }
}

/// An executable task: direct exec of `program` with `args` (never through a shell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The program: an absolute path, or a name or relative path (`tool`, `bin/tool`) looked
    /// up in the task root (`LAMBDA_TASK_ROOT`), then `/opt/bin`, then `PATH`.
    pub program: String,
    /// The argv after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// A built-in workload task, run in-process on the rayon pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinSpec {
    /// Workload name: `sort`, `statelesscost`, `video`, or a test workload.
    pub name: String,
    /// Workload parameters, validated by the workload.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
}

/// `field` of the task at `path` (empty for a lone task) is invalid.
fn invalid_at(path: &str, field: &str, message: &str) -> ContractError {
    ContractError::InvalidField {
        field: if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        },
        message: message.to_owned(),
    }
}

/// The JSON shape of a [`Task`]: the action as optional sibling keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskWire {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<ExecSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    builtin: Option<BuiltinSpec>,
    /// `Some(Value::Null)` for `"event": null`, None when absent.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    event: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handler: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    outputs: BTreeMap<String, String>,
}

/// A present field, `null` included (serde's `Option` would read `null` as absent).
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl TaskWire {
    /// The typed task, with every invariant checked; `path` names the task in errors.
    fn into_task(self, path: &str) -> Result<Task, ContractError> {
        let invalid = |field: &str, message: &str| invalid_at(path, field, message);
        let given: Vec<&str> = [
            ("exec", self.exec.is_some()),
            ("builtin", self.builtin.is_some()),
            ("event", self.event.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect();
        if given.len() > 1 {
            return Err(invalid(
                given[1],
                &format!(
                    "a task has exactly one of `exec`, `builtin` or `event`, this one has `{}`",
                    given.join("` and `")
                ),
            ));
        }
        if self.handler.is_some() && self.event.is_none() {
            return Err(invalid(
                "handler",
                "only a task with an `event` runs a handler",
            ));
        }
        let handler_path = if path.is_empty() {
            "handler".to_owned()
        } else {
            format!("{path}.handler")
        };
        let action = match (self.exec, self.builtin, self.event) {
            (Some(e), _, _) => TaskAction::Exec(e),
            (_, Some(b), _) => TaskAction::Builtin(b),
            (_, _, Some(event)) => TaskAction::Handler(HandlerTask {
                event,
                handler: self
                    .handler
                    .as_ref()
                    .map(|h| HandlerRef::from_value_at(h, &handler_path))
                    .transpose()?,
            }),
            (None, None, None) => {
                return Err(invalid(
                    "exec",
                    "missing: a task needs `exec` {program, args, env}, `builtin` {name, params} \
                     or `event` (any JSON, for a handler)",
                ));
            }
        };
        let task = Task {
            id: self.id,
            action,
            timeout_ms: self.timeout_ms,
            inputs: self.inputs,
            outputs: self.outputs,
        };
        task.validate(path)?;
        Ok(task)
    }
}

impl TryFrom<TaskWire> for Task {
    type Error = ContractError;
    fn try_from(w: TaskWire) -> Result<Self, Self::Error> {
        w.into_task("")
    }
}

impl From<Task> for TaskWire {
    fn from(t: Task) -> Self {
        let (exec, builtin, event, handler) = match t.action {
            TaskAction::Exec(e) => (Some(e), None, None, None),
            TaskAction::Builtin(b) => (None, Some(b), None, None),
            TaskAction::Handler(h) => (
                None,
                None,
                Some(h.event),
                h.handler.map(|h| {
                    serde_json::to_value(HandlerRefWire::from(h))
                        .expect("a handler reference always serialises")
                }),
            ),
        };
        TaskWire {
            id: t.id,
            exec,
            builtin,
            event,
            handler,
            timeout_ms: t.timeout_ms,
            inputs: t.inputs,
            outputs: t.outputs,
        }
    }
}

impl Task {
    /// A task with no timeout, inputs or outputs.
    pub fn new(id: impl Into<String>, action: TaskAction) -> Self {
        Self {
            id: id.into(),
            action,
            timeout_ms: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// The built-in spec, if this is a built-in task.
    pub fn builtin(&self) -> Option<&BuiltinSpec> {
        match &self.action {
            TaskAction::Builtin(b) => Some(b),
            _ => None,
        }
    }

    /// The exec spec, if this is an executable task.
    pub fn exec(&self) -> Option<&ExecSpec> {
        match &self.action {
            TaskAction::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// The handler task, if this task calls a handler on an event.
    pub fn handler(&self) -> Option<&HandlerTask> {
        match &self.action {
            TaskAction::Handler(h) => Some(h),
            _ => None,
        }
    }

    /// Checks the invariants serde cannot express; `path` names the task in errors.
    pub fn validate(&self, path: &str) -> Result<(), ContractError> {
        let invalid = |field: &str, message: &str| invalid_at(path, field, message);
        if self.id.is_empty() {
            return Err(invalid("id", "must be a non-empty string"));
        }
        match &self.action {
            TaskAction::Exec(e) if e.program.is_empty() => {
                return Err(invalid("exec.program", "must be a non-empty string"));
            }
            TaskAction::Builtin(b) if b.name.is_empty() => {
                return Err(invalid("builtin.name", "must be a non-empty string"));
            }
            TaskAction::Handler(HandlerTask {
                handler: Some(h), ..
            }) => {
                check_handler_name(&h.name).map_err(|m| invalid("handler.name", &m))?;
            }
            _ => {}
        }
        if self.timeout_ms == Some(0) {
            return Err(invalid("timeout_ms", "must be positive"));
        }
        for (kind, map) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (name, uri) in map {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(invalid(
                        kind,
                        &format!("{name:?} must be a plain file name in the scratch directory"),
                    ));
                }
                if let Err(e) = crate::uri::ObjectUri::parse(uri) {
                    return Err(invalid(&format!("{kind}.{name}"), &e.to_string()));
                }
            }
        }
        Ok(())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_error(field: impl Into<String>, e: serde_json::Error) -> ContractError {
    ContractError::InvalidField {
        field: field.into(),
        message: e.to_string(),
    }
}

fn wrong_type(field: &str, want: &str, got: &Value) -> ContractError {
    ContractError::InvalidField {
        field: field.to_owned(),
        message: format!("must be {want}, got {}", type_name(got)),
    }
}

fn expect_object<'a>(
    v: &'a Value,
    field: &str,
) -> Result<&'a serde_json::Map<String, Value>, ContractError> {
    v.as_object()
        .ok_or_else(|| wrong_type(field, "an object", v))
}

fn expect_string(v: &Value, field: &str) -> Result<(), ContractError> {
    if v.is_string() {
        Ok(())
    } else {
        Err(wrong_type(field, "a string", v))
    }
}

/// An object whose values are all strings (`env`, `inputs`, `outputs`).
fn expect_string_map(v: &Value, field: &str) -> Result<(), ContractError> {
    for (k, x) in expect_object(v, field)? {
        expect_string(x, &format!("{field}.{k}"))?;
    }
    Ok(())
}

/// Checks the types of a task's fields one by one before serde reads the whole task, so
/// that a wrong type names its field (`tasks[2].exec.args[0]`), not just the task, and
/// no error names a Rust type.
fn check_task_fields(raw: &Value, path: &str) -> Result<(), ContractError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| wrong_type(path, "a task object", raw))?;
    for (name, v) in obj {
        let field = format!("{path}.{name}");
        match name.as_str() {
            "id" => expect_string(v, &field)?,
            "timeout_ms" if !v.is_null() && v.as_u64().is_none() => {
                return Err(wrong_type(
                    &field,
                    "a non-negative integer (milliseconds)",
                    v,
                ));
            }
            "inputs" | "outputs" => expect_string_map(v, &field)?,
            "exec" => {
                let exec = expect_object(v, &field)?;
                if let Some(p) = exec.get("program") {
                    expect_string(p, &format!("{field}.program"))?;
                }
                if let Some(args) = exec.get("args") {
                    let at = format!("{field}.args");
                    let list = args
                        .as_array()
                        .ok_or_else(|| wrong_type(&at, "an array of strings", args))?;
                    for (i, a) in list.iter().enumerate() {
                        expect_string(a, &format!("{at}[{i}]"))?;
                    }
                }
                if let Some(env) = exec.get("env") {
                    expect_string_map(env, &format!("{field}.env"))?;
                }
            }
            "builtin" => {
                let b = expect_object(v, &field)?;
                if let Some(n) = b.get("name") {
                    expect_string(n, &format!("{field}.name"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the types of the [`BatchInput`] fields present in `obj` (`handler` is checked apart).
fn check_input_fields(
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
) -> Result<(), ContractError> {
    for (name, v) in obj {
        let r = match name.as_str() {
            "run_id" | "batch_id" | "output_prefix" | "logs_prefix" => {
                serde_json::from_value::<Option<String>>(v.clone()).map(drop)
            }
            "parallelism" => serde_json::from_value::<Option<usize>>(v.clone()).map(drop),
            "max_result_bytes" => serde_json::from_value::<Option<u64>>(v.clone()).map(drop),
            _ => Ok(()),
        };
        r.map_err(|e| field_error(format!("{prefix}{name}"), e))?;
    }
    Ok(())
}

impl Batch {
    /// Parses a JSON payload in any of the three accepted shapes.
    pub fn from_value(value: &Value, opts: &ParseOptions) -> Result<Self, ContractError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ContractError::NotAnObject(type_name(value)))?;
        let (field, list) = if let Some(items) = obj.get("Items") {
            ("Items", items)
        } else if let Some(tasks) = obj.get("tasks") {
            ("tasks", tasks)
        } else {
            return Err(ContractError::MissingTasks);
        };
        let list = list.as_array().ok_or_else(|| ContractError::InvalidField {
            field: field.to_owned(),
            message: format!("must be an array of tasks, got {}", type_name(list)),
        })?;
        if list.is_empty() {
            return Err(ContractError::EmptyTasks(field));
        }
        if list.len() > opts.max_tasks {
            return Err(ContractError::TooManyTasks {
                field,
                count: list.len(),
                max: opts.max_tasks,
            });
        }

        // Checked before serde sees them, so errors name the field.
        if let Some(h) = obj.get("handler") {
            HandlerRef::from_value_at(h, "handler")?;
        }
        if let Some(h) = obj.get("BatchInput").and_then(|bi| bi.get("handler")) {
            HandlerRef::from_value_at(h, "BatchInput.handler")?;
        }

        // Typed run-wide fields are checked one by one first, so a wrong type names its field.
        check_input_fields(obj, "")?;
        if let Some(Value::Object(bi)) = obj.get("BatchInput") {
            check_input_fields(bi, "BatchInput.")?;
        }

        // Shape 1 nests the run-wide fields under BatchInput; shapes 2 and 3 carry
        // them at the top level. Nested values win over top-level ones.
        let mut input: BatchInput = serde_json::from_value(Value::Object(obj.clone()))
            .map_err(|e| field_error("(top level)", e))?;
        if let Some(bi) = obj.get("BatchInput") {
            if !bi.is_object() {
                return Err(ContractError::InvalidField {
                    field: "BatchInput".into(),
                    message: format!("must be an object, got {}", type_name(bi)),
                });
            }
            let nested: BatchInput =
                serde_json::from_value(bi.clone()).map_err(|e| field_error("BatchInput", e))?;
            input.run_id = nested.run_id.or(input.run_id);
            input.batch_id = nested.batch_id.or(input.batch_id);
            input.output_prefix = nested.output_prefix.or(input.output_prefix);
            input.parallelism = nested.parallelism.or(input.parallelism);
            input.handler = nested.handler.or(input.handler);
            input.max_result_bytes = nested.max_result_bytes.or(input.max_result_bytes);
            input.logs_prefix = nested.logs_prefix.or(input.logs_prefix);
        }
        // A merged value is named where it came from (nested values win).
        let origin = |name: &str| {
            if obj
                .get("BatchInput")
                .and_then(|bi| bi.get(name))
                .is_some_and(|v| !v.is_null())
            {
                format!("BatchInput.{name}")
            } else {
                name.to_owned()
            }
        };
        if input.parallelism == Some(0) {
            return Err(ContractError::InvalidField {
                field: origin("parallelism"),
                message: "must be at least 1".into(),
            });
        }
        if input.max_result_bytes == Some(0) {
            return Err(ContractError::InvalidField {
                field: origin("max_result_bytes"),
                message: "must be positive".into(),
            });
        }
        if let Some(prefix) = &input.logs_prefix
            && let Err(e) = crate::uri::ObjectUri::parse(prefix)
        {
            return Err(ContractError::InvalidField {
                field: origin("logs_prefix"),
                message: e.to_string(),
            });
        }

        let mut tasks = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for (index, raw) in list.iter().enumerate() {
            let path = format!("{field}[{index}]");
            check_task_fields(raw, &path)?;
            let wire: TaskWire =
                serde_json::from_value(raw.clone()).map_err(|e| field_error(path.clone(), e))?;
            let task = wire.into_task(&path)?;
            if !seen.insert(task.id.clone()) {
                return Err(ContractError::DuplicateId {
                    field,
                    index,
                    id: task.id,
                });
            }
            tasks.push(task);
        }
        Ok(Batch {
            run_id: input.run_id,
            batch_id: input.batch_id,
            output_prefix: input.output_prefix,
            parallelism: input.parallelism,
            handler: input.handler,
            max_result_bytes: input.max_result_bytes,
            logs_prefix: input.logs_prefix,
            tasks,
        })
    }

    /// Parses a JSON payload from bytes.
    pub fn from_slice(bytes: &[u8], opts: &ParseOptions) -> Result<Self, ContractError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| field_error("(payload)", e))?;
        Self::from_value(&value, opts)
    }

    /// The direct-invoke form (shape 3) of this batch.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a batch always serialises")
    }
}

/// Outcome of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Exit code 0 (or a built-in returned Ok) and every output uploaded.
    Succeeded,
    /// Non-zero exit, signal, panic, bad input, or a failed transfer.
    Failed,
    /// Killed at its own timeout or at the invocation deadline.
    TimedOut,
    /// Never started, because the deadline came first.
    NotRun,
}

/// The result of one task within a [`BatchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task's id.
    pub id: String,
    /// Outcome.
    pub status: TaskStatus,
    /// Exit code of a subprocess (None for built-ins, signals and tasks not run).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal that ended a subprocess, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Unix epoch milliseconds.
    #[serde(default)]
    pub started_at: Option<u64>,
    /// Unix epoch milliseconds.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// User + system CPU time.
    #[serde(default)]
    pub cpu_ms: Option<u64>,
    /// Peak resident set size.
    #[serde(default)]
    pub max_rss_kb: Option<u64>,
    /// Last ≤ 4 KiB of stdout (lossy UTF-8).
    #[serde(default)]
    pub stdout_tail: String,
    /// Last ≤ 4 KiB of stderr (lossy UTF-8).
    #[serde(default)]
    pub stderr_tail: String,
    /// Why the task did not succeed (for a handler task, Lambda's `errorMessage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lambda's `errorType` for a failed handler task (`ValueError`, `Runtime.ImportModuleError`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Lambda's `stackTrace` for a failed handler task, one entry per frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
    /// A handler task's return value; omitted when null.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
    /// Output URIs written, by file name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Built-in workloads may report a small JSON summary (e.g. record counts).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub summary: Value,
    /// True when the result budget ([`Batch::max_result_bytes`]) shortened this record
    /// (tails, `output`, `summary`, `stack_trace` or `error`); omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Where the task's full stdout was written (with [`Batch::logs_prefix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_uri: Option<String>,
    /// Where the task's full stderr was written (with [`Batch::logs_prefix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_uri: Option<String>,
    /// Why the full logs could not be written (the task's status does not depend on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_error: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl TaskResult {
    /// A result for a task that never started.
    pub fn not_run(id: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status: TaskStatus::NotRun,
            exit_code: None,
            signal: None,
            started_at: None,
            ended_at: None,
            cpu_ms: None,
            max_rss_kb: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            error: Some(why.into()),
            error_type: None,
            stack_trace: None,
            output: Value::Null,
            outputs: BTreeMap::new(),
            summary: Value::Null,
            truncated: false,
            stdout_uri: None,
            stderr_uri: None,
            logs_error: None,
        }
    }
}

/// What one invocation returns: one [`TaskResult`] per task, plus instance facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id from the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The batch id from the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Stable for the life of the process, so warm reuse is visible.
    pub instance_id: String,
    /// First invocation handled by this process.
    pub cold_start: bool,
    /// Milliseconds from process start until it was ready for its first event.
    pub init_ms: u64,
    /// Unix epoch ms when the invocation was received.
    pub received_at: u64,
    /// Unix epoch ms when the first task started (or the batch was set up).
    pub started_at: u64,
    /// Unix epoch ms when the last task ended.
    pub ended_at: u64,
    /// vCPUs this process may use.
    pub vcpus: usize,
    /// Worker count used for this batch.
    pub parallelism: usize,
    /// Memory configured for the function, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Lambda request id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// True when the result budget shortened at least one task record; omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// One result per task, in batch order.
    pub tasks: Vec<TaskResult>,
}

impl BatchResult {
    /// Tasks with the given status.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }
}

/// A batch-level failure, shaped like Lambda's own error payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// E.g. `InvalidBatch`, `Runtime.InitError`.
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// Human-readable message.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

impl ErrorPayload {
    /// Builds an error payload.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

impl From<&ContractError> for ErrorPayload {
    fn from(e: &ContractError) -> Self {
        ErrorPayload::new("InvalidBatch", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Batch, ContractError> {
        Batch::from_value(&v, &ParseOptions::default())
    }

    fn exec_task(id: &str) -> Value {
        json!({"id": id, "exec": {"program": "/bin/true", "args": []}})
    }

    #[test]
    fn shape_item_batcher_nested() {
        let b = parse(json!({
            "Items": [exec_task("a"), {"id": "b", "builtin": {"name": "sort", "params": {"format": "text"}}}],
            "BatchInput": {"run_id": "r1", "output_prefix": "file:///tmp/out/", "parallelism": 3}
        }))
        .unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r1"));
        assert_eq!(b.output_prefix.as_deref(), Some("file:///tmp/out/"));
        assert_eq!(b.parallelism, Some(3));
        assert_eq!(b.tasks.len(), 2);
        assert!(matches!(&b.tasks[1].action, TaskAction::Builtin(s) if s.name == "sort"));
    }

    /// `bootstrap bench` sets `max_tasks` to the batch's own size, so exactly `max_tasks`
    /// tasks must parse; one more is refused, naming the field, count and limit.
    #[test]
    fn max_tasks_is_inclusive() {
        let four: Vec<Value> = (0..4).map(|i| exec_task(&format!("t{i}"))).collect();
        let opts = ParseOptions { max_tasks: 4 };
        assert_eq!(
            Batch::from_value(&json!({"tasks": four}), &opts)
                .unwrap()
                .tasks
                .len(),
            4
        );
        let five: Vec<Value> = (0..5).map(|i| exec_task(&format!("t{i}"))).collect();
        assert_eq!(
            Batch::from_value(&json!({"Items": five}), &opts).unwrap_err(),
            ContractError::TooManyTasks {
                field: "Items",
                count: 5,
                max: 4
            }
        );
    }

    /// The per-task checks serde cannot express, each naming the task and field.
    #[test]
    fn task_validation_names_the_field() {
        let err = |task: Value| parse(json!({"tasks": [task]})).unwrap_err().to_string();
        let e = err(json!({"id": "a", "exec": {"program": ""}}));
        assert!(e.contains("tasks[0].exec.program"), "{e}");
        let e = err(json!({"id": "a", "builtin": {"name": ""}}));
        assert!(e.contains("tasks[0].builtin.name"), "{e}");
        let e = err(
            json!({"id": "a", "event": {}, "handler": {"runtime": "python3", "name": "nodot"}}),
        );
        assert!(e.contains("tasks[0].handler.name"), "{e}");
        for name in ["", "a/b", ".", ".."] {
            let e =
                err(json!({"id": "a", "exec": {"program": "x"}, "inputs": {name: "file:///x"}}));
            assert!(e.contains("plain file name"), "{name:?}: {e}");
        }
        // Task::validate itself (public, for tasks built in code) checks a handler's name.
        let t = Task::new(
            "h",
            TaskAction::Handler(HandlerTask {
                event: Value::Null,
                handler: Some(HandlerRef {
                    runtime: HandlerRuntime::Python3,
                    name: "nodot".into(),
                }),
            }),
        );
        let e = t.validate("tasks[3]").unwrap_err().to_string();
        assert!(e.contains("tasks[3].handler.name"), "{e}");
        // Names that only look odd are fine.
        let b = parse(json!({"tasks": [{"id": "a", "exec": {"program": "x"},
            "inputs": {"..a": "file:///x", ".hidden": "file:///y"}}]}))
        .unwrap();
        assert_eq!(b.tasks[0].inputs.len(), 2);
    }

    /// Each kind of task answers only its own accessor.
    #[test]
    fn task_accessors_match_the_action() {
        let b = parse(json!({"tasks": [
            exec_task("e"),
            {"id": "b", "builtin": {"name": "noop"}},
            {"id": "h", "event": 1},
        ]}))
        .unwrap();
        let kinds = |t: &Task| {
            (
                t.exec().is_some(),
                t.builtin().is_some(),
                t.handler().is_some(),
            )
        };
        assert_eq!(kinds(&b.tasks[0]), (true, false, false));
        assert_eq!(kinds(&b.tasks[1]), (false, true, false));
        assert_eq!(kinds(&b.tasks[2]), (false, false, true));
        assert_eq!(b.tasks[0].exec().unwrap().program, "/bin/true");
        assert_eq!(b.tasks[1].builtin().unwrap().name, "noop");
    }

    /// BatchInput fields of the wrong type are refused before serde, naming the field.
    #[test]
    fn batch_input_field_types_are_checked_by_name() {
        let tasks = json!([exec_task("a")]);
        for (field, value) in [
            ("run_id", json!(5)),
            ("batch_id", json!([1])),
            ("output_prefix", json!(true)),
            ("logs_prefix", json!(1.5)),
            ("parallelism", json!("x")),
            ("max_result_bytes", json!(-1)),
        ] {
            let top = parse(json!({"tasks": tasks, field: value})).unwrap_err();
            assert!(
                matches!(&top, ContractError::InvalidField { field: f, .. } if f == field),
                "{field}: {top:?}"
            );
            let nested = parse(json!({"Items": tasks, "BatchInput": {field: value}})).unwrap_err();
            let want = format!("BatchInput.{field}");
            assert!(
                matches!(&nested, ContractError::InvalidField { field: f, .. } if *f == want),
                "{field}: {nested:?}"
            );
        }
    }

    /// `truncated` is written only when true; `count` counts one status.
    #[test]
    fn truncated_flags_and_status_counts() {
        let mut t = TaskResult::not_run("a", "why");
        assert!(serde_json::to_value(&t).unwrap().get("truncated").is_none());
        t.truncated = true;
        assert_eq!(serde_json::to_value(&t).unwrap()["truncated"], true);
        let mut ok = TaskResult::not_run("b", "");
        ok.status = TaskStatus::Succeeded;
        let mut r: BatchResult = serde_json::from_value(json!({
            "schema_version": SCHEMA_VERSION, "instance_id": "i", "cold_start": false,
            "init_ms": 0, "received_at": 0, "started_at": 0, "ended_at": 0, "vcpus": 1,
            "parallelism": 1, "tasks": []
        }))
        .unwrap();
        r.tasks = vec![t.clone(), ok.clone(), t];
        assert_eq!(r.count(TaskStatus::NotRun), 2);
        assert_eq!(r.count(TaskStatus::Succeeded), 1);
        assert_eq!(r.count(TaskStatus::Failed), 0);
        assert!(serde_json::to_value(&r).unwrap().get("truncated").is_none());
        r.truncated = true;
        assert_eq!(serde_json::to_value(&r).unwrap()["truncated"], true);
    }

    #[test]
    fn shape_item_batcher_merged() {
        let b = parse(json!({"Items": [exec_task("a")], "run_id": "r2", "extra": 1})).unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r2"));
    }

    #[test]
    fn shape_direct_invoke() {
        let b =
            parse(json!({"run_id": "r3", "tasks": [exec_task("x")], "unknown": {"a": 1}})).unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r3"));
        assert!(matches!(&b.tasks[0].action, TaskAction::Exec(e) if e.program == "/bin/true"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse(json!({"run_id": "r"})),
            Err(ContractError::MissingTasks)
        );
        assert_eq!(
            parse(json!({"tasks": []})),
            Err(ContractError::EmptyTasks("tasks"))
        );
        assert_eq!(
            parse(json!([1])),
            Err(ContractError::NotAnObject("an array"))
        );
        let dup = parse(json!({"Items": [exec_task("a"), exec_task("a")]})).unwrap_err();
        assert!(dup.to_string().contains("Items[1].id"), "{dup}");
        let many: Vec<Value> = (0..5).map(|i| exec_task(&format!("t{i}"))).collect();
        let err =
            Batch::from_value(&json!({"tasks": many}), &ParseOptions { max_tasks: 4 }).unwrap_err();
        assert!(err.to_string().contains("`tasks` has 5 tasks"), "{err}");
        let err = parse(json!({"tasks": [{"id": "a"}]})).unwrap_err();
        assert!(err.to_string().contains("tasks[0].exec"), "{err}");
        let err =
            parse(json!({"tasks": [{"id": "a", "exec": {"program": "/bin/sh", "args": "-c ls"}}]}))
                .unwrap_err();
        assert!(err.to_string().contains("tasks[0]"), "{err}");
        let err = parse(
            json!({"tasks": [{"id": "a", "exec": {"program": "x"}, "inputs": {"in": "http://x"}}]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tasks[0].inputs.in"), "{err}");
        let err = parse(
            json!({"tasks": [{"id": "a", "exec": {"program": "x"}, "outputs": {"out": "s3:///k"}}]}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tasks[0].outputs.out") && err.contains("the bucket name is empty"),
            "{err}"
        );
    }

    #[test]
    fn handler_tasks_and_batch_default() {
        let b = parse(json!({
            "Items": [
                {"id": "a", "event": {"n": 1}},
                {"id": "b", "event": null, "handler": {"runtime": "node", "name": "src/app.main"}},
            ],
            "BatchInput": {"handler": {"runtime": "python3", "name": "app.handler"}},
            "handler": {"runtime": "node", "name": "ignored.fn"}
        }))
        .unwrap();
        assert_eq!(
            b.handler,
            Some(HandlerRef {
                runtime: HandlerRuntime::Python3,
                name: "app.handler".into()
            })
        );
        assert_eq!(
            b.tasks[0].handler(),
            Some(&HandlerTask {
                event: json!({"n": 1}),
                handler: None
            })
        );
        // `"event": null` is an event, not a missing action.
        let t1 = b.tasks[1].handler().unwrap();
        assert_eq!(t1.event, Value::Null);
        assert_eq!(t1.handler.as_ref().unwrap().runtime, HandlerRuntime::Node);
        let v = b.to_value();
        assert_eq!(
            v["tasks"][1],
            json!({"id": "b", "event": null, "handler": {"runtime": "node", "name": "src/app.main"}})
        );
        assert_eq!(
            v["handler"],
            json!({"runtime": "python3", "name": "app.handler"})
        );
        assert_eq!(parse(v).unwrap(), b);
    }

    /// Found by `tests/batch_fuzz.rs`: a wrong type inside a task named only the task, and a
    /// task that was not an object named a Rust type (`expected struct TaskWire`).
    #[test]
    fn wrong_types_inside_a_task_name_the_field_not_the_task() {
        let err = |v: Value| parse(v).unwrap_err().to_string();
        let noop = json!({"id": "a", "builtin": {"name": "noop"}});
        assert_eq!(
            err(json!({"Items": [noop, null]})),
            "field `Items[1]`: must be a task object, got null"
        );
        assert_eq!(
            err(json!({"tasks": [{"id": 7, "builtin": {"name": "noop"}}]})),
            "field `tasks[0].id`: must be a string, got a number"
        );
        assert_eq!(
            err(
                json!({"tasks": [noop, {"id": "b", "exec": {"program": "/bin/true", "args": ["x", 1]}}]})
            ),
            "field `tasks[1].exec.args[1]`: must be a string, got a number"
        );
        assert_eq!(
            err(json!({"tasks": [{"id": "b", "builtin": {"name": "noop"}, "timeout_ms": "5s"}]})),
            "field `tasks[0].timeout_ms`: must be a non-negative integer (milliseconds), got a string"
        );
        assert_eq!(
            err(
                json!({"tasks": [{"id": "b", "builtin": {"name": "noop"}, "outputs": {"o": false}}]})
            ),
            "field `tasks[0].outputs.o`: must be a string, got a boolean"
        );
        assert_eq!(
            err(
                json!({"tasks": [{"id": "b", "event": 1, "handler": {"runtime": "node", "name": []}}]})
            ),
            "field `tasks[0].handler.name`: must be a string, got an array"
        );
        assert_eq!(
            err(json!({"tasks": [{"id": "b", "builtin": {"name": 3}}]})),
            "field `tasks[0].builtin.name`: must be a string, got a number"
        );
        // A timeout in whole milliseconds, or null for none, passes the field check.
        for timeout in [json!(5_000), Value::Null] {
            let b = parse(
                json!({"tasks": [{"id": "b", "builtin": {"name": "noop"}, "timeout_ms": timeout}]}),
            );
            assert!(b.is_ok(), "{timeout}: {b:?}");
        }
        assert_eq!(
            err(json!({"tasks": [noop], "BatchInput": {"logs_prefix": ""}})),
            "field `BatchInput.logs_prefix`: unsupported URI \"\": expected s3://bucket/key or file:///absolute/path"
        );
    }

    #[test]
    fn handler_errors_name_the_field() {
        let err = |v: Value| parse(v).unwrap_err().to_string();
        let ev = |id: &str| json!({"id": id, "event": {}});
        let e = err(json!({"tasks": [ev("a"), ev("b"),
            {"id": "c", "event": 1, "handler": {"runtime": "python3", "name": "app"}}]}));
        assert_eq!(
            e,
            "field `tasks[2].handler.name`: expected module.function (e.g. \"app.handler\"), got \"app\""
        );
        let e = err(
            json!({"tasks": [{"id": "c", "event": 1, "handler": {"runtime": "ruby", "name": "a.b"}}]}),
        );
        assert_eq!(
            e,
            "field `tasks[0].handler.runtime`: unknown runtime \"ruby\": expected \"python3\" or \"node\""
        );
        let e = err(json!({"tasks": [{"id": "c", "event": 1, "handler": {"name": "a.b"}}]}));
        assert!(
            e.starts_with("field `tasks[0].handler`: missing field `runtime`"),
            "{e}"
        );
        let e = err(json!({"tasks": [{"id": "c", "builtin": {"name": "noop"}, "event": 1}]}));
        assert_eq!(
            e,
            "field `tasks[0].event`: a task has exactly one of `exec`, `builtin` or `event`, this one has `builtin` and `event`"
        );
        let e = err(
            json!({"tasks": [{"id": "c", "exec": {"program": "x"}, "handler": {"runtime": "node", "name": "a.b"}}]}),
        );
        assert_eq!(
            e,
            "field `tasks[0].handler`: only a task with an `event` runs a handler"
        );
        let e = err(
            json!({"tasks": [ev("a")], "BatchInput": {"handler": {"runtime": "node", "name": ".x"}}}),
        );
        assert!(
            e.starts_with("field `BatchInput.handler.name`: expected module.function"),
            "{e}"
        );
        let e = err(json!({"tasks": [ev("a")], "handler": {"runtime": "py", "name": "a.b"}}));
        assert!(
            e.starts_with("field `handler.runtime`: unknown runtime \"py\""),
            "{e}"
        );
    }

    #[test]
    fn handler_names_and_runtime_ids() {
        for ok in [
            "app.handler",
            "src/app.main",
            "pkg.mod.fn",
            "app.obj.method",
        ] {
            assert_eq!(check_handler_name(ok), Ok(()), "{ok}");
        }
        for bad in ["app", "app.", ".fn", "dir/.fn", "a b.c", ""] {
            assert!(check_handler_name(bad).is_err(), "{bad}");
        }
        use HandlerRuntime::*;
        for (id, want) in [
            ("AWS_Lambda_python3.13", Some(Python3)),
            ("python3.12", Some(Python3)),
            ("python3", Some(Python3)),
            ("AWS_Lambda_nodejs22.x", Some(Node)),
            ("nodejs20.x", Some(Node)),
            ("node", Some(Node)),
            ("AWS_Lambda_java21", None),
            ("provided.al2023", None),
            ("", None),
        ] {
            assert_eq!(HandlerRuntime::from_runtime_id(id), want, "{id}");
        }
    }

    #[test]
    fn error_payload_mirrors_lambda() {
        let p = ErrorPayload::from(&ContractError::MissingTasks);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["errorType"], "InvalidBatch");
        assert!(v["errorMessage"].as_str().unwrap().contains("Items"));
    }
}
