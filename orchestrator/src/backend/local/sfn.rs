//! A Step Functions interpreter for the ASL subset ProPack generates: Task (lambda:invoke), Map (inline and distributed), Pass, Succeed, Fail.
//!
//! It runs the typed definition (`propack_step_functions::asl`) that the AWS
//! backend serialises at deployment, so exactly what would be deployed is what
//! runs locally. Fields outside that subset cannot be expressed (a JSON
//! definition using one fails to parse, naming it); what the subset expresses
//! but this interpreter does not run is refused up front by [`check_supported`]
//! with "not supported locally", never silently ignored.
//! S3 (`ItemReader`, `ResultWriter`) is a directory: `s3://B/K` is `<storage>/B/K`.
//! Of the intrinsic functions it runs `States.Format` (the definitions make each batch's
//! `logs_prefix` with it).
//!
//! It enforces the run-time limits that asl-validator cannot see: 256 KiB of state data
//! (execution and child inputs, state outputs, task inputs and results:
//! `States.DataLimitExceeded`), the 5-minute EXPRESS child limit (the child ends
//! `TIMED_OUT`), errors `States.ALL` does not catch (`States.Runtime`,
//! `States.DataLimitExceeded`), and `ToleratedFailurePercentage`/`Count` over items.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use propack_step_functions::asl::{
    Catcher, ExecutionType, InputType, JitterStrategy, MapState, PayloadTemplate, ProcessorMode,
    Retrier, State, StateMachine, TaskState,
};
use propack_step_functions::build::{LAMBDA_INVOKE, S3_GET_OBJECT, S3_PUT_OBJECT};
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use propack_step_functions::build::{EXPRESS_MAX_SECONDS, MAX_PAYLOAD_BYTES};

use super::lambda::{AtLimit, Invocation, InvokeError, InvokeStatus, LambdaPlatform, epoch_ms};
use crate::backend::{BackendError, Stop};
use crate::billing::OrchestrationUsage;

/// A Step Functions runtime error (`Error`, `Cause`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatesError {
    /// Error name, e.g. `States.TaskFailed`, `Runtime.ExitError`.
    pub error: String,
    /// Cause (often a JSON string).
    pub cause: String,
}

enum Fail {
    States(StatesError),
    Backend(BackendError),
}

impl From<BackendError> for Fail {
    fn from(e: BackendError) -> Self {
        Fail::Backend(e)
    }
}

/// The error of a child execution that ran out of time (status `TIMED_OUT`).
const TIMED_OUT_ERROR: &str = "States.Timeout";
/// How an item not started after a stop ends: never reported as a batch's end, so its
/// tasks count as not run (and `resume` runs them).
const NOT_STARTED_ERROR: &str = "ProPack.NotStarted";

fn states_err(error: &str, cause: impl Into<String>) -> Fail {
    Fail::States(StatesError {
        error: error.to_owned(),
        cause: cause.into(),
    })
}

fn unsupported(what: impl Into<String>) -> Fail {
    Fail::Backend(BackendError::Unsupported(what.into()))
}

type Flow<T> = Result<T, Fail>;

/// One attempt of one lambda:invoke Task, as the interpreter issued it.
#[derive(Debug, Clone)]
pub struct InvokeLog {
    /// Index of the Map item (batch) this attempt belongs to, if inside a Map.
    pub item: Option<usize>,
    /// 0 for the first attempt, +1 per retry.
    pub attempt: u32,
    /// What the platform saw.
    pub invocation: Invocation,
}

/// A finished Map item, reported as it happens (for progress bars).
#[derive(Debug, Clone)]
pub struct ItemDone<'a> {
    /// Item index.
    pub index: usize,
    /// The item's input (for ProPack: the batch).
    pub input: &'a Value,
    /// The item's output, or its error when the child execution failed.
    pub output: Result<&'a Value, &'a StatesError>,
}

/// Callback for finished Map items.
pub type ItemCallback = Arc<dyn Fn(ItemDone<'_>) + Send + Sync>;

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Execution {
    /// `Ok(output)` when it succeeded, else the error that failed it.
    pub result: Result<Value, StatesError>,
    /// Every lambda:invoke attempt.
    pub invocations: Vec<InvokeLog>,
    /// What Step Functions would bill, counted as it ran: STANDARD transitions (states
    /// entered in the parent, inline iterations and STANDARD children, retries included,
    /// one per child a Distributed Map starts) and EXPRESS children with their durations.
    pub usage: OrchestrationUsage,
}

/// Interprets definitions against a [`LambdaPlatform`].
#[derive(Clone)]
pub struct Interpreter {
    inner: Arc<InterpInner>,
}

struct InterpInner {
    platform: LambdaPlatform,
    storage: PathBuf,
    log: Mutex<Vec<InvokeLog>>,
    usage: Mutex<OrchestrationUsage>,
    on_item: Option<ItemCallback>,
    map_runs: AtomicU64,
    /// How long an EXPRESS child may run, milliseconds (300 s; tests scale it down).
    express_limit_ms: AtomicU64,
    /// Once requested, Map items not yet started are left unrun (see [`Interpreter::set_stop`]).
    stop: Mutex<Stop>,
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter")
            .field("storage", &self.inner.storage)
            .finish()
    }
}

#[derive(Clone)]
struct Ctx {
    execution: Value,
    item: Option<usize>,
    map_item: Option<Value>,
    /// Inside an EXPRESS child, whose states are billed by duration, not per transition.
    express: bool,
}

/// What the typed subset can express but this interpreter does not run, as one error:
/// integrations other than Lambda, item sources other than one JSON object in S3, and
/// state names that lead nowhere. (Fields outside the subset never parse: see [`parse`].)
pub fn check_supported(machine: &StateMachine) -> Result<(), BackendError> {
    check_states(&machine.start_at, &machine.states, "the state machine")
}

