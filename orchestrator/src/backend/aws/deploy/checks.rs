//! What `deploy` is given — environment, handler, code, layers — checked before anything changes.

use std::fmt;
use std::str::FromStr;

use super::super::package::{BOOTSTRAP, EXEC_WRAPPER_PATH, LambdaRuntime};
use super::super::zip::Listed;

/// Lambda attaches at most this many layers to a function.
pub const MAX_LAYERS: usize = 5;

pub use crate::function::{EXEC_WRAPPER_VAR, handler_module_files, parse_handler};

/// Names Lambda sets itself and refuses in a function's configuration.
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// One `--env KEY=VALUE`. `Debug` shows `KEY=****`: the value may be a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=****", self.key)
    }
}

impl FromStr for EnvVar {
    type Err = String;

    /// Errors name the key only, never the value.
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((key, value)) = s.split_once('=') else {
            return Err("expected KEY=VALUE".into());
        };
        if key == "_HANDLER" {
            return Err("_HANDLER is Lambda's Handler field: give it with --handler".into());
        }
        if RESERVED.contains(&key) {
            return Err(format!("{key} is reserved: Lambda sets it itself"));
        }
        // Lambda's rule: [a-zA-Z]([a-zA-Z0-9_])+
        let mut chars = key.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "{key:?} is not a valid name: a letter, then one or more letters, digits or _"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// `--env` as typed, checked later into an [`EnvVar`]: parsing never fails, so that an argument
/// parser has no reason to echo the value in an error. `Debug` shows `KEY=****`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvArg(String);

impl FromStr for EnvArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for EnvArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.0.split_once('=').map_or("?", |(k, _)| k);
        write!(f, "{key}=****")
    }
}

impl EnvArg {
    /// Checks it; the error names the key at most, never the value.
    pub fn check(&self) -> Result<EnvVar, String> {
        self.0.parse()
    }
}

/// Checks a `--layers` ARN: a layer *version*, `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
pub fn parse_layer_version_arn(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 8
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "lambda"
        && parts[5] == "layer"
        && !parts[6].is_empty()
        && parts[7].parse::<u64>().is_ok();
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION)"
        ))
    }
}

/// A deploy whose inputs do not fit together (exit status 2: nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeployInputError {
    /// Too many layers.
    #[error(
        "Lambda attaches at most {MAX_LAYERS} layers to a function; this deploy would attach {0}"
    )]
    TooManyLayers(usize),
    /// A managed runtime without the ProPack layer.
    #[error(
        "--runtime {0} runs the handler packed through ProPack's layer: give --layer ZIP \
         (from `orchestrator package --layer`) or --layers ARN"
    )]
    ManagedWithoutLayer(&'static str),
    /// The layer given for a managed runtime has no exec wrapper.
    #[error(
        "--runtime {0} needs {EXEC_WRAPPER_PATH} in the layer, but the --layer zip has no \
         executable propack-exec-wrapper (package the layer in a tree that has \
         runtime/wrapper/propack-exec-wrapper)"
    )]
    NoExecWrapper(&'static str),
    /// The user set the variable deploy sets for a managed runtime.
    #[error("--env {EXEC_WRAPPER_VAR}: deploy sets it to {EXEC_WRAPPER_PATH} for --runtime {0}")]
    WrapperOverridden(&'static str),
    /// Nothing would start.
    #[error(
        "the function zip has no {BOOTSTRAP} at its root and no layer provides one: give \
         --layer ZIP (from `orchestrator package --layer`) or --layers ARN, or deploy the zip \
         `orchestrator package --include` wrote without --layer"
    )]
    NoBootstrap,
    /// The handler's module is not in the code.
    #[error("--handler {handler}: the function code has none of {}", candidates.join(", "))]
    HandlerModuleMissing {
        /// The handler.
        handler: String,
        /// The files looked for.
        candidates: Vec<String>,
    },
}

/// What one deploy is given, as far as it can be checked without AWS.
#[derive(Debug, Clone, Copy)]
pub struct DeployInputs<'a> {
    /// The runtime.
    pub runtime: LambdaRuntime,
    /// `--handler`, if given.
    pub handler: Option<&'a str>,
    /// The handler language named in the environment (`PROPACK_HANDLER_RUNTIME`), if any.
    pub handler_language: Option<&'a str>,
    /// The function zip's files.
    pub function: &'a [Listed],
    /// The `--layer` zip's files, if one is published.
    pub layer: Option<&'a [Listed]>,
    /// How many `--layers` ARNs are attached besides.
    pub other_layers: usize,
    /// Whether `--env` sets [`EXEC_WRAPPER_VAR`].
    pub env_sets_wrapper: bool,
}

