//! Events: one handler task per line of an events file (`launch --handler --code --events`), and `outputs.jsonl` from the results.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use propack_runtime::{BatchResult, HandlerRef, HandlerRuntime, HandlerTask, Task, TaskAction};
use serde_json::{Value, json};

use super::JobSource;
use super::error::PipelineError;
use crate::function::{handler_module_files, parse_handler};

/// A handler job as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSpec {
    /// `module.function` (Lambda's Handler).
    pub handler: String,
    /// The language; None = whichever the code has a module for (Python first).
    pub runtime: Option<HandlerRuntime>,
    /// The handler's code directory (the local task root); None on AWS, where the
    /// deployed function's code (and, without a language, its configuration) is used.
    pub code: Option<PathBuf>,
    /// One JSON event per line.
    pub events: PathBuf,
    /// The function's configuration (`_HANDLER`, `AWS_EXECUTION_ENV`) names the handler, as
    /// on a managed runtime behind ProPack's exec wrapper: tasks carry only their events.
    pub from_function: bool,
}

fn usage(message: impl Into<String>) -> PipelineError {
    PipelineError::Usage(message.into())
}

/// The language whose module file for `handler` is in `code`.
fn runtime_of(spec: &EventsSpec, code: &Path) -> Result<HandlerRuntime, PipelineError> {
    let candidates = match spec.runtime {
        Some(r) => vec![r],
        None => vec![HandlerRuntime::Python3, HandlerRuntime::Node],
    };
    for r in &candidates {
        if handler_module_files(Some(*r), &spec.handler)
            .iter()
            .any(|f| code.join(f).is_file())
        {
            return Ok(*r);
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .flat_map(|r| handler_module_files(Some(*r), &spec.handler))
        .collect();
    Err(usage(format!(
        "--code {} has no module for --handler {}: looked for {}",
        code.display(),
        spec.handler,
        looked.join(", ")
    )))
}

/// The events file's lines as JSON values; a line that is not JSON names its number.
fn read_events(path: &Path) -> Result<Vec<Value>, PipelineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--events {}: {e}", path.display())))?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| {
            usage(format!(
                "{}:{}: not a JSON event: {e}",
                path.display(),
                n + 1
            ))
        })?;
        events.push(v);
    }
    if events.is_empty() {
        return Err(usage(format!("--events {}: no events", path.display())));
    }
    Ok(events)
}

/// The job of an events spec: one handler task per event, named `events`.
pub fn source(spec: &EventsSpec) -> Result<JobSource, PipelineError> {
    parse_handler(&spec.handler).map_err(|e| usage(format!("--handler {e}")))?;
    let runtime = match &spec.code {
        Some(code) if !code.is_dir() => {
            return Err(usage(format!("--code {}: not a directory", code.display())));
        }
        Some(code) => Some(runtime_of(spec, code)?),
        None => spec.runtime,
    };
    let events = read_events(&spec.events)?;
    let width = events.len().to_string().len().max(4);
    // Without a language the function's own configuration (_HANDLER, AWS_EXECUTION_ENV) decides.
    let handler = runtime
        .filter(|_| !spec.from_function)
        .map(|runtime| HandlerRef {
            runtime,
            name: spec.handler.clone(),
        });
    let tasks = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Task {
            id: format!("event-{i:0width$}"),
            action: TaskAction::Handler(HandlerTask {
                event,
                handler: handler.clone(),
            }),
            timeout_ms: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        })
        .collect();
    let abs = std::path::absolute(&spec.events).unwrap_or_else(|_| spec.events.clone());
    Ok(JobSource::Tasks {
        name: "events".into(),
        weights: Vec::new(),
        tasks,
        origin: format!(
            "events:{}:{}@{}",
            runtime.map_or("configured", HandlerRuntime::as_str),
            spec.handler,
            abs.display()
        ),
    })
}

