//! The workload table: every fact about a benchmark workload that the rest of ProPack-rs uses.
//!
//! `orchestrator launch` and `definition`, the Step Functions presets and
//! `propack-bench` all read a workload's name, sizes, per-task params, file
//! names, timeout and planning estimate from [`Workload`], so the three
//! benchmarks exist once.

use serde_json::{Map, Value, json};

use crate::WorkloadError;

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Sort a shard of text floats (or TeraSort records).
    Sort,
    /// ServerlessBench stateless-cost image pipeline.
    StatelessCost,
    /// Thousand Island Scanner frame stage on one y4m chunk.
    Video,
}

/// A per-task input or output file: its name in the task's scratch directory and the
/// file name (with extension) it gets in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Name in the scratch directory (`input` / `output`, the built-ins' convention).
    pub name: &'static str,
    /// Object name in storage: `<task id>.<ext>`.
    pub object: String,
}

/// Everything about task `index` of a workload except where its files live.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskShape {
    /// Task id, `<workload>-<index:06>`.
    pub id: String,
    /// The built-in's name.
    pub builtin: &'static str,
    /// The built-in's params.
    pub params: Value,
    /// Per-task timeout, ms.
    pub timeout_ms: u64,
    /// The input file, if the workload reads one.
    pub input: Option<TaskFile>,
    /// The output file.
    pub output: TaskFile,
}

/// The size of a workload's tasks, as parsed from the command line (`10MB`, `5000x5000`,
/// `640x360x60`): the generator's (and, for statelesscost, the task's) size params.
pub type Size = Map<String, Value>;

impl Workload {
    /// Every workload, in documentation order.
    pub const ALL: [Workload; 3] = [Workload::Sort, Workload::StatelessCost, Workload::Video];

