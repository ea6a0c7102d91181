//! The interpreter's pure parts pinned by hand (issue 19: cargo-mutants survivors): JSONPath,
//! result paths, the 256 KiB limit, ItemBatcher's batches, and what `check_supported` refuses.

use serde_json::json;

use super::*;

fn ctx() -> Ctx {
    Ctx {
        execution: json!({"Name": "x"}),
        item: None,
        map_item: None,
        express: false,
    }
}

fn unsupported_msg<T: std::fmt::Debug>(r: Flow<T>) -> String {
    match r {
        Err(Fail::Backend(BackendError::Unsupported(m))) => m,
        Err(Fail::States(e)) => panic!("a States error, not unsupported: {e:?}"),
        Err(Fail::Backend(e)) => panic!("another backend error: {e}"),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

#[test]
fn jsonpath_segments_and_their_errors() {
    assert_eq!(parse_path("$").unwrap(), (false, vec![]));
    assert_eq!(
        parse_path("$$.Map.Item").unwrap(),
        (true, vec![Seg::Key("Map".into()), Seg::Key("Item".into())])
    );
    assert_eq!(
        parse_path("$.a[2][*]['b c'][\"d\"].e").unwrap(),
        (
            false,
            vec![
                Seg::Key("a".into()),
                Seg::Index(2),
                Seg::All,
                Seg::Key("b c".into()),
                Seg::Key("d".into()),
                Seg::Key("e".into()),
            ]
        )
    );
    assert_eq!(parse_path("$[ 1 ]").unwrap(), (false, vec![Seg::Index(1)]));
    for (bad, says) in [
        ("a.b", "is not a JSONPath"),
        ("$..a", "empty field name"),
        ("$.", "empty field name"),
        ("$.a[0", "unclosed ["),
        ("$a", "unexpected 'a'"),
    ] {
        let e = parse_path(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn wildcards_select_array_elements_and_object_values() {
    let v = json!({"o": {"x": {"id": 1}, "y": {"id": 2}, "z": {}}, "s": "str"});
    let all = |p: &str| select(&v, &parse_path(p).unwrap().1);
    assert_eq!(all("$.o[*].id"), Some(json!([1, 2])));
    assert_eq!(all("$.s[*]"), None);
    assert_eq!(all("$.o.x"), Some(json!({"id": 1})));
    assert_eq!(all("$.o.w"), None);
}

#[test]
fn input_and_output_paths_absent_null_and_set() {
    let c = ctx();
    let v = json!({"a": {"b": 1}});
    assert_eq!(c.filter(&None, v.clone()).ok(), Some(v.clone()));
    assert_eq!(c.filter(&Some(None), v.clone()).ok(), Some(json!({})));
    assert_eq!(
        c.filter(&Some(Some("$.a".into())), v.clone()).ok(),
        Some(json!({"b": 1}))
    );
    // The context object carries the Map item only inside a Map.
    assert_eq!(c.context_object(), json!({"Execution": {"Name": "x"}}));
}

#[test]
fn templates_run_states_format_and_refuse_other_intrinsics_and_non_string_paths() {
    let c = ctx();
    // States.Format runs (the definitions use it); other intrinsics are refused by name.
    let t: PayloadTemplate =
        serde_json::from_value(json!({"a.$": "States.JsonToString($.n)"})).unwrap();
    assert!(unsupported_msg(c.template(&t, &json!({"n": 1}))).contains("intrinsic function"));
    let t: PayloadTemplate = serde_json::from_value(json!({"a.$": "States.Format('x')"})).unwrap();
    assert_eq!(c.template(&t, &json!({})).ok(), Some(json!({"a": "x"})));
    let t: PayloadTemplate = serde_json::from_value(json!({"a.$": 3})).unwrap();
    assert!(unsupported_msg(c.template(&t, &json!({}))).contains("must hold a JSONPath string"));
    let t = json!([{"v.$": "$.n"}, 7]);
    assert_eq!(
        c.template_value(&t, &json!({"n": 1})).ok(),
        Some(json!([{"v": 1}, 7]))
    );
}

#[test]
fn result_paths_set_nested_fields_and_refuse_the_rest() {
    let set = |p: &str, raw, result| apply_result_path(&Some(Some(p.to_owned())), raw, result);
    assert_eq!(set("$", json!({"a": 1}), json!(2)).ok(), Some(json!(2)));
    // A field under a non-object replaces it with an object.
    assert_eq!(
        set("$.a.b", json!({"a": 1, "c": 3}), json!(2)).ok(),
        Some(json!({"a": {"b": 2}, "c": 3}))
    );
    assert!(unsupported_msg(set("$$.x", json!({}), json!(1))).contains("context object"));
    assert!(unsupported_msg(set("$.a[0]", json!({}), json!(1))).contains("only field names"));
}

/// 300 bytes are kept whole; longer text is cut at 300 bytes, or before the character that
/// straddles byte 300.
#[test]
fn truncation_keeps_300_bytes_on_a_char_boundary() {
    let s = "a".repeat(300);
    assert_eq!(truncate(&s), s);
    let s = "a".repeat(301);
    assert_eq!(truncate(&s), format!("{}…", "a".repeat(300)));
    // 299 ASCII bytes then "é" (2 bytes) straddles byte 300.
    let s = format!("{}é{}", "a".repeat(299), "b".repeat(10));
    assert_eq!(truncate(&s), format!("{}…", "a".repeat(299)));
}

/// The limit is 262,144 bytes of serialised JSON, inclusive.
#[test]
fn state_data_limit_is_inclusive() {
    // A JSON string of n characters serialises to n + 2 bytes.
    let at = json!("x".repeat(MAX_PAYLOAD_BYTES as usize - 2));
    assert!(within_limit(&at, "the input").is_ok());
    let over = json!("x".repeat(MAX_PAYLOAD_BYTES as usize - 1));
    match within_limit(&over, "the input") {
        Err(Fail::States(e)) => {
            assert_eq!(e.error, "States.DataLimitExceeded");
            assert!(
                e.cause.starts_with("the input of 262145 bytes"),
                "{}",
                e.cause
            );
        }
        _ => panic!("262,145 bytes accepted"),
    }
}

/// Batches close at `max_items` items or before `max_bytes` would be passed, counting each
/// item's JSON plus one byte of separator: `{"i":N}` is 7 bytes, so 8 per item.
#[test]
fn item_batches_by_count_and_bytes() {
    let items: Vec<Value> = (0..5).map(|i| json!({"i": i})).collect();
    let sizes = |b: Vec<Vec<Value>>| b.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(item_batches(items.clone(), 2, usize::MAX)), [2, 2, 1]);
    assert_eq!(sizes(item_batches(items.clone(), 5, usize::MAX)), [5]);
    // 16 bytes hold exactly two items, 15 only one; one item over the limit still goes alone.
    assert_eq!(sizes(item_batches(items.clone(), 10, 16)), [2, 2, 1]);
    assert_eq!(sizes(item_batches(items.clone(), 10, 15)), [1, 1, 1, 1, 1]);
    assert_eq!(sizes(item_batches(items.clone(), 10, 1)), [1, 1, 1, 1, 1]);
    assert!(item_batches(Vec::new(), 2, 100).is_empty());
    assert_eq!(
        item_batches(items, 2, usize::MAX)[1],
        [json!({"i": 2}), json!({"i": 3})]
    );
}

fn refused(def: Value) -> String {
    let machine: StateMachine = serde_json::from_value(def).unwrap();
    match check_supported(&machine) {
        Err(BackendError::Unsupported(m)) => m,
        other => panic!("not refused: {other:?}"),
    }
}

fn map_with(extra: Value) -> Value {
    let mut m = json!({"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": true}}}});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

#[test]
fn check_supported_names_what_it_refuses() {
    let ok = |def: Value| {
        let machine: StateMachine = serde_json::from_value(def).unwrap();
        check_supported(&machine).unwrap();
    };
    ok(json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}}}));
    ok(json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": LAMBDA_INVOKE, "End": true}}}));
    assert!(
        refused(json!({"StartAt": "T", "States": {"T": {"Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:layer:f", "End": true}}}))
        .contains("only arn:aws:states:::lambda:invoke")
    );
    assert!(
        refused(json!({"StartAt": "X", "States": {"T": {"Type": "Pass", "End": true}}}))
            .contains("StartAt \"X\" names no state")
    );
    assert!(
        refused(json!({"StartAt": "T", "States": {"T": {"Type": "Pass", "Next": "Y"}}}))
            .contains("Next \"Y\" names no state")
    );
    assert!(
        refused(json!({"StartAt": "T", "States": {"T": {"Type": "Task",
            "Resource": LAMBDA_INVOKE, "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}]}}}))
        .contains("Next \"Z\" names no state")
    );
    let m = map_with(json!({"ItemProcessor": {"StartAt": "Q",
        "States": {"P": {"Type": "Pass", "End": true}}}}));
    assert!(refused(m).contains("the ItemProcessor of state \"M\": StartAt \"Q\""));
    let reader = |resource: &str, input_type: &str| {
        map_with(json!({"ItemReader": {"Resource": resource,
            "ReaderConfig": {"InputType": input_type}}}))
    };
    ok(reader(S3_GET_OBJECT, "JSON"));
    ok(map_with(
        json!({"ItemReader": {"Resource": S3_GET_OBJECT}, "ResultWriter": {"Resource": S3_PUT_OBJECT}}),
    ));
    assert!(
        refused(reader("arn:aws:states:::s3:listObjectsV2", "JSON"))
            .contains("ItemReader resource")
    );
    assert!(refused(reader(S3_GET_OBJECT, "CSV")).contains("InputType Csv"));
    assert!(
        refused(map_with(
            json!({"ResultWriter": {"Resource": S3_GET_OBJECT}})
        ))
        .contains("ResultWriter resource")
    );
}

fn interpreter(storage: &Path) -> Interpreter {
    let platform = LambdaPlatform::new(crate::platform::PlatformProfile::unlimited(), vec![], 1);
    Interpreter::new(platform, storage, None)
}

async fn run_def(interp: &Interpreter, def: Value, input: Value) -> Execution {
    interp
        .execute(&parse(&def).unwrap(), "e1", input)
        .await
        .unwrap()
}

fn distributed_map(execution_type: &str) -> Value {
    json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemReader": {"Resource": S3_GET_OBJECT,
            "ReaderConfig": {"InputType": "JSON", "MaxItems": 5},
            "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
        "ItemSelector": {"v.$": "$$.Map.Item.Value.n", "i.$": "$$.Map.Item.Index"},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "ResultWriter": {"Resource": S3_PUT_OBJECT, "Parameters": {"Bucket": "b", "Prefix": "res/"}},
        "Label": "Run-Batches!",
        "End": true}}})
}

/// A Distributed Map reads at most MaxItems items from S3, selects and batches them (2 per
/// child, with the BatchInput), and writes each child's output to the ResultWriter under the
/// Map Run's id (the label without punctuation, then the run's number).
#[tokio::test]
async fn distributed_map_reads_selects_batches_and_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<Value> = (1..=7).map(|n| json!({"n": n * 10})).collect();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(
        dir.path().join("b/items.json"),
        Value::Array(items).to_string(),
    )
    .unwrap();
    let interp = interpreter(dir.path());
    let ex = run_def(
        &interp,
        distributed_map("STANDARD"),
        json!({"key": "items.json", "run": "r"}),
    )
    .await;
    let arn = "arn:aws:states:us-east-1:000000000000:mapRun:propack-local/e1:RunBatches-0";
    assert_eq!(
        ex.result.unwrap(),
        json!({"MapRunArn": arn, "ResultWriterDetails":
            {"Bucket": "b", "Key": "res/RunBatches-0/manifest.json"}})
    );
    let read = |key: &str| -> Value {
        serde_json::from_slice(&std::fs::read(storage_path(dir.path(), "b", key)).unwrap()).unwrap()
    };
    let manifest = read("res/RunBatches-0/manifest.json");
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
    let key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap();
    assert_eq!(key, "res/RunBatches-0/SUCCEEDED_0.json");
    let ok = read(key);
    let outputs: Vec<Value> = ok
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["Output"].as_str().unwrap()).unwrap())
        .collect();
    let item = |i: u64| json!({"v": (i + 1) * 10, "i": i});
    assert_eq!(
        outputs,
        [
            json!({"Items": [item(0), item(1)], "BatchInput": {"run": "r"}}),
            json!({"Items": [item(2), item(3)], "BatchInput": {"run": "r"}}),
            json!({"Items": [item(4)], "BatchInput": {"run": "r"}}),
        ]
    );
    assert_eq!(ok[2]["Status"], "SUCCEEDED");
    assert_eq!(ok[2]["ExecutionArn"], format!("{arn}:2"));
    // The Map state, then per STANDARD child its start and its Pass state.
    assert_eq!(ex.usage.standard_transitions, 1 + 3 * 2);
    assert_eq!(ex.usage.express_executions, 0);

    // EXPRESS children bill a request each instead of their states' transitions; the next
    // Map Run of this interpreter is number 1.
    let ex = run_def(
        &interp,
        distributed_map("EXPRESS"),
        json!({"key": "items.json", "run": "r"}),
    )
    .await;
    assert_eq!(
        ex.result.unwrap()["ResultWriterDetails"]["Key"],
        "res/RunBatches-1/manifest.json"
    );
    assert_eq!(ex.usage.standard_transitions, 1 + 3);
    assert_eq!(ex.usage.express_executions, 3);
}

