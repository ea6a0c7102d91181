//! A Lambda function's runtime, handler and exec wrapper, as `deploy`, `template`, `launch` and the local platform all read them.
//!
//! Kept free of the AWS SDK so that the local platform emulates exactly what `deploy` sets on
//! AWS: a managed runtime (`python3.13`, `nodejs22.x`) with `AWS_LAMBDA_EXEC_WRAPPER` pointing
//! at the ProPack layer's wrapper, which starts `bootstrap` instead of the language's runtime.

use propack_runtime::HandlerRuntime;
use serde::{Deserialize, Serialize};

/// The environment variable that makes a managed runtime start a wrapper script first.
pub const EXEC_WRAPPER_VAR: &str = "AWS_LAMBDA_EXEC_WRAPPER";

/// Where `deploy` points [`EXEC_WRAPPER_VAR`] for a managed runtime (the layer is `/opt`).
pub const EXEC_WRAPPER_PATH: &str = "/opt/propack-exec-wrapper";

/// The exec wrapper script the layer carries (`runtime/wrapper/propack-exec-wrapper`).
pub const EXEC_WRAPPER_SCRIPT: &str = propack_runtime::EXEC_WRAPPER_SCRIPT;

/// A Lambda runtime: OS-only (`provided.*`, ProPack's `bootstrap` is the runtime) or managed
/// (the language's own runtime starts ProPack's through the layer's exec wrapper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
pub enum LambdaRuntime {
    /// Amazon Linux 2023 (glibc 2.34).
    #[default]
    #[value(name = "provided.al2023")]
    #[serde(rename = "provided.al2023")]
    ProvidedAl2023,
    /// Amazon Linux 2 (glibc 2.26).
    #[value(name = "provided.al2")]
    #[serde(rename = "provided.al2")]
    ProvidedAl2,
    /// Python 3.13 (managed, Amazon Linux 2023).
    #[value(name = "python3.13")]
    #[serde(rename = "python3.13")]
    Python313,
    /// Node.js 22 (managed, Amazon Linux 2023).
    #[value(name = "nodejs22.x")]
    #[serde(rename = "nodejs22.x")]
    Nodejs22,
}

/// A function on a managed runtime whose language runtime ProPack's layer replaces through
/// the exec wrapper: what `deploy --runtime R --handler H --layer` makes on AWS and what
/// `launch --runtime R` emulates on the local platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedFunction {
    /// The managed runtime (`python3.13`, `nodejs22.x`).
    pub runtime: LambdaRuntime,
    /// The function's Handler (`module.function`).
    pub handler: String,
}

impl LambdaRuntime {
    /// The runtime identifier Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProvidedAl2023 => "provided.al2023",
            Self::ProvidedAl2 => "provided.al2",
            Self::Python313 => "python3.13",
            Self::Nodejs22 => "nodejs22.x",
        }
    }

    /// The runtime of an identifier (`python3.13`) or of `AWS_EXECUTION_ENV` (`AWS_Lambda_python3.13`).
    pub fn from_id(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("AWS_Lambda_").unwrap_or(s);
        [
            Self::ProvidedAl2023,
            Self::ProvidedAl2,
            Self::Python313,
            Self::Nodejs22,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Whether Lambda supplies the language runtime (so ProPack's must come in through
    /// the layer's exec wrapper rather than as `bootstrap`).
    pub fn is_managed(self) -> bool {
        matches!(self, Self::Python313 | Self::Nodejs22)
    }

    /// The handler language of a managed runtime.
    pub fn handler_language(self) -> Option<HandlerRuntime> {
        match self {
            Self::Python313 => Some(HandlerRuntime::Python3),
            Self::Nodejs22 => Some(HandlerRuntime::Node),
            Self::ProvidedAl2023 | Self::ProvidedAl2 => None,
        }
    }

    /// `AWS_EXECUTION_ENV` as Lambda sets it on this runtime.
    pub fn execution_env(self) -> String {
        format!("AWS_Lambda_{}", self.as_str())
    }

    /// The interpreter names the local platform looks up on `PATH` for a managed runtime's
    /// start command (Lambda's is `/var/lang/bin/python3.13` or `/var/lang/bin/node`). Not
    /// `python3.13`: version managers put shims of that name on `PATH` that may not run.
    pub fn interpreters(self) -> &'static [&'static str] {
        match self {
            Self::Python313 => &["python3"],
            Self::Nodejs22 => &["node"],
            Self::ProvidedAl2023 | Self::ProvidedAl2 => &[],
        }
    }

    /// The arguments a managed runtime's start command gives its interpreter; an exec wrapper
    /// receives the interpreter and then these.
    pub fn start_args(self) -> &'static [&'static str] {
        match self {
            Self::Python313 => &["-u", "/var/runtime/bootstrap.py"],
            Self::Nodejs22 => &[
                "--expose-gc",
                "--max-http-header-size",
                "81920",
                "/var/runtime/index.mjs",
            ],
            Self::ProvidedAl2023 | Self::ProvidedAl2 => &[],
        }
    }
}