    /// The workload's name: its `builtin.name` and `propack-bench` subcommand.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Sort => "sort",
            Workload::StatelessCost => "statelesscost",
            Workload::Video => "video",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Result<Self, WorkloadError> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| WorkloadError::Unknown(name.to_owned()))
    }

    /// One line on what it does.
    pub fn description(self) -> &'static str {
        match self {
            Workload::Sort => "sort a shard of text floats",
            Workload::StatelessCost => "ServerlessBench stateless-cost image pipeline",
            Workload::Video => "per-frame video analysis of a y4m chunk",
        }
    }

    /// Per-task size of a local launch when none is given: small enough that a thousand
    /// tasks stay quick on a laptop.
    pub fn default_size(self) -> &'static str {
        match self {
            Workload::Sort => "1MB",
            Workload::StatelessCost => "400x400",
            Workload::Video => "160x120x6",
        }
    }

    /// The paper's per-task size (the committed definitions and the planning estimate).
    pub fn paper_size(self) -> &'static str {
        match self {
            Workload::Sort => "10MB",
            Workload::StatelessCost => "5000x5000",
            Workload::Video => "640x360x60",
        }
    }

    /// Planning estimate: seconds of one task on one Lambda vCPU at the paper size
    /// (a measured profile overrides it).
    pub fn task_seconds(self) -> f64 {
        match self {
            Workload::Sort => 3.0,
            Workload::StatelessCost => 12.0,
            Workload::Video => 6.0,
        }
    }

    /// Per-task timeout: generous, so only a hung task hits it.
    pub fn timeout_ms(self) -> u64 {
        600_000
    }

    /// The k of the committed C = 1000 definitions (6 vCPUs per instance).
    pub fn representative_packing(self) -> u64 {
        match self {
            Workload::Sort => 10,
            Workload::StatelessCost => 6,
            Workload::Video => 8,
        }
    }

    /// Extension of the input object, if the workload reads one (statelesscost needs none).
    fn input_ext(self) -> Option<&'static str> {
        match self {
            Workload::Sort => Some("txt"),
            Workload::StatelessCost => None,
            Workload::Video => Some("y4m"),
        }
    }

    /// Extension of the output object.
    fn output_ext(self) -> &'static str {
        match self {
            Workload::Sort => "txt",
            Workload::StatelessCost => "jpg",
            Workload::Video => "jsonl",
        }
    }

    /// Parses a command-line size (see [`crate::generator::parse_size`]).
    pub fn parse_size(self, size: &str) -> Result<Size, WorkloadError> {
        crate::generator::parse_size(self.name(), size)
    }

    /// The built-in params of every task: what the task itself needs to know of its size
    /// (statelesscost builds its image from params; sort and video read it from the input).
    fn base_params(self, size: &Size) -> Value {
        match self {
            Workload::Sort => json!({"format": "text"}),
            Workload::StatelessCost => Value::Object(size.clone()),
            Workload::Video => json!({}),
        }
    }

    /// Task `index` at `size`.
    pub fn task_shape(self, index: usize, size: &Size) -> TaskShape {
        let id = format!("{}-{index:06}", self.name());
        let mut params = self.base_params(size);
        if self == Workload::StatelessCost {
            params["seed"] = json!(index);
        }
        let file = |name, ext: &str| TaskFile {
            name,
            object: format!("{id}.{ext}"),
        };
        TaskShape {
            input: self.input_ext().map(|e| file("input", e)),
            output: file("output", self.output_ext()),
            builtin: self.name(),
            params,
            timeout_ms: self.timeout_ms(),
            id,
        }
    }

    /// The input of the task whose generator seed is `seed`, or None when the workload
    /// reads no input.
    pub fn generate_input(self, seed: u64, size: &Size) -> Result<Option<Vec<u8>>, WorkloadError> {
        if self.input_ext().is_none() {
            return Ok(None);
        }
        let mut params = Value::Object(size.clone());
        if let Value::Object(p) = self.base_params(size) {
            for (k, v) in p {
                params[k] = v;
            }
        }
        crate::generator::generate(self.name(), seed, &params).map(Some)
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_named() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()).unwrap(), w);
            assert_eq!(w.to_string(), w.name());
        }
        let e = Workload::from_name("nope").unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
    }

    #[test]
    fn task_shapes_follow_the_file_convention() {
        let size = Workload::StatelessCost.parse_size("300x200").unwrap();
        let t = Workload::StatelessCost.task_shape(7, &size);
        assert_eq!(t.id, "statelesscost-000007");
        assert_eq!(t.params, json!({"width": 300, "height": 200, "seed": 7}));
        assert_eq!(t.input, None);
        assert_eq!(t.output.object, "statelesscost-000007.jpg");
        let size = Workload::Sort.parse_size("1kB").unwrap();
        let t = Workload::Sort.task_shape(0, &size);
        assert_eq!(t.params, json!({"format": "text"}));
        assert_eq!(
            t.input,
            Some(TaskFile {
                name: "input",
                object: "sort-000000.txt".into()
            })
        );
        assert_eq!(t.timeout_ms, 600_000);
        let t = Workload::Video.task_shape(2, &Workload::Video.parse_size("8x8x2").unwrap());
        assert_eq!(t.output.object, "video-000002.jsonl");
    }

    #[test]
    fn generated_inputs_are_sized_and_verify() {
        let size = Workload::Sort.parse_size("2kB").unwrap();
        let bytes = Workload::Sort.generate_input(3, &size).unwrap().unwrap();
        assert!(bytes.len() >= 2000 && bytes.len() < 2100, "{}", bytes.len());
        assert_eq!(
            bytes,
            Workload::Sort.generate_input(3, &size).unwrap().unwrap()
        );
        let size = Workload::StatelessCost.parse_size("10x10").unwrap();
        assert_eq!(
            Workload::StatelessCost.generate_input(1, &size).unwrap(),
            None
        );
        let size = Workload::Video.parse_size("16x8x3").unwrap();
        let y4m = Workload::Video.generate_input(1, &size).unwrap().unwrap();
        assert!(y4m.starts_with(b"YUV4MPEG2 W16 H8"), "{:?}", &y4m[..20]);
    }

    #[test]
    fn every_paper_size_parses() {
        for w in Workload::ALL {
            w.parse_size(w.paper_size()).unwrap();
            w.parse_size(w.default_size()).unwrap();
            assert!(w.task_seconds() > 0.0 && w.representative_packing() >= 6);
        }
    }
}