fn check_states(
    start: &str,
    states: &BTreeMap<String, State>,
    at: &str,
) -> Result<(), BackendError> {
    let refuse = |what: String| Err(BackendError::Unsupported(what));
    if !states.contains_key(start) {
        return refuse(format!("{at}: StartAt {start:?} names no state"));
    }
    for (name, s) in states {
        let at = format!("state {name:?}");
        match s {
            State::Task(t) => {
                let r = t.resource.as_str();
                if !(r == LAMBDA_INVOKE || r.contains(":lambda:") && r.contains(":function:")) {
                    return refuse(format!(
                        "Resource {r:?} of {at} (only {LAMBDA_INVOKE} and Lambda function ARNs)"
                    ));
                }
            }
            State::Map(m) => {
                let p = &m.item_processor;
                check_states(
                    &p.start_at,
                    &p.states,
                    &format!("the ItemProcessor of {at}"),
                )?;
                if let Some(r) = &m.item_reader {
                    if r.resource != S3_GET_OBJECT {
                        return refuse(format!("ItemReader resource {:?} of {at}", r.resource));
                    }
                    let input_type = r
                        .reader_config
                        .as_ref()
                        .map_or(InputType::Json, |c| c.input_type);
                    if input_type != InputType::Json {
                        return refuse(format!(
                            "ItemReader InputType {input_type:?} of {at} (only JSON)"
                        ));
                    }
                }
                if let Some(w) = &m.result_writer
                    && w.resource != S3_PUT_OBJECT
                {
                    return refuse(format!("ResultWriter resource {:?} of {at}", w.resource));
                }
            }
            State::Pass(_) | State::Succeed(_) | State::Fail(_) => {}
        }
        let targets = s
            .next()
            .into_iter()
            .chain(s.catchers().iter().map(|c| c.next.as_str()));
        for n in targets {
            if !states.contains_key(n) {
                return refuse(format!("{at}: Next {n:?} names no state"));
            }
        }
    }
    Ok(())
}

/// A definition given as JSON, typed and checked: a field or state type outside the
/// subset is refused by name, as "not supported locally".
pub fn parse(definition: &Value) -> Result<StateMachine, BackendError> {
    let machine: StateMachine = serde_json::from_value(definition.clone())
        .map_err(|e| BackendError::Unsupported(format!("the definition: {e}")))?;
    check_supported(&machine)?;
    Ok(machine)
}

// ---------- JSONPath ----------

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
    All,
}

fn parse_path(path: &str) -> Result<(bool, Vec<Seg>), String> {
    let (context, rest) = if let Some(r) = path.strip_prefix("$$") {
        (true, r)
    } else if let Some(r) = path.strip_prefix('$') {
        (false, r)
    } else {
        return Err(format!("{path:?} is not a JSONPath (must start with $)"));
    };
    let mut segs = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j == start {
                    return Err(format!("empty field name in {path:?}"));
                }
                segs.push(Seg::Key(rest[start..j].to_owned()));
                i = j;
            }
            b'[' => {
                let end = rest[i..]
                    .find(']')
                    .map(|e| i + e)
                    .ok_or(format!("unclosed [ in {path:?}"))?;
                let inner = rest[i + 1..end].trim();
                if inner == "*" {
                    segs.push(Seg::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    segs.push(Seg::Index(n));
                } else if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    segs.push(Seg::Key(q.to_owned()));
                } else {
                    return Err(format!(
                        "JSONPath filter {inner:?} in {path:?} is not supported locally"
                    ));
                }
                i = end + 1;
            }
            _ => {
                return Err(format!(
                    "unexpected {:?} in JSONPath {path:?}",
                    b[i] as char
                ));
            }
        }
    }
    Ok((context, segs))
}

fn select(value: &Value, segs: &[Seg]) -> Option<Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(value.clone());
    };
    match first {
        Seg::Key(k) => value.get(k).and_then(|v| select(v, rest)),
        Seg::Index(n) => value.get(n).and_then(|v| select(v, rest)),
        Seg::All => {
            let items: Vec<&Value> = match value {
                Value::Array(a) => a.iter().collect(),
                Value::Object(o) => o.values().collect(),
                _ => return None,
            };
            Some(Value::Array(
                items.into_iter().filter_map(|v| select(v, rest)).collect(),
            ))
        }
    }
}

impl Ctx {
    fn context_object(&self) -> Value {
        let mut c = json!({"Execution": self.execution});
        if let (Some(i), Some(v)) = (self.item, &self.map_item) {
            c["Map"] = json!({"Item": {"Index": i, "Value": v}});
        }
        c
    }

    fn eval(&self, path: &str, input: &Value) -> Flow<Value> {
        let (context, segs) = parse_path(path).map_err(unsupported)?;
        let root = if context {
            self.context_object()
        } else {
            input.clone()
        };
        select(&root, &segs).ok_or_else(|| {
            states_err(
                "States.Runtime",
                format!(
                    "the JSONPath {path:?} could not be found in the input {}",
                    truncate(&root.to_string())
                ),
            )
        })
    }

    /// A payload template (`Parameters`, `ResultSelector`, `ItemSelector`, ...) applied to `input`.
    fn template(&self, tpl: &PayloadTemplate, input: &Value) -> Flow<Value> {
        let mut out = Map::new();
        for (k, v) in tpl {
            if let Some(key) = k.strip_suffix(".$") {
                let p = v
                    .as_str()
                    .ok_or_else(|| unsupported(format!("{k:?} must hold a JSONPath string")))?;
                let v = if p.starts_with("States.") {
                    self.intrinsic(p, input)?
                } else {
                    self.eval(p, input)?
                };
                out.insert(key.to_owned(), v);
            } else {
                out.insert(k.clone(), self.template_value(v, input)?);
            }
        }
        Ok(Value::Object(out))
    }

