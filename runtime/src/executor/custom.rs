//! Custom built-ins: Rust functions a user's own `bootstrap` registers by name, run like the shipped ones.
//!
//! A [`Builtins`] table travels in [`ExecutorConfig::builtins`](super::ExecutorConfig); the
//! executor looks a task's `builtin.name` up there first, so a custom built-in runs on the
//! batch's rayon pool behind the same `catch_unwind`, timeout judgement and result record
//! (`summary` = its return value, `cpu_ms`, `outputs`) as `sort` or `spin`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Any error a custom built-in returns (`?` on most error types converts into it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One task as a custom built-in sees it.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinTask<'a> {
    /// The task's id.
    pub id: &'a str,
    /// `builtin.params` (JSON `null` when the task has none).
    pub params: &'a Value,
    /// The task's own scratch directory (removed after the task ends).
    pub scratch: &'a Path,
    /// The task's `inputs`, already fetched: file name → path in `scratch`.
    pub inputs: &'a BTreeMap<String, PathBuf>,
    /// The task's `outputs`: file name → path in `scratch` to write; uploaded on success.
    pub outputs: &'a BTreeMap<String, PathBuf>,
    /// When the runtime gives up on the task (its `timeout_ms`, capped by the invocation
    /// deadline minus the safety margin); a thread cannot be killed, so long work should check it.
    pub deadline: Option<Instant>,
}

/// A task's params, input or output is not what the built-in needs.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// `params` do not deserialise into the built-in's type.
    #[error("params {params}: {source}")]
    Params {
        /// The params as given.
        params: Value,
        /// Why they do not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The task lists no input or output of that name.
    #[error("the task has no {kind} named {name:?} (it has: {available})")]
    Missing {
        /// `input` or `output`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names it has.
        available: String,
    },
}

impl BuiltinTask<'_> {
    /// The params deserialised into `T` (`null` params are `T`'s unit-like form, e.g. `Option`).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(self.params).map_err(|source| TaskError::Params {
            params: self.params.clone(),
            source,
        })
    }

    /// The staged input file `name`.
    pub fn input(&self, name: &str) -> Result<&Path, TaskError> {
        lookup("input", self.inputs, name)
    }

    /// Where to write the output file `name` (uploaded to its URI if the built-in succeeds).
    pub fn output(&self, name: &str) -> Result<&Path, TaskError> {
        lookup("output", self.outputs, name)
    }

    /// Time left before [`deadline`](Self::deadline); `None` without one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

fn lookup<'m>(
    kind: &'static str,
    map: &'m BTreeMap<String, PathBuf>,
    name: &str,
) -> Result<&'m Path, TaskError> {
    map.get(name)
        .map(PathBuf::as_path)
        .ok_or_else(|| TaskError::Missing {
            kind,
            name: name.to_owned(),
            available: if map.is_empty() {
                "none".to_owned()
            } else {
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
}

type BuiltinFn = dyn Fn(&BuiltinTask<'_>) -> Result<Value, BoxError> + Send + Sync;

/// Custom built-ins by name; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Builtins {
    map: BTreeMap<String, Arc<BuiltinFn>>,
}

impl std::fmt::Debug for Builtins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.map.keys()).finish()
    }
}

impl Builtins {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `f` as the built-in `name`, replacing an earlier one of that name. Its return
    /// value becomes the task's `summary`; a shipped built-in of the same name is shadowed.
    pub fn insert<F, T, E>(&mut self, name: impl Into<String>, f: F)
    where
        F: Fn(&BuiltinTask<'_>) -> Result<T, E> + Send + Sync + 'static,
        T: Serialize,
        E: Into<BoxError>,
    {
        let wrapped = move |task: &BuiltinTask<'_>| -> Result<Value, BoxError> {
            let v = f(task).map_err(Into::into)?;
            serde_json::to_value(v).map_err(|e| format!("its return value is not JSON: {e}").into())
        };
        self.map.insert(name.into(), Arc::new(wrapped));
    }

    /// Runs the built-in `name` if it is registered; `None` when it is not (a shipped one may be).
    pub fn call(&self, name: &str, task: &BuiltinTask<'_>) -> Option<Result<Value, BoxError>> {
        self.map.get(name).map(|f| f(task))
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// An error with its sources, `outer: inner: innermost`, for the task's `error` field.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        // thiserror messages often embed their source already.
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task<'a>(
        params: &'a Value,
        inputs: &'a BTreeMap<String, PathBuf>,
        outputs: &'a BTreeMap<String, PathBuf>,
    ) -> BuiltinTask<'a> {
        BuiltinTask {
            id: "t",
            params,
            scratch: Path::new("/s"),
            inputs,
            outputs,
            deadline: None,
        }
    }

    #[test]
    fn registered_functions_are_called_and_their_values_serialised() {
        #[derive(Serialize)]
        struct Out {
            n: u64,
        }
        let mut b = Builtins::new();
        b.insert("double", |t: &BuiltinTask<'_>| -> Result<Out, BoxError> {
            #[derive(serde::Deserialize)]
            struct P {
                n: u64,
            }
            let p: P = t.params()?;
            Ok(Out { n: p.n * 2 })
        });
        b.insert(
            "fails",
            |_: &BuiltinTask<'_>| -> Result<Value, std::io::Error> {
                Err(std::io::Error::other("disk on fire"))
            },
        );
        assert_eq!(b.names().collect::<Vec<_>>(), ["double", "fails"]);
        assert_eq!(format!("{b:?}"), r#"{"double", "fails"}"#);
        let none = BTreeMap::new();
        let params = json!({"n": 21});
        let v = b.call("double", &task(&params, &none, &none)).unwrap();
        assert_eq!(v.unwrap(), json!({"n": 42}));
        let err = b
            .call("fails", &task(&params, &none, &none))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert!(b.call("sort", &task(&params, &none, &none)).is_none());
        let bad = json!({"n": "x"});
        let err = b
            .call("double", &task(&bad, &none, &none))
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"params {"n":"x"}: invalid type"#),
            "{err}"
        );
    }

    #[test]
    fn missing_inputs_and_outputs_name_what_exists() {
        let inputs = BTreeMap::from([("a.txt".to_owned(), PathBuf::from("/s/a.txt"))]);
        let none = BTreeMap::new();
        let t = task(&Value::Null, &inputs, &none);
        assert_eq!(t.input("a.txt").unwrap(), Path::new("/s/a.txt"));
        assert_eq!(
            t.input("b").unwrap_err().to_string(),
            r#"the task has no input named "b" (it has: a.txt)"#
        );
        assert_eq!(
            t.output("o").unwrap_err().to_string(),
            r#"the task has no output named "o" (it has: none)"#
        );
        assert_eq!(t.remaining(), None);
    }

    #[test]
    fn error_chain_appends_sources_once() {
        let inner = std::io::Error::other("inner");
        let e = TaskError::Params {
            params: Value::Null,
            source: serde_json::Error::io(inner),
        };
        assert_eq!(error_chain(&e), "params null: inner");
    }
}
