//! `orchestrator plans`.

/// Arguments of `orchestrator plans`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator plans`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator plans` is not implemented yet")
}
