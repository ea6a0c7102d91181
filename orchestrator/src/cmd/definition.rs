//! `orchestrator definition`.

/// Arguments of `orchestrator definition`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator definition`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator definition` is not implemented yet")
}