fn failing_map(extra: Value) -> Value {
    let mut m = json!({"Type": "Map", "ItemsPath": "$.xs",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}},
        "End": true});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

/// Failure tolerance counts items, not children: 5 items in batches of 2 are 3 failed
/// children but 5 failed items, so a count of 4 is exceeded and 5 is not.
#[tokio::test]
async fn tolerated_failure_count_counts_items_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let interp = interpreter(dir.path());
    let input = json!({"xs": [1, 2, 3, 4, 5]});
    let batched = |count: u64| {
        failing_map(json!({"ItemBatcher": {"MaxItemsPerBatch": 2},
            "ToleratedFailureCount": count}))
    };
    let ex = run_def(&interp, batched(4), input.clone()).await;
    let e = ex.result.unwrap_err();
    assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
    assert_eq!(
        e.cause,
        "5 of 5 items of Map \"M\" failed or timed out, above the tolerated threshold"
    );
    let ex = run_def(&interp, batched(5), input.clone()).await;
    assert_eq!(
        ex.result.unwrap(),
        json!([{"Error": "Boom", "Cause": "c"}, {"Error": "Boom", "Cause": "c"},
               {"Error": "Boom", "Cause": "c"}])
    );
    // Without a tolerance any failed item fails the Map.
    let ex = run_def(&interp, failing_map(json!({})), input).await;
    assert_eq!(
        ex.result.unwrap_err().error,
        "States.ExceedToleratedFailureThreshold"
    );
}

