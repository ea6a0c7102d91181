//! Property tests over mutated payloads: the batch parser and the handler/result path never
//! panic, and every rejection is an `InvalidBatch` that names the offending field.
//!
//! Inputs are valid batches of every accepted shape, mutated by deleting fields, replacing
//! values with random JSON (wrong types, huge and negative numbers, nested junk) and inserting
//! keys; plus arbitrary bytes and arbitrary JSON. Each test counts the inputs it tried and
//! prints the count (`cargo test -p propack-runtime --test batch_fuzz -- --nocapture`).

use std::sync::atomic::{AtomicUsize, Ordering};

use propack_runtime::contract::{Batch, ContractError, ErrorPayload, ParseOptions};
use propack_runtime::deadline::DeadlineResolver;
use propack_runtime::executor::TaskPolicy;
use propack_runtime::handler::Instance;
use propack_runtime::{ExecutorConfig, Storage};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Inputs the parser properties try.
const PARSER_CASES: u32 = 20_000;
/// Inputs the handler property runs (each runs a batch through an instance).
const HANDLER_CASES: u32 = 2_000;

/// Valid batches of every accepted shape and task kind.
fn seeds() -> Vec<Value> {
    vec![
        json!({"Items": [
            {"id": "t1", "exec": {"program": "/bin/true", "args": ["a"], "env": {"K": "v"}}, "timeout_ms": 1000,
             "inputs": {"in": "file:///tmp/x"}, "outputs": {"out": "s3://b/k"}},
            {"id": "t2", "builtin": {"name": "noop", "params": {"n": 1}}}],
         "BatchInput": {"run_id": "r1", "batch_id": "000001", "output_prefix": "s3://b/out/",
                        "max_result_bytes": 258048, "logs_prefix": "file:///tmp/logs", "parallelism": 2}}),
        json!({"Items": [{"id": "t1", "builtin": {"name": "noop"}}], "run_id": "r1", "parallelism": 1}),
        json!({"run_id": "r1", "tasks": [
            {"id": "e1", "event": {"n": 1}},
            {"id": "e2", "event": null, "handler": {"runtime": "node", "name": "src/app.handler"}}],
         "handler": {"runtime": "python3", "name": "app.handler"}}),
        json!({"tasks": [{"id": "a", "builtin": {"name": "sleep", "params": {"ms": 1}}, "timeout_ms": 5},
                         {"id": "b", "builtin": {"name": "noop"}}],
               "BatchInput": {"handler": {"runtime": "python3", "name": "m.f"}}, "max_result_bytes": 4000}),
    ]
}

/// Keys the mutations insert: the contract's own (so that they land where the parser looks)
/// and a stranger.
const KEYS: &[&str] = &[
    "id",
    "exec",
    "builtin",
    "event",
    "handler",
    "program",
    "args",
    "env",
    "name",
    "params",
    "timeout_ms",
    "inputs",
    "outputs",
    "runtime",
    "Items",
    "tasks",
    "BatchInput",
    "run_id",
    "batch_id",
    "max_result_bytes",
    "parallelism",
    "logs_prefix",
    "output_prefix",
    "zzz",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z./]{0,6}",
    ]
}

