//! The typed Amazon States Language subset ProPack generates (and the local platform interprets).
//!
//! Field names follow the ASL specification exactly (PascalCase on the wire),
//! and every struct denies unknown fields: a definition that uses a construct
//! outside this subset fails to parse with a message naming the field, rather
//! than being silently half-understood by an interpreter.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A JSONPath payload template (`Parameters`, `ResultSelector`, `ItemSelector`, `BatchInput`):
/// keys ending in `.$` hold paths evaluated against the state's input.
pub type PayloadTemplate = Map<String, Value>;

/// `v` with every object's keys in sorted order.
///
/// Templates are `serde_json` maps, whose iteration order depends on whether any crate in the
/// build enables serde_json's `preserve_order` feature (the AWS SDK's test utilities do). Sorting
/// on output keeps generated definitions byte-identical in every build.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn canonical_template<S: serde::Serializer>(
    t: &Option<PayloadTemplate>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(map) => canonical(&Value::Object(map.clone())).serialize(s),
        None => s.serialize_none(),
    }
}

fn canonical_value<S: serde::Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => canonical(v).serialize(s),
        None => s.serialize_none(),
    }
}

/// ASL distinguishes an absent `ResultPath` (default `$`) from `"ResultPath": null`
/// (discard the result), so those fields are `Option<Option<String>>`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A state machine: the top level of a definition, and the body of a Map's `ItemProcessor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StateMachine {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Name of the first state.
    pub start_at: String,
    /// The states, by name.
    pub states: BTreeMap<String, State>,
    /// Execution timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// One state, tagged by its `Type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Type")]
pub enum State {
    /// `"Type": "Task"`.
    Task(TaskState),
    /// `"Type": "Map"` (boxed: it is much larger than the others).
    Map(Box<MapState>),
    /// `"Type": "Pass"`.
    Pass(PassState),
    /// `"Type": "Succeed"`.
    Succeed(SucceedState),
    /// `"Type": "Fail"`.
    Fail(FailState),
}

impl State {
    /// The `Next` state, if this state transitions rather than ends.
    pub fn next(&self) -> Option<&str> {
        match self {
            State::Task(s) => s.next.as_deref(),
            State::Map(s) => s.next.as_deref(),
            State::Pass(s) => s.next.as_deref(),
            State::Succeed(_) | State::Fail(_) => None,
        }
    }

    /// The `Catch` clauses of a Task or Map state.
    pub fn catchers(&self) -> &[Catcher] {
        match self {
            State::Task(s) => &s.catch,
            State::Map(s) => &s.catch,
            _ => &[],
        }
    }
}

/// A Task state: call a service integration (ProPack: `arn:aws:states:::lambda:invoke`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TaskState {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The integration ARN.
    pub resource: String,
    /// Request template (for lambda:invoke: `FunctionName`, `Payload.$`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub parameters: Option<PayloadTemplate>,
    /// Template applied to the raw result before `ResultPath`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub result_selector: Option<PayloadTemplate>,
    /// Where the result goes in the input (`Some(None)` = `null`: discard it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub result_path: Option<Option<String>>,
    /// Filter on the state input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub input_path: Option<Option<String>>,
    /// Filter on the state output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub output_path: Option<Option<String>>,
    /// Task timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Heartbeat timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    /// Retry policies, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<Retrier>,
    /// Fallbacks once retries are exhausted, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catch: Vec<Catcher>,
    /// Next state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<bool>,
}

/// A Map state, inline or distributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MapState {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The per-item (per-batch) workflow.
    pub item_processor: ItemProcessor,
    /// Inline Map: path to the array of items in the state input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_path: Option<String>,
    /// Distributed Map: where the items come from (an S3 object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_reader: Option<ItemReader>,
    /// Template applied to each item before it reaches the processor.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub item_selector: Option<PayloadTemplate>,
    /// Distributed Map: group items into batches (ProPack's packing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_batcher: Option<ItemBatcher>,
    /// Upper bound on concurrent iterations (0 = as many as possible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Distributed Map: fail the Map Run only when more than this percentage of items fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated_failure_percentage: Option<u32>,
    /// Distributed Map: fail the Map Run only when more than this many items fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated_failure_count: Option<u64>,
    /// Distributed Map: write child results to S3 instead of the state output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_writer: Option<ResultWriter>,
    /// Distributed Map: a name for the Map Run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Template applied to the Map's result before `ResultPath`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub result_selector: Option<PayloadTemplate>,
    /// Where the result goes in the input (`Some(None)` = `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub result_path: Option<Option<String>>,
    /// Filter on the state input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub input_path: Option<Option<String>>,
    /// Filter on the state output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub output_path: Option<Option<String>>,
    /// Retry policies for the Map as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<Retrier>,
    /// Fallbacks for the Map as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catch: Vec<Catcher>,
    /// Next state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<bool>,
}

