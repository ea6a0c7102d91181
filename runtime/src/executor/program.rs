//! Where an exec task's program is found: the task root, then `/opt/bin`, then `PATH`, as on Lambda.
//!
//! A function zip unpacks under `$LAMBDA_TASK_ROOT` (`/var/task`) and layers under `/opt`, so
//! the same task (`"program": "bin/tool"`) finds the user's own file whether it was shipped
//! in the function zip, in a layer or is part of the OS image, locally and on AWS alike.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where layers put executables (`/opt/bin` is on Lambda's `PATH` too, but only after the OS's).
pub const OPT_BIN: &str = "/opt/bin";

/// The directories a relative program is looked up in, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    /// The function's code (`LAMBDA_TASK_ROOT`).
    pub task_root: PathBuf,
    /// Layer executables ([`OPT_BIN`]).
    pub opt_bin: PathBuf,
    /// The `PATH` value (the task's own `env.PATH` if it sets one, else the runtime's).
    pub path: Option<OsString>,
}

impl SearchPath {
    /// The lookup for a task with this task root and optional `PATH` override.
    pub fn new(task_root: &Path, path_override: Option<&str>) -> Self {
        Self {
            task_root: task_root.to_owned(),
            opt_bin: PathBuf::from(OPT_BIN),
            path: path_override
                .map(OsString::from)
                .or_else(|| std::env::var_os("PATH")),
        }
    }

