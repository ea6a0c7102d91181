//! ProPack's benchmark workloads: sort, statelesscost and video.
//!
//! Each workload is a pure function of files in a task's scratch directory, so
//! the same code runs in-process as a `bootstrap` built-in ([`run_builtin`]) and
//! as the standalone `propack-bench` executable. Every workload validates its
//! params and input and returns a [`WorkloadError`] instead of panicking.
//!
//! | workload | stresses | input | output |
//! |---|---|---|---|
//! | [`sort`] | memory bandwidth, comparison sort | a shard of text floats or TeraSort records | the sorted shard |
//! | [`statelesscost`] | CPU (JPEG codec, resampling) and ~150 MB of memory at 5000×5000 | none (an optional JSON params file) | a 300×300 JPEG or PNG |
//! | [`video`] | streaming decode + per-pixel analysis | a YUV4MPEG2 4:2:0 chunk | one JSON line per frame |
//!
//! # File-name convention
//!
//! The task's `inputs`/`outputs` maps name files in the scratch directory.
//! A workload reads the input named `input`, or else the only input if there
//! is exactly one; it writes the output named `output`, or else the only output.
//! With no output at all it still does the work and leaves the result at
//! `<scratch>/output` (useful for measurements). `statelesscost` needs no input;
//! if one is given it is a JSON object of params (as written by
//! [`generator::generate`]), overridden field by field by the task's own params.
//!
//! # Crates
//!
//! Codecs and resampling come from the [`image`] crate (JPEG via `zune-jpeg`
//! for decoding and image's own baseline encoder, PNG via `png`), a
//! well-maintained pure-Rust stack with no C dependencies, so the Lambda zip
//! needs no shared libraries. YUV4MPEG2 is plain framing and is parsed in
//! [`y4m`]. Randomness is `rand_chacha`'s ChaCha8, whose streams are portable
//! across platforms and versions, so generated inputs are reproducible.
//!
//! Workloads are single-threaded on purpose: parallelism comes from packing
//! k tasks onto the instance's vCPUs, which is exactly what ProPack measures.

pub mod generator;
mod params;
pub mod sort;
pub mod statelesscost;
pub mod video;
pub mod workload;
pub mod y4m;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use workload::{TaskFile, TaskShape, Workload};