/// A Map's per-item workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ItemProcessor {
    /// Inline or distributed, and the child execution type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_config: Option<ProcessorConfig>,
    /// Name of the first state.
    pub start_at: String,
    /// The states, by name.
    pub states: BTreeMap<String, State>,
}

/// How a Map runs its iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ProcessorConfig {
    /// `INLINE` or `DISTRIBUTED`.
    pub mode: ProcessorMode,
    /// Distributed only: child workflow type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_type: Option<ExecutionType>,
}

/// Inline (iterations inside the parent execution) or distributed (child executions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessorMode {
    /// At most 40 concurrent iterations, items from the state input.
    Inline,
    /// Up to 10,000 concurrent child executions, items from S3.
    Distributed,
}

/// Child workflow type of a Distributed Map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionType {
    /// At most 5 minutes per child; cheap, at-least-once.
    Express,
    /// Up to a year per child; exactly-once, billed per state transition.
    Standard,
}

/// Where a Distributed Map reads its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ItemReader {
    /// E.g. `arn:aws:states:::s3:getObject`.
    pub resource: String,
    /// How to read the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_config: Option<ReaderConfig>,
    /// `Bucket`/`Key` (or `Bucket.$`/`Key.$`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub parameters: Option<PayloadTemplate>,
}

/// Format of the item source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ReaderConfig {
    /// `JSON`, `CSV` or `MANIFEST`.
    pub input_type: InputType,
    /// Read at most this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
}

/// Format of an `ItemReader` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InputType {
    /// A JSON array of items (ProPack's task manifest).
    Json,
    /// CSV rows.
    Csv,
    /// An S3 inventory manifest.
    Manifest,
}

/// How a Distributed Map groups items into batches: ProPack's k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ItemBatcher {
    /// At most this many items per batch (ProPack's packing degree k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items_per_batch: Option<u64>,
    /// At most this many bytes per batch (≤ 262,144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes_per_batch: Option<u64>,
    /// Template for the `BatchInput` object added next to `Items` in every batch.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub batch_input: Option<PayloadTemplate>,
}

/// Where a Distributed Map writes child results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResultWriter {
    /// `arn:aws:states:::s3:putObject`.
    pub resource: String,
    /// `Bucket`/`Prefix` (or their `.$` forms).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub parameters: Option<PayloadTemplate>,
}

/// A Pass state: reshape data (ProPack: record a failed batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PassState {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Template producing the output from the input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_template"
    )]
    pub parameters: Option<PayloadTemplate>,
    /// A fixed result.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "canonical_value"
    )]
    pub result: Option<Value>,
    /// Where the result goes in the input (`Some(None)` = `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub result_path: Option<Option<String>>,
    /// Filter on the state input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub input_path: Option<Option<String>>,
    /// Filter on the state output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub output_path: Option<Option<String>>,
    /// Next state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<bool>,
}

/// A Succeed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SucceedState {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Filter on the state input.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub input_path: Option<Option<String>>,
    /// Filter on the state output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub output_path: Option<Option<String>>,
}

/// A Fail state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FailState {
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Error name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Human-readable cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A `Retry` clause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Retrier {
    /// Error names this clause matches (`States.ALL` matches all but [`UNCATCHABLE_BY_ALL`]).
    pub error_equals: Vec<String>,
    /// Delay before the first retry, seconds (ASL default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// Retries after the first attempt (ASL default 3; 0 = never retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Multiplier of the delay per retry (ASL default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_rate: Option<f64>,
    /// Cap on the delay, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_seconds: Option<u32>,
    /// `FULL` jitter randomises each delay in [0, delay].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_strategy: Option<JitterStrategy>,
}