/// One line of `outputs.jsonl` per handler task, in task order: `{"id", "status", "output"}`
/// or `{"id", "status", "error": {"errorType", "errorMessage", "stackTrace"}}`; a task
/// without a result is `{"id", "status": "not_returned"}`. A task that succeeded in any
/// result counts as succeeded.
pub fn output_lines(tasks: &[Task], results: &[BatchResult]) -> Vec<Value> {
    let mut by_id: BTreeMap<&str, &propack_runtime::TaskResult> = BTreeMap::new();
    for r in results.iter().flat_map(|b| &b.tasks) {
        let better = by_id
            .get(r.id.as_str())
            .is_none_or(|old| old.status != propack_runtime::TaskStatus::Succeeded);
        if better {
            by_id.insert(r.id.as_str(), r);
        }
    }
    tasks
        .iter()
        .filter(|t| t.handler().is_some())
        .map(|t| match by_id.get(t.id.as_str()) {
            None => json!({"id": t.id, "status": "not_returned"}),
            Some(r) if r.status == propack_runtime::TaskStatus::Succeeded => {
                json!({"id": t.id, "status": r.status, "output": r.output})
            }
            Some(r) => json!({"id": t.id, "status": r.status, "error": {
                "errorType": r.error_type.clone().unwrap_or_else(|| "Runtime.Unknown".into()),
                "errorMessage": r.error.clone().unwrap_or_default(),
                "stackTrace": r.stack_trace.clone().unwrap_or_default(),
            }}),
        })
        .collect()
}

/// Writes `outputs.jsonl` into `dir` when the job has handler tasks.
pub fn write_outputs(
    dir: &Path,
    tasks: &[Task],
    results: &[BatchResult],
) -> Result<(), PipelineError> {
    let lines = output_lines(tasks, results);
    if lines.is_empty() {
        return Ok(());
    }
    let path = dir.join("outputs.jsonl");
    let mut text = Vec::new();
    for l in &lines {
        serde_json::to_writer(&mut text, l).expect("JSON values serialise");
        text.push(b'\n');
    }
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&text))
        .map_err(PipelineError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, handler: &str, events: &str) -> EventsSpec {
        let path = dir.join("events.jsonl");
        std::fs::write(&path, events).unwrap();
        EventsSpec {
            handler: handler.into(),
            runtime: None,
            code: Some(dir.to_owned()),
            events: path,
            from_function: false,
        }
    }

    #[test]
    fn each_event_becomes_a_handler_task_of_the_detected_language() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "exports.handler = async e => e;").unwrap();
        let JobSource::Tasks {
            name,
            tasks,
            origin,
            ..
        } = source(&spec(dir.path(), "app.handler", "{\"n\": 1}\n\n[2]\n")).unwrap()
        else {
            panic!("events are tasks")
        };
        assert_eq!(name, "events");
        assert!(origin.starts_with("events:node:app.handler@"), "{origin}");
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[1].id, "event-0001");
        let h = tasks[1].handler().unwrap();
        assert_eq!(h.event, json!([2]));
        assert_eq!(h.handler.as_ref().unwrap().runtime, HandlerRuntime::Node);
    }

    #[test]
    fn a_function_configured_handler_leaves_tasks_without_one_but_still_checks_the_code() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "def handler(e, c): return e\n").unwrap();
        let mut s = spec(dir.path(), "app.handler", "{}\n");
        s.from_function = true;
        s.runtime = Some(HandlerRuntime::Python3);
        let JobSource::Tasks { tasks, origin, .. } = source(&s).unwrap() else {
            panic!("events are tasks")
        };
        assert!(
            origin.starts_with("events:python3:app.handler@"),
            "{origin}"
        );
        assert_eq!(tasks[0].handler().unwrap().handler, None);
        s.runtime = Some(HandlerRuntime::Node);
        let e = source(&s).unwrap_err();
        assert!(e.to_string().contains("looked for app.js"), "{e}");
    }

    #[test]
    fn bad_handlers_code_and_events_are_usage_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "def handler(e, c): return e\n").unwrap();
        let cases = [
            ("apphandler", "{}", "not module.function"),
            ("other.handler", "{}", "looked for other.py"),
            (
                "app.handler",
                "{}\nnot json\n",
                "events.jsonl:2: not a JSON event",
            ),
            ("app.handler", "\n", "no events"),
        ];
        for (handler, events, want) in cases {
            // Each case writes its own events file before it is read.
            let e = source(&spec(dir.path(), handler, events)).unwrap_err();
            assert!(e.is_usage(), "{want}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
