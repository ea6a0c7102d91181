//! Step Functions limits the interpreter enforces, each shown failing on the definition shape
//! built before issue 18 and passing on the one built now (with a stand-in function).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use propack_step_functions::asl::{ExecutionType, MapState, State, StateMachine, TaskState};
use propack_step_functions::build::{MAP_STATE, MAX_PAYLOAD_BYTES, TASK_STATE};
use propack_step_functions::{DefinitionOptions, ModeRequest, build_definition};
use serde_json::{Value, json};

use super::{Execution, Interpreter, storage_path};
use crate::backend::local::lambda::{FunctionConfig, LambdaPlatform};
use crate::platform::PlatformProfile;

/// Answers batches as the items ask (see the script's header).
const FAKE_FUNCTION: &str = include_str!("testdata/fake_function.py");

fn map_mut(def: &mut StateMachine) -> &mut MapState {
    match def.states.get_mut(MAP_STATE) {
        Some(State::Map(m)) => m,
        _ => panic!("built definitions start with the Map"),
    }
}

fn task_mut(def: &mut StateMachine) -> &mut TaskState {
    match map_mut(def).item_processor.states.get_mut(TASK_STATE) {
        Some(State::Task(t)) => t,
        _ => panic!("the Map runs the Task"),
    }
}

/// Before issue 18: a 10-field ResultSelector (dropping run_id, batch_id, memory_mb, request_id).
fn old_result_selector(def: &mut StateMachine) {
    let t = task_mut(def);
    let fields = [
        "schema_version",
        "instance_id",
        "cold_start",
        "init_ms",
        "received_at",
        "started_at",
        "ended_at",
        "vcpus",
        "parallelism",
        "tasks",
    ];
    t.result_selector = Some(
        fields
            .iter()
            .map(|f| (format!("{f}.$"), json!(format!("$.Payload.{f}"))))
            .collect(),
    );
    t.output_path = None;
}

/// Before issue 18: no result budget in an inline Map's items.
fn old_inline_items(def: &mut StateMachine) {
    map_mut(def).item_selector = None;
}

fn opts(c: u64, k: u64, mode: ModeRequest) -> DefinitionOptions {
    let mut o = DefinitionOptions::new(c, k);
    o.mode = mode;
    o.shape.task_bytes = 64;
    o.shape.task_seconds = Some(1.0);
    // Few stand-in instances at once: each starts a Python interpreter within Lambda's 10 s init limit.
    o.max_concurrency = Some(2);
    o
}

fn item(i: usize) -> Value {
    json!({"id": format!("t{i:03}")})
}

struct Run {
    _dir: tempfile::TempDir,
    storage: std::path::PathBuf,
    execution: Execution,
}

impl Run {
    /// The ResultWriter file `kind` (`SUCCEEDED`/`FAILED`) of the first Map Run, if written.
    fn results(&self, kind: &str) -> Option<Vec<Value>> {
        let manifest = self.read("res/RunPackedBatches-0/manifest.json")?;
        let key = manifest["ResultFiles"][kind][0]["Key"].as_str()?.to_owned();
        self.read(&key).map(|v| v.as_array().unwrap().clone())
    }

    fn read(&self, key: &str) -> Option<Value> {
        let p = storage_path(&self.storage, "b", key);
        std::fs::read(p)
            .ok()
            .map(|d| serde_json::from_slice(&d).unwrap())
    }
}

