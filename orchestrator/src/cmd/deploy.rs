//! `orchestrator deploy`.

/// Arguments of `orchestrator deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator deploy`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator deploy` is not implemented yet")
}