    /// An intrinsic function call. Only `States.Format` with literal and JSONPath
    /// arguments runs (what the generated definitions use); others are "not supported locally".
    fn intrinsic(&self, call: &str, input: &Value) -> Flow<Value> {
        let Some(args) = call
            .strip_prefix("States.Format(")
            .and_then(|r| r.trim_end().strip_suffix(')'))
        else {
            return Err(unsupported(format!("intrinsic function {call:?}")));
        };
        let args = split_intrinsic_args(args)
            .ok_or_else(|| unsupported(format!("intrinsic function arguments in {call:?}")))?;
        let Some((template, rest)) = args.split_first() else {
            return Err(unsupported(format!("{call:?} without a template")));
        };
        let literal = |a: &str| {
            a.strip_prefix('\'')
                .and_then(|a| a.strip_suffix('\''))
                .map(str::to_owned)
        };
        let Some(template) = literal(template) else {
            return Err(unsupported(format!(
                "{call:?}: the template must be a string literal"
            )));
        };
        let mut values = Vec::with_capacity(rest.len());
        for a in rest {
            let v = if let Some(lit) = literal(a) {
                Value::String(unescape(&lit))
            } else if a.starts_with('$') {
                self.eval(a, input)?
            } else {
                serde_json::from_str(a)
                    .ok()
                    .filter(|v: &Value| !v.is_object() && !v.is_array())
                    .ok_or_else(|| unsupported(format!("intrinsic argument {a:?} in {call:?}")))?
            };
            values.push(match v {
                Value::String(s) => s,
                Value::Array(_) | Value::Object(_) => {
                    return Err(states_err(
                        "States.IntrinsicFailure",
                        format!("{call}: States.Format takes strings, numbers, booleans and null, not {v}"),
                    ));
                }
                other => other.to_string(),
            });
        }
        let mut out = String::new();
        let mut values = values.into_iter();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    let Some(v) = values.next() else {
                        return Err(states_err(
                            "States.IntrinsicFailure",
                            format!("{call}: more {{}} than arguments"),
                        ));
                    };
                    out.push_str(&v);
                }
                c => out.push(c),
            }
        }
        if values.next().is_some() {
            return Err(states_err(
                "States.IntrinsicFailure",
                format!("{call}: more arguments than {{}}"),
            ));
        }
        Ok(Value::String(out))
    }

    fn template_value(&self, tpl: &Value, input: &Value) -> Flow<Value> {
        match tpl {
            Value::Object(m) => self.template(m, input),
            Value::Array(a) => Ok(Value::Array(
                a.iter()
                    .map(|v| self.template_value(v, input))
                    .collect::<Flow<_>>()?,
            )),
            other => Ok(other.clone()),
        }
    }

    /// `InputPath` / `OutputPath`: absent = `$`, null = `{}`.
    fn filter(&self, path: &Option<Option<String>>, value: Value) -> Flow<Value> {
        match path {
            None => Ok(value),
            Some(None) => Ok(json!({})),
            Some(Some(p)) => self.eval(p, &value),
        }
    }
}

/// The wait before retry number `retry` (1-based) of `r`: its backoff, and under full
/// jitter a uniform draw from `[0, backoff)`.
fn retry_delay(r: &Retrier, retry: u32, rng: &mut impl Rng) -> f64 {
    let delay = r.delay_seconds(retry);
    if r.jitter_strategy == Some(JitterStrategy::Full) {
        delay * rng.random::<f64>()
    } else {
        delay
    }
}

/// The arguments of an intrinsic call, trimmed; a string literal keeps its quotes and
/// escapes. `None` for an unterminated literal or a nested call.
fn split_intrinsic_args(args: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = args.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                cur.extend(chars.next());
            }
            '\'' if quoted => {
                cur.push(c);
                quoted = false;
            }
            '\'' if cur.trim().is_empty() => {
                cur = "'".into();
                quoted = true;
            }
            '(' | ')' if !quoted => return None,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_owned()),
            c => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    if !cur.trim().is_empty() || !out.is_empty() {
        out.push(cur.trim().to_owned());
    }
    Some(out)
}

/// A string literal's escapes (`\'`, `\{`, `\}`, `\\`) resolved.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn truncate(s: &str) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}

/// Step Functions' 256 KiB limit on any state data, as the error it raises.
fn within_limit(v: &Value, what: &str) -> Flow<()> {
    let n = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    if n as u64 > MAX_PAYLOAD_BYTES {
        return Err(states_err(
            "States.DataLimitExceeded",
            format!("{what} of {n} bytes is above the {MAX_PAYLOAD_BYTES}-byte (256 KiB) limit"),
        ));
    }
    Ok(())
}

/// `ResultPath`: absent = `$` (replace), null = discard the result, else set in a copy of the raw input.
fn apply_result_path(path: &Option<Option<String>>, raw: Value, result: Value) -> Flow<Value> {
    match path {
        None => Ok(result),
        Some(None) => Ok(raw),
        Some(Some(p)) => {
            let (context, segs) = parse_path(p).map_err(unsupported)?;
            if context {
                return Err(unsupported(format!(
                    "ResultPath {p:?} into the context object"
                )));
            }
            if segs.is_empty() {
                return Ok(result);
            }
            let mut out = raw;
            let mut cur = &mut out;
            for seg in &segs {
                let Seg::Key(k) = seg else {
                    return Err(unsupported(format!("ResultPath {p:?} (only field names)")));
                };
                if !cur.is_object() {
                    *cur = json!({});
                }
                cur = cur
                    .as_object_mut()
                    .expect("made an object")
                    .entry(k.clone())
                    .or_insert(Value::Null);
            }
            *cur = result;
            Ok(out)
        }
    }
}

/// A state that invokes something and so has `Retry`/`Catch`: a Task or a Map.
#[derive(Clone, Copy)]
enum Action<'a> {
    Task(&'a TaskState),
    Map(&'a MapState),
}

/// The data-flow fields shared by Task and Map.
struct Io<'a> {
    input_path: &'a Option<Option<String>>,
    output_path: &'a Option<Option<String>>,
    result_path: &'a Option<Option<String>>,
    result_selector: Option<&'a PayloadTemplate>,
    retry: &'a [Retrier],
    catch: &'a [Catcher],
}

