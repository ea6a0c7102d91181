//! `orchestrator`: profile, plan, define, launch and evaluate packed serverless jobs.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// ProPack: run thousands of concurrent serverless tasks faster and cheaper by packing k per instance.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Choose the packing degree k for a job from a profile.
    Plan(cmd::plan::Args),
    /// List the stored plans.
    Plans(cmd::plans::Args),
    /// Import or measure profiles.
    #[command(subcommand)]
    Profile(cmd::profile::Command),
    /// Validate the model against measurements.
    #[command(subcommand)]
    Model(cmd::model::Command),
    /// Print the Step Functions definition for a packed job.
    Definition(cmd::definition::Args),
    /// Plan, run, verify and report a packed job.
    Launch(cmd::launch::Args),
    /// Run a run's tasks that are not done again, and merge them into the run.
    Resume(cmd::resume::ResumeArgs),
    /// Show where a run stands (done, failed, never returned, attempts).
    Status(cmd::resume::StatusArgs),
    /// Run the local Lambda platform standalone.
    #[command(subcommand)]
    Platform(cmd::platform::Command),
    /// Build the Lambda zip or layer (bootstrap + propack-bench + your files) with cargo-lambda.
    Package(cmd::package::Args),
    /// Create or update the function and state machine on AWS.
    Deploy(cmd::deploy::Args),
    /// Write what deploy creates as an AWS SAM or CloudFormation template.
    #[cfg(feature = "aws")]
    Template(cmd::template::Args),
    /// Compare ProPack with no packing, the Oracle and PyWren on the simulator.
    Evaluate(cmd::evaluate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(a) => cmd::plan::run(a),
        Command::Plans(a) => cmd::plans::run(a),
        Command::Profile(c) => cmd::profile::run(c),
        Command::Model(c) => cmd::model::run(c),
        Command::Definition(a) => cmd::definition::run(a),
        Command::Launch(a) => cmd::launch::run(a),
        Command::Resume(a) => cmd::resume::resume(a),
        Command::Status(a) => cmd::resume::status(a),
        Command::Platform(c) => cmd::platform::run(c),
        Command::Package(a) => cmd::package::run(a),
        Command::Deploy(a) => cmd::deploy::run(a),
        #[cfg(feature = "aws")]
        Command::Template(a) => cmd::template::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if cmd::is_usage(&e) { 2 } else { 1 })
        }
    }
}
