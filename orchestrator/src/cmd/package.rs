//! `orchestrator package`.

/// Arguments of `orchestrator package`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator package`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator package` is not implemented yet")
}