/// A failed inline Map fails with its first item's error; Retry runs it again (each retry
/// is a transition) and Catch routes the error into the state's input at its ResultPath:
/// Map + 3 attempts of the item's Fail state + 2 retries + the catching Pass = 7.
#[tokio::test]
async fn retry_then_catch_a_failed_inline_map() {
    let dir = tempfile::tempdir().unwrap();
    let interp = interpreter(dir.path());
    let def = json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "ItemsPath": "$.xs",
            "ItemProcessor": {"StartAt": "F",
                "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}},
            "Retry": [{"ErrorEquals": ["Other"], "MaxAttempts": 5, "IntervalSeconds": 0},
                      {"ErrorEquals": ["Boom"], "MaxAttempts": 2, "IntervalSeconds": 0}],
            "Catch": [{"ErrorEquals": ["Other"], "Next": "Wrong"},
                      {"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "C"}],
            "End": true},
        "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
        "C": {"Type": "Pass", "End": true}}});
    let ex = run_def(&interp, def, json!({"xs": [1]})).await;
    assert_eq!(
        ex.result.unwrap(),
        json!({"xs": [1], "err": {"Error": "Boom", "Cause": "c"}})
    );
    assert_eq!(ex.usage.standard_transitions, 7);
}

/// Pass, Succeed and Fail states with their paths and defaults.
#[tokio::test]
async fn pass_succeed_and_fail_follow_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let interp = interpreter(dir.path());
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "InputPath": "$.in", "Result": {"r": 1}, "ResultPath": "$.res",
              "OutputPath": "$.res", "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"got.$": "$.r"}, "Next": "S"},
        "S": {"Type": "Succeed", "InputPath": "$.got"}}});
    let ex = run_def(&interp, def, json!({"in": {"x": 0}})).await;
    assert_eq!(ex.result.unwrap(), json!(1));
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail"}}});
    let e = run_def(&interp, def, json!({})).await.result.unwrap_err();
    assert_eq!((e.error.as_str(), e.cause.as_str()), ("States.Fail", ""));
}

