//! A Step Functions interpreter for the ASL subset ProPack generates: Task (lambda:invoke), Map (inline and distributed), Pass, Succeed, Fail.
//!
//! It reads the definition as plain JSON so that exactly what would be
//! deployed to AWS is what runs locally; every field it does not implement is
//! refused up front with "not supported locally", never silently ignored.
//! S3 (`ItemReader`, `ResultWriter`) is a directory: `s3://B/K` is `<storage>/B/K`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::billing::OrchestrationUsage;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::lambda::{AtLimit, Invocation, InvokeError, InvokeStatus, LambdaPlatform, epoch_ms};
use crate::backend::BackendError;

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

const COMMON: &[&str] = &["Type", "Comment", "InputPath", "OutputPath", "Next", "End"];
const TASK: &[&str] = &[
    "Resource",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "HeartbeatSeconds",
];
const PASS: &[&str] = &["Result", "ResultPath", "Parameters"];
const MAP: &[&str] = &[
    "ItemsPath",
    "ItemSelector",
    "Parameters",
    "ItemReader",
    "ItemBatcher",
    "ItemProcessor",
    "Iterator",
    "MaxConcurrency",
    "ToleratedFailurePercentage",
    "ToleratedFailureCount",
    "ResultWriter",
    "ResultPath",
    "ResultSelector",
    "Retry",
    "Catch",
    "Label",
];
const FAIL: &[&str] = &["Type", "Comment", "Error", "Cause"];
const SUCCEED: &[&str] = &["Type", "Comment", "InputPath", "OutputPath"];
const MACHINE: &[&str] = &[
    "Comment",
    "StartAt",
    "States",
    "TimeoutSeconds",
    "Version",
    "QueryLanguage",
];