impl<'a> Action<'a> {
    fn io(self) -> Io<'a> {
        match self {
            Action::Task(t) => Io {
                input_path: &t.input_path,
                output_path: &t.output_path,
                result_path: &t.result_path,
                result_selector: t.result_selector.as_ref(),
                retry: &t.retry,
                catch: &t.catch,
            },
            Action::Map(m) => Io {
                input_path: &m.input_path,
                output_path: &m.output_path,
                result_path: &m.result_path,
                result_selector: m.result_selector.as_ref(),
                retry: &m.retry,
                catch: &m.catch,
            },
        }
    }
}

/// Maps `s3://bucket/key` (or bucket + key) onto the storage directory.
pub fn storage_path(storage: &Path, bucket: &str, key: &str) -> PathBuf {
    storage.join(bucket).join(key.trim_start_matches('/'))
}

impl Interpreter {
    /// An interpreter invoking functions on `platform`, with S3 under `storage`.
    pub fn new(
        platform: LambdaPlatform,
        storage: impl Into<PathBuf>,
        on_item: Option<ItemCallback>,
    ) -> Self {
        Self {
            inner: Arc::new(InterpInner {
                platform,
                storage: storage.into(),
                log: Mutex::new(Vec::new()),
                usage: Mutex::new(OrchestrationUsage::default()),
                on_item,
                map_runs: AtomicU64::new(0),
                express_limit_ms: AtomicU64::new((EXPRESS_MAX_SECONDS * 1000.0) as u64),
                stop: Mutex::new(Stop::NEVER),
            }),
        }
    }

    /// After `stop` is requested, Map items that have not started are not started (those
    /// in flight finish), as the first Ctrl-C of a local run asks.
    pub fn set_stop(&self, stop: Stop) {
        *self.inner.stop.lock().expect("stop lock") = stop;
    }

    fn stopping(&self) -> bool {
        self.inner.stop.lock().expect("stop lock").requested()
    }

    /// Changes how long an EXPRESS child may run before it ends `TIMED_OUT` (default 5 minutes),
    /// so a test can show the limit without waiting for it.
    pub fn set_express_limit(&self, limit: Duration) {
        self.inner
            .express_limit_ms
            .store(limit.as_millis() as u64, Ordering::SeqCst);
    }