/// An interpreter whose platform runs the echo stand-in (see the Lambda emulator's tests)
/// as function `echo` (its own timeout, 10 s, is longer than any Task's TimeoutSeconds here).
fn echo_interpreter(dir: &Path) -> Interpreter {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("bootstrap");
    std::fs::write(&script, include_str!("testdata/echo_function.py")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let profile = crate::platform::PlatformProfile::unlimited();
    let mut f = super::super::lambda::FunctionConfig::new("echo", &script, &profile);
    f.timeout_s = 10.0;
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    Interpreter::new(platform, dir.join("storage"), None)
}

fn task(resource: &str, extra: Value) -> Value {
    let mut t = json!({"Type": "Task", "Resource": resource, "End": true});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    json!({"StartAt": "T", "States": {"T": t}})
}

/// lambda:invoke wraps the function's response as Step Functions does (`Payload`, status,
/// request id); a function ARN as the Resource passes the input and returns the response
/// as is. Each attempt is logged with its Map item and attempt number.
#[tokio::test]
async fn tasks_invoke_the_function_and_shape_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let interp = echo_interpreter(dir.path());
    let def = task(
        LAMBDA_INVOKE,
        json!({"Parameters": {"FunctionName": "echo", "Payload.$": "$.p", "Qualifier": "$LATEST",
            "InvocationType": "RequestResponse"},
            "ResultSelector": {"event.$": "$.Payload.event", "status.$": "$.StatusCode",
                "version.$": "$.ExecutedVersion", "rid.$": "$.SdkResponseMetadata.RequestId",
                "http.$": "$.SdkHttpMetadata.HttpStatusCode"}}),
    );
    let ex = run_def(&interp, def, json!({"p": {"x": 1}})).await;
    assert_eq!(ex.invocations.len(), 1);
    let log = &ex.invocations[0];
    assert_eq!((log.item, log.attempt), (None, 0));
    assert_eq!(
        ex.result.unwrap(),
        json!({"event": {"x": 1}, "status": 200, "version": "$LATEST",
            "rid": log.invocation.request_id, "http": 200})
    );
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:echo";
    let ex = run_def(
        &interp,
        task(arn, json!({"ResultSelector": {"e.$": "$.event"}})),
        json!({"y": 2}),
    )
    .await;
    assert_eq!(ex.result.unwrap(), json!({"e": {"y": 2}}));
    // Inside a Map each attempt carries its item.
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": arn,
            "End": true}}}, "End": true}}});
    let ex = run_def(&interp, def, json!({"xs": [{"a": 1}, {"a": 2}]})).await;
    let mut items: Vec<Option<usize>> = ex.invocations.iter().map(|l| l.item).collect();
    items.sort();
    assert_eq!(items, [Some(0), Some(1)]);
}