/// The ASL fields of a state machine (and of every nested `ItemProcessor`) that this
/// interpreter does not implement, as one error.
pub fn check_supported(machine: &Value) -> Result<(), BackendError> {
    fn keys(obj: &Map<String, Value>, allowed: &[&[&str]], at: &str) -> Result<(), BackendError> {
        for k in obj.keys() {
            if !allowed.iter().any(|a| a.contains(&k.as_str())) {
                return Err(BackendError::Unsupported(format!("field {k:?} of {at}")));
            }
        }
        Ok(())
    }
    fn machine_check(m: &Value, at: &str) -> Result<(), BackendError> {
        let obj = m
            .as_object()
            .ok_or_else(|| BackendError::Unsupported(format!("{at} is not a JSON object")))?;
        keys(obj, &[MACHINE, &["ProcessorConfig"]], at)?;
        if let Some(q) = obj.get("QueryLanguage")
            && q != "JSONPath"
        {
            return Err(BackendError::Unsupported(format!(
                "QueryLanguage {q} in {at} (only JSONPath)"
            )));
        }
        let states = obj
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| BackendError::Unsupported(format!("{at} has no States object")))?;
        let start = obj
            .get("StartAt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !states.contains_key(start) {
            return Err(BackendError::Unsupported(format!(
                "{at}: StartAt {start:?} names no state"
            )));
        }
        for (name, s) in states {
            let at = format!("state {name:?}");
            let so = s
                .as_object()
                .ok_or_else(|| BackendError::Unsupported(format!("{at} is not an object")))?;
            let ty = so.get("Type").and_then(Value::as_str).unwrap_or_default();
            match ty {
                "Task" => {
                    keys(so, &[COMMON, TASK], &at)?;
                    let r = so
                        .get("Resource")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !(r == "arn:aws:states:::lambda:invoke"
                        || r.contains(":lambda:") && r.contains(":function:"))
                    {
                        return Err(BackendError::Unsupported(format!(
                            "Resource {r:?} of {at} (only arn:aws:states:::lambda:invoke and Lambda function ARNs)"
                        )));
                    }
                }
                "Pass" => keys(so, &[COMMON, PASS], &at)?,
                "Map" => {
                    keys(so, &[COMMON, MAP], &at)?;
                    let proc_ = so
                        .get("ItemProcessor")
                        .or_else(|| so.get("Iterator"))
                        .ok_or_else(|| {
                            BackendError::Unsupported(format!("{at} has no ItemProcessor"))
                        })?;
                    machine_check(proc_, &format!("the ItemProcessor of {at}"))?;
                    if let Some(r) = so.get("ItemReader") {
                        let res = r["Resource"].as_str().unwrap_or_default();
                        if res != "arn:aws:states:::s3:getObject" {
                            return Err(BackendError::Unsupported(format!(
                                "ItemReader resource {res:?} of {at}"
                            )));
                        }
                        let input_type = r["ReaderConfig"]["InputType"].as_str().unwrap_or("JSON");
                        if input_type != "JSON" {
                            return Err(BackendError::Unsupported(format!(
                                "ItemReader InputType {input_type} of {at} (only JSON)"
                            )));
                        }
                    }
                    if let Some(w) = so.get("ResultWriter") {
                        let res = w["Resource"].as_str().unwrap_or_default();
                        if res != "arn:aws:states:::s3:putObject" {
                            return Err(BackendError::Unsupported(format!(
                                "ResultWriter resource {res:?} of {at}"
                            )));
                        }
                    }
                    if let Some(b) = so.get("ItemBatcher").and_then(Value::as_object) {
                        keys(
                            b,
                            &[&["MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"]],
                            &format!("the ItemBatcher of {at}"),
                        )?;
                    }
                }
                "Succeed" => keys(so, &[SUCCEED], &at)?,
                "Fail" => keys(so, &[FAIL], &at)?,
                other => {
                    return Err(BackendError::Unsupported(format!(
                        "state type {other:?} of {at} (only Task, Map, Pass, Succeed, Fail)"
                    )));
                }
            }
            for field in ["Next"] {
                if let Some(n) = so.get(field).and_then(Value::as_str)
                    && !states.contains_key(n)
                {
                    return Err(BackendError::Unsupported(format!(
                        "{at}: Next {n:?} names no state"
                    )));
                }
            }
        }
        Ok(())
    }
    machine_check(machine, "the state machine")
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

    fn template(&self, tpl: &Value, input: &Value) -> Flow<Value> {
        match tpl {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if let Some(key) = k.strip_suffix(".$") {
                        let p = v.as_str().ok_or_else(|| {
                            unsupported(format!("{k:?} must hold a JSONPath string"))
                        })?;
                        if p.starts_with("States.") {
                            return Err(unsupported(format!("intrinsic function {p:?}")));
                        }
                        out.insert(key.to_owned(), self.eval(p, input)?);
                    } else {
                        out.insert(k.clone(), self.template(v, input)?);
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => Ok(Value::Array(
                a.iter()
                    .map(|v| self.template(v, input))
                    .collect::<Flow<_>>()?,
            )),
            other => Ok(other.clone()),
        }
    }

    /// `InputPath` / `OutputPath`: absent = `$`, null = `{}`.
    fn filter(&self, state: &Value, field: &str, value: Value) -> Flow<Value> {
        match state.get(field) {
            None => Ok(value),
            Some(Value::Null) => Ok(json!({})),
            Some(Value::String(p)) => self.eval(p, &value),
            Some(other) => Err(unsupported(format!("{field} {other}"))),
        }
    }
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

/// `ResultPath`: absent = `$` (replace), null = discard the result, else set in a copy of the raw input.
fn apply_result_path(state: &Value, raw: Value, result: Value) -> Flow<Value> {
    match state.get("ResultPath") {
        None => Ok(result),
        Some(Value::Null) => Ok(raw),
        Some(Value::String(p)) => {
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
        Some(other) => Err(unsupported(format!("ResultPath {other}"))),
    }
}

fn error_matches(list: &Value, error: &str) -> bool {
    list.as_array().is_some_and(|names| {
        names.iter().filter_map(Value::as_str).any(|n| {
            n == error
                || (n == "States.ALL" && error != "States.Runtime")
                || (n == "States.TaskFailed"
                    && error != "States.Timeout"
                    && error != "States.Runtime")
        })
    })
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
            }),
        }
    }

    /// Runs one execution of `definition` named `name` with `input` to completion.
    pub async fn execute(
        &self,
        definition: &Value,
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
        let run = self.run_machine(definition, input, ctx);
        let result = match definition.get("TimeoutSeconds").and_then(Value::as_f64) {
            Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), run).await {
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
        machine: &'a Value,
        input: Value,
        ctx: Ctx,
    ) -> Pin<Box<dyn Future<Output = Flow<Value>> + Send + 'a>> {
        Box::pin(async move {
            let states = &machine["States"];
            let mut name = machine["StartAt"].as_str().unwrap_or_default().to_owned();
            let mut input = input;
            loop {
                let state = &states[&name];
                self.transition(&ctx);
                let (output, next) = self.run_state(&name, state, input, &ctx).await?;
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

    async fn run_state(
        &self,
        name: &str,
        state: &Value,
        raw: Value,
        ctx: &Ctx,
    ) -> Flow<(Value, Option<String>)> {
        let ty = state["Type"].as_str().unwrap_or_default();
        let next = state["Next"].as_str().map(str::to_owned);
        match ty {
            "Succeed" => {
                let v = ctx.filter(state, "InputPath", raw)?;
                Ok((ctx.filter(state, "OutputPath", v)?, None))
            }
            "Fail" => Err(states_err(
                state["Error"].as_str().unwrap_or("States.Fail"),
                state["Cause"].as_str().unwrap_or_default(),
            )),
            "Pass" => {
                let effective = ctx.filter(state, "InputPath", raw.clone())?;
                let result = if let Some(r) = state.get("Result") {
                    r.clone()
                } else if let Some(p) = state.get("Parameters") {
                    ctx.template(p, &effective)?
                } else {
                    effective
                };
                let out = apply_result_path(state, raw, result)?;
                Ok((ctx.filter(state, "OutputPath", out)?, next))
            }
            "Task" | "Map" => {
                let effective = ctx.filter(state, "InputPath", raw.clone())?;
                let outcome = self.with_retry(name, state, &effective, ctx).await;
                match outcome {
                    Ok(result) => {
                        let result = match state.get("ResultSelector") {
                            Some(sel) => ctx.template(sel, &result)?,
                            None => result,
                        };
                        let out = apply_result_path(state, raw, result)?;
                        Ok((ctx.filter(state, "OutputPath", out)?, next))
                    }
                    Err(Fail::States(e)) => {
                        let catchers = state["Catch"].as_array().cloned().unwrap_or_default();
                        for c in &catchers {
                            if error_matches(&c["ErrorEquals"], &e.error) {
                                let err = json!({"Error": e.error, "Cause": e.cause});
                                let out = apply_result_path(c, raw, err)?;
                                let next = c["Next"].as_str().ok_or_else(|| {
                                    unsupported(format!("a Catcher of {name:?} without Next"))
                                })?;
                                return Ok((out, Some(next.to_owned())));
                            }
                        }
                        Err(Fail::States(e))
                    }
                    Err(other) => Err(other),
                }
            }
            other => Err(unsupported(format!("state type {other:?}"))),
        }
    }

    /// Runs a Task or Map under its `Retry` policies (each retrier counts its own attempts).
    async fn with_retry(
        &self,
        name: &str,
        state: &Value,
        effective: &Value,
        ctx: &Ctx,
    ) -> Flow<Value> {
        let retriers = state["Retry"].as_array().cloned().unwrap_or_default();
        let mut counts = vec![0u32; retriers.len()];
        let mut attempt = 0u32;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            epoch_ms() ^ (ctx.item.unwrap_or(0) as u64) << 20,
        );
        loop {
            let r = if state["Type"] == "Map" {
                self.run_map(name, state, effective, ctx).await
            } else {
                self.run_task(state, effective, ctx, attempt).await
            };
            let e = match r {
                Err(Fail::States(e)) => e,
                other => return other,
            };
            let Some(ri) = retriers
                .iter()
                .position(|r| error_matches(&r["ErrorEquals"], &e.error))
            else {
                return Err(Fail::States(e));
            };
            let r = &retriers[ri];
            let max = r["MaxAttempts"].as_u64().unwrap_or(3) as u32;
            if counts[ri] >= max {
                return Err(Fail::States(e));
            }
            let interval = r["IntervalSeconds"].as_f64().unwrap_or(1.0);
            let rate = r["BackoffRate"].as_f64().unwrap_or(2.0);
            let mut delay = interval * rate.powi(counts[ri] as i32);
            if let Some(cap) = r["MaxDelaySeconds"].as_f64() {
                delay = delay.min(cap);
            }
            if r["JitterStrategy"] == "FULL" {
                delay *= rng.random::<f64>();
            }
            counts[ri] += 1;
            attempt += 1;
            // A retry runs the state again, which Step Functions bills as a transition.
            self.transition(ctx);
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
    }

    async fn run_task(
        &self,
        state: &Value,
        effective: &Value,
        ctx: &Ctx,
        attempt: u32,
    ) -> Flow<Value> {
        let resource = state["Resource"].as_str().unwrap_or_default();
        let params = match state.get("Parameters") {
            Some(p) => ctx.template(p, effective)?,
            None => effective.clone(),
        };
        let integrated = resource == "arn:aws:states:::lambda:invoke";
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
        let res = match state.get("TimeoutSeconds").and_then(Value::as_f64) {
            Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), invoke).await {
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
            Err(InvokeError::NotFound(f)) => {
                return Err(states_err(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {f}"),
                ));
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
                if integrated {
                    Ok(json!({
                        "ExecutedVersion": "$LATEST",
                        "Payload": payload,
                        "SdkHttpMetadata": {"HttpStatusCode": 200},
                        "SdkResponseMetadata": {"RequestId": inv.request_id},
                        "StatusCode": 200,
                    }))
                } else {
                    Ok(payload)
                }
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
        state: &Value,
        effective: &Value,
        ctx: &Ctx,
    ) -> Flow<Value> {
        // Items: from S3 (distributed) or from the input (inline).
        let mut items: Vec<Value> = if let Some(reader) = state.get("ItemReader") {
            let p = match reader.get("Parameters") {
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
            let path = state["ItemsPath"].as_str().unwrap_or("$");
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
        if let Some(max) = state["ItemReader"]["ReaderConfig"]["MaxItems"].as_u64() {
            items.truncate(max as usize);
        }
        if let Some(sel) = state
            .get("ItemSelector")
            .or_else(|| state.get("Parameters"))
        {
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
        if let Some(batcher) = state.get("ItemBatcher") {
            let max_items = batcher["MaxItemsPerBatch"]
                .as_u64()
                .map_or(usize::MAX, |n| n.max(1) as usize);
            let max_bytes = batcher["MaxInputBytesPerBatch"]
                .as_u64()
                .map_or(usize::MAX, |n| n as usize);
            let batch_input = match batcher.get("BatchInput") {
                Some(t) => Some(ctx.template(t, effective)?),
                None => None,
            };
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
            items = batches
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

        let processor = state
            .get("ItemProcessor")
            .or_else(|| state.get("Iterator"))
            .expect("checked");
        let max_conc = match state["MaxConcurrency"].as_u64() {
            Some(0) | None => items.len().max(1),
            Some(n) => n as usize,
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(max_conc));
        let n = items.len();
        let child_distributed = processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
        let child_express =
            child_distributed && processor["ProcessorConfig"]["ExecutionType"] == "EXPRESS";
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
                if child_distributed {
                    // A Distributed Map bills one transition per child execution it starts.
                    self.transition(&parent);
                }
                let started = std::time::Instant::now();
                let r = self.run_machine(processor, item.clone(), c).await;
                if child_express && !parent.express {
                    self.inner
                        .usage
                        .lock()
                        .expect("usage lock")
                        .add_express_child(started.elapsed().as_secs_f64());
                }
                if let Some(cb) = &self.inner.on_item {
                    match &r {
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
        let failed = outputs.iter().filter(|o| o.is_err()).count();
        let distributed = processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
        let pct = state["ToleratedFailurePercentage"].as_f64();
        let count = state["ToleratedFailureCount"].as_u64();
        let tolerated = if !distributed || (pct.is_none() && count.is_none()) {
            failed == 0
        } else {
            let by_pct = pct.is_some_and(|p| n > 0 && (failed as f64) * 100.0 / (n as f64) <= p);
            let by_count = count.is_some_and(|c| failed as u64 <= c);
            by_pct || by_count
        };

        let map_run = self.inner.map_runs.fetch_add(1, Ordering::SeqCst);
        let label = state["Label"].as_str().unwrap_or(name);
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
        let output = if let Some(writer) = state.get("ResultWriter") {
            let p = match writer.get("Parameters") {
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
                        "FAILED",
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
                        "{failed} of {n} items of Map {name:?} failed, above the tolerated threshold"
                    ),
                },
            ));
        }
        Ok(output)
    }
}

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
        let out = c.template(&t, &input).ok().unwrap();
        assert_eq!(
            out,
            json!({"FunctionName": "f", "Payload": input, "Nested": {"id": "r"}})
        );
        let state = json!({"ResultPath": "$.error.detail"});
        let out = apply_result_path(&state, json!({"a": 1}), json!("E"))
            .ok()
            .unwrap();
        assert_eq!(out, json!({"a": 1, "error": {"detail": "E"}}));
        let out = apply_result_path(&json!({"ResultPath": null}), json!({"a": 1}), json!(2))
            .ok()
            .unwrap();
        assert_eq!(out, json!({"a": 1}));
        assert_eq!(
            apply_result_path(&json!({}), json!(1), json!(2)).ok(),
            Some(json!(2))
        );
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
        let e = check_supported(&def).unwrap_err().to_string();
        assert!(
            e.starts_with("not supported locally") && e.contains("Wait"),
            "{e}"
        );
        let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": true}}});
        assert!(
            check_supported(&def)
                .unwrap_err()
                .to_string()
                .contains("dynamodb")
        );
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Credentials": {}, "End": true}}});
        assert!(
            check_supported(&def)
                .unwrap_err()
                .to_string()
                .contains("Credentials")
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
            .execute(&def, "e1", json!({"xs": [10, 20]}))
            .await
            .unwrap();
        assert_eq!(ex.result.unwrap(), json!([{"got": 10}, {"got": 20}]));
        // Map, the two iterations' Pass states, Succeed.
        assert_eq!(ex.usage.standard_transitions, 4);
        let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}});
        let ex = interp.execute(&def, "e2", json!({})).await.unwrap();
        assert_eq!(ex.result.unwrap_err().error, "Boom");
    }
}
