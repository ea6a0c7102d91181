//! JSON round trips of the wire contract against the fixtures in `tests/fixtures/`.

use propack_runtime::contract::{
    Batch, BatchResult, ErrorPayload, HandlerRef, HandlerRuntime, HandlerTask, ParseOptions,
    SCHEMA_VERSION, TaskAction, TaskStatus,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(v: &Value) -> Batch {
    Batch::from_value(v, &ParseOptions::default()).unwrap()
}

#[test]
fn all_three_batch_shapes_normalise_to_the_same_batch() {
    let nested = parse(&fixture("batch_item_batcher.json"));
    let merged = parse(&fixture("batch_item_batcher_merged.json"));
    let direct = parse(&fixture("batch_direct.json"));
    assert_eq!(nested, direct);
    assert_eq!(merged, direct);

    assert_eq!(direct.run_id.as_deref(), Some("run-42"));
    assert_eq!(direct.batch_id.as_deref(), Some("7"));
    assert_eq!(direct.parallelism, Some(2));
    assert_eq!(
        direct.handler,
        Some(HandlerRef {
            runtime: HandlerRuntime::Python3,
            name: "app.handler".into()
        })
    );
    assert_eq!(direct.tasks.len(), 5);
    let t1 = &direct.tasks[0];
    assert!(
        matches!(&t1.action, TaskAction::Exec(e) if e.args == ["-c", "sort -o out.txt in.txt"])
    );
    assert_eq!(t1.timeout_ms, Some(1000));
    assert_eq!(t1.inputs["in.txt"], "s3://propack-data/in/1.txt");
    assert!(
        matches!(&direct.tasks[1].action, TaskAction::Builtin(b) if b.params["records"] == 1000)
    );
    assert_eq!(
        direct.tasks[3].action,
        TaskAction::Handler(HandlerTask {
            event: json!({"key": "photos/1.jpg", "sizes": [64, 128]}),
            handler: Some(HandlerRef {
                runtime: HandlerRuntime::Node,
                name: "src/resize.handler".into()
            }),
        })
    );
    assert_eq!(direct.tasks[3].timeout_ms, Some(2000));
    // `"event": null` is a handler task on a null event, using the batch's handler.
    assert_eq!(
        direct.tasks[4].action,
        TaskAction::Handler(HandlerTask {
            event: Value::Null,
            handler: None
        })
    );
}

#[test]
fn direct_shape_round_trips_exactly() {
    let v = fixture("batch_direct.json");
    let b = parse(&v);
    assert_eq!(b.to_value(), v);
    // Every shape re-serialises as the direct shape, which parses back to the same batch.
    for f in ["batch_item_batcher.json", "batch_item_batcher_merged.json"] {
        let b = parse(&fixture(f));
        assert_eq!(b.to_value(), v, "{f}");
        assert_eq!(parse(&b.to_value()), b, "{f}");
    }
}

#[test]
fn result_round_trips_exactly() {
    let v = fixture("result.json");
    let r: BatchResult = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(r.schema_version, SCHEMA_VERSION);
    assert_eq!(r.tasks.len(), 7);
    let statuses: Vec<TaskStatus> = r.tasks.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Succeeded,
            TaskStatus::Failed,
            TaskStatus::TimedOut,
            TaskStatus::NotRun,
            TaskStatus::Succeeded,
            TaskStatus::Succeeded,
            TaskStatus::Failed,
        ]
    );
    assert_eq!(r.count(TaskStatus::Succeeded), 3);
    assert_eq!(r.tasks[2].signal, Some(9));
    // Records without the handler fields (exec, built-in) read them as absent...
    assert_eq!(r.tasks[0].output, Value::Null);
    assert_eq!(
        (&r.tasks[0].error_type, &r.tasks[0].stack_trace),
        (&None, &None)
    );
    // ...and handler records carry Lambda's errorType / stackTrace and the return value.
    assert_eq!(
        r.tasks[5].output["thumbnails"][1],
        "s3://propack-data/out/1-128.jpg"
    );
    assert_eq!(r.tasks[6].error.as_deref(), Some("bad key 'x'"));
    assert_eq!(r.tasks[6].error_type.as_deref(), Some("ValueError"));
    assert_eq!(r.tasks[6].stack_trace.as_ref().map(Vec::len), Some(1));
    assert_eq!(serde_json::to_value(&r).unwrap(), v);
}

#[test]
fn error_payload_round_trips_exactly() {
    let v = fixture("error.json");
    let e: ErrorPayload = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(e.error_type, "InvalidBatch");
    assert_eq!(serde_json::to_value(&e).unwrap(), v);
    // And it is exactly what a task without `exec`/`builtin` produces.
    let err = Batch::from_value(
        &serde_json::json!({"tasks": [{"id": "t"}]}),
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(ErrorPayload::from(&err), e);
}
