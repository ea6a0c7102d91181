//! A packed `bootstrap` with one custom built-in, `wordcount`: ProPack's runtime plus your own Rust function.
//!
//! A task `{"id": "t1", "builtin": {"name": "wordcount"}, "inputs": {"input": URI},
//! "outputs": {"output": URI}}` counts the words, lines and bytes of its staged input, writes
//! `"<words> <lines> <bytes>\n"` to its output and returns the same numbers as its `summary`.
//! `{"params": {"panic": true}}` panics instead, to show that a panic fails only its own task.
//! Every shipped built-in (`noop`, `spin`, `sort`, …) and exec task still works.
//!
//! ```sh
//! cargo build -p propack-example-builtin
//! echo '{"tasks":[{"id":"t","builtin":{"name":"wordcount"},"inputs":{"input":"file:///etc/hostname"}}]}' \
//!     | target/debug/propack-example-builtin run --batch -
//! ```

use std::process::ExitCode;

use propack_runtime::Runtime;
use propack_runtime::executor::{BoxError, BuiltinTask};
use serde::{Deserialize, Serialize};

/// `builtin.params` of a `wordcount` task (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Params {
    /// Panic instead of counting (failure-isolation demonstrations and tests).
    panic: bool,
}

/// What a `wordcount` task reports as its `summary`.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Counts {
    words: usize,
    lines: usize,
    bytes: usize,
}

fn count(text: &str) -> Counts {
    Counts {
        words: text.split_whitespace().count(),
        lines: text.lines().count(),
        bytes: text.len(),
    }
}

/// The built-in: runs on one of the batch's worker threads, k of them at a time per instance.
fn wordcount(task: &BuiltinTask<'_>) -> Result<Counts, BoxError> {
    let params: Params = if task.params.is_null() {
        Params::default()
    } else {
        task.params()?
    };
    if params.panic {
        panic!("wordcount task {} was asked to panic", task.id);
    }
    let text = std::fs::read_to_string(task.input("input")?)?;
    let counts = count(&text);
    // Tasks that only want the summary need not declare an output.
    if let Ok(out) = task.output("output") {
        std::fs::write(
            out,
            format!("{} {} {}\n", counts.words, counts.lines, counts.bytes),
        )?;
    }
    Ok(counts)
}

fn main() -> ExitCode {
    Runtime::builder().builtin("wordcount", wordcount).run()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn counts_words_lines_and_bytes() {
        assert_eq!(
            count("one two\nthree  four five\n\nsix"),
            Counts {
                words: 6,
                lines: 4,
                bytes: 29
            }
        );
        assert_eq!(
            count(""),
            Counts {
                words: 0,
                lines: 0,
                bytes: 0
            }
        );
    }

    #[test]
    fn writes_the_counts_and_refuses_unknown_params() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input");
        std::fs::write(&input, "a b c\nd\n").unwrap();
        let inputs = BTreeMap::from([("input".to_owned(), input)]);
        let outputs = BTreeMap::from([("output".to_owned(), dir.path().join("output"))]);
        let task = |params| BuiltinTask {
            id: "t",
            params,
            scratch: dir.path(),
            inputs: &inputs,
            outputs: &outputs,
            deadline: None,
        };
        let c = wordcount(&task(&Value::Null)).unwrap();
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            json!({"words": 4, "lines": 2, "bytes": 8})
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("output")).unwrap(),
            "4 2 8\n"
        );
        let bad = json!({"colour": 1});
        let err = wordcount(&task(&bad)).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