impl Retrier {
    /// Delay before retry number `retry` (1-based) before jitter, seconds, with ASL defaults.
    pub fn delay_seconds(&self, retry: u32) -> f64 {
        let base = f64::from(self.interval_seconds.unwrap_or(1));
        let rate = self.backoff_rate.unwrap_or(2.0);
        let d = base * rate.powi(retry.saturating_sub(1) as i32);
        match self.max_delay_seconds {
            Some(cap) => d.min(f64::from(cap)),
            None => d,
        }
    }

    /// Whether this clause matches `error` (`States.ALL` matches everything except `States.Runtime`).
    pub fn matches(&self, error: &str) -> bool {
        error_matches(&self.error_equals, error)
    }
}

/// Jitter applied to retry delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JitterStrategy {
    /// Random delay in [0, computed delay].
    Full,
    /// The computed delay exactly.
    None,
}

/// A `Catch` clause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Catcher {
    /// Error names this clause matches.
    pub error_equals: Vec<String>,
    /// Where the error object `{Error, Cause}` goes in the input (`Some(None)` = `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    pub result_path: Option<Option<String>>,
    /// The fallback state.
    pub next: String,
}

impl Catcher {
    /// Whether this clause matches `error`.
    pub fn matches(&self, error: &str) -> bool {
        error_matches(&self.error_equals, error)
    }
}

/// Errors `States.ALL` (and `States.TaskFailed`) do not match: `States.Runtime` (never
/// retried or caught) and `States.DataLimitExceeded` (terminal: only a clause naming it sees it).
pub const UNCATCHABLE_BY_ALL: [&str; 2] = ["States.Runtime", "States.DataLimitExceeded"];

/// ASL error matching: exact names; `States.ALL` for any error except
/// [`UNCATCHABLE_BY_ALL`]; `States.TaskFailed` for any error except those and `States.Timeout`.
pub fn error_matches(names: &[String], error: &str) -> bool {
    let wildcard_sees = !UNCATCHABLE_BY_ALL.contains(&error);
    names.iter().any(|n| {
        n == error
            || (n == "States.ALL" && wildcard_sees)
            || (n == "States.TaskFailed" && wildcard_sees && error != "States.Timeout")
    })
}

impl StateMachine {
    /// Parses a definition, refusing anything outside the supported subset.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The definition as pretty-printed JSON (the committed `*.asl.json` format, newline-terminated).
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a state machine always serialises");
        s.push('\n');
        s
    }

    /// The definition as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a state machine always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_path_null_differs_from_absent() {
        let with_null: PassState =
            serde_json::from_value(json!({"ResultPath": null, "End": true})).unwrap();
        assert_eq!(with_null.result_path, Some(None));
        let absent: PassState = serde_json::from_value(json!({"End": true})).unwrap();
        assert_eq!(absent.result_path, None);
        assert_eq!(
            serde_json::to_value(&with_null).unwrap(),
            json!({"ResultPath": null, "End": true})
        );
    }

    #[test]
    fn unknown_fields_and_types_are_refused_by_name() {
        let err = serde_json::from_value::<State>(json!({"Type": "Pass", "Bogus": 1, "End": true}))
            .unwrap_err();
        assert!(err.to_string().contains("Bogus"), "{err}");
        let err =
            serde_json::from_value::<State>(json!({"Type": "Wait", "Seconds": 1, "End": true}))
                .unwrap_err();
        assert!(err.to_string().contains("Wait"), "{err}");
    }

    #[test]
    fn states_all_never_matches_runtime() {
        let c = Catcher {
            error_equals: vec!["States.ALL".into()],
            result_path: None,
            next: "x".into(),
        };
        assert!(c.matches("Lambda.ServiceException"));
        assert!(!c.matches("States.Runtime"));
        assert!(!c.matches("States.DataLimitExceeded"));
        let named = Catcher {
            error_equals: vec!["States.DataLimitExceeded".into()],
            ..c.clone()
        };
        assert!(named.matches("States.DataLimitExceeded"));
    }

    #[test]
    fn retry_delay_backs_off_and_caps() {
        let r = Retrier {
            error_equals: vec!["X".into()],
            interval_seconds: Some(1),
            max_attempts: Some(5),
            backoff_rate: Some(2.0),
            max_delay_seconds: Some(5),
            jitter_strategy: Some(JitterStrategy::Full),
        };
        assert_eq!(r.delay_seconds(1), 1.0);
        assert_eq!(r.delay_seconds(3), 4.0);
        assert_eq!(r.delay_seconds(4), 5.0);
    }
}