/// A workload failed: bad params, bad input, or an I/O error.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No workload of that name.
    #[error("unknown built-in workload {0:?} (known: sort, statelesscost, video)")]
    Unknown(String),
    /// The params are malformed (wrong type, out of range, unknown field).
    #[error("{workload}: invalid params: {message}")]
    Params {
        /// The workload.
        workload: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The task's inputs/outputs do not follow the file-name convention.
    #[error("{workload}: {message}")]
    Layout {
        /// The workload.
        workload: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The input object is empty, truncated or malformed.
    #[error("{workload}: invalid input: {message}")]
    Input {
        /// The workload.
        workload: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// The operation and path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding an image failed.
    #[error("{context}: {source}")]
    Image {
        /// The operation.
        context: String,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// An output failed verification.
    #[error("{workload}: verification failed: {message}")]
    Verify {
        /// The workload.
        workload: &'static str,
        /// What is wrong with the output.
        message: String,
    },
}

impl WorkloadError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn input(workload: &'static str, message: impl Into<String>) -> Self {
        Self::Input {
            workload,
            message: message.into(),
        }
    }

    pub(crate) fn params(workload: &'static str, message: impl Into<String>) -> Self {
        Self::Params {
            workload,
            message: message.into(),
        }
    }

    pub(crate) fn verify(workload: &'static str, message: impl Into<String>) -> Self {
        Self::Verify {
            workload,
            message: message.into(),
        }
    }
}

/// Runs built-in workload `name` with `params` inside `scratch`.
///
/// `inputs` and `outputs` map the task's file names (keys of the task's
/// `inputs`/`outputs`) to their paths in the scratch directory; inputs have
/// already been fetched, outputs are uploaded by the caller after success.
/// See the crate docs for which file each workload reads and writes.
/// Returns a small JSON summary for the task result.
pub fn run_builtin(
    name: &str,
    params: &Value,
    scratch: &Path,
    inputs: &BTreeMap<String, PathBuf>,
    outputs: &BTreeMap<String, PathBuf>,
) -> Result<Value, WorkloadError> {
    match Workload::from_name(name)? {
        Workload::Sort => {
            let input = pick("sort", "input", inputs)?
                .ok_or_else(|| layout("sort", "needs an input file (name it `input`)"))?;
            let output = output_path("sort", scratch, outputs)?;
            sort::run(params, input, &output)
        }
        Workload::StatelessCost => {
            let input = pick("statelesscost", "input", inputs)?;
            let output = output_path("statelesscost", scratch, outputs)?;
            statelesscost::run(params, input, scratch, &output)
        }
        Workload::Video => {
            let input = pick("video", "input", inputs)?
                .ok_or_else(|| layout("video", "needs an input .y4m file (name it `input`)"))?;
            let output = output_path("video", scratch, outputs)?;
            video::run(params, input, &output)
        }
    }
}

/// Checks that `output` is a correct result of workload `name` on `input`.
///
/// - `sort`: the output is sorted and a permutation of the input (input required);
/// - `statelesscost`: the output decodes to a 300×300 image (input unused);
/// - `video`: the output has one JSON line per frame, numbered 0.., and the
///   count equals the header's `XFRAMES` (or the number of frames) of the input
///   (input required).
pub fn verify(
    name: &str,
    params: &Value,
    input: Option<&[u8]>,
    output: &[u8],
) -> Result<(), WorkloadError> {
    match Workload::from_name(name)? {
        Workload::Sort => {
            let input = input.ok_or_else(|| layout("sort", "verification needs the input"))?;
            sort::verify(params, input, output)
        }
        Workload::StatelessCost => statelesscost::verify(output),
        Workload::Video => {
            let input = input.ok_or_else(|| layout("video", "verification needs the input"))?;
            video::verify(input, output)
        }
    }
}

/// [`verify`] on files.
pub fn verify_files(
    name: &str,
    params: &Value,
    input: Option<&Path>,
    output: &Path,
) -> Result<(), WorkloadError> {
    let input = input.map(read_file).transpose()?;
    let output = read_file(output)?;
    verify(name, params, input.as_deref(), &output)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, WorkloadError> {
    std::fs::read(path).map_err(|e| WorkloadError::io(format!("reading {}", path.display()), e))
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WorkloadError> {
    std::fs::write(path, bytes)
        .map_err(|e| WorkloadError::io(format!("writing {}", path.display()), e))
}

fn layout(workload: &'static str, message: impl Into<String>) -> WorkloadError {
    WorkloadError::Layout {
        workload,
        message: message.into(),
    }
}

/// The file named `preferred`, else the only file, else none (empty map).
fn pick<'a>(
    workload: &'static str,
    preferred: &str,
    files: &'a BTreeMap<String, PathBuf>,
) -> Result<Option<&'a Path>, WorkloadError> {
    if let Some(p) = files.get(preferred) {
        return Ok(Some(p));
    }
    match files.len() {
        0 => Ok(None),
        1 => Ok(files.values().next().map(PathBuf::as_path)),
        _ => Err(layout(
            workload,
            format!(
                "{} files given ({}) and none is named `{preferred}`",
                files.len(),
                files.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn output_path(
    workload: &'static str,
    scratch: &Path,
    outputs: &BTreeMap<String, PathBuf>,
) -> Result<PathBuf, WorkloadError> {
    Ok(pick(workload, "output", outputs)?
        .map(Path::to_path_buf)
        .unwrap_or_else(|| scratch.join("output")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files(names: &[&str], dir: &Path) -> BTreeMap<String, PathBuf> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), dir.join(n)))
            .collect()
    }

    #[test]
    fn unknown_workload_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_builtin(
            "nope",
            &json!({}),
            dir.path(),
            &files(&[], dir.path()),
            &files(&[], dir.path()),
        )
        .unwrap_err();
        assert!(matches!(&err, WorkloadError::Unknown(n) if n == "nope"));
        assert!(err.to_string().contains("known: sort"), "{err}");
    }

    #[test]
    fn picks_named_or_single_file() {
        let d = Path::new("/s");
        let one = files(&["shard"], d);
        assert_eq!(
            pick("sort", "input", &one).unwrap(),
            Some(Path::new("/s/shard"))
        );
        let two = files(&["a", "input"], d);
        assert_eq!(
            pick("sort", "input", &two).unwrap(),
            Some(Path::new("/s/input"))
        );
        let err = pick("sort", "input", &files(&["a", "b"], d)).unwrap_err();
        assert!(err.to_string().contains("none is named `input`"), "{err}");
        assert_eq!(pick("sort", "input", &files(&[], d)).unwrap(), None);
    }

    #[test]
    fn run_builtin_follows_the_file_convention_for_every_workload() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases = [
            ("sort", json!({"format": "terasort", "bytes": 3000})),
            ("statelesscost", json!({"width": 200, "height": 100})),
            ("video", json!({"width": 40, "height": 30, "frames": 3})),
        ];
        for (name, params) in cases {
            // A single input under another name is still the input.
            let input = d.join(format!("{name}-shard"));
            std::fs::write(&input, generator::generate(name, 1, &params).unwrap()).unwrap();
            let inputs = BTreeMap::from([("shard".to_owned(), input.clone())]);
            let output = d.join(format!("{name}-result"));
            let outputs = BTreeMap::from([("result".to_owned(), output.clone())]);
            let summary = run_builtin(name, &params, d, &inputs, &outputs).unwrap();
            assert!(summary.is_object(), "{name}: {summary}");
            verify_files(name, &params, Some(&input), &output).unwrap();
        }
        // No output named: the result stays at <scratch>/output.
        let inputs = BTreeMap::from([("input".to_owned(), d.join("sort-shard"))]);
        let p = json!({"format": "terasort"});
        run_builtin("sort", &p, d, &inputs, &BTreeMap::new()).unwrap();
        verify_files("sort", &p, Some(&d.join("sort-shard")), &d.join("output")).unwrap();
        let err = verify("video", &Value::Null, None, b"").unwrap_err();
        assert!(err.to_string().contains("needs the input"), "{err}");
    }

    #[test]
    fn sort_without_input_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_builtin(
            "sort",
            &json!({}),
            dir.path(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs an input"), "{err}");
    }
}
