//! Map: one `exec` task per object under a prefix (`--map`) or per argument line (`--map-args`), from a command template.
//!
//! The template is a command line (split as a POSIX shell would, no shell runs it) whose
//! words may hold placeholders:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{input}` | the object's file name in the task's scratch directory (`input` + the key's extension) |
//! | `{output}` | the file the program writes (`output` + the key's extension), uploaded to the output prefix under the same relative key |
//! | `{key}` | the object's key relative to the prefix |
//! | `{id}` | the task id |
//!
//! `{{` and `}}` stand for literal braces. With `--map-args` there is no object, so only
//! `{id}` and `{output}` (uploaded as `<output prefix>/<id>`) are allowed, and each line's
//! JSON array of strings is appended to the argv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use propack_runtime::uri::ObjectUri;
use propack_runtime::{ExecSpec, Task, TaskAction};

use super::error::PipelineError;

/// What a map job iterates over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOver {
    /// Every object under a prefix: `s3://bucket/prefix/`, `file:///dir/` or a plain directory.
    Prefix(String),
    /// One task per line of a JSON-lines file, each line a JSON array of extra argv strings.
    ArgsFile(PathBuf),
}

/// A map job as the user asked for it (`launch --exec ... --map|--map-args ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// The command template (`--exec`).
    pub exec: String,
    /// What to iterate over.
    pub over: MapOver,
    /// Where `{output}` files go (`--output-prefix`), same forms as a prefix.
    pub output_prefix: Option<String>,
}

/// One piece of a template word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Input,
    Output,
    Key,
    Id,
}

/// A parsed `--exec`: the program word and the argument words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    words: Vec<Vec<Piece>>,
}

/// What one task's placeholders stand for.
struct Fill<'a> {
    input: &'a str,
    output: &'a str,
    key: &'a str,
    id: &'a str,
}

fn usage(message: impl Into<String>) -> PipelineError {
    PipelineError::Usage(message.into())
}

impl Template {
    fn parse(exec: &str) -> Result<Self, PipelineError> {
        let words = shlex::split(exec)
            .ok_or_else(|| usage(format!("--exec {exec:?}: unbalanced quotes")))?;
        if words.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(usage("--exec needs a program (its first word is empty)"));
        }
        let words = words
            .iter()
            .map(|w| parse_word(w))
            .collect::<Result<_, _>>()?;
        Ok(Self { words })
    }

    fn uses(&self, piece: &Piece) -> bool {
        self.words.iter().flatten().any(|p| p == piece)
    }

    fn fill(&self, f: &Fill<'_>) -> Vec<String> {
        self.words
            .iter()
            .map(|w| {
                w.iter()
                    .map(|p| match p {
                        Piece::Lit(s) => s.as_str(),
                        Piece::Input => f.input,
                        Piece::Output => f.output,
                        Piece::Key => f.key,
                        Piece::Id => f.id,
                    })
                    .collect()
            })
            .collect()
    }
}