    /// Runs one execution of `definition` named `name` with `input` to completion.
    /// Runs one execution of `definition` named `name` with `input` to completion.
    pub async fn execute(
        &self,
        definition: &StateMachine,
        name: &str,
        input: Value,
    ) -> Result<Execution, BackendError> {
        check_supported(definition)?;
        let exec_arn = format!(
            "arn:aws:states:{}:{}:execution:propack-local:{name}",
            super::lambda::LOCAL_REGION,
            super::lambda::LOCAL_ACCOUNT
        );
        let ctx = Ctx {
            execution: json!({"Id": exec_arn, "Name": name, "Input": input, "StartTime": epoch_ms()}),
            item: None,
            map_item: None,
            express: false,
        };
        let run = self.run_machine(&definition.start_at, &definition.states, input, ctx);
        let result = match definition.timeout_seconds {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), run).await {
                Ok(r) => r,
                Err(_) => Err(states_err(
                    "States.Timeout",
                    format!("the execution ran longer than {t} s"),
                )),
            },
            None => run.await,
        };
        let result = match result {
            Ok(v) => Ok(v),
            Err(Fail::States(e)) => Err(e),
            Err(Fail::Backend(e)) => return Err(e),
        };
        Ok(Execution {
            result,
            invocations: std::mem::take(&mut *self.inner.log.lock().expect("log lock")),
            usage: std::mem::take(&mut *self.inner.usage.lock().expect("usage lock")),
        })
    }

    fn transition(&self, ctx: &Ctx) {
        if !ctx.express {
            self.inner
                .usage
                .lock()
                .expect("usage lock")
                .standard_transitions += 1;
        }
    }

    fn run_machine<'a>(
        &'a self,
        start_at: &'a str,
        states: &'a BTreeMap<String, State>,
        input: Value,
        ctx: Ctx,
    ) -> Pin<Box<dyn Future<Output = Flow<Value>> + Send + 'a>> {
        Box::pin(async move {
            let mut name = start_at;
            let mut input = input;
            within_limit(&input, "the input")?;
            loop {
                let state = &states[name];
                self.transition(&ctx);
                let (output, next) = self.run_state(name, state, input, &ctx).await?;
                within_limit(&output, &format!("the output of state {name:?}"))?;
                match next {
                    Some(n) => {
                        name = n;
                        input = output;
                    }
                    None => return Ok(output),
                }
            }
        })
    }

    async fn run_state<'s>(
        &self,
        name: &str,
        state: &'s State,
        raw: Value,
        ctx: &Ctx,
    ) -> Flow<(Value, Option<&'s str>)> {
        let next = state.next();
        let action = match state {
            State::Succeed(s) => {
                let v = ctx.filter(&s.input_path, raw)?;
                return Ok((ctx.filter(&s.output_path, v)?, None));
            }
            State::Fail(f) => {
                return Err(states_err(
                    f.error.as_deref().unwrap_or("States.Fail"),
                    f.cause.as_deref().unwrap_or_default(),
                ));
            }
            State::Pass(p) => {
                let effective = ctx.filter(&p.input_path, raw.clone())?;
                let result = if let Some(r) = &p.result {
                    r.clone()
                } else if let Some(t) = &p.parameters {
                    ctx.template(t, &effective)?
                } else {
                    effective
                };
                let out = apply_result_path(&p.result_path, raw, result)?;
                return Ok((ctx.filter(&p.output_path, out)?, next));
            }
            State::Task(t) => Action::Task(t),
            State::Map(m) => Action::Map(m),
        };
        let io = action.io();
        let effective = ctx.filter(io.input_path, raw.clone())?;
        match self.with_retry(name, action, &effective, ctx).await {
            Ok(result) => {
                let result = match io.result_selector {
                    Some(sel) => ctx.template(sel, &result)?,
                    None => result,
                };
                let out = apply_result_path(io.result_path, raw, result)?;
                Ok((ctx.filter(io.output_path, out)?, next))
            }
            Err(Fail::States(e)) => match io.catch.iter().find(|c| c.matches(&e.error)) {
                Some(c) => {
                    let err = json!({"Error": e.error, "Cause": e.cause});
                    let out = apply_result_path(&c.result_path, raw, err)?;
                    Ok((out, Some(c.next.as_str())))
                }
                None => Err(Fail::States(e)),
            },
            Err(other) => Err(other),
        }
    }

    /// Runs a Task or Map under its `Retry` policies (each retrier counts its own attempts).
    async fn with_retry(
        &self,
        name: &str,
        action: Action<'_>,
        effective: &Value,
        ctx: &Ctx,
    ) -> Flow<Value> {
        let retriers = action.io().retry;
        let mut counts = vec![0u32; retriers.len()];
        let mut attempt = 0u32;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            epoch_ms() ^ (ctx.item.unwrap_or(0) as u64) << 20,
        );
        loop {
            let r = match action {
                Action::Map(m) => self.run_map(name, m, effective, ctx).await,
                Action::Task(t) => self.run_task(t, effective, ctx, attempt).await,
            };
            let e = match r {
                Err(Fail::States(e)) => e,
                other => return other,
            };
            let Some(ri) = retriers.iter().position(|r| r.matches(&e.error)) else {
                return Err(Fail::States(e));
            };
            let r = &retriers[ri];
            if counts[ri] >= r.max_attempts.unwrap_or(3) {
                return Err(Fail::States(e));
            }
            counts[ri] += 1;
            let delay = retry_delay(r, counts[ri], &mut rng);
            attempt += 1;
            // A retry runs the state again, which Step Functions bills as a transition.
            self.transition(ctx);
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
    }

    async fn run_task(
        &self,
        state: &TaskState,
        effective: &Value,
        ctx: &Ctx,
        attempt: u32,
    ) -> Flow<Value> {
        let resource = state.resource.as_str();
        let params = match &state.parameters {
            Some(p) => ctx.template(p, effective)?,
            None => effective.clone(),
        };
        within_limit(&params, "the task input")?;
        let integrated = resource == LAMBDA_INVOKE;
        let (function, payload) = if integrated {
            let f = params["FunctionName"].as_str().ok_or_else(|| {
                states_err(
                    "States.Runtime",
                    "lambda:invoke Parameters need FunctionName",
                )
            })?;
            for k in params
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if !["FunctionName", "Payload", "Qualifier", "InvocationType"].contains(&k.as_str())
                {
                    return Err(unsupported(format!("lambda:invoke parameter {k:?}")));
                }
            }
            if params
                .get("InvocationType")
                .is_some_and(|t| t != "RequestResponse")
            {
                return Err(unsupported(
                    "lambda:invoke InvocationType other than RequestResponse",
                ));
            }
            (
                f.to_owned(),
                params.get("Payload").cloned().unwrap_or(json!({})),
            )
        } else {
            (resource.to_owned(), params)
        };
        let bytes = Bytes::from(serde_json::to_vec(&payload).expect("JSON values serialise"));
        let invoke = self.inner.platform.invoke(&function, bytes, AtLimit::Wait);
        let res = match state.timeout_seconds {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), invoke).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(states_err(
                        "States.Timeout",
                        format!("the Task ran longer than {t} s"),
                    ));
                }
            },
            None => invoke.await,
        };
        let inv = match res {
            Ok(inv) => inv,
            Err(InvokeError::Throttled(_)) => {
                return Err(states_err(
                    "Lambda.TooManyRequestsException",
                    "Rate Exceeded.",
                ));
            }
            Err(InvokeError::NotStarted) => {
                return Err(states_err(
                    NOT_STARTED_ERROR,
                    "not started: the run was interrupted",
                ));
            }
            Err(InvokeError::NotFound(f)) => {
                return Err(states_err(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {f}"),
                ));
            }
            // Unreachable from a definition (the Task input's 256 KiB limit above comes
            // first), named as Step Functions names Lambda errors it has no class for.
            Err(e @ InvokeError::RequestTooLarge { .. }) => {
                return Err(states_err("Lambda.AWSLambdaException", e.to_string()));
            }
            // A missing or broken bootstrap fails every batch the same way: stop the run.
            Err(e) => return Err(Fail::Backend(e.into())),
        };
        self.inner.log.lock().expect("log lock").push(InvokeLog {
            item: ctx.item,
            attempt,
            invocation: inv.clone(),
        });
        match inv.status {
            InvokeStatus::Ok(body) => {
                let payload: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                let result = if integrated {
                    json!({
                        "ExecutedVersion": "$LATEST",
                        "Payload": payload,
                        "SdkHttpMetadata": {"HttpStatusCode": 200},
                        "SdkResponseMetadata": {"RequestId": inv.request_id},
                        "StatusCode": 200,
                    })
                } else {
                    payload
                };
                within_limit(&result, "the task result")?;
                Ok(result)
            }
            InvokeStatus::FunctionError { error_type, body } => Err(states_err(
                &error_type,
                String::from_utf8_lossy(&body).into_owned(),
            )),
        }
    }

    fn read_object(&self, bucket: &str, key: &str) -> Flow<Vec<u8>> {
        let p = storage_path(&self.inner.storage, bucket, key);
        std::fs::read(&p).map_err(|e| {
            states_err(
                "States.ItemReaderFailed",
                format!("reading s3://{bucket}/{key} (local {}): {e}", p.display()),
            )
        })
    }

    fn write_object(&self, bucket: &str, key: &str, data: &[u8]) -> Flow<()> {
        let p = storage_path(&self.inner.storage, bucket, key);
        let write = || -> std::io::Result<()> {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&p, data)
        };
        write().map_err(|e| {
            states_err(
                "States.ResultWriterFailed",
                format!("writing s3://{bucket}/{key} (local {}): {e}", p.display()),
            )
        })
    }

    async fn run_map(
        &self,
        name: &str,
        state: &MapState,
        effective: &Value,
        ctx: &Ctx,
    ) -> Flow<Value> {
        // Items: from S3 (distributed) or from the input (inline).
        let mut items: Vec<Value> = if let Some(reader) = &state.item_reader {
            let p = match &reader.parameters {
                Some(p) => ctx.template(p, effective)?,
                None => json!({}),
            };
            let (Some(bucket), Some(key)) = (p["Bucket"].as_str(), p["Key"].as_str()) else {
                return Err(states_err(
                    "States.Runtime",
                    "ItemReader Parameters need Bucket and Key",
                ));
            };
            let data = self.read_object(bucket, key)?;
            let v: Value = serde_json::from_slice(&data).map_err(|e| {
                states_err(
                    "States.ItemReaderFailed",
                    format!("s3://{bucket}/{key} is not JSON: {e}"),
                )
            })?;
            match v {
                Value::Array(a) => a,
                _ => {
                    return Err(states_err(
                        "States.ItemReaderFailed",
                        format!("s3://{bucket}/{key} is not a JSON array"),
                    ));
                }
            }
        } else {
            let path = state.items_path.as_deref().unwrap_or("$");
            match ctx.eval(path, effective)? {
                Value::Array(a) => a,
                other => {
                    return Err(states_err(
                        "States.Runtime",
                        format!(
                            "ItemsPath {path:?} selected {}, not an array",
                            truncate(&other.to_string())
                        ),
                    ));
                }
            }
        };
        let max_items = state
            .item_reader
            .as_ref()
            .and_then(|r| r.reader_config.as_ref())
            .and_then(|c| c.max_items);
        if let Some(max) = max_items {
            items.truncate(max as usize);
        }
        if let Some(sel) = &state.item_selector {
            items = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let c = Ctx {
                        item: Some(i),
                        map_item: Some(v.clone()),
                        ..ctx.clone()
                    };
                    c.template(sel, effective)
                })
                .collect::<Flow<_>>()?;
        }
        // Batching: ProPack's packing degree k is MaxItemsPerBatch.
        if let Some(batcher) = &state.item_batcher {
            let max_items = batcher
                .max_items_per_batch
                .map_or(usize::MAX, |n| n.max(1) as usize);
            let max_bytes = batcher
                .max_input_bytes_per_batch
                .map_or(usize::MAX, |n| n as usize);
            let batch_input = match &batcher.batch_input {
                Some(t) => Some(ctx.template(t, effective)?),
                None => None,
            };
            items = item_batches(items, max_items, max_bytes)
                .into_iter()
                .map(|b| {
                    let mut o = json!({"Items": b});
                    if let Some(bi) = &batch_input {
                        o["BatchInput"] = bi.clone();
                    }
                    o
                })
                .collect();
        }

        // Items per child (a batch holds several), which is what failure tolerance counts.
        let item_counts: Vec<usize> = items
            .iter()
            .map(|it| match (&state.item_batcher, it["Items"].as_array()) {
                (Some(_), Some(a)) => a.len(),
                _ => 1,
            })
            .collect();
        let total_items: usize = item_counts.iter().sum();
        let express_limit =
            Duration::from_millis(self.inner.express_limit_ms.load(Ordering::SeqCst));
        let processor = &state.item_processor;
        let max_conc = match state.max_concurrency {
            Some(0) | None => items.len().max(1),
            Some(n) => n as usize,
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(max_conc));
        let n = items.len();
        let config = processor.processor_config.as_ref();
        let distributed = config.is_some_and(|c| c.mode == ProcessorMode::Distributed);
        let child_express =
            distributed && config.and_then(|c| c.execution_type) == Some(ExecutionType::Express);
        let mut futs = Vec::with_capacity(n);
        for (i, item) in items.iter().enumerate() {
            let sem = sem.clone();
            let c = Ctx {
                item: Some(i),
                map_item: Some(item.clone()),
                express: ctx.express || child_express,
                ..ctx.clone()
            };
            let parent = ctx.clone();
            futs.push(async move {
                let _permit = sem.acquire().await.expect("never closed");
                if self.stopping() {
                    return Err(states_err(
                        NOT_STARTED_ERROR,
                        "not started: the run was interrupted",
                    ));
                }
                if distributed {
                    // A Distributed Map bills one transition per child execution it starts.
                    self.transition(&parent);
                }
                let started = std::time::Instant::now();
                let child =
                    self.run_machine(&processor.start_at, &processor.states, item.clone(), c);
                let r = if child_express && !parent.express {
                    // An EXPRESS child past its 5 minutes ends TIMED_OUT: no Catch inside it runs.
                    match tokio::time::timeout(express_limit, child).await {
                        Ok(r) => r,
                        Err(_) => Err(states_err(
                            TIMED_OUT_ERROR,
                            format!(
                                "the EXPRESS child ran longer than {} s",
                                express_limit.as_secs_f64()
                            ),
                        )),
                    }
                } else {
                    child.await
                };
                if child_express && !parent.express {
                    self.inner
                        .usage
                        .lock()
                        .expect("usage lock")
                        .add_express_child(started.elapsed().as_secs_f64());
                }
                if let Some(cb) = &self.inner.on_item {
                    match &r {
                        Err(Fail::States(e)) if e.error == NOT_STARTED_ERROR => {}
                        Ok(v) => cb(ItemDone {
                            index: i,
                            input: item,
                            output: Ok(v),
                        }),
                        Err(Fail::States(e)) => cb(ItemDone {
                            index: i,
                            input: item,
                            output: Err(e),
                        }),
                        Err(Fail::Backend(_)) => {}
                    }
                }
                r
            });
        }
        let results = futures::future::join_all(futs).await;
        let mut outputs: Vec<Result<Value, StatesError>> = Vec::with_capacity(n);
        for r in results {
            match r {
                Ok(v) => outputs.push(Ok(v)),
                Err(Fail::States(e)) => outputs.push(Err(e)),
                Err(Fail::Backend(e)) => return Err(Fail::Backend(e)),
            }
        }
        // Step Functions counts failed or timed-out items, not child executions, over all items.
        let failed: usize = outputs
            .iter()
            .zip(&item_counts)
            .filter(|(o, _)| o.is_err())
            .map(|(_, c)| c)
            .sum();
        let pct = state.tolerated_failure_percentage;
        let count = state.tolerated_failure_count;
        // Nothing failed is always within the threshold (also for a Map of no items, whose
        // failed percentage is undefined); otherwise failed ≤ total, so total > 0.
        let tolerated = failed == 0
            || (distributed
                && (pct.is_some_and(|p| {
                    (failed as f64) * 100.0 / (total_items as f64) <= f64::from(p)
                }) || count.is_some_and(|c| failed as u64 <= c)));

        let map_run = self.inner.map_runs.fetch_add(1, Ordering::SeqCst);
        let label = state.label.as_deref().unwrap_or(name);
        let map_run_id = format!(
            "{}-{map_run}",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let exec_name = ctx.execution["Name"]
            .as_str()
            .unwrap_or("execution")
            .to_owned();
        let map_run_arn = format!(
            "arn:aws:states:{}:{}:mapRun:propack-local/{}:{map_run_id}",
            super::lambda::LOCAL_REGION,
            super::lambda::LOCAL_ACCOUNT,
            exec_name
        );
        let output = if let Some(writer) = &state.result_writer {
            let p = match &writer.parameters {
                Some(p) => ctx.template(p, effective)?,
                None => json!({}),
            };
            let (Some(bucket), Some(prefix)) = (p["Bucket"].as_str(), p["Prefix"].as_str()) else {
                return Err(states_err(
                    "States.Runtime",
                    "ResultWriter Parameters need Bucket and Prefix",
                ));
            };
            let base = format!("{}/{map_run_id}", prefix.trim_end_matches('/'));
            let entry = |i: usize, status: &str, out: Value| {
                json!({
                    "ExecutionArn": format!("{map_run_arn}:{i}"),
                    "Input": items[i].to_string(),
                    "InputDetails": {"Included": true},
                    "Name": format!("{i}"),
                    "Output": out.to_string(),
                    "OutputDetails": {"Included": true},
                    "Status": status,
                })
            };
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            for (i, o) in outputs.iter().enumerate() {
                match o {
                    Ok(v) => ok.push(entry(i, "SUCCEEDED", v.clone())),
                    Err(e) => bad.push(entry(
                        i,
                        if e.error == TIMED_OUT_ERROR {
                            "TIMED_OUT"
                        } else {
                            "FAILED"
                        },
                        json!({"Error": e.error, "Cause": e.cause}),
                    )),
                }
            }
            let mut files = BTreeMap::new();
            for (kind, list) in [("SUCCEEDED", ok), ("FAILED", bad)] {
                let mut refs = Vec::new();
                if !list.is_empty() {
                    let key = format!("{base}/{kind}_0.json");
                    let data = serde_json::to_vec(&list).expect("JSON values serialise");
                    self.write_object(bucket, &key, &data)?;
                    refs.push(json!({"Key": key, "Size": data.len()}));
                }
                files.insert(kind, Value::Array(refs));
            }
            files.insert("PENDING", json!([]));
            let manifest_key = format!("{base}/manifest.json");
            let manifest = json!({"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files});
            self.write_object(bucket, &manifest_key, manifest.to_string().as_bytes())?;
            json!({"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}})
        } else {
            Value::Array(
                outputs
                    .iter()
                    .map(|o| match o {
                        Ok(v) => v.clone(),
                        Err(e) => json!({"Error": e.error, "Cause": e.cause}),
                    })
                    .collect(),
            )
        };
        if !tolerated {
            let first = outputs.iter().find_map(|o| o.as_ref().err());
            return Err(states_err(
                if distributed {
                    "States.ExceedToleratedFailureThreshold"
                } else {
                    first.map_or("States.TaskFailed", |e| e.error.as_str())
                },
                match first {
                    Some(e) if !distributed => e.cause.clone(),
                    _ => format!(
                        "{failed} of {total_items} items of Map {name:?} failed or timed out, above the tolerated threshold"
                    ),
                },
            ));
        }
        Ok(output)
    }
}

/// ItemBatcher: consecutive items into batches of at most `max_items` items and
/// `max_bytes` bytes of JSON (as Step Functions forms them, in item order).
pub fn item_batches(items: Vec<Value>, max_items: usize, max_bytes: usize) -> Vec<Vec<Value>> {
    let mut batches = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut cur_bytes = 0usize;
    for it in items {
        let b = serde_json::to_vec(&it).map(|v| v.len()).unwrap_or(0) + 1;
        if !cur.is_empty() && (cur.len() >= max_items || cur_bytes + b > max_bytes) {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += b;
        cur.push(it);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

#[cfg(test)]
#[path = "sfn_limits_tests.rs"]
mod limits_tests;

#[cfg(test)]
#[path = "sfn_strength_tests.rs"]
mod strength_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            execution: json!({"Name": "x"}),
            item: Some(2),
            map_item: Some(json!({"a": 1})),
            express: false,
        }
    }

    #[test]
    fn jsonpaths_select_fields_indices_and_wildcards() {
        let v = json!({"Items": [{"id": "a"}, {"id": "b"}], "x": {"y": [1, 2]}});
        let c = ctx();
        assert_eq!(c.eval("$.Items[*].id", &v).ok(), Some(json!(["a", "b"])));
        assert_eq!(c.eval("$.x.y[1]", &v).ok(), Some(json!(2)));
        assert_eq!(c.eval("$['x']", &v).ok(), Some(json!({"y": [1, 2]})));
        assert_eq!(c.eval("$$.Map.Item.Index", &v).ok(), Some(json!(2)));
        assert!(
            matches!(c.eval("$.missing", &v), Err(Fail::States(e)) if e.error == "States.Runtime")
        );
        assert!(matches!(
            c.eval("$.a[?(@.b)]", &v),
            Err(Fail::Backend(BackendError::Unsupported(_)))
        ));
    }

    #[test]
    fn templates_and_result_paths_follow_asl() {
        let c = ctx();
        let input = json!({"run_id": "r", "n": 3});
        let t = json!({"FunctionName": "f", "Payload.$": "$", "Nested": {"id.$": "$.run_id"}});
        let out = c.template_value(&t, &input).ok().unwrap();
        assert_eq!(
            out,
            json!({"FunctionName": "f", "Payload": input, "Nested": {"id": "r"}})
        );
        let path = Some(Some("$.error.detail".to_owned()));
        let out = apply_result_path(&path, json!({"a": 1}), json!("E"))
            .ok()
            .unwrap();
        assert_eq!(out, json!({"a": 1, "error": {"detail": "E"}}));
        let out = apply_result_path(&Some(None), json!({"a": 1}), json!(2))
            .ok()
            .unwrap();
        assert_eq!(out, json!({"a": 1}));
        assert_eq!(
            apply_result_path(&None, json!(1), json!(2)).ok(),
            Some(json!(2))
        );
    }

    fn error_matches(names: &Value, error: &str) -> bool {
        let names: Vec<String> = serde_json::from_value(names.clone()).unwrap();
        propack_step_functions::asl::error_matches(&names, error)
    }

    #[test]
    fn error_names_match_like_step_functions() {
        let l = json!(["States.ALL"]);
        assert!(error_matches(&l, "Runtime.ExitError"));
        assert!(!error_matches(&l, "States.Runtime"));
        let l = json!(["States.TaskFailed"]);
        assert!(error_matches(&l, "Sandbox.Timedout"));
        assert!(!error_matches(&l, "States.Timeout"));
        assert!(error_matches(
            &json!(["Runtime.ExitError", "Lambda.Unknown"]),
            "Runtime.ExitError"
        ));
        assert!(!error_matches(
            &json!(["Lambda.TooManyRequestsException"]),
            "Runtime.ExitError"
        ));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let def =
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": true}}});
        let e = parse(&def).unwrap_err().to_string();
        assert!(
            e.starts_with("not supported locally") && e.contains("Wait"),
            "{e}"
        );
        let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": true}}});
        assert!(parse(&def).unwrap_err().to_string().contains("dynamodb"));
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Credentials": {}, "End": true}}});
        assert!(parse(&def).unwrap_err().to_string().contains("Credentials"));
    }

    #[test]
    fn states_format_fills_placeholders_in_order() {
        let c = ctx();
        let input = json!({"output_prefix": "s3://b/runs/r/out/", "n": 3, "ok": true});
        let eval = |call: &str| match c.intrinsic(call, &input) {
            Ok(v) => Ok(v),
            Err(Fail::States(e)) => Err(e.error),
            Err(Fail::Backend(e)) => Err(e.to_string()),
        };
        assert_eq!(
            eval(&propack_step_functions::build::logs_prefix_path()),
            Ok(json!("s3://b/runs/r/out/logs"))
        );
        assert_eq!(
            eval(
                r"States.Format('{} of {}, {} \{\} \' {}', $.n, 'a, b ', $.ok, $$.Map.Item.Index)"
            ),
            Ok(json!("3 of a, b , true {} ' 2"))
        );
        assert_eq!(eval("States.Format('x')"), Ok(json!("x")));
        assert_eq!(
            eval("States.Format('{}{}', $.n)"),
            Err("States.IntrinsicFailure".into())
        );
        assert_eq!(
            eval("States.Format('{}', $.n, $.n)"),
            Err("States.IntrinsicFailure".into())
        );
        assert_eq!(
            eval("States.Format('{}', $.missing)"),
            Err("States.Runtime".into())
        );
        for unsupported in [
            "States.Array($.n)",
            "States.Format('{}', States.Format('x'))",
            "States.Format('unterminated)",
            "States.Format($.n)",
        ] {
            let e = eval(unsupported).unwrap_err();
            assert!(e.contains("not supported locally"), "{unsupported}: {e}");
        }
    }

    /// Runs one lambda:invoke Task on the sized stand-in, asking for a response of `n` bytes.
    async fn respond(n: u64) -> Execution {
        let dir = tempfile::tempdir().unwrap();
        let (platform, _) = crate::backend::local::lambda::tests::sized_platform(dir.path());
        let def = parse(&json!({"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": "f", "Payload.$": "$"}, "End": true}}}))
        .unwrap();
        let interp = Interpreter::new(platform.clone(), dir.path().join("s3"), None);
        let run = interp
            .execute(&def, "e", json!({ "respond_bytes": n }))
            .await
            .unwrap();
        platform.shutdown();
        run
    }

    #[tokio::test]
    async fn lambdas_response_limit_comes_before_the_state_limit() {
        // At Lambda's limit the response is returned, and Step Functions refuses it.
        let at = respond(6_291_556).await.result.unwrap_err();
        assert_eq!(at.error, "States.DataLimitExceeded", "{at:?}");
        // One byte more and Lambda fails the invocation first: the Task's error is Lambda's.
        let over = respond(6_291_557).await.result.unwrap_err();
        assert_eq!(over.error, "Function.ResponseSizeTooLarge");
        assert_eq!(
            serde_json::from_str::<Value>(&over.cause).unwrap(),
            json!({
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            })
        );
    }

    #[tokio::test]
    async fn pass_states_and_inline_maps_run_without_functions() {
        let dir = tempfile::tempdir().unwrap();
        let platform =
            LambdaPlatform::new(crate::platform::PlatformProfile::unlimited(), vec![], 1);
        let interp = Interpreter::new(platform, dir.path(), None);
        let def = json!({
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                    "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"got.$": "$.v"}, "End": true}}},
                    "ResultPath": "$.out",
                    "Next": "Done"
                },
                "Done": {"Type": "Succeed", "OutputPath": "$.out"}
            }
        });
        let ex = interp
            .execute(&parse(&def).unwrap(), "e1", json!({"xs": [10, 20]}))
            .await
            .unwrap();
        assert_eq!(ex.result.unwrap(), json!([{"got": 10}, {"got": 20}]));
        // Map, the two iterations' Pass states, Succeed.
        assert_eq!(ex.usage.standard_transitions, 4);
        let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}});
        let ex = interp
            .execute(&parse(&def).unwrap(), "e2", json!({}))
            .await
            .unwrap();
        assert_eq!(ex.result.unwrap_err().error, "Boom");
    }
}