/// How a Task fails: the function's own error type, a missing function, the Task's
/// TimeoutSeconds, and parameters the interpreter does not run.
#[tokio::test]
async fn tasks_fail_with_step_functions_errors() {
    let dir = tempfile::tempdir().unwrap();
    let interp = echo_interpreter(dir.path());
    let invoke = |params: Value, extra: Value| {
        let mut e = json!({"Parameters": params});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        task(LAMBDA_INVOKE, e)
    };
    let ex = run_def(
        &interp,
        invoke(
            json!({"FunctionName": "echo", "Payload": {"error": "My.Error"}}),
            json!({}),
        ),
        json!({}),
    )
    .await;
    let e = ex.result.unwrap_err();
    assert_eq!(e.error, "My.Error");
    assert_eq!(
        serde_json::from_str::<Value>(&e.cause).unwrap(),
        json!({"errorType": "My.Error", "errorMessage": "asked to"})
    );
    let ex = run_def(
        &interp,
        invoke(json!({"FunctionName": "nope"}), json!({})),
        json!({}),
    )
    .await;
    let e = ex.result.unwrap_err();
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        (
            "Lambda.ResourceNotFoundException",
            "Function not found: nope"
        )
    );
    let ex = run_def(
        &interp,
        invoke(
            json!({"FunctionName": "echo", "Payload": {"sleep_s": 3}}),
            json!({"TimeoutSeconds": 1}),
        ),
        json!({}),
    )
    .await;
    let e = ex.result.unwrap_err();
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        ("States.Timeout", "the Task ran longer than 1 s")
    );
    let ex = run_def(
        &interp,
        invoke(json!({"Payload": {}}), json!({})),
        json!({}),
    )
    .await;
    assert_eq!(ex.result.unwrap_err().error, "States.Runtime");
    for (params, says) in [
        (
            json!({"FunctionName": "echo", "ClientContext": "x"}),
            "lambda:invoke parameter \"ClientContext\"",
        ),
        (
            json!({"FunctionName": "echo", "InvocationType": "Event"}),
            "InvocationType other than RequestResponse",
        ),
    ] {
        let e = interp
            .execute(&parse(&invoke(params, json!({}))).unwrap(), "e", json!({}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
}

/// Without `JitterStrategy: FULL` a retry waits its whole interval (sleeps last at least
/// as long as asked, so this lower bound cannot flake).
#[tokio::test]
async fn retries_without_jitter_wait_the_whole_interval() {
    let dir = tempfile::tempdir().unwrap();
    let interp = interpreter(dir.path());
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemProcessor": {"StartAt": "F",
            "States": {"F": {"Type": "Fail", "Error": "Boom"}}},
        "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 1, "IntervalSeconds": 1}],
        "End": true}}});
    let t0 = std::time::Instant::now();
    let ex = run_def(&interp, def, json!({"xs": [1]})).await;
    assert_eq!(ex.result.unwrap_err().error, "Boom");
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// States inside a Map's processor see their item in the context object (`$$.Map.Item`).
#[tokio::test]
async fn processor_states_see_their_map_item() {
    let dir = tempfile::tempdir().unwrap();
    let interp = interpreter(dir.path());
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass",
            "Parameters": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"}, "End": true}}},
        "End": true}}});
    let ex = run_def(&interp, def, json!({"xs": ["a", "b"]})).await;
    assert_eq!(
        ex.result.unwrap(),
        json!([{"v": "a", "i": 0}, {"v": "b", "i": 1}])
    );
}