/// Splits one word into literals and placeholders; an unknown `{name}` is a usage error.
fn parse_word(word: &str) -> Result<Vec<Piece>, PipelineError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = word;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            lit.push(c);
            rest = &rest[2..];
        } else if c == '{' {
            let end = rest.find('}').ok_or_else(|| {
                usage(format!(
                    "--exec word {word:?}: '{{' without '}}' (write {{{{ for a literal brace)"
                ))
            })?;
            let piece = match &rest[1..end] {
                "input" => Piece::Input,
                "output" => Piece::Output,
                "key" => Piece::Key,
                "id" => Piece::Id,
                other => {
                    return Err(usage(format!(
                        "unknown placeholder {{{other}}} in --exec (known: {{input}}, {{output}}, {{key}}, {{id}})"
                    )));
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
            rest = &rest[end + 1..];
        } else {
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// A prefix argument as a URI: `s3://` and `file://` as they are, a plain path made absolute.
pub fn prefix_uri(prefix: &str) -> Result<ObjectUri, PipelineError> {
    if prefix.contains("://") {
        return Ok(ObjectUri::parse(prefix)?);
    }
    let abs =
        std::path::absolute(prefix).map_err(PipelineError::io(format!("resolving {prefix}")))?;
    Ok(ObjectUri::from_path(abs)?)
}

/// The file name a key is staged under: `stem` plus the key's extension when it has a short one.
fn scratch_name(stem: &str, key: &str) -> String {
    let ext = Path::new(key)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem.to_owned(),
    }
}

/// Every object key under a local directory, relative to it, `/`-separated and sorted.
fn list_dir(root: &Path) -> Result<Vec<String>, PipelineError> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(PipelineError::io(format!(
            "listing --map {}",
            dir.display()
        )))?;
        for e in entries {
            let e = e.map_err(PipelineError::io(format!(
                "listing --map {}",
                dir.display()
            )))?;
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let rel = path.strip_prefix(root).expect("walked from root");
                let parts: Vec<_> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect();
                keys.push(parts.join("/"));
            }
        }
    }
    keys.sort();
    Ok(keys)
}

/// Every key under `prefix`, relative to it; S3 prefixes are listed with the runtime's S3 client.
fn list_prefix(prefix: &ObjectUri) -> Result<Vec<String>, PipelineError> {
    match prefix {
        ObjectUri::File(dir) if !dir.is_dir() => {
            Err(usage(format!("--map {}: no such directory", dir.display())))
        }
        ObjectUri::File(dir) => list_dir(dir),
        #[cfg(feature = "aws")]
        ObjectUri::S3(s3) => list_s3(s3),
        #[cfg(not(feature = "aws"))]
        ObjectUri::S3(_) => Err(usage(
            "--map s3://... needs the AWS feature (rebuild with `--features aws`)",
        )),
    }
}

#[cfg(feature = "aws")]
fn list_s3(prefix: &propack_runtime::uri::S3Uri) -> Result<Vec<String>, PipelineError> {
    use propack_runtime::s3::{S3Options, S3Store};
    // A directory-like prefix: `s3://b/in` means the objects under `in/`.
    let dir = if prefix.key().is_empty() || prefix.key().ends_with('/') {
        prefix.clone()
    } else {
        propack_runtime::uri::S3Uri::new(prefix.bucket(), format!("{}/", prefix.key()))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PipelineError::io("starting the async runtime"))?;
    let keys = rt
        .block_on(async { S3Store::load(&S3Options::from_env()).await.list(&dir).await })
        .map_err(|e| PipelineError::Backend(crate::backend::aws::AwsError::from(e).into()))?;
    Ok(keys
        .into_iter()
        .filter_map(|k| k.strip_prefix(dir.key()).map(str::to_owned))
        .filter(|k| !k.is_empty() && !k.ends_with('/'))
        .collect())
}

/// The job of a map spec: its tasks, named `map`, keyed by the template and the prefix.
pub fn source(spec: &MapSpec) -> Result<super::JobSource, PipelineError> {
    let (tasks, origin) = tasks(spec)?;
    Ok(super::JobSource::Tasks {
        name: "map".into(),
        tasks,
        origin,
        weights: Vec::new(),
    })
}

/// The tasks of a map job, and the plan store's key for it.
pub fn tasks(spec: &MapSpec) -> Result<(Vec<Task>, String), PipelineError> {
    let template = Template::parse(&spec.exec)?;
    let output_prefix = spec.output_prefix.as_deref().map(prefix_uri).transpose()?;
    match (template.uses(&Piece::Output), &output_prefix) {
        (true, None) => return Err(usage("--exec uses {output}: give --output-prefix PREFIX")),
        (false, Some(_)) => {
            return Err(usage(
                "--output-prefix is set but --exec never writes {output}",
            ));
        }
        _ => {}
    }
    match &spec.over {
        MapOver::Prefix(p) => map_prefix(&template, p, output_prefix.as_ref(), &spec.exec),
        MapOver::ArgsFile(path) => map_args(&template, path, output_prefix.as_ref(), &spec.exec),
    }
}

