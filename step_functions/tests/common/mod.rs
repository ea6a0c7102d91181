//! Helpers shared by this crate's integration tests.

use std::path::PathBuf;

use propack_step_functions::{
    DefinitionOptions, ExecutionType, ModeRequest, Preset, StateMachine, Workload, build_definition,
};

/// `step_functions/definitions/`.
pub fn definitions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("definitions")
}

/// The committed `*.asl.json` files, sorted.
pub fn committed_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(definitions_dir())
        .expect("step_functions/definitions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    files
}

/// A spread of builder options covering every branch that changes the output.
pub fn variants() -> Vec<(String, DefinitionOptions)> {
    let mut out = Vec::new();
    for b in Workload::ALL {
        for (c, k) in [(1, 1), (40, 4), (1000, 1), (1000, 7), (5000, 50)] {
            out.push((format!("{}-c{c}-k{k}", b.name()), b.options(c, k)));
        }
    }
    let mut o = DefinitionOptions::new(20_000, 2);
    o.bucket = Some("my-propack-bucket".into());
    o.function = "arn:aws:lambda:us-east-1:123456789012:function:propack".into();
    o.max_concurrency = Some(10_000);
    o.parallelism = Some(4);
    o.tolerated_failure_percentage = 0;
    o.retry.crash_retries = 0;
    out.push(("fixed-bucket-arn".into(), o));
    let mut o = Workload::Video.options(300, 3);
    o.mode = ModeRequest::Inline;
    o.max_concurrency = Some(100);
    out.push(("inline-forced-over-40".into(), o));
    let mut o = Workload::Sort.options(30, 5);
    o.mode = ModeRequest::Distributed;
    o.execution_type = Some(ExecutionType::Standard);
    out.push(("distributed-forced-standard".into(), o));
    out
}

/// Builds every variant (all must build).
pub fn built_variants() -> Vec<(String, StateMachine)> {
    variants()
        .into_iter()
        .map(|(name, o)| {
            let b = build_definition(&o).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, b.definition)
        })
        .collect()
}