    /// The directories in lookup order, made absolute (the task runs in its scratch directory,
    /// so a relative task root would otherwise mean something else to it).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![absolute(&self.task_root), absolute(&self.opt_bin)];
        if let Some(path) = &self.path {
            // An empty PATH entry means "the current directory" to a shell; the task's
            // current directory is its scratch, which is searched explicitly, if at all.
            dirs.extend(
                std::env::split_paths(path)
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(|d| absolute(&d)),
            );
        }
        dirs
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// A relative program was found nowhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "exec.program {program:?} not found: looked in {}{}",
    list(.looked_in),
    not_executable_note(.not_executable)
)]
pub struct ProgramNotFound {
    /// The program as the task named it.
    pub program: String,
    /// Every directory searched, in order.
    pub looked_in: Vec<PathBuf>,
    /// Files of that name that exist but may not be executed (a lost exec bit is the usual cause).
    pub not_executable: Vec<PathBuf>,
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_executable_note(files: &[PathBuf]) -> String {
    if files.is_empty() {
        String::new()
    } else {
        format!(
            " ({} exists but is not executable: chmod +x it before packaging)",
            list(files)
        )
    }
}

/// Resolves `program`: an absolute path is used as it is; anything else (`tool`, `bin/tool`)
/// is the first executable regular file `DIR/program` over [`SearchPath::dirs`] — the task
/// root, then `/opt/bin`, then each `PATH` entry — and finally, for a path with a `/` in
/// it (`./run.sh`), the task's scratch directory `cwd`, where a staged input lands.
pub fn resolve(program: &str, search: &SearchPath, cwd: &Path) -> Result<PathBuf, ProgramNotFound> {
    let p = Path::new(program);
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    let mut looked_in = search.dirs();
    if program.contains('/') {
        looked_in.push(absolute(cwd));
    }
    let mut not_executable = Vec::new();
    for dir in &looked_in {
        let candidate = dir.join(p);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(m) if m.is_file() => not_executable.push(candidate),
            _ => {}
        }
    }
    Err(ProgramNotFound {
        program: program.to_owned(),
        looked_in,
        not_executable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(path: &Path, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    struct Dirs {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        opt: PathBuf,
        path1: PathBuf,
        path2: PathBuf,
        scratch: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = tmp.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        Dirs {
            root: d("task"),
            opt: d("opt-bin"),
            path1: d("path1"),
            path2: d("path2"),
            scratch: d("scratch"),
            _tmp: tmp,
        }
    }

    fn search(d: &Dirs) -> SearchPath {
        SearchPath {
            task_root: d.root.clone(),
            opt_bin: d.opt.clone(),
            path: Some(std::env::join_paths([&d.path1, &d.path2]).unwrap()),
        }
    }

    #[test]
    fn task_root_wins_over_opt_bin_and_path() {
        let d = dirs();
        for dir in [&d.root, &d.opt, &d.path1] {
            exe(&dir.join("tool"), 0o755);
        }
        let s = search(&d);
        assert_eq!(
            resolve("tool", &s, &d.scratch).unwrap(),
            d.root.join("tool")
        );
        std::fs::remove_file(d.root.join("tool")).unwrap();
        assert_eq!(resolve("tool", &s, &d.scratch).unwrap(), d.opt.join("tool"));
        std::fs::remove_file(d.opt.join("tool")).unwrap();
        assert_eq!(
            resolve("tool", &s, &d.scratch).unwrap(),
            d.path1.join("tool")
        );
    }

    #[test]
    fn path_entries_are_searched_in_order() {
        let d = dirs();
        exe(&d.path2.join("tool"), 0o755);
        assert_eq!(
            resolve("tool", &search(&d), &d.scratch).unwrap(),
            d.path2.join("tool")
        );
        exe(&d.path1.join("tool"), 0o700);
        assert_eq!(
            resolve("tool", &search(&d), &d.scratch).unwrap(),
            d.path1.join("tool")
        );
    }

    #[test]
    fn a_relative_path_resolves_under_the_task_root_then_the_scratch() {
        let d = dirs();
        exe(&d.scratch.join("bin/tool"), 0o755);
        let s = search(&d);
        assert_eq!(
            resolve("bin/tool", &s, &d.scratch).unwrap(),
            d.scratch.join("bin/tool")
        );
        exe(&d.root.join("bin/tool"), 0o755);
        assert_eq!(
            resolve("bin/tool", &s, &d.scratch).unwrap(),
            d.root.join("bin/tool")
        );
        // A bare name is never taken from the scratch directory (a staged input is not a command).
        exe(&d.scratch.join("staged"), 0o755);
        assert!(resolve("staged", &s, &d.scratch).is_err());
    }

    #[test]
    fn absolute_programs_are_used_as_given() {
        let d = dirs();
        assert_eq!(
            resolve("/no/such/prog", &search(&d), &d.scratch).unwrap(),
            PathBuf::from("/no/such/prog")
        );
    }

    #[test]
    fn not_found_lists_every_place_and_flags_a_lost_exec_bit() {
        let d = dirs();
        exe(&d.root.join("tool"), 0o644);
        let err = resolve("tool", &search(&d), &d.scratch).unwrap_err();
        assert_eq!(
            err.looked_in,
            vec![
                d.root.clone(),
                d.opt.clone(),
                d.path1.clone(),
                d.path2.clone()
            ]
        );
        assert_eq!(err.not_executable, vec![d.root.join("tool")]);
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "exec.program \"tool\" not found: looked in {}, {}, {}, {} ({} exists but is not \
                 executable: chmod +x it before packaging)",
                d.root.display(),
                d.opt.display(),
                d.path1.display(),
                d.path2.display(),
                d.root.join("tool").display()
            )
        );
    }

    #[test]
    fn a_relative_task_root_is_made_absolute() {
        let s = SearchPath {
            task_root: PathBuf::from("code"),
            opt_bin: PathBuf::from(OPT_BIN),
            path: None,
        };
        let dirs = s.dirs();
        assert_eq!(dirs[0], std::env::current_dir().unwrap().join("code"));
        assert_eq!(dirs[1], PathBuf::from("/opt/bin"));
        assert_eq!(dirs.len(), 2);
    }

    #[test]
    fn a_tasks_own_path_overrides_the_runtimes() {
        let s = SearchPath::new(Path::new("/var/task"), Some("/x:/y"));
        assert_eq!(s.path.as_deref(), Some(std::ffi::OsStr::new("/x:/y")));
        let s = SearchPath::new(Path::new("/var/task"), None);
        assert_eq!(s.path, std::env::var_os("PATH"));
    }
}