/// Checks that the inputs fit together: layer count, a bootstrap somewhere, the exec wrapper
/// for a managed runtime, and the handler's module in the code (unless other layers may hold it).
pub fn check_inputs(i: &DeployInputs<'_>) -> Result<(), DeployInputError> {
    let layers = i.other_layers + usize::from(i.layer.is_some());
    if layers > MAX_LAYERS {
        return Err(DeployInputError::TooManyLayers(layers));
    }
    let rt = i.runtime.as_str();
    let has =
        |files: &[Listed], name: &str| files.iter().any(|f| f.name == name && f.mode & 0o111 != 0);
    if i.runtime.is_managed() {
        if layers == 0 {
            return Err(DeployInputError::ManagedWithoutLayer(rt));
        }
        if i.layer.is_some_and(|l| !has(l, "propack-exec-wrapper")) {
            return Err(DeployInputError::NoExecWrapper(rt));
        }
        if i.env_sets_wrapper {
            return Err(DeployInputError::WrapperOverridden(rt));
        }
    } else if layers == 0 && !has(i.function, BOOTSTRAP) {
        return Err(DeployInputError::NoBootstrap);
    }
    if let Some(handler) = i.handler
        && i.other_layers == 0
    {
        let language = i.runtime.handler_language().or(i
            .handler_language
            .and_then(propack_runtime::HandlerRuntime::from_runtime_id));
        let candidates = handler_module_files(language, handler);
        let found = i.function.iter().any(|f| candidates.contains(&f.name));
        if !found {
            return Err(DeployInputError::HandlerModuleMissing {
                handler: handler.to_owned(),
                candidates,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[(&str, u32)]) -> Vec<Listed> {
        names
            .iter()
            .map(|(n, m)| Listed {
                name: (*n).into(),
                mode: *m,
                size: 1,
            })
            .collect()
    }

    #[test]
    fn env_vars_parse_and_never_show_their_value() {
        let v: EnvVar = "DB_PASSWORD=s3cr=t".parse().unwrap();
        assert_eq!(
            (v.key.as_str(), v.value.as_str()),
            ("DB_PASSWORD", "s3cr=t")
        );
        assert_eq!(format!("{v:?}"), "DB_PASSWORD=****");
        let err = |s: &str| s.parse::<EnvVar>().unwrap_err();
        assert_eq!(err("NOVALUE"), "expected KEY=VALUE");
        assert!(err("AWS_REGION=x").contains("reserved"));
        assert!(err("_HANDLER=app.h").contains("--handler"));
        assert!(err("1X=secret").contains("not a valid name"));
        assert!(err("A=secret").contains("not a valid name"));
        assert!(
            !err("1X=secret").contains("secret"),
            "errors never echo the value"
        );
        assert!("AB=".parse::<EnvVar>().is_ok());
        let arg: EnvArg = "AWS_REGION=hunter2".parse().unwrap();
        assert_eq!(format!("{arg:?}"), "AWS_REGION=****");
        assert_eq!(
            arg.check().unwrap_err(),
            "AWS_REGION is reserved: Lambda sets it itself"
        );
    }

    #[test]
    fn layer_arns_name_a_version() {
        let arn = "arn:aws:lambda:eu-west-1:123456789012:layer:python-deps:12";
        assert_eq!(parse_layer_version_arn(arn).as_deref(), Ok(arn));
        for bad in [
            "arn:aws:lambda:eu-west-1:123456789012:layer:python-deps",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:1",
            "python-deps:12",
        ] {
            assert!(parse_layer_version_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inputs_must_fit_together() {
        let code = files(&[("app.py", 0o644)]);
        let layer = files(&[("bootstrap", 0o755), ("propack-exec-wrapper", 0o755)]);
        let ok = DeployInputs {
            runtime: LambdaRuntime::Python313,
            handler: Some("app.handler"),
            handler_language: None,
            function: &code,
            layer: Some(&layer),
            other_layers: 0,
            env_sets_wrapper: false,
        };
        check_inputs(&ok).unwrap();
        let err = |i: DeployInputs<'_>| check_inputs(&i).unwrap_err();
        assert_eq!(
            err(DeployInputs {
                other_layers: 5,
                ..ok
            }),
            DeployInputError::TooManyLayers(6)
        );
        assert_eq!(
            err(DeployInputs { layer: None, ..ok }),
            DeployInputError::ManagedWithoutLayer("python3.13")
        );
        let no_wrapper = files(&[("bootstrap", 0o755), ("propack-exec-wrapper", 0o644)]);
        assert_eq!(
            err(DeployInputs {
                layer: Some(&no_wrapper),
                ..ok
            }),
            DeployInputError::NoExecWrapper("python3.13")
        );
        assert_eq!(
            err(DeployInputs {
                env_sets_wrapper: true,
                ..ok
            }),
            DeployInputError::WrapperOverridden("python3.13")
        );
        let e = err(DeployInputs {
            runtime: LambdaRuntime::Nodejs22,
            ..ok
        });
        assert_eq!(
            e.to_string(),
            "--handler app.handler: the function code has none of app.js, app.mjs, app.cjs"
        );
        // The handler may come from a user's layer: not checked then.
        check_inputs(&DeployInputs {
            other_layers: 1,
            runtime: LambdaRuntime::Nodejs22,
            ..ok
        })
        .unwrap();

        // provided.*: a bootstrap in the function zip or a layer.
        let provided = DeployInputs {
            runtime: LambdaRuntime::ProvidedAl2023,
            handler: None,
            layer: None,
            ..ok
        };
        assert_eq!(err(provided), DeployInputError::NoBootstrap);
        check_inputs(&DeployInputs {
            other_layers: 1,
            ..provided
        })
        .unwrap();
        let full = files(&[("bootstrap", 0o755), ("data.txt", 0o644)]);
        check_inputs(&DeployInputs {
            function: &full,
            ..provided
        })
        .unwrap();
        // A handler on provided.al2023 (an interpreter layer's), language from the env.
        assert!(matches!(
            err(DeployInputs {
                handler: Some("app.handler"),
                handler_language: Some("node"),
                layer: Some(&layer),
                ..provided
            }),
            DeployInputError::HandlerModuleMissing { .. }
        ));
        check_inputs(&DeployInputs {
            handler: Some("app.handler"),
            handler_language: Some("python3"),
            layer: Some(&layer),
            ..provided
        })
        .unwrap();
    }
}
