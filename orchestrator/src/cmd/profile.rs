//! `orchestrator profile`.

/// Subcommands of `orchestrator profile`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `orchestrator profile`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
