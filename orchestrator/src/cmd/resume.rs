//! `orchestrator resume` and `orchestrator status`: finish a run's tasks that are not done; show where a run stands.

use std::io::IsTerminal;
use std::path::PathBuf;

use propack_orchestrator::pipeline::Ui;
use propack_orchestrator::pipeline::resume::{self, Reattachment, RunStatus};

/// Arguments of `orchestrator resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run directory `orchestrator launch` wrote (holds launch.json and journal.jsonl).
    pub run_dir: PathBuf,
    /// Packing degree for the remaining tasks (default: the run's k).
    #[arg(long)]
    pub packing: Option<usize>,
    /// Print the result as JSON (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `orchestrator status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator resume`.
pub fn resume(a: ResumeArgs) -> anyhow::Result<()> {
    if a.packing == Some(0) {
        return Err(super::UsageError("--packing must be at least 1".into()).into());
    }
    let sfn = resume::load(&a.run_dir)?.backend.is_sfn();
    let ui = Ui {
        quiet: a.json || !std::io::stderr().is_terminal(),
        stop: super::interrupt::install(&a.run_dir, sfn),
    };
    let s = resume::resume(&a.run_dir, a.packing, ui)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        for r in &s.reattached {
            print_reattachment(r);
        }
        match s.attempt {
            None if s.reattached.iter().any(|r| r.interrupted) => {}
            None if s.reattached.is_empty() => println!("nothing to resume: every task is done"),
            None => println!("nothing left to run"),
            Some(n) => println!("attempt {n}: ran {} tasks at k = {}", s.ran, s.k),
        }
        print_status(&s.status);
    }
    if !s.status.complete {
        anyhow::bail!(
            "{} of {} tasks are still not done (orchestrator resume {} to try again)",
            s.status.tasks - s.status.done,
            s.status.tasks,
            a.run_dir.display()
        );
    }
    Ok(())
}

/// Runs `orchestrator status`.
pub fn status(a: StatusArgs) -> anyhow::Result<()> {
    let s = resume::status(&a.run_dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_status(&s);
    }
    Ok(())
}

fn print_reattachment(r: &Reattachment) {
    let head = format!("attempt {}: re-attached to {}", r.attempt, r.execution_arn);
    match &r.status {
        None if r.stopped => println!("{head}: interrupted while waiting; stopped it"),
        None => println!("{head}: interrupted while waiting; it keeps running"),
        Some(status) => println!(
            "{head}: {}{status}; {} batch results journalled ({} tasks succeeded), {} tasks without a result",
            if r.waited {
                "waited until it ended "
            } else {
                "it had ended "
            },
            r.results,
            r.succeeded,
            r.lost
        ),
    }
}

fn print_status(s: &RunStatus) {
    let mut line = format!("{}: {}/{} tasks done", s.run_id, s.done, s.tasks);
    for (why, n) in &s.unsuccessful {
        line.push_str(&format!(", {n} {why}"));
    }
    if s.never_returned > 0 {
        line.push_str(&format!(", {} never returned", s.never_returned));
    }
    println!("{line}");
    for a in &s.attempts {
        println!(
            "  attempt {} ({}, k = {}): {} tasks, {} succeeded, {} failed, {} never returned",
            a.attempt, a.run_id, a.k, a.tasks, a.succeeded, a.failed, a.missing
        );
    }
}
