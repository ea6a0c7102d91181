//! One module per subcommand.

pub mod args;
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