/// Checks a Lambda Handler `module.function` (`dir/` allowed before a Node module): at most
/// 128 characters, no whitespace, a non-empty module and function.
pub fn parse_handler(s: &str) -> Result<String, String> {
    let base = s.rsplit('/').next().unwrap_or(s);
    let ok = s.len() <= 128
        && !s.chars().any(char::is_whitespace)
        && base
            .split_once('.')
            .is_some_and(|(m, f)| !m.is_empty() && !f.is_empty() && !f.ends_with('.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not module.function (e.g. app.handler: function handler in app.py or app.js)"
        ))
    }
}

/// The files one of which the code must hold for `handler` to import: Python resolves
/// `pkg.mod.func` to `pkg/mod.py` (or a package), Node `dir/app.a.b` to `dir/app.{js,mjs,cjs}`.
/// `None` (language unknown) allows either, Python first.
pub fn handler_module_files(language: Option<HandlerRuntime>, handler: &str) -> Vec<String> {
    let mut out = Vec::new();
    if language != Some(HandlerRuntime::Node)
        && let Some((module, _)) = handler.rsplit_once('.')
    {
        let path = module.replace('.', "/");
        out.push(format!("{path}.py"));
        out.push(format!("{path}/__init__.py"));
    }
    if language != Some(HandlerRuntime::Python3) {
        let (dir, base) = match handler.rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b),
            None => (String::new(), handler),
        };
        if let Some((module, _)) = base.split_once('.') {
            for ext in ["js", "mjs", "cjs"] {
                out.push(format!("{dir}{module}.{ext}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_module_dot_function() {
        for ok in [
            "app.handler",
            "src/app.handler",
            "pkg.mod.handler",
            "index.a.b",
        ] {
            assert_eq!(parse_handler(ok).as_deref(), Ok(ok));
        }
        let long = format!("{}.h", "m".repeat(127));
        for bad in [
            "handler",
            ".handler",
            "app.",
            "a b.c",
            "dir.x/app",
            "",
            &long,
        ] {
            assert!(parse_handler(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn module_files_follow_each_language() {
        assert_eq!(
            handler_module_files(Some(HandlerRuntime::Python3), "pkg.mod.handler"),
            ["pkg/mod.py", "pkg/mod/__init__.py"]
        );
        assert_eq!(
            handler_module_files(Some(HandlerRuntime::Node), "src/app.handlers.main"),
            ["src/app.js", "src/app.mjs", "src/app.cjs"]
        );
        assert_eq!(
            handler_module_files(None, "app.handler"),
            ["app.py", "app/__init__.py", "app.js", "app.mjs", "app.cjs"]
        );
    }

    #[test]
    fn runtimes_round_trip_through_ids_and_execution_envs() {
        for r in [
            LambdaRuntime::ProvidedAl2023,
            LambdaRuntime::ProvidedAl2,
            LambdaRuntime::Python313,
            LambdaRuntime::Nodejs22,
        ] {
            assert_eq!(LambdaRuntime::from_id(r.as_str()), Some(r));
            assert_eq!(LambdaRuntime::from_id(&r.execution_env()), Some(r));
            assert_eq!(r.is_managed(), r.handler_language().is_some());
            assert_eq!(r.is_managed(), !r.interpreters().is_empty());
        }
        assert_eq!(
            LambdaRuntime::Python313.execution_env(),
            "AWS_Lambda_python3.13"
        );
        assert_eq!(LambdaRuntime::from_id("python3.12"), None);
    }
}
