//! `orchestrator definition`: print the Step Functions definition for a packed job.

use std::path::PathBuf;

use anyhow::Context as _;
use propack_step_functions::manifest::{RunLayout, distributed_input, inline_input};
use propack_step_functions::{
    Built, DefinitionOptions, ExecutionInput, ExecutionType, ModeRequest, Preset, ProcessorMode,
    Workload, build_definition,
};
use serde_json::json;

/// Inline vs distributed Map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Inline for small jobs that fit one execution, distributed otherwise.
    Auto,
    /// Pre-packed batches in the execution input (≤ 40 concurrent, ≤ 256 KB input).
    Inline,
    /// S3 manifest + ItemBatcher, up to 10,000 concurrent batches.
    Distributed,
}

/// Child workflow type of a Distributed Map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutionTypeArg {
    /// ≤ 5 minutes per batch, cheaper.
    Express,
    /// Long batches.
    Standard,
}

/// Arguments of `orchestrator definition`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of tasks C.
    #[arg(long)]
    pub tasks: u64,
    /// Packing degree k (tasks per function instance).
    #[arg(long)]
    pub packing: u64,
    /// Packed function name or ARN (Lambda `FunctionName`).
    #[arg(long, default_value = propack_step_functions::build::DEFAULT_FUNCTION)]
    pub function_arn: String,
    /// Fix the S3 bucket of manifest and results in the definition (default: read `bucket` from the execution input).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Size task specs and durations from a built-in benchmark (sort, statelesscost, video).
    #[arg(long, value_parser = super::args::workload_parser())]
    pub benchmark: Option<Workload>,
    /// Inline or distributed Map.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Concurrent batches (default: all ⌈C/k⌉; at most 10,000).
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Percentage of failed batches a Distributed Map tolerates.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub tolerated_failure_percentage: u32,
    /// Workers per batch (BatchInput.parallelism; default: the runtime uses its vCPUs).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Serialised size of one task spec, bytes (overrides --benchmark; default 1024).
    #[arg(long)]
    pub task_bytes: Option<u64>,
    /// Predicted seconds of one task on one vCPU (overrides --benchmark).
    #[arg(long)]
    pub task_seconds: Option<f64>,
    /// vCPUs per function instance.
    #[arg(long, default_value_t = 6)]
    pub vcpus: u32,
    /// Child workflow type (default: EXPRESS when a batch is predicted well under 5 minutes).
    #[arg(long, value_enum)]
    pub execution_type: Option<ExecutionTypeArg>,
    /// Run id used in the example execution input.
    #[arg(long, default_value = "example-run")]
    pub run_id: String,
    /// Also write the definition to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object (definition, mode, reason, warnings, example input) for scripts.
    #[arg(long)]
    pub json: bool,
}

fn options(args: &Args) -> DefinitionOptions {
    let mut o = match args.benchmark {
        Some(w) => w.options(args.tasks, args.packing),
        None => DefinitionOptions::new(args.tasks, args.packing),
    };
    if let Some(b) = args.task_bytes {
        o.shape.task_bytes = b;
    }
    if args.task_seconds.is_some() {
        o.shape.task_seconds = args.task_seconds;
    }
    o.shape.vcpus = args.vcpus;
    o.mode = match args.mode {
        ModeArg::Auto => ModeRequest::Auto,
        ModeArg::Inline => ModeRequest::Inline,
        ModeArg::Distributed => ModeRequest::Distributed,
    };
    o.function = args.function_arn.clone();
    o.bucket = args.bucket.clone();
    o.max_concurrency = args.max_concurrency;
    o.tolerated_failure_percentage = args.tolerated_failure_percentage;
    o.parallelism = args.parallelism;
    o.execution_type = args.execution_type.map(|t| match t {
        ExecutionTypeArg::Express => ExecutionType::Express,
        ExecutionTypeArg::Standard => ExecutionType::Standard,
    });
    o
}

/// The JSON to paste in the console to start this definition, when it can be formed.
fn example_input(args: &Args, built: &Built) -> anyhow::Result<Option<ExecutionInput>> {
    let bucket = args.bucket.as_deref().unwrap_or("YOUR-BUCKET");
    match built.mode {
        ProcessorMode::Distributed => Ok(Some(distributed_input(&args.run_id, bucket))),
        ProcessorMode::Inline => {
            // Inline inputs carry the tasks themselves; only benchmarks have tasks here.
            let Some(b) = args.benchmark else {
                return Ok(None);
            };
            let tasks = b.tasks(args.tasks as usize, bucket, &args.run_id);
            let prefix = RunLayout::new(&args.run_id).output_prefix(bucket);
            let input = inline_input(
                &args.run_id,
                &prefix,
                &tasks,
                args.packing as usize,
                args.parallelism,
            )?;
            Ok(Some(input))
        }
    }
}

