//! `orchestrator plan`.

/// Arguments of `orchestrator plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator plan`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator plan` is not implemented yet")
}