/// Every item that ran is reported to the item callback, with its output or error; items
/// left unstarted by a stop are not (their tasks count as not run).
#[tokio::test]
async fn the_item_callback_sees_finished_items_not_unstarted_ones() {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    type Seen = Vec<(usize, Result<Value, String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let cb: ItemCallback = {
        let seen = seen.clone();
        Arc::new(move |d: ItemDone<'_>| {
            let out = d.output.cloned().map_err(|e| e.error.clone());
            seen.lock().unwrap().push((d.index, out));
        })
    };
    let platform = LambdaPlatform::new(crate::platform::PlatformProfile::unlimited(), vec![], 1);
    let interp = Interpreter::new(platform, dir.path(), Some(cb));
    let def = |fail: bool| {
        let p = if fail {
            json!({"Type": "Fail", "Error": "Boom"})
        } else {
            json!({"Type": "Pass", "End": true})
        };
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
            "ItemProcessor": {"StartAt": "P", "States": {"P": p}}, "End": true}}})
    };
    run_def(&interp, def(false), json!({"xs": [7]})).await;
    run_def(&interp, def(true), json!({"xs": [8]})).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(0, Ok(json!(7))), (0, Err("Boom".to_owned()))]
    );
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    interp.set_stop(Stop::new(&STOP));
    let ex = run_def(&interp, def(false), json!({"xs": [1, 2]})).await;
    assert_eq!(ex.result.unwrap_err().error, NOT_STARTED_ERROR);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// A child whose invocation the platform did not start (a stopped run) is not reported to