fn exec_task(id: String, argv: Vec<String>) -> Task {
    let mut argv = argv.into_iter();
    let program = argv.next().expect("a template has a program word");
    Task {
        id,
        action: TaskAction::Exec(ExecSpec {
            program,
            args: argv.collect(),
            env: BTreeMap::new(),
        }),
        timeout_ms: None,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
    }
}

fn map_prefix(
    template: &Template,
    prefix: &str,
    output_prefix: Option<&ObjectUri>,
    exec: &str,
) -> Result<(Vec<Task>, String), PipelineError> {
    let base = prefix_uri(prefix)?;
    let keys = list_prefix(&base)?;
    if keys.is_empty() {
        return Err(usage(format!("--map {prefix}: no objects under it")));
    }
    let width = keys.len().to_string().len().max(4);
    let tasks = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let id = format!("task-{i:0width$}");
            let (input, output) = (scratch_name("input", key), scratch_name("output", key));
            let argv = template.fill(&Fill {
                input: &input,
                output: &output,
                key,
                id: &id,
            });
            let mut t = exec_task(id, argv);
            if template.uses(&Piece::Input) {
                t.inputs.insert(input, base.join(key).to_string());
            }
            if let Some(out) = output_prefix {
                t.outputs.insert(output, out.join(key).to_string());
            }
            t
        })
        .collect();
    Ok((tasks, format!("map:{exec}@{base}")))
}