/// Runs `def` over `items` (packed k per batch for an inline Map, from an S3 manifest otherwise).
async fn run(
    def: &StateMachine,
    items: Vec<Value>,
    k: usize,
    express_limit: Option<Duration>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bootstrap");
    std::fs::write(&script, FAKE_FUNCTION).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let storage = dir.path().join("storage");
    let profile = PlatformProfile::unlimited();
    let f = FunctionConfig::new("propack", &script, &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let interp = Interpreter::new(platform.clone(), &storage, None);
    if let Some(l) = express_limit {
        interp.set_express_limit(l);
    }
    let input = if def
        .states
        .values()
        .any(|s| matches!(s, State::Map(m) if m.item_reader.is_some()))
    {
        write(&storage, "m.json", &Value::Array(items));
        json!({"run_id": "r1", "output_prefix": "file:///o/", "bucket": "b",
               "manifest_key": "m.json", "results_prefix": "res"})
    } else {
        let batches: Vec<Value> = items
            .chunks(k)
            .enumerate()
            .map(|(i, c)| json!({"Items": c, "BatchInput": {"run_id": "r1", "batch_id": format!("{i:06}")}}))
            .collect();
        json!({"run_id": "r1", "output_prefix": "file:///o/", "batches": batches})
    };
    let execution = interp.execute(def, "e1", input).await.unwrap();
    platform.shutdown();
    Run {
        _dir: dir,
        storage,
        execution,
    }
}

fn write(storage: &Path, key: &str, v: &Value) {
    let p = storage_path(storage, "b", key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_vec(v).unwrap()).unwrap();
}

fn size(v: &Value) -> u64 {
    serde_json::to_vec(v).unwrap().len() as u64
}

/// Defect 1: a result missing a selected field is `States.Runtime`, which `States.ALL` does not
/// catch, so the old selector lost a whole inline run; a result over 256 KiB is
/// `States.DataLimitExceeded`, also uncatchable, which must cost only its own batch.
#[tokio::test]
async fn defect1_uncatchable_errors_cost_only_their_batch() {
    let built = build_definition(&opts(12, 2, ModeRequest::Inline)).unwrap();
    let mut items: Vec<Value> = (0..12).map(item).collect();
    items[5]["no_init_ms"] = json!(true);
    let mut old = built.definition.clone();
    old_result_selector(&mut old);
    let r = run(&old, items.clone(), 2, None).await;
    let e = r.execution.result.unwrap_err();
    assert_eq!(e.error, "States.Runtime", "{}", e.cause);
    let r = run(&built.definition, items, 2, None).await;
    let out = r.execution.result.unwrap();
    assert_eq!(out.as_array().unwrap().len(), 6);
    assert!(out[2].get("init_ms").is_none());
    assert_eq!(out[2]["tasks"][1]["id"], "t005");

    // Distributed: one batch's oversize result fails that child only (uncaught by States.ALL:
    // it lands in FAILED_0.json, not in a failure record), 1 of 20 items is within 5 %.
    let built = build_definition(&opts(20, 1, ModeRequest::Distributed)).unwrap();
    let mut items: Vec<Value> = (0..20).map(item).collect();
    items[7]["tail"] = json!(300_000);
    items[7]["ignore_budget"] = json!(true);
    let r = run(&built.definition, items, 1, None).await;
    assert!(r.execution.result.is_ok(), "{:?}", r.execution.result);
    let failed = r.results("FAILED").unwrap();
    assert_eq!(failed.len(), 1);
    let out: Value = serde_json::from_str(failed[0]["Output"].as_str().unwrap()).unwrap();
    assert_eq!(out["Error"], "States.DataLimitExceeded");
    assert_eq!(r.results("SUCCEEDED").unwrap().len(), 19);
}

/// Defect 2: an inline Map's whole output is the execution output (≤ 256 KiB); with every
/// task's tails full the old definition overflowed it and lost the run, the new one gives
/// each batch its share as `max_result_bytes`.
#[tokio::test]
async fn defect2_inline_output_stays_under_256_kib() {
    let built = build_definition(&opts(60, 10, ModeRequest::Auto)).unwrap();
    assert_eq!(
        built.mode,
        propack_step_functions::ProcessorMode::Inline,
        "{}",
        built.reason
    );
    assert_eq!(built.max_result_bytes, (262_144 - 4_096) / 6);
    let items: Vec<Value> = (0..60)
        .map(|i| {
            let mut it = item(i);
            it["tail"] = json!(8_192);
            it
        })
        .collect();
    let mut old = built.definition.clone();
    old_result_selector(&mut old);
    old_inline_items(&mut old);
    let r = run(&old, items.clone(), 10, None).await;
    assert_eq!(
        r.execution.result.unwrap_err().error,
        "States.DataLimitExceeded"
    );
    let r = run(&built.definition, items, 10, None).await;
    let out = r.execution.result.unwrap();
    assert!(size(&out) <= MAX_PAYLOAD_BYTES, "{}", size(&out));
    for b in out.as_array().unwrap() {
        assert!(size(b) <= built.max_result_bytes, "{}", size(b));
        assert_eq!(b["tasks"].as_array().unwrap().len(), 10);
    }
}

/// Defect 3: `MaxInputBytesPerBatch: 262144` let the items alone fill 256 KiB, so the child's
/// input (items + BatchInput) overflowed; the new limit leaves room and Step Functions splits.
#[tokio::test]
async fn defect3_batches_leave_room_for_batch_input() {
    let built = build_definition(&opts(128, 128, ModeRequest::Distributed)).unwrap();
    // Items of exactly 4,095 bytes: 64 of them (with separators) are exactly 262,144 bytes.
    let items: Vec<Value> = (0..128)
        .map(|i| {
            let mut it = item(i);
            it["pad"] = json!("");
            let pad = 4_095 - size(&it) as usize;
            it["pad"] = json!("p".repeat(pad));
            assert_eq!(size(&it), 4_095);
            it
        })
        .collect();
    let mut old = built.definition.clone();
    map_mut(&mut old)
        .item_batcher
        .as_mut()
        .unwrap()
        .max_input_bytes_per_batch = Some(262_144);
    let r = run(&old, items.clone(), 128, None).await;
    let e = r.execution.result.clone().unwrap_err();
    assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
    let failed = r.results("FAILED").unwrap();
    assert_eq!(failed.len(), 2, "both 64-item batches overflow");
    assert!(
        failed[0]["Output"]
            .as_str()
            .unwrap()
            .contains("States.DataLimitExceeded")
    );
    let r = run(&built.definition, items, 128, None).await;
    assert!(r.execution.result.is_ok(), "{:?}", r.execution.result);
    let ok = r.results("SUCCEEDED").unwrap();
    assert_eq!(ok.len(), 3, "63 + 63 + 2 items");
}

/// Defect 4: EXPRESS children were chosen for batches up to 120 s, but two crash retries and
/// backoff outlive 5 minutes; the child then ends TIMED_OUT (no failure record). The
/// interpreter enforces the EXPRESS limit (scaled down here); the builder now picks STANDARD.
#[tokio::test]
async fn defect4_express_children_fit_their_worst_case() {
    let mut o = opts(6, 6, ModeRequest::Distributed);
    o.shape.task_seconds = Some(100.0);
    let built = build_definition(&o).unwrap();
    assert_eq!(built.execution_type, Some(ExecutionType::Standard));
    let reason = built.execution_type_reason.clone().unwrap();
    assert!(reason.contains("394 s"), "{reason}");
    let comment = map_mut(&mut built.definition.clone())
        .comment
        .clone()
        .unwrap();
    assert!(comment.contains(&reason), "{comment}");
    // The old choice, EXPRESS, with the limit scaled to 1 s and a 2 s batch.
    let mut old = built.definition.clone();
    map_mut(&mut old)
        .item_processor
        .processor_config
        .as_mut()
        .unwrap()
        .execution_type = Some(ExecutionType::Express);
    let items: Vec<Value> = (0..6)
        .map(|i| {
            let mut it = item(i);
            it["sleep_s"] = json!(if i == 0 { 2.0 } else { 0.0 });
            it
        })
        .collect();
    let limit = Some(Duration::from_secs(1));
    let r = run(&old, items.clone(), 6, limit).await;
    assert_eq!(
        r.execution.result.clone().unwrap_err().error,
        "States.ExceedToleratedFailureThreshold"
    );
    let failed = r.results("FAILED").unwrap();
    assert_eq!(failed[0]["Status"], "TIMED_OUT");
    let r = run(&built.definition, items, 6, limit).await;
    assert!(r.execution.result.is_ok(), "{:?}", r.execution.result);
}

/// Defect 5: results keep what attributes them (run_id, batch_id, memory_mb, request_id).
#[tokio::test]
async fn defect5_results_keep_run_and_batch_ids() {
    let built = build_definition(&opts(4, 2, ModeRequest::Inline)).unwrap();
    let items: Vec<Value> = (0..4).map(item).collect();
    let mut old = built.definition.clone();
    old_result_selector(&mut old);
    let out = run(&old, items.clone(), 2, None)
        .await
        .execution
        .result
        .unwrap();
    assert!(out[1].get("run_id").is_none() && out[1].get("batch_id").is_none());
    let out = run(&built.definition, items, 2, None)
        .await
        .execution
        .result
        .unwrap();
    assert_eq!(out[1]["run_id"], "r1");
    assert_eq!(out[1]["batch_id"], "000001");
    assert_eq!(out[1]["memory_mb"], 128);
    assert!(out[1]["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

/// Defect 6: `Lambda.Unknown` (how older runtimes report a timeout) was retried twice; now
/// only `Runtime.ExitError` is, and the batch is recorded as failed after one attempt.
#[tokio::test]
async fn defect6_timeouts_are_not_retried() {
    let built = build_definition(&opts(2, 1, ModeRequest::Inline)).unwrap();
    let mut items: Vec<Value> = (0..2).map(item).collect();
    items[1]["error"] = json!("Lambda.Unknown");
    let mut old = built.definition.clone();
    task_mut(&mut old).retry[1].error_equals =
        vec!["Runtime.ExitError".into(), "Lambda.Unknown".into()];
    let count = |r: &Run| {
        r.execution
            .invocations
            .iter()
            .filter(|l| l.item == Some(1))
            .count()
    };
    let r = run(&old, items.clone(), 1, None).await;
    assert_eq!(count(&r), 3);
    let r = run(&built.definition, items, 1, None).await;
    assert_eq!(count(&r), 1);
    let out = r.execution.result.unwrap();
    assert_eq!(out[1]["failed"], true);
    assert_eq!(out[1]["error"]["Error"], "Lambda.Unknown");
}

/// Defect 7: `ToleratedFailurePercentage` counts failed items over all items, not batches:
/// one failed batch of 10 among batches of 10, 10 and 1 is 10 of 21 items (47.6 %).
#[tokio::test]
async fn defect7_tolerated_failure_counts_items() {
    let mut o = opts(21, 10, ModeRequest::Distributed);
    o.tolerated_failure_percentage = 40;
    let built = build_definition(&o).unwrap();
    let mut items: Vec<Value> = (0..21).map(item).collect();
    items[0]["tail"] = json!(300_000);
    items[0]["ignore_budget"] = json!(true);
    let r = run(&built.definition, items.clone(), 10, None).await;
    let e = r.execution.result.unwrap_err();
    assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
    assert!(e.cause.contains("10 of 21 items"), "{}", e.cause);
    let mut o = o.clone();
    o.tolerated_failure_percentage = 48;
    let built = build_definition(&o).unwrap();
    assert!(
        run(&built.definition, items, 10, None)
            .await
            .execution
            .result
            .is_ok()
    );
}

/// A batch whose function always crashes (`Runtime.ExitError`, retried with MaxAttempts 2)
/// is invoked exactly MaxAttempts + 1 = 3 times, then recorded as failed; with the crash
/// retrier off, once. Its neighbour runs once.
#[tokio::test]
async fn retried_error_runs_exactly_max_attempts_plus_one() {
    let built = build_definition(&opts(2, 1, ModeRequest::Inline)).unwrap();
    assert_eq!(
        task_mut(&mut built.definition.clone()).retry[1].max_attempts,
        Some(2)
    );
    let mut items: Vec<Value> = (0..2).map(item).collect();
    items[1]["error"] = json!("Runtime.ExitError");
    let attempts = |r: &Run, i: usize| {
        r.execution
            .invocations
            .iter()
            .filter(|l| l.item == Some(i))
            .map(|l| l.attempt)
            .collect::<Vec<_>>()
    };
    let r = run(&built.definition, items.clone(), 1, None).await;
    assert_eq!(attempts(&r, 0), [0]);
    assert_eq!(attempts(&r, 1), [0, 1, 2]);
    let out = r.execution.result.unwrap();
    assert_eq!(out[1]["failed"], true);
    assert_eq!(out[1]["error"]["Error"], "Runtime.ExitError");

    let mut o = opts(2, 1, ModeRequest::Inline);
    o.retry.crash_retries = 0;
    let built = build_definition(&o).unwrap();
    let r = run(&built.definition, items, 1, None).await;
    assert_eq!(attempts(&r, 1), [0]);
}

/// A Distributed Map with nothing to run has nothing that failed: with only a tolerated
/// percentage set, 0 failed of 0 items succeeded (it was refused as "0 of 0 items … above the
/// tolerated threshold", the percentage of nothing being undefined).
#[tokio::test]
async fn a_distributed_map_of_no_items_is_within_any_tolerated_percentage() {
    let mut o = opts(10, 10, ModeRequest::Distributed);
    o.tolerated_failure_percentage = 40;
    let built = build_definition(&o).unwrap();
    let r = run(&built.definition, Vec::new(), 10, None).await;
    let out = r.execution.result.unwrap();
    assert_eq!(
        out["ResultWriterDetails"]["Key"],
        "res/RunPackedBatches-0/manifest.json"
    );
    assert!(r.execution.invocations.is_empty());
}
