//! `orchestrator evaluate`.

/// Arguments of `orchestrator evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `orchestrator evaluate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`orchestrator evaluate` is not implemented yet")
}
