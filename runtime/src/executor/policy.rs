//! Which tasks an instance runs: `PROPACK_ALLOWED_PROGRAMS` and `PROPACK_BUILTINS_ONLY`, checked before anything starts.
//!
//! Whoever may invoke the function may otherwise run any program in it. The policy is
//! the function owner's (an environment variable of the function, not a batch field), and a
//! refused task is a `failed` record with the reason while the rest of the batch runs.
//! The allow-list is matched against the program exactly as the task names it, before
//! any `PATH` lookup: an entry without `/` (`python3`, `propack-*`) allows that bare name,
//! an entry with `/` (`/opt/bin/*`, `/var/task/**`) a path; `*` and `?` stay within one
//! path segment, `**` crosses segments. A program path with a `..` segment is refused
//! whenever a list is set, so `/opt/bin/../../bin/sh` cannot pass as `/opt/bin/*`.
//! Symbolic links are not resolved: list only directories that callers cannot write to.

use crate::contract::TaskAction;

use super::ConfigError;

/// The function owner's restrictions on the tasks a batch may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPolicy {
    /// Only built-in tasks run (`PROPACK_BUILTINS_ONLY=1`): exec and handler tasks are refused.
    pub builtins_only: bool,
    /// Programs exec tasks may name (`PROPACK_ALLOWED_PROGRAMS`, comma separated); None = any.
    pub allowed_programs: Option<Vec<String>>,
}

impl TaskPolicy {
    /// The policy from `PROPACK_ALLOWED_PROGRAMS` and `PROPACK_BUILTINS_ONLY`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_values(
            std::env::var("PROPACK_ALLOWED_PROGRAMS").ok().as_deref(),
            std::env::var("PROPACK_BUILTINS_ONLY").ok().as_deref(),
        )
    }

    /// The policy from the two variables' values (None = unset).
    pub fn from_values(
        allowed_programs: Option<&str>,
        builtins_only: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let builtins_only = match builtins_only.map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "PROPACK_BUILTINS_ONLY",
                    value: other.to_owned(),
                    message: "expected 1, true, 0 or false",
                });
            }
        };
        let allowed_programs = match allowed_programs {
            None => None,
            Some(v) if v.trim().is_empty() => None,
            Some(v) => {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect();
                if list.is_empty() {
                    return Err(ConfigError {
                        var: "PROPACK_ALLOWED_PROGRAMS",
                        value: v.to_owned(),
                        message: "expected a comma-separated list of program names or paths",
                    });
                }
                Some(list)
            }
        };
        Ok(Self {
            builtins_only,
            allowed_programs,
        })
    }

    /// Ok if the task may run; otherwise why not, for the task's `error`. The message
    /// names the task's program but never the list's entries (the function's settings).
    pub fn check(&self, action: &TaskAction) -> Result<(), String> {
        match action {
            TaskAction::Builtin(_) => Ok(()),
            TaskAction::Exec(spec) if self.builtins_only => Err(format!(
                "refused: exec task (program {:?}) on a function with PROPACK_BUILTINS_ONLY=1, \
                 which runs built-in tasks only",
                spec.program
            )),
            TaskAction::Handler(_) if self.builtins_only => Err(
                "refused: handler (event) task on a function with PROPACK_BUILTINS_ONLY=1, \
                 which runs built-in tasks only"
                    .to_owned(),
            ),
            TaskAction::Handler(_) => Ok(()),
            TaskAction::Exec(spec) => match &self.allowed_programs {
                None => Ok(()),
                Some(list) => {
                    let program = spec.program.as_str();
                    if program.split('/').any(|seg| seg == "..") {
                        return Err(format!(
                            "refused: program {program:?} has a `..` segment, which \
                             PROPACK_ALLOWED_PROGRAMS never allows"
                        ));
                    }
                    if list.iter().any(|pattern| program_matches(pattern, program)) {
                        Ok(())
                    } else {
                        Err(format!(
                            "refused: program {program:?} is not in this function's \
                             PROPACK_ALLOWED_PROGRAMS ({} entries)",
                            list.len()
                        ))
                    }
                }
            },
        }
    }
}