/// Runs `orchestrator definition`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let built = build_definition(&options(&args)).context("cannot build this definition")?;
    let text = built.definition.to_json_pretty();
    if let Some(path) = &args.out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    let input = example_input(&args, &built)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary(&args, &built, &input))?
        );
        return Ok(());
    }
    print!("{text}");
    explain(&args, &built, input.as_ref())
}

/// The `--json` object: the definition, what the builder decided and why, and the input.
fn summary(args: &Args, built: &Built, input: &Option<ExecutionInput>) -> serde_json::Value {
    json!({
        "mode": built.mode,
        "reason": built.reason,
        "warnings": built.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "tasks": args.tasks,
        "k": args.packing,
        "batches": built.batches,
        "max_concurrency": built.max_concurrency,
        "execution_type": built.execution_type,
        "execution_type_reason": built.execution_type_reason,
        "max_result_bytes": built.max_result_bytes,
        "estimated_batch_bytes": built.estimated_batch_bytes,
        "estimated_inline_input_bytes": built.estimated_inline_input_bytes,
        "definition": built.definition,
        "execution_input": input,
    })
}

/// What the builder decided, its warnings and the input to start with, on stderr.
fn explain(args: &Args, built: &Built, input: Option<&ExecutionInput>) -> anyhow::Result<()> {
    let mode = match built.mode {
        ProcessorMode::Inline => "inline".to_owned(),
        ProcessorMode::Distributed => format!(
            "distributed ({} children)",
            match built.execution_type {
                Some(ExecutionType::Express) => "EXPRESS",
                _ => "STANDARD",
            }
        ),
    };
    eprintln!(
        "{} tasks, k = {}: {} batches, MaxConcurrency {}, {mode} Map: {}",
        args.tasks, args.packing, built.batches, built.max_concurrency, built.reason
    );
    if let Some(why) = &built.execution_type_reason {
        eprintln!("{why}");
    }
    eprintln!(
        "every batch's result is budgeted to {} bytes (BatchInput max_result_bytes)",
        built.max_result_bytes
    );
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    match (input, built.mode) {
        (Some(i), ProcessorMode::Distributed) => eprintln!(
            "start it with this execution input (upload the task manifest to s3://{}/{} first):\n{}",
            i.bucket.as_deref().unwrap_or_default(),
            i.manifest_key.as_deref().unwrap_or_default(),
            serde_json::to_string_pretty(i)?
        ),
        (Some(_), ProcessorMode::Inline) => eprintln!(
            "the execution input carries the {} pre-packed batches: `--json` prints it as `execution_input`",
            built.batches
        ),
        (None, _) => eprintln!(
            "the execution input of an inline Map carries the batches: {{\"run_id\", \"output_prefix\", \"batches\": \
             [{{\"Items\": [tasks], \"BatchInput\": {{\"run_id\", \"batch_id\", \"output_prefix\"}}}}]}}"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("definition").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_reach_the_builder() {
        let args = parse(&[
            "--tasks",
            "1000",
            "--packing",
            "8",
            "--benchmark",
            "video",
            "--bucket",
            "bkt",
            "--execution-type",
            "standard",
            "--parallelism",
            "4",
            "--function-arn",
            "arn:aws:lambda:eu-west-1:1:function:p",
        ]);
        let built = build_definition(&options(&args)).unwrap();
        assert_eq!(built.mode, ProcessorMode::Distributed);
        assert_eq!(built.execution_type, Some(ExecutionType::Standard));
        let text = built.definition.to_json_pretty();
        assert!(
            text.contains("\"Bucket\": \"bkt\"") && text.contains("function:p"),
            "{text}"
        );
        assert!(text.contains("\"parallelism\": 4"), "{text}");
        let input = example_input(&args, &built).unwrap().unwrap();
        assert_eq!(
            input.manifest_key.as_deref(),
            Some("propack/runs/example-run/manifest.json")
        );
    }

    #[test]
    fn inline_benchmark_jobs_get_a_full_input_and_bad_k_is_refused() {
        let args = parse(&["--tasks", "12", "--packing", "4", "--benchmark", "sort"]);
        let built = build_definition(&options(&args)).unwrap();
        assert_eq!(built.mode, ProcessorMode::Inline);
        let input = example_input(&args, &built).unwrap().unwrap();
        assert_eq!(input.batches.map(|b| b.len()), Some(3));
        let bad = parse(&["--tasks", "3", "--packing", "4"]);
        assert!(build_definition(&options(&bad)).is_err());
        assert!(
            Cli::try_parse_from([
                "definition",
                "--tasks",
                "3",
                "--packing",
                "1",
                "--tolerated-failure-percentage",
                "101"
            ])
            .is_err()
        );
    }
}