/// Random JSON with the values that break parsers: wrong types, huge, negative and
/// fractional numbers, odd strings, and nesting.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(-1)),
        Just(json!(0)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        proptest::sample::select(vec![
            "",
            "a",
            "noop",
            "app.handler",
            ".h",
            "a.",
            "s3://b/k",
            "s3://",
            "file:///tmp/x",
            "file://rel",
            "../x",
            "x/y",
            "python3",
            "node",
            "nope",
            "\u{0}",
            "é€😀",
        ])
        .prop_map(|s| json!(s)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(arb_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every path in `v` (the root included).
fn paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(Seg::Key(k.clone()));
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(Seg::Index(i));
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Seg::Key(k) => cur.get_mut(k.as_str())?,
            Seg::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the value at the path (a key of its object or an element of its array).
    Delete(usize),
    /// Replace the value at the path.
    Replace(usize, Value),
    /// Insert (or overwrite) a key in the object at the path.
    Insert(usize, String, Value),
    /// Append a copy of the array's first element (e.g. a duplicate task).
    Duplicate(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<usize>().prop_map(Mutation::Delete),
        4 => (any::<usize>(), arb_json()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        2 => (any::<usize>(), arb_key(), arb_json()).prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

fn apply(v: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    let pick = |n: usize| all[n % all.len()].clone();
    match m {
        Mutation::Delete(p) => {
            let path = pick(*p);
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (get_mut(v, parent), last) {
                (Some(Value::Object(o)), Seg::Key(k)) => {
                    o.remove(k);
                }
                (Some(Value::Array(a)), Seg::Index(i)) if *i < a.len() => {
                    a.remove(*i);
                }
                _ => {}
            }
        }
        Mutation::Replace(p, x) => {
            if let Some(slot) = get_mut(v, &pick(*p)) {
                *slot = x.clone();
            }
        }
        Mutation::Insert(p, k, x) => {
            if let Some(Value::Object(o)) = get_mut(v, &pick(*p)) {
                o.insert(k.clone(), x.clone());
            }
        }
        Mutation::Duplicate(p) => {
            if let Some(Value::Array(a)) = get_mut(v, &pick(*p))
                && let Some(first) = a.first().cloned()
            {
                a.push(first);
            }
        }
    }
}

fn arb_payload() -> impl Strategy<Value = Value> {
    (
        0..seeds().len(),
        proptest::collection::vec(arb_mutation(), 1..5),
    )
        .prop_map(|(seed, ms)| {
            let mut v = seeds()[seed].clone();
            for m in &ms {
                apply(&mut v, m);
            }
            v
        })
}

/// The first segment of an error's field path (`tasks[3].exec.args` → `tasks`), and the
/// task index if it names one.
fn root_of(field: &str) -> (&str, Option<usize>) {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    let index = field[end..]
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|n| n.parse().ok());
    (&field[..end], index)
}

/// Checks that a rejection is clear: an `InvalidBatch` whose field exists in `input`, more
/// precise than a whole task when the problem is one field's type, and free of Rust's own
/// type names.
fn check_rejection(input: &Value, e: &ContractError) -> Result<(), TestCaseError> {
    let payload = ErrorPayload::from(e);
    prop_assert_eq!(&payload.error_type, "InvalidBatch");
    let msg = e.to_string();
    prop_assert!(!msg.is_empty());
    for internal in ["Wire", "struct ", "BTreeMap", "Option<"] {
        prop_assert!(!msg.contains(internal), "internal name in {:?}", msg);
    }
    match e {
        ContractError::NotAnObject(_) => prop_assert!(!input.is_object()),
        ContractError::MissingTasks => {
            prop_assert!(input.get("Items").is_none() && input.get("tasks").is_none())
        }
        ContractError::EmptyTasks(f) | ContractError::TooManyTasks { field: f, .. } => {
            prop_assert!(input.get(*f).is_some(), "{} names a missing field", msg)
        }
        ContractError::DuplicateId { field, index, .. } => {
            prop_assert!(input[*field].get(*index).is_some(), "{}", msg)
        }
        ContractError::InvalidField { field, message } => {
            let (root, index) = root_of(field);
            prop_assert!(
                input.get(root).is_some(),
                "{:?} names no field of the payload {}",
                msg,
                input
            );
            if let Some(i) = index {
                prop_assert!(input[root].get(i).is_some(), "{}", msg);
                // A wrong type or value inside a task names the field, not just the task.
                let whole_task = !field[root.len()..].contains('.');
                let type_error = message.starts_with("invalid type")
                    || message.starts_with("invalid value")
                    || message.starts_with("invalid length");
                prop_assert!(
                    !(whole_task && type_error && input[root][i].is_object()),
                    "{:?} does not say which field of the task",
                    msg
                );
            }
        }
    }
    Ok(())
}

/// Runs `cases` inputs of `strategy` through `test`, and returns how many were tried.
fn run_cases<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> usize {
    let tried = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |v| {
        tried.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let n = tried.load(Ordering::Relaxed);
    eprintln!("{name}: {n} inputs tried, no panic, every rejection clear");
    n
}

#[test]
fn mutated_batches_parse_or_are_rejected_naming_the_field() {
    let opts = ParseOptions { max_tasks: 8 };
    let accepted = AtomicUsize::new(0);
    let n = run_cases("mutated batches", PARSER_CASES, arb_payload(), |v| {
        match Batch::from_value(&v, &opts) {
            Ok(b) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                // What parsed is stable: its own wire form parses to the same batch.
                let again = Batch::from_value(&b.to_value(), &opts);
                prop_assert_eq!(again.as_ref(), Ok(&b));
                prop_assert!(!b.tasks.is_empty() && b.tasks.len() <= 8);
            }
            Err(e) => check_rejection(&v, &e)?,
        }
        Ok(())
    });
    let accepted = accepted.load(Ordering::Relaxed);
    eprintln!(
        "mutated batches: {accepted} accepted, {} rejected",
        n - accepted
    );
    // Both sides are exercised: the mutations neither always break nor never break a batch.
    assert!(accepted > 0 && accepted < n, "{accepted} of {n}");
    assert!(n >= PARSER_CASES as usize, "{n}");
}

#[test]
fn random_json_and_random_bytes_are_rejected_cleanly() {
    let opts = ParseOptions::default();
    let n = run_cases("random JSON", PARSER_CASES / 2, arb_json(), |v| {
        if let Err(e) = Batch::from_value(&v, &opts) {
            check_rejection(&v, &e)?;
        }
        Ok(())
    });
    let m = run_cases(
        "random bytes",
        PARSER_CASES / 2,
        proptest::collection::vec(any::<u8>(), 0..256),
        |bytes| {
            if let Err(e) = Batch::from_slice(&bytes, &opts) {
                prop_assert_eq!(ErrorPayload::from(&e).error_type, "InvalidBatch");
                prop_assert!(
                    e.to_string().starts_with("field `(payload)`")
                        || serde_json::from_slice::<Value>(&bytes).is_ok()
                );
            }
            Ok(())
        },
    );
    assert!(n + m >= PARSER_CASES as usize, "{n} + {m}");
}

/// Built-in tasks only (exec and handler tasks refused), so random payloads run nothing but
/// the `noop`/`sleep` built-ins: the handler path, the executor and the result budget.
fn instance(scratch: &std::path::Path) -> Instance {
    let cfg = ExecutorConfig {
        parallelism: Some(2),
        scratch_root: scratch.to_path_buf(),
        policy: TaskPolicy {
            builtins_only: true,
            allowed_programs: None,
        },
        ..ExecutorConfig::default()
    };
    Instance::new(
        cfg,
        Storage::from_env().unwrap(),
        DeadlineResolver::new(None),
    )
}

#[test]
fn the_handler_answers_every_mutated_payload_with_a_result_or_invalid_batch() {
    let scratch = tempfile::tempdir().unwrap();
    let inst = instance(scratch.path());
    // Sleeps are capped: a mutated `ms` could otherwise be a year.
    let strategy = arb_payload().prop_map(|mut v| {
        cap_sleeps(&mut v);
        v
    });
    let ran = AtomicUsize::new(0);
    let n = run_cases("handler", HANDLER_CASES, strategy, |v| {
        match inst.handle_value(&v, None, Some("req".into())) {
            Ok(r) => {
                ran.fetch_add(1, Ordering::Relaxed);
                let batch = Batch::from_value(&v, &inst.config().parse_options())
                    .expect("a batch the handler ran parses");
                // One record per task, in the batch's order, each with a status.
                let ids: Vec<&str> = r.tasks.iter().map(|t| t.id.as_str()).collect();
                let want: Vec<&str> = batch.tasks.iter().map(|t| t.id.as_str()).collect();
                prop_assert_eq!(ids, want);
                let bytes = serde_json::to_vec(&r).expect("results serialise");
                let back: propack_runtime::BatchResult =
                    serde_json::from_slice(&bytes).expect("results parse back");
                prop_assert_eq!(back.tasks.len(), r.tasks.len());
                if let Some(budget) = batch.max_result_bytes {
                    let floor = propack_runtime::budget::floor_bytes(&r);
                    prop_assert!(
                        bytes.len() as u64 <= budget.max(floor),
                        "{} bytes, budget {}, floor {}",
                        bytes.len(),
                        budget,
                        floor
                    );
                }
            }
            Err(p) => {
                prop_assert_eq!(&p.error_type, "InvalidBatch");
                let e = Batch::from_value(&v, &inst.config().parse_options())
                    .expect_err("the handler rejected it, so does the parser");
                check_rejection(&v, &e)?;
            }
        }
        Ok(())
    });
    let ran = ran.load(Ordering::Relaxed);
    eprintln!(
        "handler: {ran} batches ran, {} answered InvalidBatch",
        n - ran
    );
    assert!(ran > 0 && ran < n, "{ran} of {n}");
    assert!(n >= HANDLER_CASES as usize, "{n}");
}

fn cap_sleeps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Number(ms)) = m.get("ms")
                && ms.as_u64().is_none_or(|x| x > 5)
            {
                m.insert("ms".into(), json!(1));
            }
            if let Some(Value::Number(t)) = m.get("timeout_ms")
                && t.as_u64().is_some_and(|x| x > 1000)
            {
                m.insert("timeout_ms".into(), json!(1000));
            }
            m.values_mut().for_each(cap_sleeps);
        }
        Value::Array(a) => a.iter_mut().for_each(cap_sleeps),
        _ => {}
    }
}