/// Whether `program` matches the allow-list entry `pattern`: `*`/`?` within a segment,
/// `**` across segments; a bare-name entry only matches a bare name.
pub fn program_matches(pattern: &str, program: &str) -> bool {
    if pattern.contains('/') != program.contains('/') {
        return false;
    }
    glob(pattern.as_bytes(), program.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob(rest, &s[i..]))
        }
        [b'?', rest @ ..] => matches!(s, [c, tail @ ..] if *c != b'/' && glob(rest, tail)),
        [c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && glob(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{BuiltinSpec, ExecSpec, HandlerTask};

    fn exec(program: &str) -> TaskAction {
        TaskAction::Exec(ExecSpec {
            program: program.into(),
            args: vec![],
            env: Default::default(),
        })
    }

    fn builtin() -> TaskAction {
        TaskAction::Builtin(BuiltinSpec {
            name: "noop".into(),
            params: serde_json::Value::Null,
        })
    }

    fn handler() -> TaskAction {
        TaskAction::Handler(HandlerTask {
            event: serde_json::Value::Null,
            handler: None,
        })
    }

    #[test]
    fn globs() {
        for (pattern, program, want) in [
            ("/bin/sh", "/bin/sh", true),
            ("/bin/sh", "/bin/bash", false),
            ("/opt/bin/*", "/opt/bin/tool", true),
            ("/opt/bin/*", "/opt/bin/sub/tool", false),
            ("/opt/bin/**", "/opt/bin/sub/tool", true),
            ("/var/task/bin/pp-?", "/var/task/bin/pp-1", true),
            ("/var/task/bin/pp-?", "/var/task/bin/pp-12", false),
            ("python3", "python3", true),
            ("propack-*", "propack-bench", true),
            // A bare name never allows a path and the other way round.
            ("sh", "/tmp/evil/sh", false),
            ("/bin/sh", "sh", false),
            ("*", "/bin/sh", false),
        ] {
            assert_eq!(
                program_matches(pattern, program),
                want,
                "{pattern} ~ {program}"
            );
        }
    }

    #[test]
    fn allow_list_refuses_before_running() {
        let p = TaskPolicy::from_values(Some(" /bin/echo, /opt/bin/*,python3 ,"), None).unwrap();
        assert_eq!(
            p.allowed_programs.as_deref().unwrap(),
            ["/bin/echo", "/opt/bin/*", "python3"]
        );
        assert_eq!(p.check(&exec("/bin/echo")), Ok(()));
        assert_eq!(p.check(&exec("/opt/bin/x")), Ok(()));
        assert_eq!(p.check(&exec("python3")), Ok(()));
        assert_eq!(
            p.check(&exec("/bin/sh")).unwrap_err(),
            "refused: program \"/bin/sh\" is not in this function's PROPACK_ALLOWED_PROGRAMS (3 entries)"
        );
        let e = p.check(&exec("/opt/bin/../../bin/sh")).unwrap_err();
        assert!(e.contains("`..` segment"), "{e}");
        assert_eq!(p.check(&builtin()), Ok(()));
        assert_eq!(p.check(&handler()), Ok(()));
    }

    #[test]
    fn builtins_only_refuses_exec_and_handlers() {
        let p = TaskPolicy::from_values(Some("/bin/echo"), Some("1")).unwrap();
        assert!(p.builtins_only);
        let e = p.check(&exec("/bin/echo")).unwrap_err();
        assert!(e.contains("PROPACK_BUILTINS_ONLY=1"), "{e}");
        assert!(p.check(&handler()).unwrap_err().contains("handler"));
        assert_eq!(p.check(&builtin()), Ok(()));
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            TaskPolicy::from_values(None, None).unwrap(),
            TaskPolicy::default()
        );
        assert_eq!(
            TaskPolicy::from_values(Some("  "), Some("0")).unwrap(),
            TaskPolicy::default()
        );
        let e = TaskPolicy::from_values(Some(" , ,"), None).unwrap_err();
        assert_eq!(e.var, "PROPACK_ALLOWED_PROGRAMS");
        let e = TaskPolicy::from_values(None, Some("yes")).unwrap_err();
        assert_eq!(e.var, "PROPACK_BUILTINS_ONLY");
    }
}
