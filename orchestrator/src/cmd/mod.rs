//! One module per subcommand.

pub mod definition;
pub mod deploy;
pub mod evaluate;
pub mod launch;
pub mod model;
pub mod package;
pub mod plan;
pub mod plans;
pub mod platform;
pub mod profile;
pub mod profile_run;

/// Bad input found after parsing (a missing path, a bad combination): `main` exits with
/// status 2, as for clap's own usage errors, before anything has run.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UsageError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

/// Marks an error as bad input (exit status 2).
pub fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    UsageError(e.into().into()).into()
}
