//! `orchestrator model`.

/// Subcommands of `orchestrator model`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `orchestrator model`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
