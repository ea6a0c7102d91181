//! The batches Step Functions would hand the packed function are exactly what the runtime parses.
//!
//! Builds definitions and their data with `propack-step-functions`, expands the
//! Map the way Step Functions does (ItemReader → ItemBatcher with
//! MaxItemsPerBatch/MaxInputBytesPerBatch/BatchInput, or ItemsPath for inline;
//! then the Task's `Parameters`), and feeds every payload through
//! `propack_runtime::Batch::from_value`. The Task's `OutputPath` and the
//! Catch's Pass state are evaluated too: a JSONPath to a missing field would be
//! a `States.Runtime` error on AWS, which nothing can catch.

use std::collections::BTreeMap;

use propack_runtime::{Batch, BatchResult, ParseOptions, TaskResult, TaskStatus};
use propack_step_functions::build::{FAILURE_STATE, MAP_STATE, TASK_STATE};
use propack_step_functions::manifest::{distributed_input, inline_input};
use propack_step_functions::presets::{Preset, Workload, committed};
use propack_step_functions::{
    MapState, PayloadTemplate, ProcessorMode, State, StateMachine, build_definition, write_manifest,
};
use serde_json::{Map, Value, json};

/// The JSONPath subset the generated definitions use: `$`, `$.a.b`, `$.a[*].b`.
fn jsonpath(doc: &Value, path: &str) -> Result<Value, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("{path}: not a path"))?;
    let mut current = vec![doc.clone()];
    let mut spread = false;
    for seg in rest.split('.').filter(|s| !s.is_empty()) {
        let (name, wildcard) = match seg.strip_suffix("[*]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for v in current {
            let field = v
                .get(name)
                .ok_or_else(|| format!("States.Runtime: {path}: no field {name:?}"))?;
            if wildcard {
                let arr = field
                    .as_array()
                    .ok_or_else(|| format!("{path}: {name} is not an array"))?;
                next.extend(arr.iter().cloned());
            } else {
                next.push(field.clone());
            }
        }
        spread |= wildcard;
        current = next;
    }
    Ok(if spread {
        Value::Array(current)
    } else {
        current.remove(0)
    })
}

/// `States.Format('…{}…', $.a, …)` with JSONPath arguments, the one intrinsic the
/// definitions use: its paths must exist like any other.
fn format(input: &Value, call: &str) -> Result<Value, String> {
    let (template, args) = call
        .strip_prefix("States.Format('")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once('\''))
        .ok_or_else(|| format!("{call}: not a States.Format the definitions use"))?;
    let mut out = template.to_owned();
    for arg in args.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let v = jsonpath(input, arg)?;
        out = out.replacen("{}", v.as_str().unwrap_or(&v.to_string()), 1);
    }
    Ok(Value::String(out))
}