fn map_args(
    template: &Template,
    path: &Path,
    output_prefix: Option<&ObjectUri>,
    exec: &str,
) -> Result<(Vec<Task>, String), PipelineError> {
    for (piece, name) in [(Piece::Input, "{input}"), (Piece::Key, "{key}")] {
        if template.uses(&piece) {
            return Err(usage(format!(
                "--exec uses {name}, which needs --map PREFIX (--map-args has no objects)"
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(PipelineError::io(format!(
        "reading --map-args {}",
        path.display()
    )))?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let extra: Vec<String> = serde_json::from_str(line).map_err(|e| {
            usage(format!(
                "{}:{}: not a JSON array of strings: {e}",
                path.display(),
                n + 1
            ))
        })?;
        lines.push(extra);
    }
    if lines.is_empty() {
        return Err(usage(format!("--map-args {}: no lines", path.display())));
    }
    let width = lines.len().to_string().len().max(4);
    let tasks = lines
        .into_iter()
        .enumerate()
        .map(|(i, extra)| {
            let id = format!("task-{i:0width$}");
            let mut argv = template.fill(&Fill {
                input: "",
                output: "output",
                key: "",
                id: &id,
            });
            argv.extend(extra);
            let mut t = exec_task(id.clone(), argv);
            if let Some(out) = output_prefix {
                t.outputs.insert("output".into(), out.join(&id).to_string());
            }
            t
        })
        .collect();
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    Ok((tasks, format!("map-args:{exec}@{}", abs.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(exec: &str, over: MapOver, out: Option<&str>) -> MapSpec {
        MapSpec {
            exec: exec.into(),
            over,
            output_prefix: out.map(str::to_owned),
        }
    }

    fn argv(t: &Task) -> Vec<String> {
        let TaskAction::Exec(e) = &t.action else {
            panic!("map tasks are exec tasks")
        };
        std::iter::once(e.program.clone())
            .chain(e.args.iter().cloned())
            .collect()
    }

    #[test]
    fn templates_fill_every_placeholder_and_keep_literal_braces() {
        let t = Template::parse("bin/tool --in={input} '{key} x' {output} {{id}} -n {id}").unwrap();
        let got = t.fill(&Fill {
            input: "input.txt",
            output: "output.txt",
            key: "a/b.txt",
            id: "task-0001",
        });
        assert_eq!(
            got,
            [
                "bin/tool",
                "--in=input.txt",
                "a/b.txt x",
                "output.txt",
                "{id}",
                "-n",
                "task-0001"
            ]
        );
    }

    #[test]
    fn bad_templates_are_usage_errors_that_name_the_problem() {
        let cases = [
            ("tool {inptu}", "unknown placeholder {inptu}"),
            ("'' {input}", "needs a program"),
            ("", "needs a program"),
            ("tool 'open", "unbalanced quotes"),
            ("tool {input", "without"),
        ];
        for (exec, want) in cases {
            let e = Template::parse(exec).unwrap_err();
            assert!(e.is_usage(), "{exec:?}");
            assert!(e.to_string().contains(want), "{exec:?}: {e}");
        }
    }

    #[test]
    fn a_directory_maps_to_one_task_per_file_with_relative_keys() {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in");
        std::fs::create_dir_all(inp.join("sub")).unwrap();
        std::fs::write(inp.join("b.txt"), "b").unwrap();
        std::fs::write(inp.join("sub/a.csv"), "a").unwrap();
        std::fs::write(inp.join("noext"), "n").unwrap();
        let out = dir.path().join("out");
        let s = spec(
            "up.sh {input} {output} {key}",
            MapOver::Prefix(inp.display().to_string()),
            Some(out.to_str().unwrap()),
        );
        let (tasks, key) = tasks(&s).unwrap();
        assert_eq!(
            key,
            format!(
                "map:up.sh {{input}} {{output}} {{key}}@file://{}",
                inp.display()
            )
        );
        let ids: Vec<_> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["task-0000", "task-0001", "task-0002"]);
        // Sorted keys: b.txt, noext, sub/a.csv.
        assert_eq!(
            argv(&tasks[0]),
            ["up.sh", "input.txt", "output.txt", "b.txt"]
        );
        assert_eq!(argv(&tasks[1]), ["up.sh", "input", "output", "noext"]);
        assert_eq!(
            argv(&tasks[2]),
            ["up.sh", "input.csv", "output.csv", "sub/a.csv"]
        );
        assert_eq!(
            tasks[2].inputs["input.csv"],
            format!("file://{}/sub/a.csv", inp.display())
        );
        assert_eq!(
            tasks[2].outputs["output.csv"],
            format!("file://{}/sub/a.csv", out.display())
        );
    }

    #[test]
    fn empty_prefixes_and_output_mismatches_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = MapOver::Prefix(dir.path().display().to_string());
        let e = tasks(&spec("tool {input}", p.clone(), None)).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("no objects"), "{e}");
        std::fs::write(dir.path().join("x"), "x").unwrap();
        let e = tasks(&spec("tool {output}", p.clone(), None)).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("--output-prefix"),
            "{e}"
        );
        let e = tasks(&spec("tool {input}", p, Some("/tmp/o"))).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("never writes"),
            "{e}"
        );
    }

    #[test]
    fn args_lines_append_to_the_argv_and_bad_lines_name_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("args.jsonl");
        std::fs::write(&f, "[\"--n\", \"1\"]\n\n[\"--n\", \"2\"]\n").unwrap();
        let out = dir.path().join("out");
        let s = spec(
            "sim -o {output} --seed {id}",
            MapOver::ArgsFile(f.clone()),
            Some(out.to_str().unwrap()),
        );
        let (tasks, _) = tasks(&s).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            argv(&tasks[1]),
            ["sim", "-o", "output", "--seed", "task-0001", "--n", "2"]
        );
        assert_eq!(
            tasks[1].outputs["output"],
            format!("file://{}/task-0001", out.display())
        );
        std::fs::write(&f, "[\"ok\"]\n{\"not\": \"an array\"}\n").unwrap();
        let e = super::tasks(&spec("sim", MapOver::ArgsFile(f.clone()), None)).unwrap_err();
        assert!(e.to_string().contains("args.jsonl:2:"), "{e}");
        let e = super::tasks(&spec("sim {input}", MapOver::ArgsFile(f), None)).unwrap_err();
        assert!(e.to_string().contains("needs --map PREFIX"), "{e}");
    }
}
