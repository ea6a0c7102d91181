//! `orchestrator launch`.

/// Arguments of `orchestrator launch`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator launch`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator launch` is not implemented yet")
}
