//! One module per subcommand; each only maps its arguments onto the library.

/// Bad input found after parsing (a missing path, a bad combination): `main` exits with
/// status 2, as for clap's own usage errors, before anything has run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether `e` is a usage error (exit status 2) rather than a failure (1).
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<propack_orchestrator::pipeline::PipelineError>()
                .is_some_and(|p| p.is_usage())
    })
}

pub mod args;
pub mod definition;
pub mod deploy;
pub mod evaluate;
pub mod interrupt;
pub mod launch;
pub mod model;
pub mod package;
pub mod plan;
pub mod plans;
pub mod platform;
pub mod profile;
pub mod profile_run;
pub mod resume;
#[cfg(feature = "aws")]
pub mod template;

/// Marks an error as bad input (exit status 2), keeping its whole message.
pub fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    UsageError(format!("{:#}", e.into())).into()
}