/// Evaluates a payload template (`key.$` fields are paths into `input`, or `States.Format`).
fn apply(template: &PayloadTemplate, input: &Value) -> Result<Value, String> {
    let mut out = Map::new();
    for (k, v) in template {
        if let Some(name) = k.strip_suffix(".$") {
            let path = v
                .as_str()
                .ok_or_else(|| format!("{k}: path must be a string"))?;
            let v = if path.starts_with("States.") {
                format(input, path)?
            } else {
                jsonpath(input, path)?
            };
            out.insert(name.to_owned(), v);
        } else if let Value::Object(inner) = v {
            out.insert(k.clone(), apply(inner, input)?);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

fn map_state(def: &StateMachine) -> &MapState {
    match &def.states[def.start_at.as_str()] {
        State::Map(m) => m,
        other => panic!("start state is not a Map: {other:?}"),
    }
}

/// What a Distributed Map does with a JSON manifest and an ItemBatcher.
fn expand_distributed(map: &MapState, manifest: &[u8], input: &Value) -> Vec<Value> {
    let reader = map
        .item_reader
        .as_ref()
        .expect("distributed map reads from S3");
    let params = apply(reader.parameters.as_ref().unwrap(), input).unwrap();
    assert_eq!(
        params["Key"], input["manifest_key"],
        "ItemReader must read the run's manifest"
    );
    let items: Vec<Value> = serde_json::from_slice(manifest).expect("a JSON array manifest");
    let batcher = map.item_batcher.as_ref().expect("distributed map batches");
    let max_items = batcher.max_items_per_batch.unwrap() as usize;
    let max_bytes = batcher.max_input_bytes_per_batch.unwrap() as usize;
    let batch_input = apply(batcher.batch_input.as_ref().unwrap(), input).unwrap();
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    for item in items {
        let candidate_len = {
            let mut c = current.clone();
            c.push(item.clone());
            serde_json::to_vec(&json!({"Items": c, "BatchInput": batch_input}))
                .unwrap()
                .len()
        };
        if !current.is_empty() && (current.len() == max_items || candidate_len > max_bytes) {
            batches.push(json!({"Items": std::mem::take(&mut current), "BatchInput": batch_input}));
        }
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(json!({"Items": current, "BatchInput": batch_input}));
    }
    batches
}

/// What an inline Map does: each element of `ItemsPath` is one iteration's input, through
/// the `ItemSelector` (whose paths read the item as `$$.Map.Item.Value`, and whose
/// `States.Format` reads the Map's input).
fn expand_inline(map: &MapState, input: &Value) -> Vec<Value> {
    let items = jsonpath(input, map.items_path.as_deref().unwrap()).unwrap();
    let items = items
        .as_array()
        .expect("ItemsPath selects an array")
        .clone();
    let Some(sel) = &map.item_selector else {
        return items;
    };
    items
        .iter()
        .map(|item| {
            let mut out = Map::new();
            for (k, v) in sel {
                match (k.strip_suffix(".$"), v.as_str()) {
                    (Some(key), Some(p)) if p.starts_with("States.") => {
                        let v = format(input, p).unwrap_or_else(|e| panic!("{p}: {e}"));
                        out.insert(key.to_owned(), v);
                    }
                    (Some(key), Some(p)) => {
                        let rest = p
                            .strip_prefix("$$.Map.Item.Value")
                            .expect("inline ItemSelector paths read the item");
                        let v = jsonpath(item, &format!("${rest}"))
                            .unwrap_or_else(|e| panic!("{p} is missing from the item: {e}"));
                        out.insert(key.to_owned(), v);
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        })
        .collect()
}

fn task_and_failure(map: &MapState) -> (&propack_step_functions::TaskState, &PayloadTemplate) {
    let states = &map.item_processor.states;
    let State::Task(task) = &states[TASK_STATE] else {
        panic!("{TASK_STATE} is a Task")
    };
    let State::Pass(pass) = &states[FAILURE_STATE] else {
        panic!("{FAILURE_STATE} is a Pass")
    };
    (task, pass.parameters.as_ref().unwrap())
}

/// Runs each iteration's payload through the runtime parser and the Task's result/failure paths.
fn check_iterations(
    def: &StateMachine,
    iterations: &[Value],
    tasks: &[propack_runtime::Task],
    run_id: &str,
    k: usize,
) {
    let map = map_state(def);
    let (task, failure) = task_and_failure(map);
    assert_eq!(iterations.len(), tasks.len().div_ceil(k), "⌈C/k⌉ batches");
    let mut seen = Vec::new();
    for (i, iteration) in iterations.iter().enumerate() {
        let request = apply(task.parameters.as_ref().unwrap(), iteration).unwrap();
        assert_eq!(request["FunctionName"], "propack");
        let batch = Batch::from_value(&request["Payload"], &ParseOptions::default())
            .unwrap_or_else(|e| panic!("batch {i} is not a runtime batch: {e}"));
        assert_eq!(batch.run_id.as_deref(), Some(run_id));
        assert!(
            batch.max_result_bytes.is_some_and(|b| b <= 258_048),
            "every batch carries its result budget: {:?}",
            batch.max_result_bytes
        );
        assert!(batch.output_prefix.as_deref().unwrap().contains(run_id));
        assert_eq!(
            batch.logs_prefix,
            Some(format!("{}logs", batch.output_prefix.as_deref().unwrap())),
            "every batch's full logs go under its run"
        );
        assert!(batch.tasks.len() <= k && !batch.tasks.is_empty());
        if i + 1 < iterations.len() {
            assert_eq!(
                batch.tasks.len(),
                k,
                "every batch but the last holds k tasks"
            );
        }

        // The function's answer, with every optional field absent, through OutputPath.
        let result = BatchResult {
            schema_version: propack_runtime::contract::SCHEMA_VERSION,
            run_id: None,
            batch_id: None,
            instance_id: format!("i-{i}"),
            cold_start: i == 0,
            init_ms: 12,
            received_at: 1_000,
            started_at: 1_001,
            ended_at: 2_000,
            vcpus: 6,
            parallelism: 6,
            memory_mb: None,
            request_id: None,
            truncated: false,
            tasks: batch
                .tasks
                .iter()
                .map(|t| TaskResult {
                    status: TaskStatus::Succeeded,
                    ..TaskResult::not_run(t.id.clone(), "")
                })
                .collect(),
        };
        let lambda_output = json!({
            "ExecutedVersion": "$LATEST",
            "Payload": result,
            "SdkHttpMetadata": {"HttpStatusCode": 200},
            "StatusCode": 200
        });
        assert!(task.result_selector.is_none());
        let path = task.output_path.clone().flatten().unwrap();
        let trimmed = jsonpath(&lambda_output, &path)
            .unwrap_or_else(|e| panic!("OutputPath {path} fails on a minimal BatchResult: {e}"));
        assert!(trimmed.get("StatusCode").is_none() && trimmed.get("SdkHttpMetadata").is_none());
        let back: BatchResult =
            serde_json::from_value(trimmed).expect("the trimmed result is still a BatchResult");
        assert_eq!(
            back, result,
            "OutputPath must keep every field the report needs"
        );

        // A batch that failed after its retries: Catch adds the error, the Pass records it.
        let mut caught = iteration.clone();
        let slot = task.catch[0].result_path.clone().flatten().unwrap();
        let slot = slot.strip_prefix("$.").unwrap();
        caught[slot] = json!({"Error": "Lambda.Unknown", "Cause": "instance died"});
        let record = apply(failure, &caught).unwrap_or_else(|e| panic!("failure record: {e}"));
        assert_eq!(record["failed"], true);
        let ids: Vec<String> = batch.tasks.iter().map(|t| t.id.clone()).collect();
        assert_eq!(record["task_ids"], json!(ids));
        assert_eq!(record["error"]["Error"], "Lambda.Unknown");
        seen.extend(ids);
    }
    let want: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    assert_eq!(seen, want, "every task exactly once, in manifest order");
}

#[test]
fn distributed_batches_are_runtime_batches_for_every_benchmark() {
    for (file, opts) in committed() {
        let built = build_definition(&opts).unwrap();
        if built.mode != ProcessorMode::Distributed {
            continue;
        }
        let bench = Workload::from_name(file.trim_end_matches(".asl.json")).unwrap();
        let run_id = format!("{}-test", bench.name());
        let tasks = bench.tasks(opts.shape.tasks as usize, "propack-test-bucket", &run_id);
        let manifest = write_manifest(&tasks);
        let input =
            serde_json::to_value(distributed_input(&run_id, "propack-test-bucket")).unwrap();
        let iterations = expand_distributed(map_state(&built.definition), &manifest, &input);
        check_iterations(
            &built.definition,
            &iterations,
            &tasks,
            &run_id,
            opts.shape.packing as usize,
        );
    }
}

#[test]
fn inline_batches_are_runtime_batches() {
    let bench = Workload::Sort;
    let (c, k) = (60usize, 10usize);
    let built = build_definition(&bench.options(c as u64, k as u64)).unwrap();
    assert_eq!(built.mode, ProcessorMode::Inline, "{}", built.reason);
    let run_id = "inline-test";
    let tasks = bench.tasks(c, "b", run_id);
    let input = inline_input(
        run_id,
        "s3://b/propack/runs/inline-test/out/",
        &tasks,
        k,
        Some(3),
    )
    .unwrap();
    let input = serde_json::to_value(input).unwrap();
    assert!(
        serde_json::to_vec(&input).unwrap().len() as u64
            <= built.estimated_inline_input_bytes.unwrap()
    );
    let iterations = expand_inline(map_state(&built.definition), &input);
    check_iterations(&built.definition, &iterations, &tasks, run_id, k);
    let ids: BTreeMap<String, usize> = iterations
        .iter()
        .map(|b| Batch::from_value(b, &ParseOptions::default()).unwrap())
        .map(|b| (b.batch_id.unwrap(), b.parallelism.unwrap()))
        .collect();
    assert_eq!(ids.len(), c / k, "inline batches carry distinct batch ids");
}

#[test]
fn byte_limit_would_split_batches_the_builder_refuses() {
    // The builder refuses a k whose batch would exceed 256 KB, because Step Functions
    // would silently split it (changing k); show the split happens in the expansion.
    let bench = Workload::Video;
    let mut opts = bench.options(100, 10);
    opts.shape.task_bytes = 30_000;
    assert!(build_definition(&opts).is_err());
    opts.shape.task_bytes = 1_000;
    opts.mode = propack_step_functions::ModeRequest::Distributed;
    let built = build_definition(&opts).unwrap();
    let mut tasks = bench.tasks(100, "b", "r");
    for t in &mut tasks {
        t.timeout_ms = Some(1);
        t.outputs
            .insert("pad".into(), format!("s3://b/{}", "x".repeat(30_000)));
    }
    let map = map_state(&built.definition);
    let mut forced = map.clone();
    forced.item_batcher.as_mut().unwrap().max_items_per_batch = Some(10);
    let input = serde_json::to_value(distributed_input("r", "b")).unwrap();
    let batches = expand_distributed(&forced, &write_manifest(&tasks), &input);
    assert!(
        batches.len() > 10,
        "oversized tasks split batches below k: {}",
        batches.len()
    );
    assert_eq!(MAP_STATE, built.definition.start_at);
}

#[test]
fn benchmark_task_params_are_accepted_by_the_workloads() {
    use propack_workloads::{
        sort::SortParams, statelesscost::StatelessCostParams, video::VideoParams,
    };
    for bench in Workload::ALL {
        let task = bench.task(3, "b", "r");
        let spec = task.builtin().expect("benchmark tasks are built-ins");
        assert_eq!(spec.name, bench.name());
        let ok = match bench {
            Workload::Sort => SortParams::from_value(&spec.params).map(drop),
            Workload::StatelessCost => StatelessCostParams::from_value(&spec.params).map(drop),
            Workload::Video => VideoParams::from_value(&spec.params).map(drop),
        };
        ok.unwrap_or_else(|e| panic!("{}: {e}", bench.name()));
        assert!(
            task.outputs.contains_key("output"),
            "built-ins write the output named `output`"
        );
    }
}

#[test]
fn console_doc_inputs_are_what_the_definitions_read() {
    use propack_step_functions::ExecutionInput;
    let doc =
        std::fs::read_to_string(propack_tests::workspace_root().join("docs/console.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    let mut inputs = 0;
    for block in blocks {
        // The manifest example elides tasks with "…"; only complete JSON is checked.
        let Ok(value) = serde_json::from_str::<Value>(block) else {
            continue;
        };
        if !value.is_object() {
            continue;
        }
        let input: ExecutionInput =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}:\n{block}"));
        inputs += 1;
        match input.batches {
            Some(_) => {
                let map = map_state(
                    &build_definition(&Workload::Sort.options(60, 10))
                        .unwrap()
                        .definition,
                )
                .clone();
                for batch in expand_inline(&map, &value) {
                    Batch::from_value(&batch, &ParseOptions::default()).unwrap();
                }
            }
            None => {
                let def = build_definition(&Workload::Sort.options(1000, 10))
                    .unwrap()
                    .definition;
                let map = map_state(&def);
                for template in [
                    map.item_reader
                        .as_ref()
                        .unwrap()
                        .parameters
                        .as_ref()
                        .unwrap(),
                    map.result_writer
                        .as_ref()
                        .unwrap()
                        .parameters
                        .as_ref()
                        .unwrap(),
                    map.item_batcher
                        .as_ref()
                        .unwrap()
                        .batch_input
                        .as_ref()
                        .unwrap(),
                ] {
                    apply(template, &value).unwrap_or_else(|e| panic!("{e}:\n{block}"));
                }
            }
        }
    }
    assert_eq!(
        inputs, 2,
        "docs/console.md shows one distributed and one inline input"
    );
}