/// the item callback either: its tasks count as not run.
#[tokio::test]
async fn the_item_callback_skips_children_whose_invocation_never_started() {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let cb: ItemCallback = {
        let seen = seen.clone();
        Arc::new(move |_: ItemDone<'_>| *seen.lock().unwrap() += 1)
    };
    let echo = echo_interpreter(dir.path());
    echo.inner.platform.set_stop(Stop::new(&STOP));
    let interp = Interpreter::new(echo.inner.platform.clone(), dir.path(), Some(cb));
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.xs",
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:000000000000:function:echo", "End": true}}},
        "End": true}}});
    let ex = run_def(&interp, def, json!({"xs": [1, 2]})).await;
    assert_eq!(ex.result.unwrap_err().error, NOT_STARTED_ERROR);
    assert!(ex.invocations.is_empty());
    assert_eq!(*seen.lock().unwrap(), 0);
}

/// Intrinsic arguments split on commas outside string literals; a literal keeps its quotes
/// and escapes (an escaped quote does not end it), a quote inside a bare word starts none,
/// a backslash outside a literal escapes nothing, and a parenthesis outside a literal is a
/// nested call (refused).
#[test]
fn intrinsic_arguments_split_on_commas_outside_literals() {
    let split = |s: &str| split_intrinsic_args(s);
    let owned = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(split(" 'a, b' , 1,$.x "), owned(&["'a, b'", "1", "$.x"]));
    assert_eq!(split(r"'a\', b', 2"), owned(&[r"'a\', b'", "2"]));
    assert_eq!(split("'(x)', 'y)'"), owned(&["'(x)'", "'y)'"]));
    assert_eq!(split("x'y, 3"), owned(&["x'y", "3"]));
    assert_eq!(split(r"a\,b"), owned(&[r"a\", "b"]));
    assert_eq!(split(""), owned(&[]));
    assert_eq!(split("  "), owned(&[]));
    assert_eq!(split("1,"), owned(&["1", ""]));
    assert_eq!(split("f(1)"), None);
    assert_eq!(split("'open"), None);
}

/// A `{` not followed by `}` is text; an object or array literal is refused as unsupported
/// (not failed as a States error); a number, boolean or null literal is its JSON text.
#[test]
fn states_format_lone_braces_and_literal_arguments() {
    let c = ctx();
    let input = json!({});
    assert_eq!(
        c.intrinsic("States.Format('x{y}')", &input).ok(),
        Some(json!("x{y}"))
    );
    assert_eq!(
        c.intrinsic("States.Format('{} {} {}', 2.5, false, null)", &input)
            .ok(),
        Some(json!("2.5 false null"))
    );
    for arg in ["[1]", r#"{"a": 1}"#] {
        let call = format!("States.Format('{{}}', {arg})");
        assert!(
            unsupported_msg(c.intrinsic(&call, &input)).contains("intrinsic argument"),
            "{call}"
        );
    }
}

/// The wait before each retry: the retrier's backoff for that retry (2 s, then 2 · 3, then
/// capped at 10 s), and under full jitter a draw from [0, backoff) that averages half of it.
#[test]
fn retry_delays_back_off_and_full_jitter_draws_below_the_backoff() {
    let mut r: Retrier = serde_json::from_value(json!({
        "ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 3.0,
        "MaxDelaySeconds": 10
    }))
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let delays: Vec<f64> = (1..=3).map(|n| retry_delay(&r, n, &mut rng)).collect();
    assert_eq!(delays, [2.0, 6.0, 10.0]);
    r.jitter_strategy = Some(JitterStrategy::Full);
    let draws: Vec<f64> = (0..400).map(|_| retry_delay(&r, 2, &mut rng)).collect();
    assert!(draws.iter().all(|d| (0.0..6.0).contains(d)), "{draws:?}");
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((mean - 3.0).abs() < 0.3, "{mean}");
}
