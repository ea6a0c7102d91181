//! `orchestrator platform`.

/// Subcommands of `orchestrator platform`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `orchestrator platform`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
